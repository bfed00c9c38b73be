package server

import (
	"context"
	"fmt"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// publishAggregates opens the dataset's aggregates to every member with
// the given threshold (the rounding base of the public view).
func publishAggregates(t *testing.T, owner as, threshold int32) {
	t.Helper()
	ctx := context.Background()
	d, err := owner.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: returnsName})
	if err != nil {
		t.Fatal(err)
	}
	d.GetDataset().PublicAggregates, d.GetDataset().SuppressionThreshold = true, threshold
	if _, err := owner.datasets().UpdateDataset(ctx, &exchangev1.UpdateDatasetRequest{Dataset: d.GetDataset()}); err != nil {
		t.Fatal(err)
	}
}

// aggregate asks for totals and fails the test on an error.
func aggregate(t *testing.T, c as, req *exchangev1.AggregateDatasetRowsRequest) *exchangev1.AggregateDatasetRowsResponse {
	t.Helper()
	req.Dataset = returnsName
	resp, err := c.datasets().AggregateDatasetRows(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// everyDimension groups by all of a row's key: each cell is one row.
var everyDimension = []string{"period", "location", "contributor", "sex", "age_group"}

// monthlyRows makes one row per month of 2019–2026, sex and age group at
// KH-12 (384 rows), each with the given cases and spend.
func monthlyRows(cases int64, spend float64) []*exchangev1.Row {
	var rows []*exchangev1.Row
	for y := 2019; y <= 2026; y++ {
		for m := 1; m <= 12; m++ {
			for _, sex := range []string{"female", "male"} {
				for _, age := range []string{"0-17", "18+"} {
					rows = append(rows, &exchangev1.Row{Period: fmt.Sprintf("%d-%02d", y, m), Location: "KH-12",
						Categories: map[string]string{"sex": sex, "age_group": age},
						Values: map[string]*exchangev1.Value{"cases": intValue(cases),
							"spend": {Kind: &exchangev1.Value_DecimalValue{DecimalValue: spend}}}})
				}
			}
		}
	}
	return rows
}

// roundedUp reads a public view grouped by every dimension: which rows
// show the measure as the base (a missing cell is a row shown as 0); it
// fails on any other figure.
func roundedUp(t *testing.T, resp *exchangev1.AggregateDatasetRowsResponse, measure string) map[string]bool {
	t.Helper()
	up := map[string]bool{}
	for _, c := range resp.GetCells() {
		g := c.GetGroup()
		key := g["period"] + "/" + g["sex"] + "/" + g["age_group"]
		switch v := c.GetSums()[measure]; v {
		case 0:
		case float64(resp.GetRoundingBase()):
			up[key] = true
		default:
			t.Fatalf("row %s shows %s = %v: not rounded to 0 or %d", key, measure, v, resp.GetRoundingBase())
		}
		if c.GetRows() != 0 {
			t.Fatalf("row %s: the public view counts rows (%d)", key, c.GetRows())
		}
	}
	return up
}

// Outside the audience, each row's small value shows as 0 or the base b,
// as b with probability value/b (so totals are unbiased), for integer and
// decimal measures alike; the same rows and values always give the same
// figures, and a changed value is drawn afresh.
func TestPublicAggregatesRoundEachRowUnbiasedAndAlwaysTheSameWay(t *testing.T) {
	t.Parallel()
	_, ilo, iom, _, _, ngo := jointDataset(t)
	publishAggregates(t, ilo, 0)
	rows := monthlyRows(2, 2.5)
	n := float64(len(rows))
	write(t, iom, returnsName, rows...)

	first := aggregate(t, ngo, &exchangev1.AggregateDatasetRowsRequest{GroupBy: everyDimension})
	if first.GetRoundingBase() != 5 || first.GetSuppressedCells() != 0 {
		t.Fatalf("public view: base %d, %d suppressed", first.GetRoundingBase(), first.GetSuppressedCells())
	}
	casesAt2, spendAt25 := roundedUp(t, first, "cases"), roundedUp(t, first, "spend")
	// Binomial(384, p): a standard deviation of at most 0.026 in the
	// fraction; 0.15 is more than five of them.
	for _, c := range []struct {
		what string
		up   map[string]bool
		p    float64
	}{{"cases 2", casesAt2, 0.4}, {"spend 2.5", spendAt25, 0.5}} {
		frac := float64(len(c.up)) / n
		t.Logf("%s: %d of %.0f rows rounded up to 5 (%.3f, expected %.1f)", c.what, len(c.up), n, frac, c.p)
		if math.Abs(frac-c.p) > 0.15 {
			t.Errorf("%s: %.3f of rows rounded up, want about %.1f", c.what, frac, c.p)
		}
	}

	// The grand total is the sum of the same rounded rows, within a few
	// standard errors (at most b·√n/2) of the true total.
	total := aggregate(t, ngo, &exchangev1.AggregateDatasetRowsRequest{})
	got := total.GetCells()[0].GetSums()["cases"]
	if want := 5 * float64(len(casesAt2)); got != want {
		t.Errorf("grand total %v, the rounded rows sum to %v", got, want)
	}
	trueTotal, se := 2*n, 5*math.Sqrt(n)/2
	t.Logf("grand total of %.0f rows of 2: %v published, %v true, standard error at most %.1f", n, got, trueTotal, se)
	if math.Abs(got-trueTotal) > 5*se {
		t.Errorf("grand total %v is more than 5 standard errors (%.1f) from %v", got, se, trueTotal)
	}
	again := aggregate(t, ngo, &exchangev1.AggregateDatasetRowsRequest{GroupBy: everyDimension})
	if !proto.Equal(first, again) {
		t.Fatal("the same query answered differently")
	}

	write(t, iom, returnsName, monthlyRows(3, 2.5)...)
	casesAt3 := roundedUp(t, aggregate(t, ngo, &exchangev1.AggregateDatasetRowsRequest{GroupBy: everyDimension}), "cases")
	frac := float64(len(casesAt3)) / n
	t.Logf("cases 3: %d of %.0f rows rounded up (%.3f, expected 0.6)", len(casesAt3), n, frac)
	if math.Abs(frac-0.6) > 0.15 {
		t.Errorf("cases 3: %.3f of rows rounded up, want about 0.6", frac)
	}
	redrawn := 0
	for k := range casesAt2 {
		if !casesAt3[k] {
			redrawn++
		}
	}
	// Independent draws: about 0.4 × 0.4 of the rows; one draw reused
	// for both values would round every row that was up at 2 up at 3.
	t.Logf("rows up at 2 and down at 3: %d", redrawn)
	if redrawn == 0 {
		t.Error("a changed value rounds as the old one did: the draw ignores the value")
	}
}

// A row exactly at the base shows as it is, one just below it is rounded,
// a zero shows nothing; the base is the dataset's threshold when that is
// above 5, and an outsider's suppress_below cannot lower it, only hide
// more of the rounded totals.
func TestPublicAggregatesAtTheBaseAndAnOutsiderCannotLowerIt(t *testing.T) {
	t.Parallel()
	_, ilo, iom, _, _, ngo := jointDataset(t)
	publishAggregates(t, ilo, 0)
	cell := func(sex, age string, cases int64) *exchangev1.Row {
		r := row("2026-03", "KH-12", sex, cases)
		r.Categories["age_group"] = age
		return r
	}
	write(t, iom, returnsName, cell("female", "0-17", 5), cell("male", "0-17", 6), cell("female", "18+", 4), cell("male", "18+", 0))
	bySexAge := func(resp *exchangev1.AggregateDatasetRowsResponse) map[string]float64 {
		got := map[string]float64{}
		for _, c := range resp.GetCells() {
			got[c.GetGroup()["sex"]+"/"+c.GetGroup()["age_group"]] = c.GetSums()["cases"]
		}
		return got
	}
	for _, below := range []int32{0, 1, 4, 5} {
		resp := aggregate(t, ngo, &exchangev1.AggregateDatasetRowsRequest{GroupBy: []string{"sex", "age_group"}, SuppressBelow: below})
		got := bySexAge(resp)
		if resp.GetRoundingBase() != 5 || got["female/0-17"] != 5 || got["male/0-17"] != 6 {
			t.Fatalf("suppress_below %d: base %d, cells %v: values at and above the base must show as they are", below, resp.GetRoundingBase(), got)
		}
		if v, ok := got["female/18+"]; ok && v != 5 {
			t.Fatalf("suppress_below %d: a row of 4 shows as %v", below, v)
		}
		if _, ok := got["male/18+"]; ok {
			t.Fatalf("suppress_below %d: a row of 0 shows a cell", below)
		}
		for _, c := range resp.GetCells() {
			if _, ok := c.GetSums()["spend"]; !ok {
				t.Fatalf("suppress_below %d: cell %v lacks a measure no row has, so its keys tell which rows it has", below, c.GetGroup())
			}
		}
	}

	// A threshold of 10 is the base: 5 and 6 are now small, and asking
	// for less does not bring them back.
	publishAggregates(t, ilo, 10)
	for _, below := range []int32{0, 1, 5, 9, 10} {
		resp := aggregate(t, ngo, &exchangev1.AggregateDatasetRowsRequest{GroupBy: []string{"sex", "age_group"}, SuppressBelow: below})
		if resp.GetRoundingBase() != 10 {
			t.Fatalf("suppress_below %d: rounding base %d, want the dataset's 10", below, resp.GetRoundingBase())
		}
		for k, v := range bySexAge(resp) {
			if v != 10 {
				t.Fatalf("suppress_below %d: %s shows %v, not rounded to base 10", below, k, v)
			}
		}
	}
	// Asking for more hides rounded totals below it, and says how many.
	all := aggregate(t, ngo, &exchangev1.AggregateDatasetRowsRequest{GroupBy: []string{"sex", "age_group"}})
	high := aggregate(t, ngo, &exchangev1.AggregateDatasetRowsRequest{GroupBy: []string{"sex", "age_group"}, SuppressBelow: 11})
	if len(high.GetCells()) != 0 || int(high.GetSuppressedCells()) != len(all.GetCells()) || high.GetSuppressionThreshold() != 11 {
		t.Fatalf("suppress_below 11 over %d rounded cells of 10: %v", len(all.GetCells()), high)
	}
}

// A reader's own threshold hides totals above 0 and below it; a total
// exactly at it shows, and totals are exact.
func TestReadersSuppressBelowKeepsACellAtTheThreshold(t *testing.T) {
	t.Parallel()
	_, _, iom, _, escap, _ := jointDataset(t)
	write(t, iom, returnsName, row("2026-03", "KH-12", "female", 5), row("2026-03", "KH-12", "male", 4), row("2026-03", "KH-2", "female", 0))
	resp := aggregate(t, escap, &exchangev1.AggregateDatasetRowsRequest{GroupBy: []string{"location", "sex"}, SuppressBelow: 5})
	got := map[string]float64{}
	for _, c := range resp.GetCells() {
		got[c.GetGroup()["location"]+"/"+c.GetGroup()["sex"]] = c.GetSums()["cases"]
		if c.GetRows() != 1 {
			t.Errorf("a reader's cell %v counts %d rows, want 1", c.GetGroup(), c.GetRows())
		}
	}
	if fmt.Sprint(got) != "map[KH-12/female:5 KH-2/female:0]" || resp.GetSuppressedCells() != 1 || resp.GetRoundingBase() != 0 {
		t.Fatalf("reader with suppress_below 5: cells %v, %d suppressed, base %d; want the 5 and the 0 shown, the 4 hidden, exact", got, resp.GetSuppressedCells(), resp.GetRoundingBase())
	}
}
