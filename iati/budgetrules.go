package iati

import (
	"fmt"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The rules of the IATI Standard ruleset (IATI/IATI-Rulesets,
// rulesets/standard.json, version 2.03) that bear on a plan's budget, and
// the IATI guidance on activity budgets. Each is an error in IATI's
// validator. An activity whose budgets break one is imported without a
// budget: its budget lines cannot be added up into a total, but the rest
// of the plan (places, niches, period) is what coordination needs, and
// publishers as large as IOM give one budget for a project of several
// years. Each budget left out is reported with the rule it breaks.
const (
	ruleDateOrder = "IATI ruleset 8.6.3 (date_order, error): the start of the period must be before the end of the period"
	ruleTimeLimit = "IATI ruleset 7.5.3 (time_limit, error): Budget Period must not be longer than one year"
	ruleOverlap   = "IATI guidance on activity budgets: budgets of the same type must not overlap, each covers its own period (at most a year) of the activity"
)

// isoDate writes a calendar date as YYYY-MM-DD.
func isoDate(d *exchangev1.CalendarDate) string {
	return fmt.Sprintf("%04d-%02d-%02d", d.GetYear(), d.GetMonth(), d.GetDay())
}

func timeOf(d *exchangev1.CalendarDate) time.Time {
	return time.Date(int(d.GetYear()), time.Month(d.GetMonth()), int(d.GetDay()), 0, 0, 0, 0, time.UTC)
}

// budgetRules checks the budgets against the rules above and reports
// whether all held. A budget that breaks one is left out with the rule
// and what breaks it as its reason; when any does, budget leaves the others
// out too (leaveOut).
func (m *mapper) budgetRules(lines []*budgetLine) bool {
	ok := true
	for _, l := range lines {
		switch {
		case dateNumber(l.end) < dateNumber(l.start):
			l.n.skip(fmt.Sprintf("%s: period-start %s is after period-end %s; the plan is imported without a budget", ruleDateOrder, isoDate(l.start), isoDate(l.end)))
			ok = false
		case timeOf(l.end).After(timeOf(l.start).AddDate(1, 0, 0)):
			l.n.skip(fmt.Sprintf("%s: %s to %s is longer; the plan is imported without a budget (split it into budgets of a year or less)", ruleTimeLimit, isoDate(l.start), isoDate(l.end)))
			ok = false
		}
	}
	for i, a := range lines {
		for _, b := range lines[i+1:] {
			if a.revised != b.revised || dateNumber(a.end) < dateNumber(a.start) || dateNumber(b.end) < dateNumber(b.start) {
				continue
			}
			if dateNumber(a.start) <= dateNumber(b.end) && dateNumber(b.start) <= dateNumber(a.end) {
				typ := "original (type 1)"
				if a.revised {
					typ = "revised (type 2)"
				}
				reason := fmt.Sprintf("%s: this and %s are both %s budgets, for %s to %s and %s to %s; the plan is imported without a budget", ruleOverlap, a.n.path, typ,
					isoDate(b.start), isoDate(b.end), isoDate(a.start), isoDate(a.end))
				if b.n.reason == "" {
					b.n.skip(reason)
				}
				ok = false
			}
		}
	}
	return ok
}

// leaveOut skips the budgets that broke no rule themselves, when another
// did: the plan then has no budget at all rather than part of one.
func leaveOut(lines []*budgetLine) {
	for _, l := range lines {
		if l.n.reason == "" {
			l.n.skip("left out with the activity's other budgets, one of which breaks an IATI rule (see it); the plan is imported without a budget")
		}
	}
}
