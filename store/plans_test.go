package store

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func planMsg(ext string) *exchangev1.Plan {
	return &exchangev1.Plan{
		ExternalId: ext, Title: "Plan " + ext, Stage: exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
		Niches:        []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION},
		Locations:     []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-2"}},
		PlannedPeriod: &exchangev1.DatePeriod{Start: date(2026, 1, 1)},
	}
}

func agencyOp(id, method string) Op {
	return Op{Actor: AgencyPrefix + id, Method: "/alltogether.exchange.v1.PlanService/" + method}
}

func TestPlanVersionsAreKeptAndExternalIDsUniquePerAgency(t *testing.T) {
	s, clk := openTest(t)
	ctx := t.Context()
	p, err := s.CreatePlan(ctx, agencyOp("ilo", "CreatePlan"), "ilo", planMsg("P-1"))
	if err != nil {
		t.Fatal(err)
	}
	if p.GetVersion() != 1 || p.GetOwner() != "agencies/ilo" || p.GetEtag() == "" {
		t.Fatalf("created %v", p)
	}
	agencyID, id, ok := SplitPlanName(p.GetName())
	if !ok || agencyID != "ilo" || PlanName(agencyID, id) != p.GetName() {
		t.Fatalf("name %s", p.GetName())
	}
	// The same external id: refused for ilo, fine for iom.
	_, err = s.CreatePlan(ctx, agencyOp("ilo", "CreatePlan"), "ilo", planMsg("P-1"))
	if e := wantKind(t, err, KindAlreadyExists); e.Field != "plan.external_id" {
		t.Errorf("field %q", e.Field)
	}
	if _, err := s.CreatePlan(ctx, agencyOp("iom", "CreatePlan"), "iom", planMsg("P-1")); err != nil {
		t.Fatal(err)
	}
	other, err := s.CreatePlan(ctx, agencyOp("ilo", "CreatePlan"), "ilo", planMsg("P-2"))
	if err != nil {
		t.Fatal(err)
	}
	// Renaming onto a used external id is refused too.
	_, err = s.UpdatePlan(ctx, agencyOp("ilo", "UpdatePlan"), other.GetName(), "", func(p *exchangev1.Plan) error {
		p.ExternalId = "P-1"
		return nil
	})
	wantKind(t, err, KindAlreadyExists)

	clk.advance(time.Hour)
	v2, err := s.UpdatePlan(ctx, agencyOp("ilo", "UpdatePlan"), p.GetName(), p.GetEtag(), func(p *exchangev1.Plan) error {
		p.Stage = exchangev1.PlanStage_PLAN_STAGE_DRAFT
		p.Version = 99 // ignored: the store numbers versions
		p.Owner = "agencies/iom"
		return nil
	})
	if err != nil || v2.GetVersion() != 2 || v2.GetOwner() != "agencies/ilo" {
		t.Fatalf("update: %v %v", v2, err)
	}
	// An update that changes nothing makes no version and no revision.
	rev := s.Revision()
	same, err := s.UpdatePlan(ctx, agencyOp("ilo", "UpdatePlan"), p.GetName(), "", func(p *exchangev1.Plan) error { return nil })
	if err != nil || same.GetVersion() != 2 || s.Revision() != rev {
		t.Fatalf("no-op update: version %d, revision %d → %d (%v)", same.GetVersion(), rev, s.Revision(), err)
	}
	_, err = s.UpdatePlan(ctx, agencyOp("ilo", "UpdatePlan"), p.GetName(), p.GetEtag(), func(p *exchangev1.Plan) error { return nil })
	wantKind(t, err, KindEtagMismatch)

	v1, err := s.GetPlanVersion(ctx, p.GetName(), 1)
	if err != nil || v1.GetStage() != exchangev1.PlanStage_PLAN_STAGE_CONCEPT || !proto.Equal(v1, p) {
		t.Fatalf("version 1: %v %v", v1, err)
	}
	_, err = s.GetPlanVersion(ctx, p.GetName(), 3)
	wantKind(t, err, KindNotFound)
	versions, _, err := s.ListPlanVersions(ctx, p.GetName(), nil, Page{})
	if err != nil || len(versions) != 2 || !proto.Equal(versions[1], v2) {
		t.Fatalf("versions %v %v", versions, err)
	}
	byExt, err := s.PlanByExternalID(ctx, "ilo", "P-1")
	if err != nil || byExt.GetName() != p.GetName() {
		t.Fatalf("by external id %v %v", byExt, err)
	}
	all, _, err := s.PlanSnapshot(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("snapshot %d %v", len(all), err)
	}
	list, _, _, err := s.ListPlans(ctx, PlanFilter{AgencyID: "ilo"}, Page{})
	if err != nil || len(list) != 2 {
		t.Fatalf("ilo's plans %d %v", len(list), err)
	}
}

func TestApplyPlansWritesOnlyWhatChanges(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	op := agencyOp("ilo", "ApplyPlans")
	set := []*exchangev1.Plan{planMsg("A"), planMsg("B")}
	actionsOf := func(rs []ApplyResult) []exchangev1.PlanApplyAction {
		var out []exchangev1.PlanApplyAction
		for _, r := range rs {
			out = append(out, r.Action)
		}
		return out
	}
	const (
		create    = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CREATE
		update    = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UPDATE
		cancel    = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL
		unchanged = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UNCHANGED
		conflict  = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CONFLICT
	)
	res, err := s.ApplyPlans(ctx, op, "ilo", set, ApplyOptions{ValidateOnly: true})
	if err != nil || !slices.Equal(actionsOf(res), []exchangev1.PlanApplyAction{create, create}) || s.Revision() != 0 {
		t.Fatalf("validate only: %v, revision %d (%v)", actionsOf(res), s.Revision(), err)
	}
	res, err = s.ApplyPlans(ctx, op, "ilo", set, ApplyOptions{})
	if err != nil || !slices.Equal(actionsOf(res), []exchangev1.PlanApplyAction{create, create}) {
		t.Fatalf("apply: %v %v", actionsOf(res), err)
	}
	// Each plan change has a revision of its own.
	if s.Revision() != nth(2) {
		t.Fatalf("revision %d after two creations", s.Revision())
	}
	res, err = s.ApplyPlans(ctx, op, "ilo", set, ApplyOptions{Prune: true})
	if err != nil || !slices.Equal(actionsOf(res), []exchangev1.PlanApplyAction{unchanged, unchanged}) || s.Revision() != nth(2) {
		t.Fatalf("again: %v, revision %d (%v)", actionsOf(res), s.Revision(), err)
	}
	// A stale etag on a change conflicts; the rest applies.
	a, b := proto.Clone(set[0]).(*exchangev1.Plan), proto.Clone(set[1]).(*exchangev1.Plan)
	a.Title, a.Etag = "A2", "stale"
	b.Title = "B2"
	res, err = s.ApplyPlans(ctx, op, "ilo", []*exchangev1.Plan{a, b}, ApplyOptions{})
	if err != nil || !slices.Equal(actionsOf(res), []exchangev1.PlanApplyAction{conflict, update}) || res[1].After.GetVersion() != 2 {
		t.Fatalf("conflict: %v %v", actionsOf(res), err)
	}
	// Prune cancels what is missing, with the reason given, and keeps the
	// version history.
	res, err = s.ApplyPlans(ctx, op, "ilo", []*exchangev1.Plan{b}, ApplyOptions{Prune: true, PruneReason: "pruned"})
	if err != nil || !slices.Equal(actionsOf(res), []exchangev1.PlanApplyAction{unchanged, cancel}) ||
		res[1].After.GetStage() != exchangev1.PlanStage_PLAN_STAGE_CANCELLED || res[1].After.GetCancelReason() != "pruned" {
		t.Fatalf("prune: %v %v", res, err)
	}
	versions, _, err := s.ListPlanVersions(ctx, res[1].After.GetName(), nil, Page{})
	if err != nil || len(versions) != 2 {
		t.Fatalf("versions of the pruned plan: %d %v", len(versions), err)
	}
	// An import without audiences keeps the stored audience.
	shared := proto.Clone(b).(*exchangev1.Plan)
	shared.Audience = &exchangev1.Audience{AllMembers: true}
	if _, err := s.ApplyPlans(ctx, op, "ilo", []*exchangev1.Plan{shared}, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = s.ApplyPlans(ctx, op, "ilo", []*exchangev1.Plan{b}, ApplyOptions{KeepStoredAudience: true})
	if err != nil || res[0].Action != unchanged {
		t.Fatalf("kept audience: %v %v", actionsOf(res), err)
	}
}
