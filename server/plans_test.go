package server

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestPlanMaturesThroughVersionsAndDiffsShowWhatChanged(t *testing.T) {
	x, _, ilo, _, _, _ := planParties(t)
	ctx := context.Background()

	// validate_only stores nothing.
	before := x.store.Revision()
	preview, err := ilo.plans().CreatePlan(ctx, &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: newPlan("TICW-KH-01"), ValidateOnly: true})
	if err != nil || preview.GetPlan().GetOwner() != "agencies/ilo" || preview.GetPlan().GetName() != "" {
		t.Fatalf("validate_only create: %v %v", preview, err)
	}
	if x.store.Revision() != before {
		t.Fatal("validate_only create changed the store")
	}

	// Created at inception; a retry returns the same plan.
	req := &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: newPlan("TICW-KH-01"), RequestId: "create-ticw-kh-01"}
	first, err := ilo.plans().CreatePlan(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ilo.plans().CreatePlan(ctx, req)
	if err != nil || again.GetPlan().GetName() != first.GetPlan().GetName() {
		t.Fatalf("retry made %v (%v), want %s", again.GetPlan().GetName(), err, first.GetPlan().GetName())
	}
	p := first.GetPlan()
	if p.GetVersion() != 1 || p.GetOwner() != "agencies/ilo" || !strings.HasPrefix(p.GetName(), "agencies/ilo/plans/") {
		t.Fatalf("created %v", p)
	}
	_, err = ilo.plans().CreatePlan(ctx, &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: newPlan("TICW-KH-01")})
	if f := violatedFields(wantCode(t, err, codes.AlreadyExists)); len(f) != 1 || f[0] != "plan.external_id" {
		t.Errorf("duplicate external id: %v", f)
	}
	cancelled := newPlan("TICW-KH-02")
	cancelled.Stage = exchangev1.PlanStage_PLAN_STAGE_CANCELLED
	_, err = ilo.plans().CreatePlan(ctx, &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: cancelled})
	wantCode(t, err, codes.InvalidArgument)

	// Draft: a second province.
	p.Stage = exchangev1.PlanStage_PLAN_STAGE_DRAFT
	p.Locations = append(p.Locations, &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-1"})
	draft, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: p})
	if err != nil || draft.GetPlan().GetVersion() != 2 {
		t.Fatalf("draft: %v %v", draft, err)
	}
	// A stale etag is refused; an update that changes nothing makes no
	// version.
	_, err = ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: p})
	wantCode(t, err, codes.Aborted)
	same, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: draft.GetPlan()})
	if err != nil || same.GetPlan().GetVersion() != 2 || same.GetPlan().GetEtag() != draft.GetPlan().GetEtag() {
		t.Fatalf("no-op update: %v %v", same, err)
	}
	// Agreed: stage and budget only, through the mask; decimals are
	// stored in their shortest form.
	agreed := proto.Clone(draft.GetPlan()).(*exchangev1.Plan)
	agreed.Stage = exchangev1.PlanStage_PLAN_STAGE_AGREED
	agreed.Title = "not in the mask"
	agreed.Budget = &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "250000.50", Lines: []*exchangev1.PlanBudgetLine{
		{FiscalYear: "2026", Amount: "250000.500", Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_COMMITTED},
	}}
	v3, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: agreed, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"stage", "budget"}}})
	if err != nil {
		t.Fatal(err)
	}
	if v3.GetPlan().GetVersion() != 3 || v3.GetPlan().GetTitle() == "not in the mask" || v3.GetPlan().GetBudget().GetTotalAmount() != "250000.5" ||
		v3.GetPlan().GetBudget().GetLines()[0].GetAmount() != "250000.5" {
		t.Fatalf("agreed: %v", v3.GetPlan())
	}
	_, err = ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: v3.GetPlan(), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"version"}}})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "update_mask.paths[0]" {
		t.Errorf("output-only field in mask: %v", f)
	}

	// Versions survive a restart.
	x.restart()
	ilo = x.asAgency("ilo")
	got, err := ilo.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: p.GetName(), Version: 1})
	if err != nil || got.GetPlan().GetStage() != exchangev1.PlanStage_PLAN_STAGE_CONCEPT || len(got.GetPlan().GetLocations()) != 1 {
		t.Fatalf("version 1: %v %v", got, err)
	}
	_, err = ilo.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: p.GetName(), Version: 9})
	wantCode(t, err, codes.NotFound)
	versions, err := ilo.plans().ListPlanVersions(ctx, &exchangev1.ListPlanVersionsRequest{Name: p.GetName()})
	if err != nil || len(versions.GetPlans()) != 3 {
		t.Fatalf("versions: %v %v", versions, err)
	}
	for i, v := range versions.GetPlans() {
		if v.GetVersion() != int32(i+1) {
			t.Errorf("versions[%d] is version %d", i, v.GetVersion())
		}
	}

	// From inception to agreement: stage, locations and budget changed.
	diff, err := ilo.plans().DiffPlanVersions(ctx, &exchangev1.DiffPlanVersionsRequest{Name: p.GetName(), FromVersion: 1})
	if err != nil || diff.GetFromVersion() != 1 || diff.GetToVersion() != 3 {
		t.Fatalf("diff: %v %v", diff, err)
	}
	var fields []string
	for _, c := range diff.GetChanges() {
		fields = append(fields, c.GetField())
	}
	if !slices.Equal(fields, []string{"stage", "locations", "budget"}) {
		t.Fatalf("diff fields %v", fields)
	}
	stage, locs := diff.GetChanges()[0], diff.GetChanges()[1]
	if stage.GetBefore().GetStringValue() != "PLAN_STAGE_CONCEPT" || stage.GetAfter().GetStringValue() != "PLAN_STAGE_AGREED" {
		t.Errorf("stage change %v", stage)
	}
	if len(locs.GetAdded()) != 1 || locs.GetAdded()[0].GetStructValue().GetFields()["subdivision"].GetStringValue() != "KH-1" || len(locs.GetRemoved()) != 0 {
		t.Errorf("locations change %v", locs)
	}
	// Between two versions with budgets the diff goes inside the budget.
	v3.GetPlan().Budget.TotalAmount = "260000"
	v4, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: v3.GetPlan()})
	if err != nil {
		t.Fatal(err)
	}
	diff, err = ilo.plans().DiffPlanVersions(ctx, &exchangev1.DiffPlanVersionsRequest{Name: p.GetName(), FromVersion: 3, ToVersion: 4})
	if err != nil || len(diff.GetChanges()) != 1 || diff.GetChanges()[0].GetField() != "budget.total_amount" ||
		diff.GetChanges()[0].GetAfter().GetStringValue() != "260000" {
		t.Fatalf("budget diff: %v %v", diff, err)
	}
	_, err = ilo.plans().DiffPlanVersions(ctx, &exchangev1.DiffPlanVersionsRequest{Name: p.GetName(), FromVersion: 4, ToVersion: 3})
	wantCode(t, err, codes.InvalidArgument)

	// Cancelled: final.
	c, err := ilo.plans().CancelPlan(ctx, &exchangev1.CancelPlanRequest{Name: p.GetName(), Etag: v4.GetPlan().GetEtag(), Reason: "UNICEF covers these provinces"})
	if err != nil || c.GetPlan().GetStage() != exchangev1.PlanStage_PLAN_STAGE_CANCELLED || c.GetPlan().GetCancelReason() == "" || c.GetPlan().GetVersion() != 5 {
		t.Fatalf("cancel: %v %v", c, err)
	}
	_, err = ilo.plans().CancelPlan(ctx, &exchangev1.CancelPlanRequest{Name: p.GetName(), Reason: "again"})
	wantCode(t, err, codes.FailedPrecondition)
	c.GetPlan().Stage = exchangev1.PlanStage_PLAN_STAGE_DRAFT
	_, err = ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: c.GetPlan()})
	wantCode(t, err, codes.FailedPrecondition)
}

func TestOnlyTheOwnerChangesAPlanAndHiddenPlansDoNotExist(t *testing.T) {
	_, sec, ilo, iom, unicef, ngo := planParties(t)
	ctx := context.Background()
	shared := func(ext string, a *exchangev1.Audience) *exchangev1.Plan {
		p := newPlan(ext)
		p.Audience = a
		return createPlan(t, ilo, p)
	}
	all := shared("all", &exchangev1.Audience{AllMembers: true})
	own := shared("own", nil)
	named := shared("named", &exchangev1.Audience{Agencies: []string{"agencies/unicef"}})
	group := shared("group", &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}})
	missing := "agencies/ilo/plans/" + strings.Repeat("0", 26)

	sees := map[string][]*exchangev1.Plan{
		"ilo": {all, own, named, group}, "iom": {all, group}, "unicef": {all, named}, "ngo-kh": {all}, "secretariat": {all},
	}
	for who, c := range map[string]as{"ilo": ilo, "iom": iom, "unicef": unicef, "ngo-kh": ngo, "secretariat": sec} {
		t.Run(who, func(t *testing.T) {
			for _, p := range []*exchangev1.Plan{all, own, named, group} {
				_, err := c.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: p.GetName()})
				if slices.Contains(sees[who], p) {
					if err != nil {
						t.Errorf("cannot read %s: %v", p.GetExternalId(), err)
					}
					continue
				}
				hidden := wantCode(t, err, codes.NotFound)
				_, errMissing := c.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: missing})
				absent := wantCode(t, errMissing, codes.NotFound)
				if strings.ReplaceAll(hidden.Message(), p.GetName(), missing) != absent.Message() || reason(hidden) != reason(absent) {
					t.Errorf("hidden %v differs from missing %v", hidden.Proto(), absent.Proto())
				}
				// Changing a hidden plan looks like changing a missing one.
				_, err = c.plans().CancelPlan(ctx, &exchangev1.CancelPlanRequest{Name: p.GetName(), Reason: "x"})
				wantCode(t, err, codes.NotFound)
				_, err = c.plans().ListPlanVersions(ctx, &exchangev1.ListPlanVersionsRequest{Name: p.GetName()})
				wantCode(t, err, codes.NotFound)
			}
			list, err := c.plans().ListPlans(ctx, &exchangev1.ListPlansRequest{Parent: "agencies/-"})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range list.GetPlans() {
				got = append(got, p.GetExternalId())
			}
			var want []string
			for _, p := range sees[who] {
				want = append(want, p.GetExternalId())
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("lists %v, want %v", got, want)
			}
			if who != "ilo" {
				p := proto.Clone(all).(*exchangev1.Plan)
				p.Title = "taken over"
				_, err := c.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: p})
				wantCode(t, err, codes.PermissionDenied)
				_, err = c.plans().CancelPlan(ctx, &exchangev1.CancelPlanRequest{Name: all.GetName(), Reason: "x"})
				wantCode(t, err, codes.PermissionDenied)
			}
		})
	}

	// Plans are created only under the caller's own agency.
	_, err := iom.plans().CreatePlan(ctx, &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: newPlan("x")})
	wantCode(t, err, codes.PermissionDenied)
	_, err = sec.plans().CreatePlan(ctx, &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: newPlan("x")})
	wantCode(t, err, codes.PermissionDenied)
	_, err = iom.plans().ApplyPlans(ctx, &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo", Prune: true})
	wantCode(t, err, codes.PermissionDenied)
	// An audience must name agencies and groups that exist.
	p := newPlan("typo")
	p.Audience = &exchangev1.Audience{Agencies: []string{"agencies/unicf"}}
	_, err = ilo.plans().CreatePlan(ctx, &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: p})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "plan.audience.agencies[0]" {
		t.Errorf("unknown audience agency: %v", f)
	}
	// Lookup by external id.
	list, err := unicef.plans().ListPlans(ctx, &exchangev1.ListPlansRequest{Parent: "agencies/ilo", ExternalId: "named"})
	if err != nil || len(list.GetPlans()) != 1 || list.GetPlans()[0].GetName() != named.GetName() {
		t.Fatalf("by external id: %v %v", list, err)
	}
	list, err = iom.plans().ListPlans(ctx, &exchangev1.ListPlansRequest{Parent: "agencies/ilo", ExternalId: "named"})
	if err != nil || len(list.GetPlans()) != 0 {
		t.Fatalf("hidden plan found by external id: %v %v", list, err)
	}
}

func TestSharingAPlanDoesNotRevealItsEarlierDrafts(t *testing.T) {
	_, _, ilo, iom, _, _ := planParties(t)
	ctx := context.Background()
	p := newPlan("quiet-draft")
	p.Audience = nil
	p = createPlan(t, ilo, p)
	p.Audience = &exchangev1.Audience{AllMembers: true}
	p.Stage = exchangev1.PlanStage_PLAN_STAGE_DRAFT
	if _, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: p}); err != nil {
		t.Fatal(err)
	}
	if _, err := iom.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: p.GetName()}); err != nil {
		t.Fatalf("shared plan: %v", err)
	}
	_, err := iom.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: p.GetName(), Version: 1})
	wantCode(t, err, codes.NotFound)
	_, err = iom.plans().DiffPlanVersions(ctx, &exchangev1.DiffPlanVersionsRequest{Name: p.GetName(), FromVersion: 1})
	wantCode(t, err, codes.NotFound)
	versions, err := iom.plans().ListPlanVersions(ctx, &exchangev1.ListPlanVersionsRequest{Name: p.GetName()})
	if err != nil || len(versions.GetPlans()) != 1 || versions.GetPlans()[0].GetVersion() != 2 {
		t.Fatalf("iom sees versions %v (%v), want only 2", versions, err)
	}
	versions, err = ilo.plans().ListPlanVersions(ctx, &exchangev1.ListPlanVersionsRequest{Name: p.GetName()})
	if err != nil || len(versions.GetPlans()) != 2 {
		t.Fatalf("the owner sees versions %v (%v)", versions, err)
	}
}

func TestApplyPlansIsDeclarativeIdempotentAndReportsConflicts(t *testing.T) {
	x, _, ilo, iom, _, _ := planParties(t)
	ctx := context.Background()
	set := []*exchangev1.Plan{newPlan("A"), newPlan("B"), newPlan("C")}
	iomPlan := createPlan(t, iom, newPlan("A"))

	// Dry run: the diff, and nothing stored.
	before := x.store.Revision()
	dry := apply(t, ilo, set, true, true)
	if got := actions(dry.GetResults()); !slices.Equal(got, []string{"A:CREATE", "B:CREATE", "C:CREATE"}) || !dry.GetChanged() {
		t.Fatalf("dry run %v", got)
	}
	if x.store.Revision() != before {
		t.Fatal("a dry run changed the store")
	}
	first := apply(t, ilo, set, true, false)
	if got := actions(first.GetResults()); !slices.Equal(got, []string{"A:CREATE", "B:CREATE", "C:CREATE"}) {
		t.Fatalf("first apply %v", got)
	}
	// The same set again: all unchanged, no revision written.
	before = x.store.Revision()
	second := apply(t, ilo, set, true, false)
	if got := actions(second.GetResults()); !slices.Equal(got, []string{"A:UNCHANGED", "B:UNCHANGED", "C:UNCHANGED"}) || second.GetChanged() {
		t.Fatalf("second apply %v", got)
	}
	if x.store.Revision() != before {
		t.Fatalf("an unchanged apply wrote revisions %d → %d", before, x.store.Revision())
	}
	// Equal content in another spelling (decimals, an empty audience) is
	// still unchanged.
	respelled := proto.Clone(set[0]).(*exchangev1.Plan)
	respelled.Budget = &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "1000"}
	set[0].Budget = &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "1000.00"}
	apply(t, ilo, set, false, false)
	if got := actions(apply(t, ilo, []*exchangev1.Plan{respelled}, false, false).GetResults()); !slices.Equal(got, []string{"A:UNCHANGED"}) {
		t.Fatalf("respelled %v", got)
	}

	// Change B, drop C, prune: dry run first.
	b := proto.Clone(set[1]).(*exchangev1.Plan)
	b.Title = "B, now with district partners"
	next := []*exchangev1.Plan{set[0], b}
	before = x.store.Revision()
	dry = apply(t, ilo, next, true, true)
	if got := actions(dry.GetResults()); !slices.Equal(got, []string{"A:UNCHANGED", "B:UPDATE", "C:CANCEL"}) {
		t.Fatalf("dry prune %v", got)
	}
	if f := dry.GetResults()[1].GetChangedFields(); !slices.Equal(f, []string{"title"}) {
		t.Errorf("changed fields %v", f)
	}
	if x.store.Revision() != before {
		t.Fatal("a dry run changed the store")
	}
	pruned := apply(t, ilo, next, true, false)
	if got := actions(pruned.GetResults()); !slices.Equal(got, []string{"A:UNCHANGED", "B:UPDATE", "C:CANCEL"}) {
		t.Fatalf("prune %v", got)
	}
	cancelled, err := ilo.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: pruned.GetResults()[2].GetPlan()})
	if err != nil || cancelled.GetPlan().GetStage() != exchangev1.PlanStage_PLAN_STAGE_CANCELLED || cancelled.GetPlan().GetCancelReason() != cancelledPrune {
		t.Fatalf("pruned plan %v %v", cancelled, err)
	}
	// Prune touched only ilo's plans: iom's plan with the same external
	// id is as it was.
	got, err := iom.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: iomPlan.GetName()})
	if err != nil || got.GetPlan().GetEtag() != iomPlan.GetEtag() {
		t.Fatalf("iom's plan changed: %v %v", got, err)
	}
	// An empty set with prune cancels everything of ilo's, and no more.
	if got := actions(apply(t, ilo, nil, true, true).GetResults()); !slices.Equal(sorted(got), []string{"A:CANCEL", "B:CANCEL"}) {
		t.Fatalf("empty set dry prune %v", got)
	}

	// Conflict: B changed since the etag the caller sent.
	stale := pruned.GetResults()[1].GetEtag()
	current, _ := ilo.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: pruned.GetResults()[1].GetPlan()})
	current.GetPlan().Description = "changed by a colleague in the web form"
	if _, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: current.GetPlan()}); err != nil {
		t.Fatal(err)
	}
	mine := proto.Clone(b).(*exchangev1.Plan)
	mine.Title, mine.Etag = "B as the script has it", stale
	a := proto.Clone(set[0]).(*exchangev1.Plan)
	a.Tags = []string{"phase-2"}
	res := apply(t, ilo, []*exchangev1.Plan{a, mine}, false, false)
	if got := actions(res.GetResults()); !slices.Equal(got, []string{"A:UPDATE", "B:CONFLICT"}) || res.GetResults()[1].GetMessage() == "" {
		t.Fatalf("conflict %v", res.GetResults())
	}
	after, _ := ilo.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: current.GetPlan().GetName()})
	if after.GetPlan().GetTitle() == mine.GetTitle() || after.GetPlan().GetDescription() != "changed by a colleague in the web form" {
		t.Fatalf("the conflicting plan was overwritten: %v", after.GetPlan())
	}
	// With a fresh etag it applies; a stale etag on content that already
	// matches is no conflict.
	mine.Etag = after.GetPlan().GetEtag()
	mine.Description = after.GetPlan().GetDescription()
	if got := actions(apply(t, ilo, []*exchangev1.Plan{mine}, false, false).GetResults()); !slices.Equal(got, []string{"B:UPDATE"}) {
		t.Fatalf("fresh etag %v", got)
	}
	if got := actions(apply(t, ilo, []*exchangev1.Plan{mine}, false, false).GetResults()); !slices.Equal(got, []string{"B:UNCHANGED"}) {
		t.Fatalf("stale etag, same content %v", got)
	}

	// Marking a plan cancelled in the set cancels it; a cancelled plan
	// then conflicts with any change.
	mine.Etag = ""
	mine.Stage = exchangev1.PlanStage_PLAN_STAGE_CANCELLED
	if got := actions(apply(t, ilo, []*exchangev1.Plan{mine}, false, false).GetResults()); !slices.Equal(got, []string{"B:CANCEL"}) {
		t.Fatalf("marked cancelled %v", got)
	}
	mine.Stage = exchangev1.PlanStage_PLAN_STAGE_AGREED
	if got := actions(apply(t, ilo, []*exchangev1.Plan{mine}, false, false).GetResults()); !slices.Equal(got, []string{"B:CONFLICT"}) {
		t.Fatalf("reviving a cancelled plan %v", got)
	}
	if got := actions(apply(t, ilo, []*exchangev1.Plan{func() *exchangev1.Plan {
		p := newPlan("never-stored")
		p.Stage = exchangev1.PlanStage_PLAN_STAGE_CANCELLED
		return p
	}()}, false, false).GetResults()); !slices.Equal(got, []string{"never-stored:SKIP"}) {
		t.Fatalf("cancelling an unknown plan %v", got)
	}

	// One invalid plan fails the whole set, prune included.
	before = x.store.Revision()
	bad := newPlan("bad")
	bad.Locations = []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-99"}}
	_, err = ilo.plans().ApplyPlans(ctx, &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo", Plans: []*exchangev1.Plan{newPlan("new"), bad}, Prune: true})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "plans[1].locations[0].subdivision" {
		t.Errorf("invalid plan: %v", f)
	}
	untitled := newPlan("untitled")
	untitled.Title = ""
	_, err = ilo.plans().ApplyPlans(ctx, &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo", Plans: []*exchangev1.Plan{newPlan("new"), untitled}, Prune: true})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "plans[1].title" {
		t.Errorf("untitled plan: %v", f)
	}
	_, err = ilo.plans().ApplyPlans(ctx, &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo", Plans: []*exchangev1.Plan{newPlan("dup"), newPlan("dup")}})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "plans[1].external_id" {
		t.Errorf("duplicate external id: %v", f)
	}
	if x.store.Revision() != before {
		t.Fatal("a refused apply changed the store")
	}
}

func TestWatchPlansFollowsTheCallersAudienceAndFilters(t *testing.T) {
	x, sec, ilo, iom, unicef, ngo := planParties(t)
	ctx := context.Background()
	unicefEvents := watchPlans(t, unicef, &exchangev1.WatchPlansRequest{Subdivisions: []string{"KH-2"}})
	iomEvents := watchPlans(t, iom, &exchangev1.WatchPlansRequest{})
	ngoEvents := watchPlans(t, ngo, &exchangev1.WatchPlansRequest{})
	secEvents := watchPlans(t, sec, &exchangev1.WatchPlansRequest{})

	forUnicef := newPlan("for-unicef")
	forUnicef.Audience = &exchangev1.Audience{Agencies: []string{"agencies/unicef"}}
	forUnicef = createPlan(t, ilo, forUnicef)
	lao := newPlan("lao")
	lao.Locations = []*exchangev1.LocationRef{{Country: "LA", Subdivision: "LA-KH"}}
	lao = createPlan(t, ilo, lao)
	// A plan for the whole of Cambodia touches Battambang.
	national := newPlan("national")
	national.Audience = &exchangev1.Audience{Agencies: []string{"agencies/unicef"}}
	national.Locations = []*exchangev1.LocationRef{{Country: "KH"}}
	createPlan(t, ilo, national)

	got := nextEvents(t, unicefEvents, 2)
	if got[0].GetPlan().GetName() != forUnicef.GetName() || got[0].GetKind() != exchangev1.PlanEventKind_PLAN_EVENT_KIND_CREATED ||
		got[1].GetPlan().GetExternalId() != "national" {
		t.Fatalf("unicef saw %v", got)
	}
	for who, events := range map[string]<-chan *exchangev1.WatchPlansResponse{"iom": iomEvents, "ngo": ngoEvents, "secretariat": secEvents} {
		if ev := nextEvents(t, events, 1)[0]; ev.GetPlan().GetName() != lao.GetName() {
			t.Errorf("%s saw %v", who, ev)
		}
	}

	// Narrowing the audience removes the plan from the view of those left
	// out, by name only.
	lao.Audience = &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}}
	upd, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: lao})
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvents(t, iomEvents, 1)[0]; ev.GetKind() != exchangev1.PlanEventKind_PLAN_EVENT_KIND_UPDATED {
		t.Errorf("iom (observer of un-wg) saw %v", ev)
	}
	for who, events := range map[string]<-chan *exchangev1.WatchPlansResponse{"ngo": ngoEvents, "secretariat": secEvents} {
		ev := nextEvents(t, events, 1)[0]
		if ev.GetKind() != exchangev1.PlanEventKind_PLAN_EVENT_KIND_REMOVED || ev.GetPlan().GetTitle() != "" || ev.GetPlan().GetName() != lao.GetName() {
			t.Errorf("%s saw %v", who, ev)
		}
	}
	// Joining the working group brings the plan into ngo's view at its
	// next change.
	grp, err := sec.dir.GetWorkingGroup(ctx, &exchangev1.GetWorkingGroupRequest{Name: "workingGroups/un-wg"})
	if err != nil {
		t.Fatal(err)
	}
	grp.GetWorkingGroup().Members = append(grp.GetWorkingGroup().Members, &exchangev1.Membership{Agency: "agencies/ngo-kh", Role: exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER})
	if _, err := sec.dir.UpdateWorkingGroup(ctx, &exchangev1.UpdateWorkingGroupRequest{WorkingGroup: grp.GetWorkingGroup()}); err != nil {
		t.Fatal(err)
	}
	upd.GetPlan().Stage = exchangev1.PlanStage_PLAN_STAGE_DRAFT
	if _, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: upd.GetPlan()}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvents(t, ngoEvents, 1)[0]; ev.GetKind() != exchangev1.PlanEventKind_PLAN_EVENT_KIND_UPDATED || ev.GetPlan().GetStage() != exchangev1.PlanStage_PLAN_STAGE_DRAFT {
		t.Errorf("ngo after joining saw %v", ev)
	}
	nextEvents(t, iomEvents, 1)

	// Cancelling is its own event.
	if _, err := ilo.plans().CancelPlan(ctx, &exchangev1.CancelPlanRequest{Name: forUnicef.GetName(), Reason: "merged into national"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvents(t, unicefEvents, 1)[0]; ev.GetKind() != exchangev1.PlanEventKind_PLAN_EVENT_KIND_CANCELLED {
		t.Errorf("unicef saw %v", ev)
	}
	quiet(t, "secretariat", secEvents)

	// Resuming replays from the revision given.
	list, err := iom.plans().ListPlans(ctx, &exchangev1.ListPlansRequest{Parent: "agencies/-"})
	if err != nil {
		t.Fatal(err)
	}
	replay := watchPlans(t, iom, &exchangev1.WatchPlansRequest{StartRevision: 1})
	if evs := nextEvents(t, replay, 3); evs[0].GetPlan().GetName() != lao.GetName() || evs[0].GetKind() != exchangev1.PlanEventKind_PLAN_EVENT_KIND_CREATED {
		t.Errorf("replay %v", evs)
	}
	// Behind the compacted horizon: OUT_OF_RANGE, list again.
	if list.GetRevision() < x.store.Revision() {
		t.Errorf("list revision %d is before the last commit %d", list.GetRevision(), x.store.Revision())
	}
	if err := x.store.Compact(ctx, x.store.Revision()); err != nil {
		t.Fatal(err)
	}
	stream, err := iom.plans().WatchPlans(ctx, &exchangev1.WatchPlansRequest{StartRevision: 1})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.OutOfRange)
}
