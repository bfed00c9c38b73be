package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Tests of the bound on the lists inside the items of a batch, which the
// rules ignore so that each item is answered on its own (see
// maxExcessInIgnoredItems), and of lists sent in several parts.

// rowWrites is a WriteDatasetRows request of valid rows for ilo's
// returns dataset, one per sex and province.
func rowWrites(n int) *exchangev1.WriteDatasetRowsRequest {
	req := &exchangev1.WriteDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"}
	for i := range n {
		r := row(fmt.Sprintf("2026-%02d", 1+i/2), "KH-12", []string{"female", "male"}[i%2], int64(i))
		req.Writes = append(req.Writes, &exchangev1.RowWrite{Row: r})
	}
	return req
}

// categories returns n distinct category entries (distinct keys, so that
// decoding keeps them all).
func categories(n int) map[string]string {
	out := make(map[string]string, n)
	for i := range n {
		out[fmt.Sprintf("k%d", i)] = "v"
	}
	return out
}

// batchExchange starts an exchange with ilo and iom (both taking
// psychosocial counselling referrals) and ilo's returns dataset, to which
// ilo contributes.
func batchExchange(t *testing.T) (*exchange, as) {
	t.Helper()
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	x.createAgency(sec, "iom", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	ilo := x.asAgency("ilo")
	if _, err := ilo.datasets().CreateDataset(context.Background(), &exchangev1.CreateDatasetRequest{
		Parent: "agencies/ilo", DatasetId: "returns", Dataset: returnsDataset("agencies/ilo")}); err != nil {
		t.Fatal(err)
	}
	return x, ilo
}

// fieldNumber is the number of the field named name of m's type.
func fieldNumber(t testing.TB, m proto.Message, name string) protowire.Number {
	fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		t.Fatalf("%T has no field %s", m, name)
	}
	return fd.Number()
}

// inParts appends to b the message field numbered num n times, each part
// carrying body: decoding merges the parts into one message.
func inParts(b []byte, num protowire.Number, body []byte, n int) []byte {
	for range n {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendBytes(b, body)
	}
	return b
}

// refusedCheaply sends payload twice (the first call warms the connection
// and the caches) and checks the second is refused with message and,
// unless violations is nil, the listed violations (field and rule,
// sorted), within attackAllocBound and attackHeapBound.
func refusedCheaply(t *testing.T, c as, method string, payload []byte, message string, violations []string) *status.Status {
	t.Helper()
	ctx := context.Background()
	invokeRaw(ctx, c.conn, method, payload) //nolint:errcheck // the second call is checked
	w := watchHeap()
	start := time.Now()
	err := invokeRaw(ctx, c.conn, method, payload)
	took := time.Since(start)
	allocated, growth := w.end()
	t.Logf("%d-byte request: answered in %v; %.1f MiB allocated (bound %d MiB), heap peak +%.1f MiB (bound %d MiB)",
		len(payload), took.Round(time.Millisecond), float64(allocated)/mib, attackAllocBound/mib, float64(growth)/mib, attackHeapBound/mib)
	st := wantCode(t, err, codes.InvalidArgument)
	if st.Message() != message {
		t.Errorf("message %q,\nwant    %q", st.Message(), message)
	}
	if got := violationList(err); violations != nil && !slices.Equal(got, violations) {
		t.Errorf("violations %q,\nwant       %q", got, violations)
	}
	if n := trailerBytes(st); n > 16<<10 {
		t.Errorf("the refusal takes %d bytes of trailer", n)
	}
	if allocated > attackAllocBound || growth > attackHeapBound {
		t.Errorf("one attacking request cost %.1f MiB allocated, %.1f MiB of heap", float64(allocated)/mib, float64(growth)/mib)
	}
	return st
}

// TestABatchItemsHugeListRefusesTheWholeRequestCheaply sends batches
// whose items hold lists far over their bounds, in one item or spread
// over many, and wants each refused whole before decoding, naming the
// lists, for less than attackAllocBound.
func TestABatchItemsHugeListRefusesTheWholeRequestCheaply(t *testing.T) {
	x, ilo := batchExchange(t)
	revision := x.store.Revision()

	t.Run("1,900,000 empty languages in one referral", func(t *testing.T) {
		req := batchOfReferrals("iom", 4)
		req.Requests[3].Referral.Subject.Languages = make([]string, 1_900_000)
		refusedCheaply(t, ilo, exchangev1.ReferralService_BatchCreateReferrals_FullMethodName, mustMarshal(t, req),
			"invalid request: requests[3].referral.subject.languages: has 1900000 items; at most 10",
			[]string{"requests[3].referral.subject.languages repeated.max_items"})
	})
	t.Run("10,000 empty forwarded_to in each of 120 referrals", func(t *testing.T) {
		req := batchOfReferrals("iom", 120)
		for _, r := range req.Requests {
			r.Referral.ForwardedTo = make([]string, 10_000)
		}
		st := refusedCheaply(t, ilo, exchangev1.ReferralService_BatchCreateReferrals_FullMethodName, mustMarshal(t, req),
			"invalid request: requests[0].referral.forwarded_to: has 10000 items; at most 1000 (and 119 more)", nil)
		// The first are listed, as many as fit the bounds of a refusal.
		fvs := fieldViolations(st)
		if len(fvs) < 90 {
			t.Errorf("%d violations listed, want at least 90", len(fvs))
		}
		for i, fv := range fvs {
			if want := fmt.Sprintf("requests[%d].referral.forwarded_to", i); fv.GetField() != want || fv.GetReason() != "repeated.max_items" {
				t.Fatalf("violation %d: %s %s, want %s repeated.max_items", i, fv.GetField(), fv.GetReason(), want)
			}
		}
	})
	t.Run("150,000 categories in one row", func(t *testing.T) {
		req := rowWrites(3)
		req.Writes[1].Row.Categories = categories(150_000)
		refusedCheaply(t, ilo, exchangev1.DatasetService_WriteDatasetRows_FullMethodName, mustMarshal(t, req),
			"invalid request: writes[1].row.categories: has 150000 entries; at most 10",
			[]string{"writes[1].row.categories map.max_pairs"})
	})
	if x.store.Revision() != revision {
		t.Fatalf("the refused batches changed the store: revision %d, was %d", x.store.Revision(), revision)
	}
}

// TestAListSentInPartsIsCountedWhole sends a message in 150,000 parts of
// 10 empty languages each, which decoding merges into one list of
// 1,500,000: the count before decoding must add the parts up, at the top
// of a request and inside a batch item.
func TestAListSentInPartsIsCountedWhole(t *testing.T) {
	x, ilo := batchExchange(t)
	revision := x.store.Revision()
	referralField := fieldNumber(t, &exchangev1.CreateReferralRequest{}, "referral")
	subject := mustMarshal(t, &exchangev1.Referral{Subject: &exchangev1.Subject{Languages: make([]string, 10)}})

	t.Run("CreateReferral", func(t *testing.T) {
		payload := mustMarshal(t, &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()})
		payload = inParts(payload, referralField, subject, 150_000)
		refusedCheaply(t, ilo, exchangev1.ReferralService_CreateReferral_FullMethodName, payload,
			"invalid request: referral.subject.languages: has 1500001 items; at most 10",
			[]string{"referral.subject.languages repeated.max_items"})
	})
	t.Run("an item of BatchCreateReferrals", func(t *testing.T) {
		item := mustMarshal(t, &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()})
		item = inParts(item, referralField, subject, 150_000)
		payload := mustMarshal(t, batchOfReferrals("iom", 2))
		payload = protowire.AppendBytes(protowire.AppendTag(payload, fieldNumber(t, &exchangev1.BatchCreateReferralsRequest{}, "requests"), protowire.BytesType), item)
		refusedCheaply(t, ilo, exchangev1.ReferralService_BatchCreateReferrals_FullMethodName, payload,
			"invalid request: requests[2].referral.subject.languages: has 1500001 items; at most 10",
			[]string{"requests[2].referral.subject.languages repeated.max_items"})
	})
	if x.store.Revision() != revision {
		t.Fatalf("the refused requests changed the store: revision %d, was %d", x.store.Revision(), revision)
	}
}

// pushResults lists a batch's results as "index status code violations".
func pushResults(resp *exchangev1.BatchCreateReferralsResponse) []string {
	var out []string
	for _, r := range resp.GetResults() {
		var fields []string
		for _, v := range r.GetViolations() {
			fields = append(fields, v.GetField())
		}
		out = append(out, fmt.Sprintf("%d %v %s %v", r.GetIndex(), r.GetStatus(), r.GetCode(), fields))
	}
	return out
}

// writeResults lists a row write's results as "index accepted code
// violations".
func writeResults(resp *exchangev1.WriteDatasetRowsResponse) []string {
	var out []string
	for _, r := range resp.GetResults() {
		var fields []string
		for _, v := range r.GetViolations() {
			fields = append(fields, v.GetField())
		}
		out = append(out, fmt.Sprintf("%d %v %s %v", r.GetIndex(), r.GetAccepted(), r.GetCode(), fields))
	}
	return out
}

// TestABatchItemWithAFewItemsTooManyIsRejectedAlone checks that an item
// whose list is over its bound by a little (an ordinary mistake) is
// rejected on its own and the others accepted, up to
// maxExcessInIgnoredItems items over the bounds in one request; one
// more refuses the request whole.
func TestABatchItemWithAFewItemsTooManyIsRejectedAlone(t *testing.T) {
	_, ilo := batchExchange(t)
	ctx := context.Background()
	const (
		ok       = "REFERRAL_PUSH_STATUS_ACCEPTED  []"
		rejected = "REFERRAL_PUSH_STATUS_REJECTED INVALID_ARGUMENT"
	)

	t.Run("BatchCreateReferrals", func(t *testing.T) {
		req := batchOfReferrals("iom", 3)
		req.Requests[1].Referral.Subject.Languages = []string{"km", "th", "en", "fr", "de", "es", "it", "pt", "ru", "zh", "ja"}
		resp, err := ilo.referrals().BatchCreateReferrals(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"0 " + ok, "1 " + rejected + " [referral.subject.languages]", "2 " + ok}
		if got := pushResults(resp); !slices.Equal(got, want) {
			t.Errorf("results %q,\nwant    %q", got, want)
		}
	})
	t.Run("BatchCreateReferrals at the bound of the whole request", func(t *testing.T) {
		req := batchOfReferrals("iom", 2)
		req.Requests[1].Referral.Subject.Languages = make([]string, 10+maxExcessInIgnoredItems)
		resp, err := ilo.referrals().BatchCreateReferrals(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"0 " + ok, "1 " + rejected + " [referral.subject.languages]"}
		if got := pushResults(resp); !slices.Equal(got, want) {
			t.Errorf("results %q,\nwant    %q", got, want)
		}
		req = batchOfReferrals("iom", 2)
		req.Requests[1].Referral.Subject.Languages = make([]string, 10+maxExcessInIgnoredItems+1)
		_, err = ilo.referrals().BatchCreateReferrals(ctx, req)
		st := wantCode(t, err, codes.InvalidArgument)
		if want := fmt.Sprintf("invalid request: requests[1].referral.subject.languages: has %d items; at most 10", 11+maxExcessInIgnoredItems); st.Message() != want {
			t.Errorf("message %q, want %q", st.Message(), want)
		}
	})
	t.Run("WriteDatasetRows", func(t *testing.T) {
		req := rowWrites(3)
		req.Writes[1].Row.Categories = categories(11)
		resp, err := ilo.datasets().WriteDatasetRows(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"0 true  []", "1 false INVALID_ARGUMENT [writes[1].row.categories]", "2 true  []"}
		if got := writeResults(resp); !slices.Equal(got, want) {
			t.Errorf("results %q,\nwant    %q", got, want)
		}
	})
	t.Run("WriteDatasetRows at the bound of the whole request", func(t *testing.T) {
		req := rowWrites(2)
		req.Writes[1].Row.Categories = categories(10 + maxExcessInIgnoredItems)
		resp, err := ilo.datasets().WriteDatasetRows(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"0 true  []", "1 false INVALID_ARGUMENT [writes[1].row.categories]"}
		if got := writeResults(resp); !slices.Equal(got, want) {
			t.Errorf("results %q,\nwant    %q", got, want)
		}
		req.Writes[1].Row.Categories = categories(11 + maxExcessInIgnoredItems)
		_, err = ilo.datasets().WriteDatasetRows(ctx, req)
		st := wantCode(t, err, codes.InvalidArgument)
		if want := fmt.Sprintf("invalid request: writes[1].row.categories: has %d entries; at most 10", 11+maxExcessInIgnoredItems); st.Message() != want {
			t.Errorf("message %q, want %q", st.Message(), want)
		}
	})
}

// TestScanningAValidRequestAllocatesNothing scans valid requests before
// decoding, batches and a message sent in parts among them: the scan
// must find nothing and allocate nothing, so that it adds no garbage to
// every call.
func TestScanningAValidRequestAllocatesNothing(t *testing.T) {
	referralField := fieldNumber(t, &exchangev1.CreateReferralRequest{}, "referral")
	inThreeParts := mustMarshal(t, &exchangev1.CreateReferralRequest{Referral: baseReferral(), RequestId: "in-parts"})
	inThreeParts = inParts(inThreeParts, referralField, mustMarshal(t, &exchangev1.Referral{Subject: &exchangev1.Subject{Languages: []string{"th"}}}), 2)
	plans := &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo", Plans: []*exchangev1.Plan{basePlan(), basePlan()}}
	for _, c := range []struct {
		name string
		md   protoreflect.MessageDescriptor
		b    []byte
	}{
		{"BatchCreateReferrals", (&exchangev1.BatchCreateReferralsRequest{}).ProtoReflect().Descriptor(), mustMarshal(t, batchOfReferrals("iom", 3))},
		{"WriteDatasetRows", (&exchangev1.WriteDatasetRowsRequest{}).ProtoReflect().Descriptor(), mustMarshal(t, rowWrites(3))},
		{"CreateReferral in three parts", (&exchangev1.CreateReferralRequest{}).ProtoReflect().Descriptor(), inThreeParts},
		{"ApplyPlans", plans.ProtoReflect().Descriptor(), mustMarshal(t, plans)},
	} {
		var report violationReport
		allocs := testing.AllocsPerRun(100, func() { scanWireBounds(c.b, c.md, &report) })
		if report.total != 0 {
			t.Errorf("%s: the scan reports %v", c.name, report.status())
		}
		if allocs != 0 {
			t.Errorf("%s: the scan allocates %v times", c.name, allocs)
		}
	}
}

// BenchmarkScanningABatch measures the scan before decoding of a batch of
// 100 referrals, each with a sealed blob of the benchmark's size: what
// every batched push pays before its referrals are decoded.
func BenchmarkScanningABatch(b *testing.B) {
	req := batchOfReferrals("iom", 100)
	for _, r := range req.Requests {
		r.Referral.SealedDetails = make([]byte, 3400)
	}
	encoded := mustMarshal(b, req)
	md := req.ProtoReflect().Descriptor()
	b.ReportAllocs()
	for b.Loop() {
		var report violationReport
		scanWireBounds(encoded, md, &report)
		if report.total != 0 {
			b.Fatal(report.status())
		}
	}
}

// TestBoundsAreBuiltSafelyByConcurrentFirstCalls scans a message type that
// carries itself (google.protobuf.Value, through Struct and ListValue)
// from many goroutines at once on a fresh cache, under the race detector
// in `make test`: a message's bounds reach those of the messages it
// carries, and none may be cached while one it reaches is still being
// built by another goroutine.
func TestBoundsAreBuiltSafelyByConcurrentFirstCalls(t *testing.T) {
	value, err := structpb.NewValue(map[string]any{"a": []any{1.0, "b", map[string]any{"c": true}}})
	if err != nil {
		t.Fatal(err)
	}
	encoded := map[protoreflect.MessageDescriptor][]byte{
		value.ProtoReflect().Descriptor():                   mustMarshal(t, value),
		value.GetStructValue().ProtoReflect().Descriptor():  mustMarshal(t, value.GetStructValue()),
		(&structpb.ListValue{}).ProtoReflect().Descriptor(): mustMarshal(t, value.GetStructValue().GetFields()["a"].GetListValue()),
	}
	for range 20 {
		boundsCache.Clear()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			for md, b := range encoded {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					var report violationReport
					scanWireBounds(b, md, &report)
					if report.total != 0 {
						t.Errorf("%s: %v", md.FullName(), report.status())
					}
				}()
			}
		}
		close(start)
		wg.Wait()
	}
}
