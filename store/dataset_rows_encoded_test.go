package store

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// encodedRowsDataset makes a dataset with rows over three periods and
// two locations, some deleted, and returns its name and the revision
// before its last writes.
func encodedRowsDataset(t *testing.T) (*Store, string, int64) {
	t.Helper()
	s, _ := openTest(t)
	ctx := t.Context()
	for _, id := range []string{"ilo", "unicef"} {
		mustCreateAgency(t, s, id, nil)
	}
	d := &exchangev1.Dataset{Title: "Returns", PeriodType: exchangev1.PeriodType_PERIOD_TYPE_MONTH, Contributors: []string{"agencies/unicef"}}
	if _, err := s.CreateDataset(ctx, Op{Actor: "agencies/ilo", Method: "create"}, "returns", d); err != nil {
		t.Fatal(err)
	}
	name := "agencies/ilo/datasets/returns"
	op := Op{Actor: "agencies/unicef", Method: "write"}
	write := func(writes []RowWrite) {
		t.Helper()
		errs, _, err := s.WriteDatasetRows(ctx, op, name, func(*exchangev1.Dataset) error { return nil }, writes)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range errs {
			if e != nil {
				t.Fatalf("write %d: %v", i, e)
			}
		}
	}
	var rows []RowWrite
	for i, period := range []string{"2026-01", "2026-02", "2026-03"} {
		for j, location := range []string{"KH-12", "TH-10"} {
			rows = append(rows, RowWrite{Row: &exchangev1.Row{
				Period: period, Location: location,
				Categories: map[string]string{"sex": "female", "age": fmt.Sprint(10 + i + j)},
				Values: map[string]*exchangev1.Value{
					"returned": {Kind: &exchangev1.Value_IntValue{IntValue: int64(100*i + j)}},
					"note":     {Kind: &exchangev1.Value_TextValue{TextValue: "é " + period}},
				},
			}})
		}
	}
	write(rows)
	since := s.Revision()
	write([]RowWrite{{Row: rows[1].Row, Delete: true}, {Row: rows[4].Row, Delete: true}})
	return s, name, since
}

// A page asked for Encoded holds exactly the rows, in the same order, that
// the same query gives decoded: the stored bytes of each, whatever the
// period bounds, deletions, filter, revision and position.
func TestEncodedRowsAreTheRowsDecoded(t *testing.T) {
	s, name, since := encodedRowsDataset(t)
	ctx := t.Context()
	kh := func(r *exchangev1.Row) bool { return r.GetLocation() == "KH-12" }
	queries := map[string]RowQuery{
		"all":                   {Dataset: name, Limit: 100},
		"a page of 2":           {Dataset: name, Limit: 2},
		"from 2026-02":          {Dataset: name, PeriodFrom: "2026-02", Limit: 100},
		"up to 2026-02":         {Dataset: name, PeriodTo: "2026-02", Limit: 100},
		"2026-02 alone":         {Dataset: name, PeriodFrom: "2026-02", PeriodTo: "2026-02", Limit: 100},
		"a filter":              {Dataset: name, Keep: kh, Limit: 100},
		"since, with deletions": {Dataset: name, Since: since, Limit: 100},
		"since, bounded":        {Dataset: name, Since: since, PeriodTo: "2026-02", Limit: 100},
		"everything since 1":    {Dataset: name, Since: 1, Limit: 3},
	}
	for what, q := range queries {
		t.Run(what, func(t *testing.T) {
			for {
				decoded, err := s.PullDatasetRows(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				eq := q
				eq.Encoded = true
				encoded, err := s.PullDatasetRows(ctx, eq)
				if err != nil {
					t.Fatal(err)
				}
				if len(encoded.Rows) != 0 || len(encoded.Encoded) != len(decoded.Rows) || string(encoded.Next) != string(decoded.Next) {
					t.Fatalf("encoded: %d rows decoded, %d encoded, next %q; decoded: %d rows, next %q",
						len(encoded.Rows), len(encoded.Encoded), encoded.Next, len(decoded.Rows), decoded.Next)
				}
				if len(decoded.Rows) == 0 && q.After == nil {
					t.Fatal("the query found nothing to compare")
				}
				for i, b := range encoded.Encoded {
					got := new(exchangev1.Row)
					if err := proto.Unmarshal(b, got); err != nil {
						t.Fatalf("row %d: %v", i, err)
					}
					if !proto.Equal(got, decoded.Rows[i]) {
						t.Fatalf("row %d: encoded %v, decoded %v", i, got, decoded.Rows[i])
					}
				}
				if decoded.Next == nil {
					return
				}
				q.After = decoded.Next
			}
		})
	}
}

// Reading a page of stored rows for a pull decodes none of them: its
// allocations do not grow with the rows it holds.
func TestEncodedRowsAreNotDecoded(t *testing.T) {
	s, name, _ := encodedRowsDataset(t)
	if s.etcd != nil {
		t.Skip("allocations of a bbolt read")
	}
	ctx := t.Context()
	q := RowQuery{Dataset: name, Limit: 100, Encoded: true}
	allocs := testing.AllocsPerRun(50, func() {
		if page, err := s.PullDatasetRows(ctx, q); err != nil || len(page.Encoded) != 4 {
			t.Fatalf("%d rows, %v", len(page.Encoded), err)
		}
	})
	q.Encoded = false
	decoding := testing.AllocsPerRun(50, func() {
		if page, err := s.PullDatasetRows(ctx, q); err != nil || len(page.Rows) != 4 {
			t.Fatalf("%d rows, %v", len(page.Rows), err)
		}
	})
	// Decoding a row of two maps takes more than ten allocations; the
	// encoded page's grow only with the slices that hold the rows.
	if allocs > decoding-4*10 {
		t.Errorf("a page of 4 encoded rows took %.0f allocations, against %.0f decoded", allocs, decoding)
	}
	t.Logf("a page of 4 rows: %.0f allocations encoded, %.0f decoded", allocs, decoding)
}

// Bytes that are not a row's encoding are refused, as decoding refuses
// them, rather than sent on.
func TestEncodedRowOfDamagedBytesIsRefused(t *testing.T) {
	good, err := proto.Marshal(&exchangev1.Row{Period: "2026-01", Location: "KH-12", Deleted: true})
	if err != nil {
		t.Fatal(err)
	}
	period, deleted, err := rowPeriodAndDeleted(good)
	if err != nil || string(period) != "2026-01" || !deleted {
		t.Fatalf("a good row: %q %v %v", period, deleted, err)
	}
	for _, bad := range [][]byte{good[:len(good)-1], {0x12, 0x20, 'x'}, {0xff}, append([]byte{0x0f}, good...)} {
		if _, _, err := rowPeriodAndDeleted(bad); err == nil {
			t.Errorf("%x was read as a row", bad)
		}
		if proto.Unmarshal(bad, new(exchangev1.Row)) == nil {
			t.Errorf("%x decodes: the case does not test a refusal", bad)
		}
	}
}
