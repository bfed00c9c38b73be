package main

import (
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1}, 10},
	} {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Fatalf("median reordered its argument: %v, was %v", c.in, in)
			}
		}
	}
}

func TestNumAndRatioFormats(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{0.0123, "0.0123"},
		{1.234, "1.23"},
		{12.34, "12.3"},
		{123.4, "123"},
		{1234.4, "1,234"},
		{1234567, "1,234,567"},
	} {
		if got := num(c.v); got != c.want {
			t.Errorf("num(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0.4994, "0.499×"}, // shown as judged: not rounded up to 0.50
		{1.5, "1.50×"},
		{12.34, "12.3×"},
		{250.2, "250×"},
	} {
		if got := ratio(c.v); got != c.want {
			t.Errorf("ratio(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

// row returns the cells of the table row whose first cell is name.
func row(t *testing.T, table, name string) []string {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) > 1 && strings.TrimSpace(cells[0]) == name {
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			return cells
		}
	}
	t.Fatalf("no row %q in:\n%s", name, table)
	return nil
}

func TestReportRatiosAreTakenPerRoundAndJudgedOnTheirMedian(t *testing.T) {
	r := &report{}
	// Round by round the exchange is 2×, 1× and 3× the reference: the
	// median of the ratios is 2×, while the ratio of the medians
	// (300 / 200) would be 1.5×.
	for _, v := range [][2]float64{{200, 100}, {300, 300}, {600, 200}} {
		r.record("w", "exchange", "ops/s", v[0])
		r.record("w", "reference", "ops/s", v[1])
	}
	ex, ref := r.get("w", "exchange", "ops/s"), r.get("w", "reference", "ops/s")
	r.compare("high bar", ex, ref, "≥ 2.5×", atLeast(2.5))
	r.compare("exact bar", ex, ref, "≥ 2×", atLeast(2))
	r.compare("context", ex, ref, "", nil)
	r.compare("absolute", ex, nil, "< 500 ops/s", below(500))
	var b strings.Builder
	r.write(&b)
	out := b.String()

	if got := row(t, out, "w"); got[2] != "300" || got[4] != "200 · 300 · 600" {
		t.Errorf("figures row = %q, want median 300 and rounds 200 · 300 · 600", got)
	}
	for _, c := range []struct{ name, per, median, target, verdict string }{
		{"high bar", "2.00× · 1.00× · 3.00×", "2.00×", "≥ 2.5×", "**missed**"},
		{"exact bar", "2.00× · 1.00× · 3.00×", "2.00×", "≥ 2×", "met"},
		{"context", "2.00× · 1.00× · 3.00×", "2.00×", "(context)", "—"},
		{"absolute", "200 · 300 · 600", "300 ops/s", "< 500 ops/s", "met"},
	} {
		got := row(t, out, c.name)
		want := []string{c.name, c.per, c.median, c.target, c.verdict}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("row %q = %q, want %q", c.name, got, want)
		}
	}
}

func TestReportSkipsRoundsWithoutAReference(t *testing.T) {
	r := &report{}
	ex := r.record("w", "exchange", "ops/s", 10)
	r.record("w", "exchange", "ops/s", 12)
	ref := r.record("w", "reference", "ops/s", 0) // a failed round
	r.compare("ratio", ex, ref, "≥ 1×", atLeast(1))
	var b strings.Builder
	r.write(&b)
	if got := row(t, b.String(), "ratio"); got[1] != "" || got[4] != "—" {
		t.Errorf("a comparison with no usable round = %q, want no ratios and no verdict", got)
	}
	if got := r.unjudged(); len(got) != 1 || got[0] != "ratio" {
		t.Errorf("unjudged() = %q, want [ratio]", got)
	}
}

func TestUnjudgedListsTargetsWithoutFigures(t *testing.T) {
	r := &report{}
	ex := r.record("w", "exchange", "ops/s", 10)
	ref := r.record("w", "reference", "ops/s", 5)
	missing := r.get("w", "never measured", "ops/s")
	r.compare("measured", ex, ref, "≥ 1×", atLeast(1))
	r.compare("absolute", ex, nil, "< 50", below(50))
	r.compare("no numerator", missing, ref, "≥ 1×", atLeast(1))
	r.compare("no denominator", ex, missing, "≥ 1×", atLeast(1))
	r.compare("context without figures", missing, ref, "", nil)
	got := r.unjudged()
	if strings.Join(got, ",") != "no numerator,no denominator" {
		t.Errorf("unjudged() = %q, want the two targets that have no figures", got)
	}
}
