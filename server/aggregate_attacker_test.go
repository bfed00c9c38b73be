package server

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// returnsName is the dataset jointDataset and the attacker create.
const returnsName = "agencies/ilo/datasets/returns"

// The differencing attacker of issue #19: an agency outside a dataset's
// audience asks for the public aggregates of a synthetic dataset with
// many small cells under every grouping the API allows (every subset of
// period, location, contributor, sex and age group), each with no filter,
// each single-location filter and a few period ranges, and bounds the
// true value of every protected row (a value from 1 to b−1, where b is
// the protection: the suppression threshold or the rounding base) by
// linear programming over what it was told:
//
//   - unknowns y_i ≥ 0, one per row (the finest cell: period, location,
//     contributor, sex, age group);
//   - each published cell: the sum of its rows' y_i equals the figure;
//   - when the response declares a rounding base, y_i is the row's
//     rounded value, and a cell the response leaves out sums to 0 (the
//     documented meaning of a missing cell); y_i is then mapped to the
//     true values it allows (a rounded 0 to 0..b−1, b to 1..b, more than
//     b to itself). Without a rounding base, y_i is the true value and a
//     missing cell tells nothing (it may be suppressed).
//
// It fails if any protected row's true value is bounded to an interval
// narrower than 4 (±2). Before the rounding, when outsiders got exact sums
// with small cells hidden, it pinned most protected rows exactly.
func TestOutsiderCannotDifferenceProtectedCells(t *testing.T) {
	t.Parallel()
	x := startExchange(t)
	sec := x.asSecretariat()
	for _, id := range []string{"ilo", "iom", "unicef", "ngo"} {
		x.createAgency(sec, id)
	}
	ilo, ngo := x.asAgency("ilo"), x.asAgency("ngo")
	contributors := []as{x.asAgency("iom"), x.asAgency("unicef")}
	ctx := context.Background()
	d := returnsDataset("agencies/iom", "agencies/unicef")
	d.PublicAggregates = true // threshold 0: the default, 5
	if _, err := ilo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "returns", Dataset: d}); err != nil {
		t.Fatal(err)
	}
	const protection = 5 // the default threshold, and the least rounding base

	// 3 periods × 6 provinces × 2 contributors × sex × age group = 144
	// rows: 70% of them 1..4, 10% 0, 20% 5..12.
	dims := []string{"period", "location", "contributor", "sex", "age_group"}
	values := map[string][]string{
		"period":      {"2026-01", "2026-02", "2026-03"},
		"location":    {"KH-1", "KH-2", "KH-3", "KH-12", "KH-13", "KH-14"},
		"contributor": {"agencies/iom", "agencies/unicef"},
		"sex":         {"female", "male"},
		"age_group":   {"0-17", "18+"},
	}
	rng := rand.New(rand.NewPCG(19, 2))
	type finest struct {
		key   map[string]string
		value int64
	}
	var cells []finest
	for ci, c := range contributors {
		var rows []*exchangev1.Row
		for _, p := range values["period"] {
			for _, l := range values["location"] {
				for _, s := range values["sex"] {
					for _, a := range values["age_group"] {
						var v int64
						switch f := rng.Float64(); {
						case f < 0.7:
							v = 1 + rng.Int64N(4)
						case f < 0.8:
							v = 0
						default:
							v = 5 + rng.Int64N(8)
						}
						rows = append(rows, &exchangev1.Row{Period: p, Location: l, Categories: map[string]string{"sex": s, "age_group": a},
							Values: map[string]*exchangev1.Value{"cases": intValue(v)}})
						cells = append(cells, finest{key: map[string]string{"period": p, "location": l, "contributor": values["contributor"][ci], "sex": s, "age_group": a}, value: v})
					}
				}
			}
		}
		write(t, c, returnsName, rows...)
	}

	// Every query the API allows an outsider on this dataset's dimensions.
	type filter struct {
		locations []string
		from, to  string
	}
	filters := []filter{{}}
	for _, l := range values["location"] {
		filters = append(filters, filter{locations: []string{l}})
	}
	p := values["period"]
	filters = append(filters, filter{from: p[0], to: p[0]}, filter{from: p[0], to: p[1]}, filter{from: p[1], to: p[2]}, filter{from: p[2]})
	var equations []equation
	base, queries := int32(-1), 0
	for subset := range 1 << len(dims) {
		var groupBy []string
		for i, dim := range dims {
			if subset&(1<<i) != 0 {
				groupBy = append(groupBy, dim)
			}
		}
		for _, f := range filters {
			resp, err := ngo.datasets().AggregateDatasetRows(ctx, &exchangev1.AggregateDatasetRowsRequest{Dataset: returnsName,
				GroupBy: groupBy, Locations: f.locations, PeriodFrom: f.from, PeriodTo: f.to})
			if err != nil {
				t.Fatal(err)
			}
			queries++
			b := publishedRoundingBase(resp)
			if base >= 0 && b != base {
				t.Fatalf("rounding base %d, then %d", base, b)
			}
			base = b
			inFilter := func(k map[string]string) bool {
				return (len(f.locations) == 0 || k["location"] == f.locations[0]) &&
					(f.from == "" || k["period"] >= f.from) && (f.to == "" || k["period"] <= f.to)
			}
			groupOf := func(k map[string]string) string {
				var g strings.Builder
				for _, dim := range groupBy {
					g.WriteString(k[dim] + "\x00")
				}
				return g.String()
			}
			published := map[string]float64{}
			for _, c := range resp.GetCells() {
				published[groupOf(c.GetGroup())] = c.GetSums()["cases"]
			}
			// The cells of this grouping within the filter, with their rows.
			members := map[string][]int{}
			for i, c := range cells {
				if inFilter(c.key) {
					members[groupOf(c.key)] = append(members[groupOf(c.key)], i)
				}
			}
			for g, rows := range members {
				if v, ok := published[g]; ok {
					equations = append(equations, equation{rows, v})
				} else if base > 0 {
					equations = append(equations, equation{rows, 0})
				}
			}
		}
	}
	protectedBase := int64(max(base, protection))
	rowBounds := boundUnknowns(t, len(cells), equations, func(i int) bool {
		return cells[i].value > 0 && cells[i].value < protectedBase
	})
	pinned, protected := 0, 0
	narrowest := math.Inf(1)
	var narrowestAt string
	for i, c := range cells {
		if c.value <= 0 || c.value >= protectedBase {
			continue
		}
		protected++
		lo, hi := rowBounds[i][0], rowBounds[i][1]
		if base > 0 {
			lo, hi = trueInterval(lo, hi, float64(base))
		}
		if hi-lo < narrowest {
			narrowest, narrowestAt = hi-lo, fmt.Sprintf("%v = %d in [%g, %g]", c.key, c.value, lo, hi)
		}
		if hi-lo < 4 {
			pinned++
			if pinned <= 5 {
				t.Errorf("protected row %v = %d is bounded to [%g, %g] by the published figures", c.key, c.value, lo, hi)
			}
		}
	}
	t.Logf("%d queries, %d published figures, rounding base %d: %d of %d protected rows bounded narrower than 4; the narrowest: %s",
		queries, len(equations), base, pinned, protected, narrowestAt)
}

// publishedRoundingBase reads AggregateDatasetRowsResponse.rounding_base
// by name, 0 where the API has no such field (so that the attacker runs
// unchanged against the code from before the rounding).
func publishedRoundingBase(resp *exchangev1.AggregateDatasetRowsResponse) int32 {
	m := resp.ProtoReflect()
	f := m.Descriptor().Fields().ByName("rounding_base")
	if f == nil {
		return 0
	}
	return int32(m.Get(f).Int())
}

// trueInterval maps bounds on a row's rounded value to bounds on its true
// value: a rounded 0 comes from 0..b−1, b from 1..b, more than b from
// itself.
func trueInterval(lo, hi, b float64) (float64, float64) {
	switch {
	case lo < 0.5:
		lo = 0
	case lo < b+0.5:
		lo = 1
	}
	switch {
	case hi < 0.5:
		hi = b - 1
	case hi < b+0.5:
		hi = b
	}
	return lo, hi
}

// equation says that the unknowns rows sum to sum.
type equation struct {
	rows []int
	sum  float64
}

// boundUnknowns finds, for each unknown i with want(i), the least and
// greatest value it can take over all y ≥ 0 satisfying the equations, by
// two linear programs (gonum's simplex) over a set of independent
// equations. An unknown in no equation is bounded by [0, +Inf).
func boundUnknowns(t *testing.T, n int, equations []equation, want func(int) bool) [][2]float64 {
	t.Helper()
	// Distinct equations, then a basis of them: the simplex needs full
	// row rank. Independence is decided exactly, modulo a prime (rows
	// independent there are independent over the rationals).
	distinct := map[string]equation{}
	for _, e := range equations {
		slices.Sort(e.rows)
		key := fmt.Sprint(e.rows)
		if old, ok := distinct[key]; ok && old.sum != e.sum {
			t.Fatalf("inconsistent figures for rows %v: %v and %v", e.rows, old.sum, e.sum)
		}
		distinct[key] = e
	}
	const prime = 2147483647
	var basis [][]uint64 // reduced rows, each with its pivot column
	var pivots []int
	var independent []equation
	for _, key := range slices.Sorted(maps.Keys(distinct)) {
		e := distinct[key]
		r := make([]uint64, n)
		for _, i := range e.rows {
			r[i] = 1
		}
		for bi, b := range basis {
			if f := r[pivots[bi]]; f != 0 {
				for j := range r {
					r[j] = (r[j] + (prime-f)*b[j]) % prime
				}
			}
		}
		pivot := slices.IndexFunc(r, func(v uint64) bool { return v != 0 })
		if pivot < 0 {
			continue
		}
		inv := modInverse(r[pivot], prime)
		for j := range r {
			r[j] = r[j] * inv % prime
		}
		basis, pivots, independent = append(basis, r), append(pivots, pivot), append(independent, e)
	}
	used := make([]bool, n)
	for _, e := range independent {
		for _, i := range e.rows {
			used[i] = true
		}
	}
	a := mat.NewDense(len(independent), n, nil)
	rhs := make([]float64, len(independent))
	for r, e := range independent {
		for _, i := range e.rows {
			a.Set(r, i, 1)
		}
		rhs[r] = e.sum
	}
	// The simplex refuses a column of zeros: fix such unknowns at 0 with
	// an extra equation of their own (their bounds are reported apart).
	var free []int
	for i := range n {
		if !used[i] {
			free = append(free, i)
		}
	}
	if len(free) > 0 {
		grown := mat.NewDense(len(independent)+len(free), n, nil)
		grown.Slice(0, len(independent), 0, n).(*mat.Dense).Copy(a)
		for k, i := range free {
			grown.Set(len(independent)+k, i, 1)
		}
		a, rhs = grown, append(rhs, make([]float64, len(free))...)
	}
	t.Logf("%d equations, %d distinct, %d independent, %d unknowns (%d in no equation)", len(equations), len(distinct), len(independent), n, len(free))
	bounds := make([][2]float64, n)
	for i := range n {
		if !want(i) {
			continue
		}
		if !used[i] {
			bounds[i] = [2]float64{0, math.Inf(1)}
			continue
		}
		c := make([]float64, n)
		c[i] = 1
		lo, _, err := lp.Simplex(c, a, rhs, 1e-9, nil)
		if err != nil {
			t.Fatalf("least value of unknown %d: %v", i, err)
		}
		c[i] = -1
		negHi, _, err := lp.Simplex(c, a, rhs, 1e-9, nil)
		switch {
		case err == lp.ErrUnbounded:
			bounds[i] = [2]float64{lo, math.Inf(1)}
		case err != nil:
			t.Fatalf("greatest value of unknown %d: %v", i, err)
		default:
			bounds[i] = [2]float64{math.Round(lo*1e6) / 1e6, math.Round(-negHi*1e6) / 1e6}
		}
	}
	return bounds
}

// modInverse is v^(p−2) mod p, the inverse of v modulo the prime p.
func modInverse(v, p uint64) uint64 {
	result, e := uint64(1), p-2
	for v %= p; e > 0; e >>= 1 {
		if e&1 == 1 {
			result = result * v % p
		}
		v = v * v % p
	}
	return result
}
