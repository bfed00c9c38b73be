package server

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Tests of the output-only lists dropped before decoding (output_only.go).

// referralsWithOutputOnlyLists is a BatchCreateReferrals request of n
// valid referrals to iom, each carrying 1000 empty history transitions
// and 1000 empty forwarded_to names: output-only lists, at their bounds.
func referralsWithOutputOnlyLists(n int) *exchangev1.BatchCreateReferralsRequest {
	req := batchOfReferrals("iom", n)
	for _, r := range req.Requests {
		r.Referral.History = make([]*exchangev1.Transition, 1000)
		for i := range r.Referral.History {
			r.Referral.History[i] = &exchangev1.Transition{}
		}
		r.Referral.ForwardedTo = make([]string, 1000)
	}
	return req
}

// answered sends payload as is through a client with gRPC's default
// limits (it reads answers up to 4 MiB), decodes the answer into resp and
// returns its size, the bytes allocated while the call ran (both sides)
// and the heap's peak growth.
func answered(t *testing.T, c as, method string, payload []byte, resp proto.Message) (size int, allocated, growth uint64) {
	t.Helper()
	reply := &rawMessage{}
	w := watchHeap()
	start := time.Now()
	err := c.conn.Invoke(context.Background(), method, &rawMessage{b: payload}, reply, grpc.ForceCodecV2(rawCodec{}))
	took := time.Since(start)
	allocated, growth = w.end()
	if err != nil {
		t.Fatalf("a default client cannot read the answer: %v", err)
	}
	t.Logf("%d-byte request: answered in %v with %d bytes; %.1f MiB allocated, heap peak +%.1f MiB",
		len(payload), took.Round(time.Millisecond), len(reply.b), float64(allocated)/mib, float64(growth)/mib)
	if err := proto.Unmarshal(reply.b, resp); err != nil {
		t.Fatal(err)
	}
	return len(reply.b), allocated, growth
}

// Bounds on accepting a batch of 500 referrals that carry output-only
// lists at their bounds: before they were dropped before decoding, it
// allocated 148 MiB and the heap grew by 127 MiB; the same batch without
// them costs about 11 MiB.
const (
	outputOnlyAllocBound = 32 * mib
	outputOnlyHeapBound  = 32 * mib
)

// TestOutputOnlyListsInABatchAreDroppedCheaply sends 500 valid referrals, each
// carrying 1000 empty transitions in history and 1000 empty forwarded_to
// names (3 MB): all are accepted, stored with the history the exchange
// writes and no forwarded_to, within outputOnlyAllocBound and
// outputOnlyHeapBound.
func TestOutputOnlyListsInABatchAreDroppedCheaply(t *testing.T) {
	_, ilo := batchExchange(t)
	// The first batch warms the connection and the caches.
	for _, label := range []string{"warm-up", "measured"} {
		resp := &exchangev1.BatchCreateReferralsResponse{}
		_, allocated, growth := answered(t, ilo, exchangev1.ReferralService_BatchCreateReferrals_FullMethodName,
			mustMarshal(t, referralsWithOutputOnlyLists(500)), resp)
		if names := accepted(resp); len(names) != 500 {
			t.Fatalf("%s: %d of 500 accepted: %q", label, len(names), pushResults(resp)[:3])
		}
		if label == "measured" && (allocated > outputOnlyAllocBound || growth > outputOnlyHeapBound) {
			t.Errorf("the batch cost %.1f MiB allocated, %.1f MiB of heap; bound %d MiB, %d MiB",
				float64(allocated)/mib, float64(growth)/mib, outputOnlyAllocBound/mib, outputOnlyHeapBound/mib)
		}
		got, err := ilo.referrals().GetReferral(context.Background(), &exchangev1.GetReferralRequest{Name: accepted(resp)[499]})
		if err != nil {
			t.Fatal(err)
		}
		if h := got.GetReferral().GetHistory(); len(h) != 1 || h[0].GetReason() != "referred" || len(got.GetReferral().GetForwardedTo()) != 0 {
			t.Fatalf("stored with history %v and forwarded_to %d", h, len(got.GetReferral().GetForwardedTo()))
		}
	}
}

// TestAReferralReadCanBeSentBack sends a referral as GetReferral returned
// it, history and all, with its output-only lists filled to their bounds:
// it is accepted, and the lists are the exchange's own. One item more in
// an output-only list, inside a batch item too, refuses the whole request
// by name: the exchange never sends more.
func TestAReferralReadCanBeSentBack(t *testing.T) {
	_, ilo := batchExchange(t)
	ctx := context.Background()
	created, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()})
	if err != nil {
		t.Fatal(err)
	}
	read, err := ilo.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: created.GetReferral().GetName()})
	if err != nil {
		t.Fatal(err)
	}
	back := read.GetReferral()
	back.History = append(back.History, make([]*exchangev1.Transition, 999)...)
	for i := range back.History[1:] {
		back.History[1+i] = &exchangev1.Transition{Reason: "sent back"}
	}
	back.ForwardedTo = slices.Repeat([]string{created.GetReferral().GetName()}, 1000)
	again, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: back, RequestId: nextRequestID()})
	if err != nil {
		t.Fatal(err)
	}
	if h := again.GetReferral().GetHistory(); len(h) != 1 || h[0].GetReason() != "referred" || len(again.GetReferral().GetForwardedTo()) != 0 {
		t.Fatalf("sent back, stored with history %v and %d forwarded_to", h, len(again.GetReferral().GetForwardedTo()))
	}

	batch := batchOfReferrals("iom", 3)
	batch.Requests[2].Referral.ForwardedTo = make([]string, 1001)
	_, err = ilo.referrals().BatchCreateReferrals(ctx, batch)
	st := wantCode(t, err, codes.InvalidArgument)
	if want := "invalid request: requests[2].referral.forwarded_to: has 1001 items; at most 1000"; st.Message() != want {
		t.Errorf("message %q, want %q", st.Message(), want)
	}
}

// TestOutputOnlyListsAreDroppedFromTheBytes checks withoutOutputOnlyLists
// on its own: what it returns decodes to the request without its
// output-only lists, wherever they were (a batch item, a message sent in
// parts, a dataset's locks); a request that carries none is returned as
// is, without allocating; bytes that are not an encoding are left for
// decoding to refuse.
func TestOutputOnlyListsAreDroppedFromTheBytes(t *testing.T) {
	batch := referralsWithOutputOnlyLists(3)
	batch.Requests[1].Referral.History[0].Reason = "kept?"
	payload := mustMarshal(t, batch)
	// A second part of the third item's referral, carrying more of both
	// lists and a field that merges with the first part.
	part := mustMarshal(t, &exchangev1.Referral{History: []*exchangev1.Transition{{Reason: "part"}}, ForwardedTo: []string{"x"}, CaseNotes: "from the second part"})
	item := mustMarshal(t, batch.Requests[2])
	item = inParts(item, fieldNumber(t, &exchangev1.CreateReferralRequest{}, "referral"), part, 1)
	payload = inParts(payload, fieldNumber(t, batch, "requests"), item, 1)

	got := &exchangev1.BatchCreateReferralsRequest{}
	if err := proto.Unmarshal(withoutOutputOnlyLists(payload, batch.ProtoReflect().Descriptor()), got); err != nil {
		t.Fatal(err)
	}
	want := &exchangev1.BatchCreateReferralsRequest{}
	if err := proto.Unmarshal(payload, want); err != nil {
		t.Fatal(err)
	}
	if len(want.GetRequests()[3].GetReferral().GetHistory()) != 1001 || want.GetRequests()[3].GetReferral().GetCaseNotes() != "from the second part" {
		t.Fatal("the request is not what the test means to send")
	}
	for _, r := range want.GetRequests() {
		r.Referral.History, r.Referral.ForwardedTo = nil, nil
	}
	if !proto.Equal(want, got) {
		t.Errorf("the request decoded from the stripped bytes is not the request without its output-only lists")
	}

	dataset := &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "returns", Dataset: returnsDataset("agencies/ilo")}
	plain := mustMarshal(t, dataset)
	dataset.Dataset.Locks = []*exchangev1.PeriodLock{{Period: "2026-01"}}
	dataset.Dataset.LockHistory = []*exchangev1.PeriodLockEvent{{Period: "2026-01", Locked: true}}
	if stripped := withoutOutputOnlyLists(mustMarshal(t, dataset), dataset.ProtoReflect().Descriptor()); !slices.Equal(stripped, plain) {
		t.Errorf("a dataset's locks and lock_history are not dropped")
	}

	md := batch.ProtoReflect().Descriptor()
	valid := mustMarshal(t, batchOfReferrals("iom", 3))
	if allocs := testing.AllocsPerRun(100, func() { withoutOutputOnlyLists(valid, md) }); allocs != 0 {
		t.Errorf("a request without output-only lists costs %v allocations", allocs)
	}
	if b := withoutOutputOnlyLists(valid, md); &b[0] != &valid[0] {
		t.Error("a request without output-only lists is copied")
	}
	truncated := payload[:len(payload)-3]
	if b := withoutOutputOnlyLists(truncated, md); len(b) != len(truncated) {
		t.Error("bytes that are not an encoding are changed")
	}
}

// TestOutputOnlyListsAreThoseTheProtosSayAre holds outputOnlyLists to the
// .proto files: every list or map of a request message whose comment says
// "Output only" is in it, and nothing else; withoutOutputOnlyLists drops
// each of them.
func TestOutputOnlyListsAreThoseTheProtosSayAre(t *testing.T) {
	sources := map[string]string{}
	found := map[protoreflect.FullName]bool{}
	msgs := requestMessages(t)
	for _, name := range slices.Sorted(maps.Keys(msgs)) {
		md := msgs[name]
		path := md.ParentFile().Path()
		if !strings.HasPrefix(path, "alltogether/") {
			continue
		}
		if _, ok := sources[path]; !ok {
			b, err := os.ReadFile(filepath.Join("..", "proto", path))
			if err != nil {
				t.Fatal(err)
			}
			sources[path] = string(b)
		}
		src := sources[path]
		start := regexp.MustCompile(`(?m)^message ` + string(md.Name()) + ` \{`).FindStringIndex(src)
		if start == nil {
			t.Fatalf("message %s not found in %s", md.Name(), path)
		}
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if !fd.IsList() && !fd.IsMap() {
				continue
			}
			decl := regexp.MustCompile(fmt.Sprintf(`(?m)^  (repeated \S+|map<[^>]+>) %s = %d\b`, fd.Name(), fd.Number())).FindStringIndex(src[start[1]:])
			if decl == nil {
				t.Fatalf("%s not found in %s", fd.FullName(), path)
			}
			// The comment is the run of comment lines right above.
			lines := strings.Split(src[:start[1]+decl[0]], "\n")
			var comment []string
			for j := len(lines) - 2; j >= 0 && strings.HasPrefix(strings.TrimSpace(lines[j]), "//"); j-- {
				comment = append(comment, strings.TrimSpace(lines[j]))
			}
			if strings.Contains(strings.ToLower(strings.Join(comment, " ")), "output only") {
				found[fd.FullName()] = true
			}
		}
	}
	if !maps.Equal(found, outputOnlyLists) {
		t.Errorf("output-only lists in the .proto files: %v;\noutputOnlyLists: %v", slices.Sorted(maps.Keys(found)), slices.Sorted(maps.Keys(outputOnlyLists)))
	}
	for name := range outputOnlyLists {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		fd, ok := d.(protoreflect.FieldDescriptor)
		if err != nil || !ok {
			t.Fatalf("%s: %v", name, err)
		}
		if outputOnlyOf(fd.ContainingMessage()).action(fd.Number()) != dropField {
			t.Errorf("%s is not dropped", name)
		}
	}
}
