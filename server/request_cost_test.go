package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"runtime"
	"runtime/metrics"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/proto/alltogether/exchange/v1/validfast"
)

// rawCodec sends a *rawMessage's bytes as they are and reads an answer
// into one, so that a test can send what no proto.Message marshals to.
type rawCodec struct{}

// rawMessage is the bytes of a message.
type rawMessage struct{ b []byte }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(*rawMessage).b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	v.(*rawMessage).b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// invokeRaw makes a unary call whose request is payload, as is.
func invokeRaw(ctx context.Context, conn *grpc.ClientConn, method string, payload []byte) error {
	return conn.Invoke(ctx, method, &rawMessage{b: payload}, &rawMessage{}, grpc.ForceCodecV2(rawCodec{}))
}

// mustMarshal marshals m or fails the test.
func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trailerBytes is about what a refusal's status takes in the trailer: the
// message and the base64 details.
func trailerBytes(st *status.Status) int {
	b, _ := proto.Marshal(st.Proto())
	return len(st.Message()) + base64.RawStdEncoding.EncodedLen(len(b))
}

// requestMessages lists every message a request of the exchange's
// services can carry, by name: each method's input and every message
// reachable from it.
func requestMessages(t *testing.T) map[protoreflect.FullName]protoreflect.MessageDescriptor {
	t.Helper()
	out := map[protoreflect.FullName]protoreflect.MessageDescriptor{}
	var reach func(md protoreflect.MessageDescriptor)
	reach = func(md protoreflect.MessageDescriptor) {
		if _, seen := out[md.FullName()]; seen {
			return
		}
		out[md.FullName()] = md
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			if fd.Message() != nil {
				reach(fd.Message())
			}
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage("alltogether.exchange.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			methods := fd.Services().Get(i).Methods()
			for j := range methods.Len() {
				reach(methods.Get(j).Input())
			}
		}
		return true
	})
	if len(out) < 50 {
		t.Fatalf("only %d request messages found: are the services registered?", len(out))
	}
	return out
}

func TestEveryRequestListAndMapHasABound(t *testing.T) {
	msgs := requestMessages(t)
	lists := 0
	for _, name := range slices.Sorted(maps.Keys(msgs)) {
		md := msgs[name]
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if !fd.IsList() && !fd.IsMap() {
				continue
			}
			lists++
			rules, err := protovalidate.ResolveFieldRules(fd)
			if err != nil {
				t.Fatal(err)
			}
			declared := fd.IsList() && rules.GetRepeated().HasMaxItems() || fd.IsMap() && rules.GetMap().HasMaxPairs()
			if strings.HasPrefix(string(name), "google.protobuf.") {
				// Well-known types carry no rules: the walk bounds them.
				if declared || boundOfField(md, fd).max != defaultMaxItems {
					t.Errorf("%s: the walk does not bound it by defaultMaxItems", fd.FullName())
				}
				continue
			}
			if !declared {
				t.Errorf("%s has no max_items or max_pairs rule: give it a bound real use fits and say it in its comment", fd.FullName())
				continue
			}
			if got, want := boundOfField(md, fd).max, int(rules.GetRepeated().GetMaxItems()+rules.GetMap().GetMaxPairs()); got != want {
				t.Errorf("%s: the walk bounds it at %d, its rule at %d", fd.FullName(), got, want)
			}
		}
	}
	t.Logf("%d lists and maps in %d request messages", lists, len(msgs))
}

// TestBoundedRequestsReachOnlyDeclaredBounds holds validfast.Bounded, which
// lets a request that passes validfast skip the walk, to the walk's own
// bounds: a request type is Bounded only if no list or map it can reach
// (outside what the rules ignore always) falls back on defaultMaxItems.
func TestBoundedRequestsReachOnlyDeclaredBounds(t *testing.T) {
	var undeclared func(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool
	undeclared = func(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
		if seen[md.FullName()] {
			return false
		}
		seen[md.FullName()] = true
		for _, f := range boundsOf(md).fields {
			if f.ignored {
				continue
			}
			if f.desc.IsList() || f.desc.IsMap() {
				rules, err := protovalidate.ResolveFieldRules(f.desc)
				if err != nil {
					t.Fatal(err)
				}
				if !rules.GetRepeated().HasMaxItems() && !rules.GetMap().HasMaxPairs() {
					return true
				}
			}
			sub := f.desc.Message()
			if f.desc.IsMap() {
				sub = f.desc.MapValue().Message()
			}
			if sub != nil && undeclared(sub, seen) {
				return true
			}
		}
		return false
	}
	bounded, unbounded := 0, 0
	for name, md := range requestMessages(t) {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
		if err != nil || strings.HasPrefix(string(name), "google.protobuf.") {
			continue
		}
		want := !undeclared(md, map[protoreflect.FullName]bool{})
		if got := validfast.Bounded(mt.New().Interface()); got != want {
			t.Errorf("%s: validfast.Bounded is %v; the walk's bounds say %v", name, got, want)
		}
		if want {
			bounded++
		} else {
			unbounded++
		}
	}
	if bounded == 0 || unbounded == 0 {
		t.Errorf("%d request messages bounded, %d not: the test no longer tells them apart", bounded, unbounded)
	}
}

// boundOfField returns the walk's bound of a field.
func boundOfField(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) fieldBound {
	for _, f := range boundsOf(md).fields {
		if f.desc == fd {
			return f
		}
	}
	return fieldBound{max: -1}
}

// violationList lists a refusal's violations as "field rule", sorted.
func violationList(err error) []string {
	st, _ := status.FromError(err)
	var out []string
	for _, fv := range fieldViolations(st) {
		out = append(out, fv.GetField()+" "+fv.GetReason())
	}
	sort.Strings(out)
	return out
}

// oneProtovalidatePass lists the violations of one protovalidate call as
// "field rule", sorted.
func oneProtovalidatePass(t *testing.T, v protovalidate.Validator, m proto.Message) []string {
	t.Helper()
	err := v.Validate(m)
	if err == nil {
		return nil
	}
	verr, ok := err.(*protovalidate.ValidationError)
	if !ok {
		t.Fatalf("validation failed to run: %v", err)
	}
	var out []string
	for _, viol := range verr.Violations {
		out = append(out, protovalidate.FieldPathString(viol.Proto.GetField())+" "+viol.Proto.GetRuleId())
	}
	sort.Strings(out)
	return out
}

// TestValidationMessageByMessageFindsWhatOnePassFinds runs the bounded
// collection of large requests on every malformed request the bad-input
// generator makes (one per rule of every field reachable from every
// method) and wants the very violations one protovalidate pass reports,
// with the same field paths; and a list or map over its bound must be
// refused by the walk naming the field and rule protovalidate names.
func TestValidationMessageByMessageFindsWhatOnePassFinds(t *testing.T) {
	srv := fuzzServer(t, nil)
	compared, refusedByWalk := 0, 0
	for _, m := range slices.Sorted(maps.Keys(badInputBases)) {
		base := badInputBases[m]()
		w := &ruleWalker{method: m, base: base, relative: m == exchangev1.ReferralService_BatchCreateReferrals_FullMethodName,
			reached: map[string]bool{}, hugeSeen: map[string]bool{}, nameSeen: map[string]bool{}}
		w.message(nil, base.ProtoReflect())
		for _, c := range w.cases {
			if c.category == "huge" {
				continue
			}
			want := oneProtovalidatePass(t, srv.validator, c.req)
			walk := requestWalk{}
			walk.message(c.req.ProtoReflect(), nil)
			if walk.report.total > 0 {
				refusedByWalk++
				got := violationList(walk.report.status())
				for _, g := range got {
					if !slices.Contains(want, g) {
						t.Errorf("%s %s: the walk reports %q, protovalidate %q", m, c.what, g, want)
					}
				}
				continue
			}
			if len(want) == 0 {
				continue
			}
			compared++
			report, err := srv.violationsMessageByMessage(c.req)
			if err == nil {
				err = report.status()
			}
			if got := violationList(err); !slices.Equal(got, want) {
				t.Errorf("%s %s:\nmessage by message %q\none pass           %q", m, c.what, got, want)
			}
			st, _ := status.FromError(err)
			if more := fmt.Sprintf("(and %d more)", len(want)-1); len(want) > 1 && !strings.HasSuffix(st.Message(), more) {
				t.Errorf("%s %s: message %q does not end %q", m, c.what, st.Message(), more)
			}
		}
	}
	if compared < 500 || refusedByWalk < 20 {
		t.Fatalf("compared only %d invalid requests, %d refused by the walk", compared, refusedByWalk)
	}
	t.Logf("%d invalid requests give the same violations message by message; %d lists over their bound refused by the walk", compared, refusedByWalk)
}

// heapWatch measures the heap while a call runs: the bytes allocated
// (runtime.MemStats.TotalAlloc's delta) and the peak of the heap's
// objects (HeapAlloc) above what it was when the watch began.
type heapWatch struct {
	startAlloc, startHeap uint64
	peak                  atomic.Uint64
	stop                  chan struct{}
	done                  sync.WaitGroup
}

var heapSamples = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}

func readHeap() (allocated, objects uint64) {
	s := slices.Clone(heapSamples)
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

func watchHeap() *heapWatch {
	runtime.GC()
	w := &heapWatch{stop: make(chan struct{})}
	w.startAlloc, w.startHeap = readHeap()
	w.peak.Store(w.startHeap)
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
				if _, h := readHeap(); h > w.peak.Load() {
					w.peak.Store(h)
				}
			}
		}
	}()
	return w
}

// end stops the watch and returns the bytes allocated and the heap's peak
// growth.
func (w *heapWatch) end() (allocated, peakGrowth uint64) {
	close(w.stop)
	w.done.Wait()
	a, h := readHeap()
	peak := max(w.peak.Load(), h)
	return a - w.startAlloc, peak - min(peak, w.startHeap)
}

const mib = 1 << 20

// attackHeapBound is the most the heap may grow while one attacking
// request runs, and attackAllocBound the most it may make the exchange
// allocate in all (the client side of the test included; it sends
// prepared bytes). Refused before decoding, the request costs about its
// own size; decoding a million empty strings would allocate about 85 MiB
// (16 bytes a string, in a slice grown by doubling), and before the
// bound on lists they took 2 GB.
const (
	attackHeapBound  = 16 * mib
	attackAllocBound = 16 * mib
)

func TestAnAttackingRequestIsRefusedCheaplyAndReadably(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo") // records ilo's certificate: a change
	before := x.store.Revision()
	ctx := context.Background()
	million := mustMarshal(t, &exchangev1.AggregateDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", Locations: make([]string, 1_000_000)})
	ref := baseReferral()
	ref.Subject.Languages = make([]string, 300_000)
	languages := mustMarshal(t, &exchangev1.CreateReferralRequest{Referral: ref, RequestId: "attack-1"})
	for _, c := range []struct {
		name, method, message, field string
		payload                      []byte
	}{
		{"1,000,000 empty locations", exchangev1.DatasetService_AggregateDatasetRows_FullMethodName,
			"invalid request: locations: has 1000000 items; at most 200", "locations", million},
		{"300,000 empty languages", exchangev1.ReferralService_CreateReferral_FullMethodName,
			"invalid request: referral.subject.languages: has 300000 items; at most 10", "referral.subject.languages", languages},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The first call warms the connection and the caches.
			if err := invokeRaw(ctx, ilo.conn, c.method, c.payload); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want INVALID_ARGUMENT", err)
			}
			w := watchHeap()
			start := time.Now()
			err := invokeRaw(ctx, ilo.conn, c.method, c.payload)
			took := time.Since(start)
			allocated, growth := w.end()
			st := wantCode(t, err, codes.InvalidArgument)
			if st.Message() != c.message {
				t.Errorf("message %q, want %q", st.Message(), c.message)
			}
			if got := violationList(err); !slices.Equal(got, []string{c.field + " repeated.max_items"}) {
				t.Errorf("violations %q, want the one field", got)
			}
			if n := trailerBytes(st); n > 16<<10 {
				t.Errorf("the refusal takes %d bytes of trailer", n)
			}
			t.Logf("%d-byte request: refused in %v; %.1f MiB allocated (bound %d MiB), heap peak +%.1f MiB (bound %d MiB)",
				len(c.payload), took.Round(time.Millisecond), float64(allocated)/mib, attackAllocBound/mib, float64(growth)/mib, attackHeapBound/mib)
			if allocated > attackAllocBound || growth > attackHeapBound {
				t.Errorf("one attacking request cost %d MiB allocated, %d MiB of heap", allocated/mib, growth/mib)
			}
		})
	}
	if x.store.Revision() != before {
		t.Fatalf("the attack changed the store: revision %d, was %d", x.store.Revision(), before)
	}
}

// manyInvalidPlans is an ApplyPlans request within every bound whose
// plans each break rules on every location: 1000 plans of 200 locations
// that are not country codes, 200,000 violations.
func manyInvalidPlans(t testing.TB) []byte {
	plans := make([]*exchangev1.Plan, 1000)
	for i := range plans {
		p := basePlan()
		p.ExternalId = fmt.Sprintf("KH-2026-%04d", i)
		p.Locations = make([]*exchangev1.LocationRef, 200)
		for j := range p.Locations {
			p.Locations[j] = &exchangev1.LocationRef{Country: "x"}
		}
		plans[i] = p
	}
	return mustMarshal(t, &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo", Plans: plans})
}

// manyViolationsHeapBound is the most the heap may grow while the
// exchange refuses manyInvalidPlans: the 201,000 decoded messages take
// about 30 MiB; one pass of protovalidate would hold 200,000 violations
// (about 400 MiB) at once.
const manyViolationsHeapBound = 64 * mib

func TestARequestWithManyViolationsGetsABoundedAnswer(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")
	ctx := context.Background()
	payload := manyInvalidPlans(t)
	if err := invokeRaw(ctx, ilo.conn, exchangev1.PlanService_ApplyPlans_FullMethodName, payload); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT", err)
	}
	w := watchHeap()
	start := time.Now()
	err := invokeRaw(ctx, ilo.conn, exchangev1.PlanService_ApplyPlans_FullMethodName, payload)
	took := time.Since(start)
	allocated, growth := w.end()
	st := wantCode(t, err, codes.InvalidArgument)
	const want = "invalid request: plans[0].locations[0].country: does not match regex pattern `^[A-Z]{2}$` (and 199999 more)"
	if st.Message() != want {
		t.Errorf("message %q,\nwant    %q", st.Message(), want)
	}
	// The first violations are listed, as many as fit 8 KiB of text.
	fvs := fieldViolations(st)
	if len(fvs) < 90 || len(fvs) > maxReportedViolations {
		t.Errorf("%d violations listed, want 90 to %d", len(fvs), maxReportedViolations)
	}
	for i, fv := range fvs {
		if want := fmt.Sprintf("plans[0].locations[%d].country", i); fv.GetField() != want {
			t.Fatalf("violation %d names %s, want %s", i, fv.GetField(), want)
		}
	}
	n := trailerBytes(st)
	if n > 16<<10 {
		t.Errorf("the refusal takes %d bytes of trailer, over 16 KiB", n)
	}
	t.Logf("%d-byte request with 200,000 violations: refused in %v with a %d-byte trailer; %.1f MiB allocated, heap peak +%.1f MiB (bound %d MiB)",
		len(payload), took.Round(time.Millisecond), n, float64(allocated)/mib, float64(growth)/mib, manyViolationsHeapBound/mib)
	if growth > manyViolationsHeapBound {
		t.Errorf("the heap grew %d MiB, over %d MiB", growth/mib, manyViolationsHeapBound/mib)
	}
}

// p99 is the 99th percentile of latencies.
func p99(latencies []time.Duration) time.Duration {
	s := slices.Clone(latencies)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// smallCalls makes GetAgency calls one after another for d and returns
// their latencies.
func smallCalls(t *testing.T, a as, d time.Duration) []time.Duration {
	t.Helper()
	ctx := context.Background()
	var out []time.Duration
	for end := time.Now().Add(d); time.Now().Before(end); {
		start := time.Now()
		if _, err := a.dir.GetAgency(ctx, &exchangev1.GetAgencyRequest{Name: "agencies/iom"}); err != nil {
			t.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// attackPause is how long each attacker waits between its requests.
const attackPause = 100 * time.Millisecond

// p99Floor is the least quiet p99 the attacked one is compared with: the
// issue's baseline, about 1 ms. Below it, this test machine's two shared
// cores make the p99 of sub-millisecond calls jump by more than 2× with
// any other load. Before the bound on lists it went to 1.48 s.
const p99Floor = time.Millisecond

// TestAttackersDoNotSlowAnotherAgency measures another agency's GetAgency
// latency in quiet windows and in windows while two attackers each send
// the million empty strings again and again (pausing attackPause after
// each answer; back to back, their TLS alone fills this test machine's
// two shared cores, whatever the exchange does); p99 is compared within
// 2× (see p99Floor). The windows alternate,
// so that other load on the machine falls on both alike; a comparison
// spoilt by such load anyway is made again, up to three times.
func TestAttackersDoNotSlowAnotherAgency(t *testing.T) {
	if badInputRace {
		t.Skip("the race detector slows the scan of the attack tenfold; latencies under it say nothing")
	}
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	iom := x.asAgency("iom")
	million := mustMarshal(t, &exchangev1.AggregateDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", Locations: make([]string, 1_000_000)})
	smallCalls(t, iom, 300*time.Millisecond) // warm up

	var attacking atomic.Bool
	var attacks, inFlight atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		attacker := x.asAgency("ilo") // a connection of its own
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(attackPause):
				}
				inFlight.Add(1)
				if !attacking.Load() {
					inFlight.Add(-1)
					continue
				}
				err := invokeRaw(context.Background(), attacker.conn, exchangev1.DatasetService_AggregateDatasetRows_FullMethodName, million)
				inFlight.Add(-1)
				if status.Code(err) != codes.InvalidArgument {
					t.Errorf("attack answered %v", err)
					return
				}
				attacks.Add(1)
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	began := time.Now()
	for attempt := 1; attempt <= 3; attempt++ {
		var quiet, attacked []time.Duration
		attacks.Store(0)
		for range 8 {
			attacking.Store(false)
			for inFlight.Load() > 0 { // quiet means no attack in flight
				time.Sleep(time.Millisecond)
			}
			quiet = append(quiet, smallCalls(t, iom, 300*time.Millisecond)...)
			attacking.Store(true)
			attacked = append(attacked, smallCalls(t, iom, 300*time.Millisecond)...)
		}
		attacking.Store(false)
		pQuiet, pAttacked := p99(quiet), p99(attacked)
		t.Logf("attempt %d: GetAgency p99 %v quiet (%d calls), %v while 2 attackers sent %d requests of 1,000,000 empty strings, %v apart (%d calls)",
			attempt, pQuiet, len(quiet), pAttacked, attacks.Load(), attackPause, len(attacked))
		if pAttacked <= 2*max(pQuiet, p99Floor) {
			return
		}
		if time.Since(began) > 20*time.Second {
			break
		}
	}
	t.Errorf("the other agency's p99 while attacked was more than twice its p99 in quiet (at least %v) in every attempt", p99Floor)
}
