package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// series is one figure of one system in one workload, one value per
// round.
type series struct {
	workload, system, unit string
	values                 []float64
}

func (s *series) median() float64 { return median(s.values) }

// comparison is a ratio between two series measured in the same rounds
// (per-round ratio: num's round i over den's round i), or a single series
// judged against an absolute target (den nil).
type comparison struct {
	name   string
	num    *series
	den    *series
	target string
	met    func(float64) bool // on the median; nil: no target, for context
}

// perRound is the comparison's value in every round that measured both
// sides: num's value over den's, or num's value alone when den is nil.
// A round whose den is missing or zero (nothing to divide by) is left out.
func (c comparison) perRound() []float64 {
	var per []float64
	for i, v := range c.num.values {
		switch {
		case c.den == nil:
			per = append(per, v)
		case i < len(c.den.values) && c.den.values[i] != 0:
			per = append(per, v/c.den.values[i])
		}
	}
	return per
}

// report collects the figures of a run and the comparisons drawn from
// them, and prints them as Markdown tables.
type report struct {
	series      []*series
	comparisons []comparison
	notes       []string
}

// record adds round's value of a workload's figure for a system.
func (r *report) record(workload, system, unit string, v float64) *series {
	s := r.get(workload, system, unit)
	s.values = append(s.values, v)
	return s
}

func (r *report) get(workload, system, unit string) *series {
	for _, s := range r.series {
		if s.workload == workload && s.system == system && s.unit == unit {
			return s
		}
	}
	s := &series{workload: workload, system: system, unit: unit}
	r.series = append(r.series, s)
	return s
}

func (r *report) compare(name string, num, den *series, target string, met func(float64) bool) {
	r.comparisons = append(r.comparisons, comparison{name: name, num: num, den: den, target: target, met: met})
}

// unjudged names the comparisons that have a target but no round to
// judge it on: a workload that ran without measuring a figure its target
// needs, which is a fault of the benchmark, never a verdict.
func (r *report) unjudged() []string {
	var names []string
	for _, c := range r.comparisons {
		if c.met != nil && len(c.perRound()) == 0 {
			names = append(names, c.name)
		}
	}
	return names
}

func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// num formats a figure with three significant digits and thousands
// separators.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1000:
		s := fmt.Sprintf("%.0f", v)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// ratio formats a ratio with three significant digits, so that a verdict
// at a threshold (0.499 against 0.50) reads as it was judged.
func ratio(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f×", v)
	}
	return fmt.Sprintf("%#.3g×", v)
}

// write prints the report as Markdown: the figures, then the ratios and
// targets, then notes.
func (r *report) write(w io.Writer) {
	fmt.Fprintln(w, "### Figures (median of the rounds; every round in brackets)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| workload | system | median | unit | rounds |")
	fmt.Fprintln(w, "| --- | --- | ---: | --- | --- |")
	for _, s := range r.series {
		rounds := make([]string, len(s.values))
		for i, v := range s.values {
			rounds[i] = num(v)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", s.workload, s.system, num(s.median()), s.unit, strings.Join(rounds, " · "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Ratios and targets (per-round ratios; verdict on their median)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| comparison | per round | median | target | verdict |")
	fmt.Fprintln(w, "| --- | --- | ---: | --- | --- |")
	for _, c := range r.comparisons {
		per := c.perRound()
		cells := make([]string, len(per))
		for i, v := range per {
			if c.den == nil {
				cells[i] = num(v)
			} else {
				cells[i] = ratio(v)
			}
		}
		m := median(per)
		shown := ratio(m)
		if c.den == nil {
			shown = num(m) + " " + c.num.unit
		}
		verdict := "—"
		if c.met != nil && len(per) > 0 {
			verdict = "**missed**"
			if c.met(m) {
				verdict = "met"
			}
		}
		target := c.target
		if target == "" {
			target = "(context)"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", c.name, strings.Join(cells, " · "), shown, target, verdict)
	}
	if len(r.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}
