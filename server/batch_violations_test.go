package server

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Tests of what a batch's answer lists (batch_violations.go).

// badRows is a WriteDatasetRows request for ilo's returns dataset of n
// rows, each within every bound of the request but breaking as many rules
// as a row can: ten categories the schema does not have, and fifty values
// that are empty (emptyValues: 50 violations a row, found by
// protovalidate) or of measures the schema does not have (62 a row with
// the two required columns missing, found by the schema's check).
func badRows(n int, emptyValues bool) *exchangev1.WriteDatasetRowsRequest {
	req := &exchangev1.WriteDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"}
	for range n {
		r := &exchangev1.Row{Period: "2026-01", Location: "KH-12", Categories: map[string]string{}, Values: map[string]*exchangev1.Value{}}
		for j := range 10 {
			r.Categories[fmt.Sprintf("c%d", j)] = "x"
		}
		for j := range 50 {
			v := &exchangev1.Value{}
			if !emptyValues {
				v = intValue(1)
			}
			r.Values[fmt.Sprintf("%02d", j)] = v
		}
		req.Writes = append(req.Writes, &exchangev1.RowWrite{Row: r})
	}
	return req
}

// decodingCost is what decoding payload into m costs in-process: the
// bytes allocated and the heap the decoded message holds.
func decodingCost(t *testing.T, payload []byte, m proto.Message) (allocated, held uint64) {
	t.Helper()
	runtime.GC()
	startAlloc, startHeap := readHeap()
	if err := proto.Unmarshal(payload, m); err != nil {
		t.Fatal(err)
	}
	endAlloc, _ := readHeap()
	runtime.GC()
	_, endHeap := readHeap()
	runtime.KeepAlive(m)
	return endAlloc - startAlloc, endHeap - min(endHeap, startHeap)
}

// Bounds on answering a batch whose items break many rules each, beyond
// what decoding the request costs (which a batch of valid items of the
// same shape costs too: Go's maps of small entries take about 19 times
// their encoding): batchExtraAllocBound allocated, and the heap may grow
// by what decoding allocates plus batchExtraHeapBound. Before the budget,
// the answer to 4,000 such rows (2 MB) allocated 384 MiB (decoding: 39),
// the heap grew by 88 MiB, and the answer was 15.6 MB long.
const (
	batchExtraAllocBound = 40 * mib
	batchExtraHeapBound  = 24 * mib
	// batchAnswerBound is the most bytes the answer to any of the attacks
	// may take.
	batchAnswerBound = 1 << 20
)

// TestABatchOfManyViolationsGetsABoundedAnswer writes batches of rows
// that each break every rule they can, the largest near the 4 MiB a
// request may take: the answer must stay under 1 MiB, readable by a
// default client, and cost at most a bounded amount beyond decoding the
// request; every row is still rejected with the field of its first
// violation, and at most maxExtraBatchViolations more are listed in all.
func TestABatchOfManyViolationsGetsABoundedAnswer(t *testing.T) {
	x, ilo := batchExchange(t)
	revision := x.store.Revision()
	for _, c := range []struct {
		name         string
		rows         int
		emptyValues  bool
		perRow       int
		firstOfRow10 string
	}{
		{"4,000 rows of 50 empty values", 4000, true, 50, "writes[10].row.values["},
		{"4,000 rows of unknown categories and measures", 4000, false, 62, "writes[10].row.categories.c0"},
		{"7,500 rows of 50 empty values", 7500, true, 50, "writes[10].row.values["},
	} {
		t.Run(c.name, func(t *testing.T) {
			payload := mustMarshal(t, badRows(c.rows, c.emptyValues))
			decodeAlloc, decodeHeld := decodingCost(t, payload, &exchangev1.WriteDatasetRowsRequest{})
			t.Logf("decoding the request alone: %.1f MiB allocated, %.1f MiB held after", float64(decodeAlloc)/mib, float64(decodeHeld)/mib)
			resp := &exchangev1.WriteDatasetRowsResponse{}
			size, allocated, growth := answered(t, ilo, exchangev1.DatasetService_WriteDatasetRows_FullMethodName, payload, resp)
			if size > batchAnswerBound {
				t.Errorf("the answer takes %d bytes, more than %d", size, batchAnswerBound)
			}
			if allocated > decodeAlloc+batchExtraAllocBound || growth > decodeAlloc+batchExtraHeapBound {
				t.Errorf("answering cost %.1f MiB allocated, %.1f MiB of heap; decoding alone allocates %.1f MiB",
					float64(allocated)/mib, float64(growth)/mib, float64(decodeAlloc)/mib)
			}
			if resp.GetRejected() != int32(c.rows) || len(resp.GetResults()) != c.rows {
				t.Fatalf("%d rejected of %d results, want all %d", resp.GetRejected(), len(resp.GetResults()), c.rows)
			}
			extra := 0
			for i, r := range resp.GetResults() {
				vs := r.GetViolations()
				if r.GetIndex() != int32(i) || r.GetCode() != "INVALID_ARGUMENT" || len(vs) == 0 {
					t.Fatalf("result %d: %v", i, r)
				}
				prefix := fmt.Sprintf("writes[%d].row.", i)
				for _, v := range vs {
					if !strings.HasPrefix(v.GetField(), prefix) || v.GetDescription() == "" {
						t.Fatalf("result %d lists %v", i, v)
					}
				}
				extra += len(vs) - 1
				// Checked in full, a row says how many it leaves out; checked
				// to its first violation, it says so.
				switch {
				case r.GetCheckedToFirstViolation():
					if len(vs) != 1 || r.GetUnlistedViolations() != 0 {
						t.Fatalf("result %d, checked to its first violation, lists %d and leaves %d out", i, len(vs), r.GetUnlistedViolations())
					}
				case len(vs)+int(r.GetUnlistedViolations()) != c.perRow:
					t.Fatalf("result %d lists %d violations and leaves %d out, of %d", i, len(vs), r.GetUnlistedViolations(), c.perRow)
				}
			}
			if extra != maxExtraBatchViolations {
				t.Errorf("the answer lists %d violations beyond the first of each row, want %d", extra, maxExtraBatchViolations)
			}
			first := resp.GetResults()[0]
			if len(first.GetViolations()) != c.perRow || first.GetCheckedToFirstViolation() {
				t.Errorf("the first row lists %d violations, want all %d", len(first.GetViolations()), c.perRow)
			}
			if r := resp.GetResults()[10]; !r.GetCheckedToFirstViolation() || !strings.HasPrefix(r.GetViolations()[0].GetField(), c.firstOfRow10) {
				t.Errorf("row 10, past the budget: %v, want its first violation, on %s", r, c.firstOfRow10)
			}
		})
	}
	if x.store.Revision() != revision {
		t.Fatalf("the rejected rows changed the store: revision %d, was %d", x.store.Revision(), revision)
	}
}

// TestABatchWithAFewBadItemsReportsEachWithItsField sends batches with a
// few bad items among good ones: every bad item is reported with each of
// its fields at fault, nothing left out, and the good ones are stored.
func TestABatchWithAFewBadItemsReportsEachWithItsField(t *testing.T) {
	_, ilo := batchExchange(t)
	ctx := context.Background()

	t.Run("BatchCreateReferrals", func(t *testing.T) {
		req := batchOfReferrals("iom", 6)
		req.Requests[1].Referral.SubjectReference = ""
		req.Requests[1].Referral.Service.Need = ""
		req.Requests[3].Referral.Receiver = "agencies/ilo"
		req.Requests[4].RequestId = req.Requests[0].GetRequestId()
		req.Requests[5].Referral.Consent.ReceivingAgency = "agencies/unicef"
		resp, err := ilo.referrals().BatchCreateReferrals(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		const ok = "REFERRAL_PUSH_STATUS_ACCEPTED  []"
		want := []string{
			"0 " + ok,
			"1 REFERRAL_PUSH_STATUS_REJECTED INVALID_ARGUMENT [referral.service.need referral.subject_reference]",
			"2 " + ok,
			"3 REFERRAL_PUSH_STATUS_REJECTED INVALID_ARGUMENT [referral.receiver]",
			"4 REFERRAL_PUSH_STATUS_REJECTED INVALID_ARGUMENT [request_id]",
			"5 REFERRAL_PUSH_STATUS_REJECTED FAILED_PRECONDITION [referral.consent.receiving_agency]",
		}
		if got := pushResults(resp); !slices.Equal(got, want) {
			t.Errorf("results %q,\nwant    %q", got, want)
		}
		for _, r := range resp.GetResults() {
			if r.GetUnlistedViolations() != 0 || r.GetCheckedToFirstViolation() {
				t.Errorf("result %d leaves violations out: %v", r.GetIndex(), r)
			}
		}
		if want := "invalid request: referral.service.need: is required (and 1 more)"; resp.GetResults()[1].GetMessage() != want {
			t.Errorf("message %q, want %q", resp.GetResults()[1].GetMessage(), want)
		}
	})
	t.Run("WriteDatasetRows", func(t *testing.T) {
		req := rowWrites(6)
		req.Writes[1].Row.Period = "2026-13"
		req.Writes[3].Row.Values["cases"] = intValue(-1)
		req.Writes[4].Row.Categories = nil
		req.Writes[4].Row.Location = "Phnom Penh"
		req.Writes[5].Row.Values["spend"] = &exchangev1.Value{}
		resp, err := ilo.datasets().WriteDatasetRows(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"0 true  []",
			"1 false INVALID_ARGUMENT [writes[1].row.period]",
			"2 true  []",
			"3 false INVALID_ARGUMENT [writes[3].row.values.cases]",
			"4 false INVALID_ARGUMENT [writes[4].row.categories.sex writes[4].row.location]",
			`5 false INVALID_ARGUMENT [writes[5].row.values["spend"].kind]`,
		}
		if got := writeResults(resp); !slices.Equal(got, want) {
			t.Errorf("results %q,\nwant    %q", got, want)
		}
		for _, r := range resp.GetResults() {
			if r.GetUnlistedViolations() != 0 || r.GetCheckedToFirstViolation() {
				t.Errorf("result %d leaves violations out: %v", r.GetIndex(), r)
			}
		}
	})
}

// TestABatchSpendsItsViolationBudgetInOrder writes three rows of 62
// violations each and sends ten referrals of 13 each: the first items
// list theirs in full, the item that spends the budget lists what is left
// of it and counts the rest, and the items after are checked to their
// first violation, which is the one they would list first in full.
func TestABatchSpendsItsViolationBudgetInOrder(t *testing.T) {
	_, ilo := batchExchange(t)
	ctx := context.Background()

	t.Run("WriteDatasetRows", func(t *testing.T) {
		resp, err := ilo.datasets().WriteDatasetRows(ctx, badRows(3, false))
		if err != nil {
			t.Fatal(err)
		}
		type counts struct {
			listed, unlisted int
			firstOnly        bool
			first            string
		}
		var got []counts
		for _, r := range resp.GetResults() {
			got = append(got, counts{len(r.GetViolations()), int(r.GetUnlistedViolations()), r.GetCheckedToFirstViolation(), r.GetViolations()[0].GetField()})
		}
		want := []counts{
			{62, 0, false, "writes[0].row.categories.c0"},
			{1 + maxExtraBatchViolations - 61, 62 - (1 + maxExtraBatchViolations - 61), false, "writes[1].row.categories.c0"},
			{1, 0, true, "writes[2].row.categories.c0"},
		}
		if !slices.Equal(got, want) {
			t.Errorf("results (listed, unlisted, checked to first, first field) %v,\nwant %v", got, want)
		}
		if d0, d2 := resp.GetResults()[0].GetViolations()[0].GetDescription(), resp.GetResults()[2].GetViolations()[0].GetDescription(); d0 != d2 {
			t.Errorf("row 2's first violation says %q, row 0's %q", d2, d0)
		}
	})
	t.Run("BatchCreateReferrals", func(t *testing.T) {
		req := batchOfReferrals("iom", 10)
		for _, r := range req.GetRequests() {
			r.Referral.Subject.Languages = slices.Repeat([]string{"not a language"}, 10)
			r.Referral.Service.Need, r.Referral.SubjectReference = "", ""
			r.Referral.SenderCaseReference = strings.Repeat("x", 129) // over its 128
		}
		resp, err := ilo.referrals().BatchCreateReferrals(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		extra := 0
		for i, r := range resp.GetResults() {
			vs := r.GetViolations()
			if r.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED || len(vs) == 0 || !strings.HasPrefix(vs[0].GetField(), "referral.") {
				t.Fatalf("result %d: %v", i, r)
			}
			extra += len(vs) - 1
			fullyChecked := i < 8 // 13 each: 12 more from each of the first 8 spend 96, the ninth 4
			switch {
			case fullyChecked && len(vs)+int(r.GetUnlistedViolations()) != 13:
				t.Errorf("result %d lists %d and leaves %d out, of 13", i, len(vs), r.GetUnlistedViolations())
			case !fullyChecked && i == 8 && (len(vs) != 5 || r.GetUnlistedViolations() != 8):
				t.Errorf("result 8 lists %d and leaves %d out, want 5 and 8", len(vs), r.GetUnlistedViolations())
			case i == 9 && (!r.GetCheckedToFirstViolation() || len(vs) != 1 || r.GetMessage() != "invalid request: "+vs[0].GetField()+": "+vs[0].GetDescription()):
				t.Errorf("result 9, past the budget: %v", r)
			}
		}
		if extra != maxExtraBatchViolations {
			t.Errorf("%d violations listed beyond the first of each, want %d", extra, maxExtraBatchViolations)
		}
	})
}

// TestTheLongestBatchAnswerIsReadable writes the most rows a request may
// carry, 10,000, each rejected for a violation whose text is as long as
// an answer lists (a value not among a hundred allowed values of 64
// characters, under a 32-character category key): the answer stays under
// 3 MiB, which a default client reads (4 MiB), and costs no more than
// the attacks above.
func TestTheLongestBatchAnswerIsReadable(t *testing.T) {
	_, ilo := batchExchange(t)
	key := "a" + strings.Repeat("b", 31)
	d := returnsDataset("agencies/ilo")
	values := make([]string, 100)
	for i := range values {
		values[i] = fmt.Sprintf("%064d", i)
	}
	d.Schema.Categories = append(d.Schema.Categories, &exchangev1.Category{Key: key, Values: values})
	if _, err := ilo.datasets().CreateDataset(context.Background(), &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "wide", Dataset: d}); err != nil {
		t.Fatal(err)
	}
	req := rowWrites(10_000)
	req.Dataset = "agencies/ilo/datasets/wide"
	for _, w := range req.GetWrites() {
		w.Row.Categories[key] = "x"
	}
	payload := mustMarshal(t, req)
	decodeAlloc, _ := decodingCost(t, payload, &exchangev1.WriteDatasetRowsRequest{})
	resp := &exchangev1.WriteDatasetRowsResponse{}
	size, allocated, growth := answered(t, ilo, exchangev1.DatasetService_WriteDatasetRows_FullMethodName, payload, resp)
	if size > 3<<20 {
		t.Errorf("the answer takes %d bytes", size)
	}
	if allocated > decodeAlloc+batchExtraAllocBound || growth > decodeAlloc+batchExtraHeapBound {
		t.Errorf("answering cost %.1f MiB allocated, %.1f MiB of heap; decoding alone allocates %.1f MiB",
			float64(allocated)/mib, float64(growth)/mib, float64(decodeAlloc)/mib)
	}
	last := resp.GetResults()[9999].GetViolations()
	if resp.GetRejected() != 10_000 || len(last) != 1 || last[0].GetField() != "writes[9999].row.categories."+key ||
		len(last[0].GetDescription()) != maxBatchViolationTextBytes || !strings.HasPrefix(last[0].GetDescription(), `"x" is not an allowed value ([`) {
		t.Errorf("%d rejected; the last row lists %v", resp.GetRejected(), last)
	}
}
