package iati

import (
	"fmt"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The rules of the IATI Standard ruleset (IATI/IATI-Rulesets,
// rulesets/standard.json, version 2.03) that bear on a plan's budget, and
// the IATI guidance on activity budgets. Each is an error in IATI's
// validator; an activity that breaks one is reported with the rule and
// not imported, since its budget lines cannot be added up into a total.
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

// budgetRules checks the budgets against the rules above, reporting each
// break as a problem of the activity; it reports whether all held.
func (m *mapper) budgetRules(lines []*budgetLine) bool {
	ok := true
	for _, l := range lines {
		switch {
		case dateNumber(l.end) < dateNumber(l.start):
			l.n.skip(ruleDateOrder)
			m.problem("%s: %s: period-start %s is after period-end %s", l.n.path, ruleDateOrder, isoDate(l.start), isoDate(l.end))
			ok = false
		case timeOf(l.end).After(timeOf(l.start).AddDate(1, 0, 0)):
			l.n.skip(ruleTimeLimit)
			m.problem("%s: %s: %s to %s is longer; split it into budgets of a year or less", l.n.path, ruleTimeLimit, isoDate(l.start), isoDate(l.end))
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
				b.n.skip(ruleOverlap)
				m.problem("%s and %s: %s: both are %s budgets, for %s to %s and %s to %s", a.n.path, b.n.path, ruleOverlap, typ,
					isoDate(a.start), isoDate(a.end), isoDate(b.start), isoDate(b.end))
				ok = false
			}
		}
	}
	return ok
}
