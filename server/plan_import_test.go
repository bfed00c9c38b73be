package server

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func readIati(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../iati/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func importActions(resp *exchangev1.ImportIatiActivitiesResponse) []string {
	var out []string
	for _, a := range resp.GetActivities() {
		out = append(out, strings.TrimPrefix(a.GetResult().GetAction().String(), "PLAN_APPLY_ACTION_"))
	}
	return out
}

func TestImportIatiActivitiesAppliesThemAsPlans(t *testing.T) {
	x, _, ilo, iom, unicef, ngo := planParties(t)
	ctx := context.Background()
	file := readIati(t, "ilo-mekong-2026.xml")
	everyone := &exchangev1.Audience{AllMembers: true}

	// Dry run: what would happen, and every unmapped element; nothing
	// stored.
	before := x.store.Revision()
	dry, err := ilo.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/ilo", IatiXml: file, Audience: everyone, ValidateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := importActions(dry); !slices.Equal(got, []string{"CREATE", "CREATE"}) || !dry.GetChanged() || dry.GetIatiVersion() != "2.03" {
		t.Fatalf("dry import %v %v", got, dry.GetIatiVersion())
	}
	if x.store.Revision() != before {
		t.Fatal("a dry import changed the store")
	}
	var paths []string
	for _, u := range dry.GetActivities()[0].GetUnmapped() {
		paths = append(paths, u.GetPath())
	}
	for _, want := range []string{"iati-activity[1]/transaction[1]", "iati-activity[1]/result[1]", "iati-activity[1]/sector[3]", "iati-activity[1]/budget[1]", "iati-activity[1]/title[1]/narrative[2]"} {
		if !slices.Contains(paths, want) {
			t.Errorf("%s not reported as unmapped; reported %v", want, paths)
		}
	}
	if len(dry.GetUnmapped()) != 1 || dry.GetUnmapped()[0].GetPath() != "iati-activities/@generated-datetime" {
		t.Errorf("file-level unmapped %v", dry.GetUnmapped())
	}

	resp, err := ilo.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/ilo", IatiXml: file, Audience: everyone})
	if err != nil || !slices.Equal(importActions(resp), []string{"CREATE", "CREATE"}) {
		t.Fatalf("import %v %v", importActions(resp), err)
	}
	// What others see of the imported plan.
	got, err := iom.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: resp.GetActivities()[0].GetResult().GetPlan()})
	if err != nil {
		t.Fatal(err)
	}
	p := got.GetPlan()
	if p.GetExternalId() != "XM-DAC-41302-KH-TICW-2026-01" || p.GetOwner() != "agencies/ilo" || p.GetStage() != exchangev1.PlanStage_PLAN_STAGE_CONCEPT ||
		p.GetBudget().GetTotalAmount() != "800000.5" || len(p.GetLocations()) != 3 || len(p.GetPartners()) != 3 || len(p.GetTargetGroups()) != 3 ||
		!slices.Equal(p.GetNiches(), []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION, exchangev1.Niche_NICHE_LIVELIHOODS_AND_SKILLS}) {
		t.Fatalf("imported plan %v", p)
	}

	// The same file again changes nothing; nor does it undo the owner's
	// own progress (draft, a narrower audience) that IATI cannot express.
	p.Stage = exchangev1.PlanStage_PLAN_STAGE_DRAFT
	if _, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: p}); err != nil {
		t.Fatal(err)
	}
	before = x.store.Revision()
	again, err := ilo.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/ilo", IatiXml: file, Audience: everyone})
	if err != nil || !slices.Equal(importActions(again), []string{"UNCHANGED", "UNCHANGED"}) || again.GetChanged() {
		t.Fatalf("second import %v %v", importActions(again), err)
	}
	if x.store.Revision() != before {
		t.Fatal("an unchanged import wrote revisions")
	}
	// Without an audience, stored plans keep theirs.
	again, err = ilo.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/ilo", IatiXml: file})
	if err != nil || !slices.Equal(importActions(again), []string{"UNCHANGED", "UNCHANGED"}) {
		t.Fatalf("import without audience %v %v", importActions(again), err)
	}

	// UNICEF's file: one plan, one cancelled activity never stored, one
	// suspended one, one that cannot become a plan. New plans without an
	// audience are the owner's alone.
	uresp, err := unicef.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/unicef", IatiXml: readIati(t, "unicef-vn-2025.xml")})
	if err != nil {
		t.Fatal(err)
	}
	if got := importActions(uresp); !slices.Equal(got, []string{"CREATE", "SKIP", "CREATE", "SKIP"}) {
		t.Fatalf("unicef import %v", got)
	}
	if msg := uresp.GetActivities()[3].GetResult().GetMessage(); !strings.Contains(msg, "no start date") || !strings.Contains(msg, "no sector maps to a niche") {
		t.Errorf("skip message %q", msg)
	}
	_, err = ngo.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: uresp.GetActivities()[0].GetResult().GetPlan()})
	wantCode(t, err, codes.NotFound)

	// IOM's file, as IOM.
	iresp, err := iom.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/iom", IatiXml: readIati(t, "iom-mm-th-2024.xml"), Audience: everyone})
	if err != nil || !slices.Equal(importActions(iresp), []string{"CREATE", "SKIP"}) {
		t.Fatalf("iom import %v %v", importActions(iresp), err)
	}

	// Not IATI, not IATI 2, not well-formed.
	for name, doc := range map[string]string{
		"html":       "<html><body>plans</body></html>",
		"version 1":  `<iati-activities version="1.05"><iati-activity/></iati-activities>`,
		"truncated":  `<iati-activities version="2.03"><iati-activity>`,
		"no content": `<iati-activities version="2.03"/>`,
	} {
		_, err := ilo.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/ilo", IatiXml: []byte(doc)})
		if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "iati_xml" {
			t.Errorf("%s: %v", name, f)
		}
	}
	_, err = iom.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/ilo", IatiXml: file})
	wantCode(t, err, codes.PermissionDenied)
}

// IOM's own published activities in the sub-region (iati/testdata/real):
// 18 of 25 become plans, 8 of them without the budget the IATI ruleset
// refuses; a second import of the same file changes nothing.
func TestImportIatiActivitiesOfARealPublisher(t *testing.T) {
	x, _, _, iom, _, _ := planParties(t)
	ctx := context.Background()
	file := readIati(t, "real/iom-2019-mekong.xml")
	resp, err := iom.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/iom", IatiXml: file, Audience: &exchangev1.Audience{AllMembers: true}})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	withoutBudget := 0
	for _, a := range resp.GetActivities() {
		action := strings.TrimPrefix(a.GetResult().GetAction().String(), "PLAN_APPLY_ACTION_")
		count[action]++
		if action == "SKIP" && !strings.Contains(a.GetResult().GetMessage(), "no sector maps to a niche") {
			t.Errorf("%s skipped: %s", a.GetIatiIdentifier(), a.GetResult().GetMessage())
		}
		if action != "CREATE" {
			continue
		}
		got, err := iom.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: a.GetResult().GetPlan()})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetPlan().GetBudget() == nil {
			withoutBudget++
		}
	}
	if count["CREATE"] != 18 || count["SKIP"] != 7 || withoutBudget != 8 {
		t.Fatalf("actions %v, %d plans without a budget; want 18 CREATE, 7 SKIP, 8 without", count, withoutBudget)
	}
	before := x.store.Revision()
	again, err := iom.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/iom", IatiXml: file})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range again.GetActivities() {
		if action := a.GetResult().GetAction(); action != exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UNCHANGED && action != exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_SKIP {
			t.Errorf("second import: %s %v", a.GetIatiIdentifier(), action)
		}
	}
	if again.GetChanged() || x.store.Revision() != before {
		t.Error("the second import of the same file changed the store")
	}
}
