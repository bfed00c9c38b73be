package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// plans is a PlanService connection as one identity.
func (c as) plans() exchangev1.PlanServiceClient {
	return exchangev1.NewPlanServiceClient(c.conn)
}

// newPlan builds a valid inception-stage plan with the external id,
// prevention in Battambang in 2026, shared with every member.
func newPlan(externalID string) *exchangev1.Plan {
	return &exchangev1.Plan{
		ExternalId:    externalID,
		Title:         "Safe migration in " + externalID,
		Description:   "Village information sessions on safe migration.",
		Stage:         exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
		Niches:        []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION},
		Locations:     []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-2"}},
		PlannedPeriod: &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)},
		Audience:      &exchangev1.Audience{AllMembers: true},
	}
}

// planParties starts an exchange with ilo, iom, unicef and ngo-kh, and a
// working group "un-wg" of ilo (member) and iom (observer).
func planParties(t *testing.T) (x *exchange, sec, ilo, iom, unicef, ngo as) {
	t.Helper()
	x = startExchange(t)
	sec = x.asSecretariat()
	for _, id := range []string{"ilo", "iom", "unicef", "ngo-kh"} {
		x.createAgency(sec, id, exchangev1.Niche_NICHE_PREVENTION)
	}
	createWorkingGroup(t, sec, "un-wg", map[string]exchangev1.MembershipRole{
		"ilo": exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER, "iom": exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER,
	})
	return x, sec, x.asAgency("ilo"), x.asAgency("iom"), x.asAgency("unicef"), x.asAgency("ngo-kh")
}

func createWorkingGroup(t testing.TB, sec as, id string, members map[string]exchangev1.MembershipRole) {
	t.Helper()
	g := &exchangev1.WorkingGroup{DisplayName: "Group " + id, Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP}
	for a, role := range members {
		g.Members = append(g.Members, &exchangev1.Membership{Agency: "agencies/" + a, Role: role})
	}
	if _, err := sec.dir.CreateWorkingGroup(context.Background(), &exchangev1.CreateWorkingGroupRequest{WorkingGroupId: id, WorkingGroup: g}); err != nil {
		t.Fatalf("create working group %s: %v", id, err)
	}
}

// createPlan creates a plan as c and returns it.
func createPlan(t testing.TB, c as, p *exchangev1.Plan) *exchangev1.Plan {
	t.Helper()
	resp, err := c.plans().CreatePlan(context.Background(), &exchangev1.CreatePlanRequest{Parent: c.agencyName(), Plan: p, RequestId: nextRequestID()})
	if err != nil {
		t.Fatalf("create plan %s as %s: %v", p.GetExternalId(), c.agencyID, err)
	}
	return resp.GetPlan()
}

// apply sends ApplyPlans as c.
func apply(t testing.TB, c as, plans []*exchangev1.Plan, prune, validateOnly bool) *exchangev1.ApplyPlansResponse {
	t.Helper()
	resp, err := c.plans().ApplyPlans(context.Background(), &exchangev1.ApplyPlansRequest{
		Parent: c.agencyName(), Plans: plans, Prune: prune, ValidateOnly: validateOnly,
	})
	if err != nil {
		t.Fatalf("apply as %s: %v", c.agencyID, err)
	}
	return resp
}

// actions summarises apply results as "external id:action".
func actions(results []*exchangev1.PlanApplyResult) []string {
	var out []string
	for _, r := range results {
		out = append(out, fmt.Sprintf("%s:%s", r.GetExternalId(), r.GetAction().String()[len("PLAN_APPLY_ACTION_"):]))
	}
	return out
}

// sorted returns a sorted copy.
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// watchPlans opens a plan watch and returns its events.
func watchPlans(t *testing.T, c as, req *exchangev1.WatchPlansRequest) <-chan *exchangev1.WatchPlansResponse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := c.plans().WatchPlans(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *exchangev1.WatchPlansResponse, 1000)
	go func() {
		defer close(out)
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			out <- ev
		}
	}()
	return out
}

// nextEvents collects n non-heartbeat events, failing after a timeout.
func nextEvents(t *testing.T, events <-chan *exchangev1.WatchPlansResponse, n int) []*exchangev1.WatchPlansResponse {
	t.Helper()
	var got []*exchangev1.WatchPlansResponse
	deadline := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("watch ended after %d of %d events", len(got), n)
			}
			if ev.GetKind() != exchangev1.PlanEventKind_PLAN_EVENT_KIND_HEARTBEAT {
				got = append(got, ev)
			}
		case <-deadline:
			t.Fatalf("saw %d of %d events: %v", len(got), n, got)
		}
	}
	return got
}

// quiet fails if a non-heartbeat event arrives within a heartbeat or two.
func quiet(t *testing.T, who string, events <-chan *exchangev1.WatchPlansResponse) {
	t.Helper()
	deadline := time.After(450 * time.Millisecond)
	for {
		select {
		case ev := <-events:
			if ev.GetKind() != exchangev1.PlanEventKind_PLAN_EVENT_KIND_HEARTBEAT {
				t.Errorf("%s saw %v %s", who, ev.GetKind(), ev.GetPlan().GetName())
			}
		case <-deadline:
			return
		}
	}
}
