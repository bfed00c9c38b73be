package server

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// normalizePlan returns a copy of p with the output-only fields cleared
// (the etag is kept: ApplyPlans reads it), empty sub-messages unset and
// decimals in their shortest form, so that equal plans compare equal
// however they were written.
func normalizePlan(p *exchangev1.Plan) *exchangev1.Plan {
	p = proto.Clone(p).(*exchangev1.Plan)
	p.Name, p.Owner, p.Version, p.CancelReason = "", "", 0, ""
	p.CreateTime, p.UpdateTime = nil, nil
	if a := p.GetAudience(); a != nil && !a.GetAllMembers() && len(a.GetAgencies()) == 0 && len(a.GetWorkingGroups()) == 0 {
		p.Audience = nil
	}
	if b := p.GetBudget(); b != nil {
		b.TotalAmount = canonicalDecimal(b.GetTotalAmount())
		for _, l := range b.GetLines() {
			l.Amount = canonicalDecimal(l.GetAmount())
		}
	}
	return p
}

// canonicalDecimal drops trailing zeros of the fraction ("1200.50" →
// "1200.5", "100.0" → "100"). The input has passed the decimal pattern.
func canonicalDecimal(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// planChecker checks what protovalidate cannot: known provinces, real
// dates, unique locations, budget currencies, and that the agencies and
// working groups a plan names are in the directory. It remembers what it
// looked up, so that checking many plans reads each name once.
type planChecker struct {
	store  *store.Store
	exists map[string]error
}

func newPlanChecker(st *store.Store) *planChecker {
	return &planChecker{store: st, exists: map[string]error{}}
}

// known fails when the agency or working group is not in the directory.
func (c *planChecker) known(ctx context.Context, field, name string) error {
	err, seen := c.exists[name]
	if !seen {
		if strings.HasPrefix(name, store.AgencyPrefix) {
			_, err = c.store.GetAgency(ctx, name)
		} else {
			_, err = c.store.GetWorkingGroup(ctx, name)
		}
		c.exists[name] = err
	}
	if err != nil && store.KindOf(err) == store.KindNotFound {
		return invalidField(field, name+" is not in the directory")
	}
	return err
}

// check checks a normalized plan; field prefixes field names ("plan",
// "plans[3]").
func (c *planChecker) check(ctx context.Context, field string, p *exchangev1.Plan) error {
	seen := map[string]int{}
	for i, l := range p.GetLocations() {
		f := fmt.Sprintf("%s.locations[%d]", field, i)
		if err := checkLocationRef(f, l); err != nil {
			return err
		}
		k := l.GetCountry() + "|" + l.GetSubdivision() + "|" + l.GetArea()
		if j, dup := seen[k]; dup {
			return invalidField(f, fmt.Sprintf("repeats %s.locations[%d]", field, j))
		}
		seen[k] = i
	}
	if err := checkPeriod(field+".planned_period", p.GetPlannedPeriod()); err != nil {
		return err
	}
	if ap := p.GetActualPeriod(); ap != nil {
		if err := checkPeriod(field+".actual_period", ap); err != nil {
			return err
		}
	}
	for i, l := range p.GetBudget().GetLines() {
		if l.GetPeriod() != nil {
			if err := checkPeriod(fmt.Sprintf("%s.budget.lines[%d].period", field, i), l.GetPeriod()); err != nil {
				return err
			}
		}
	}
	for i, pt := range p.GetPartners() {
		if pt.GetAgency() != "" {
			if err := c.known(ctx, fmt.Sprintf("%s.partners[%d].agency", field, i), pt.GetAgency()); err != nil {
				return err
			}
		}
	}
	for i, a := range p.GetAudience().GetAgencies() {
		if err := c.known(ctx, fmt.Sprintf("%s.audience.agencies[%d]", field, i), a); err != nil {
			return err
		}
	}
	for i, g := range p.GetAudience().GetWorkingGroups() {
		if err := c.known(ctx, fmt.Sprintf("%s.audience.working_groups[%d]", field, i), g); err != nil {
			return err
		}
	}
	return nil
}

// refuseCancelled refuses the CANCELLED stage where only CancelPlan may
// set it.
func refuseCancelled(field string, p *exchangev1.Plan) error {
	if p.GetStage() == exchangev1.PlanStage_PLAN_STAGE_CANCELLED {
		return invalidField(field+".stage", "a plan is cancelled only through CancelPlan (or ApplyPlans), with a reason")
	}
	return nil
}
