package cli

import (
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

const (
	testPlanID   = "01jd8x4k2m9q7r3t5v6w8y0z1a"
	testPlanName = "agencies/ilo/plans/" + testPlanID
)

func TestPlanEnumNames(t *testing.T) {
	for _, e := range []enumNames{planStageNames, applyActionNames, planEventNames, partnerRoleNames, budgetStatusNames} {
		for i := range e.desc.Values().Len() {
			n := e.desc.Values().Get(i).Number()
			if n == 0 {
				continue
			}
			if got, err := e.parse(e.name(n)); err != nil || got != n {
				t.Errorf("%s: parse(%q) = %v, %v", e.what, e.name(n), got, err)
			}
		}
	}
	if got := strings.Join(planStageNames.values(), "|"); got != "concept|draft|agreed|in-implementation|completed|cancelled" {
		t.Errorf("stages %s", got)
	}
}

func TestPlanNamesInArguments(t *testing.T) {
	for _, arg := range []string{testPlanName, "ilo/" + testPlanID, "agencies/ilo/" + testPlanID, " ilo/plans/" + testPlanID} {
		opts, err := parse(t, newPlansGetCmd, arg)
		if err != nil {
			t.Fatalf("%q: %v", arg, err)
		}
		if name, _ := planName(opts.Name); name != testPlanName {
			t.Errorf("%q: name %q", arg, name)
		}
	}
	for _, bad := range []string{testPlanID, "ilo", "ilo/01jd8x", "ILO/" + testPlanID, "ilo/plan/" + testPlanID, "agencies/ilo/focalPoints/" + testPlanID} {
		if _, err := parse(t, newPlansGetCmd, bad); !isUsage(err) {
			t.Errorf("%q: got %v, want a usage error", bad, err)
		}
	}
	if got := shortPlanName(testPlanName); got != "ilo/"+testPlanID {
		t.Errorf("short name %q", got)
	}
}

func TestParsePeriod(t *testing.T) {
	tests := []struct {
		in   string
		want *exchangev1.DatePeriod
	}{
		{"2026", &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)}},
		{"2026-01-01..2026-06-30", &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 6, 30)}},
		{"2026-07-01..", &exchangev1.DatePeriod{Start: date(2026, 7, 1)}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := parsePeriod(tt.in)
		if err != nil || !proto.Equal(got, tt.want) {
			t.Errorf("%q: %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"2026-06-30..2026-01-01", "2026-01-01", "..2026-01-01", "2026-13-01..", "26", "next year"} {
		if p, err := parsePeriod(bad); err == nil {
			t.Errorf("%q: got %v, want an error", bad, p)
		}
	}
}

func TestPlansFlagsToRequests(t *testing.T) {
	period2026 := &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)}
	t.Run("list", func(t *testing.T) {
		tests := []struct {
			args []string
			want *exchangev1.ListPlansRequest
		}{
			{nil, &exchangev1.ListPlansRequest{Parent: "agencies/-"}},
			{[]string{"--owner", "ilo", "--niche", "prevention", "--country", "kh", "--province", "kh-12", "--stage", "in-implementation", "--period", "2026"},
				&exchangev1.ListPlansRequest{Parent: "agencies/ilo", Niche: exchangev1.Niche_NICHE_PREVENTION, Country: "KH", Subdivision: "KH-12",
					Stage: exchangev1.PlanStage_PLAN_STAGE_IN_IMPLEMENTATION, Period: period2026}},
			{[]string{"--owner", "agencies/iom", "--external-id", "XM-DAC-47066-KH-01"},
				&exchangev1.ListPlansRequest{Parent: "agencies/iom", ExternalId: "XM-DAC-47066-KH-01"}},
		}
		for _, tt := range tests {
			opts, err := parse(t, newPlansListCmd, tt.args...)
			if err != nil {
				t.Fatalf("%v: %v", tt.args, err)
			}
			req, _ := opts.request()
			equalProto(t, req, tt.want)
		}
	})
	t.Run("views", func(t *testing.T) {
		opts, err := parse(t, newPlansOverlapsCmd, "--country", "kh", "--niche", "prevention", "--period", "2026-01-01..2026-12-31", "--agency", "ilo")
		if err != nil {
			t.Fatal(err)
		}
		equalProto(t, opts.overlapsRequest(), &exchangev1.FindOverlapsRequest{Country: "KH", Niche: exchangev1.Niche_NICHE_PREVENTION, Period: period2026, Agency: "agencies/ilo"})
		if opts, err = parse(t, newPlansOverlapsCmd); err != nil || opts.overlapsRequest().GetCountry() != "" {
			t.Errorf("overlaps without flags: %v, %v", opts, err)
		}

		gaps, err := parse(t, newPlansGapsCmd, "--country", "LA", "--niche", "shelter,legal-aid", "--niche", "prevention", "--csv")
		if err != nil {
			t.Fatal(err)
		}
		want := []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER, exchangev1.Niche_NICHE_LEGAL_AID, exchangev1.Niche_NICHE_PREVENTION}
		if gaps.Country != "LA" || !gaps.CSV || len(gaps.Niches) != 3 || gaps.Niches[0] != want[0] || gaps.Niches[2] != want[2] {
			t.Errorf("gaps options %+v", gaps)
		}
		// Gaps default to this calendar year (the tests' now is in 2026).
		equalProto(t, gaps.gapsPeriod(), period2026)

		cov, err := parse(t, newPlansCoverageCmd, "--country", "VN", "--period", "2027")
		if err != nil || cov.Country != "VN" || cov.Period.GetStart().GetYear() != 2027 {
			t.Errorf("coverage options %+v, %v", cov, err)
		}
	})
	t.Run("watch", func(t *testing.T) {
		opts, err := parse(t, newPlansWatchCmd, "--province", "kh-1,KH-12", "--niche", "prevention", "--from", "42")
		if err != nil {
			t.Fatal(err)
		}
		req, _ := opts.request()
		equalProto(t, req, &exchangev1.WatchPlansRequest{Subdivisions: []string{"KH-1", "KH-12"}, Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}})
		if opts.From != 42 {
			t.Errorf("from %d", opts.From)
		}
	})
	t.Run("verbs", func(t *testing.T) {
		d, err := parse(t, newPlansDiffCmd, "ilo/"+testPlanID, "--from", "1", "--to", "3")
		if err != nil || d.From != 1 || d.To != 3 {
			t.Errorf("diff %+v, %v", d, err)
		}
		c, err := parse(t, newPlansCancelCmd, "ilo/"+testPlanID, "--reason", "merged", "--etag", "p7")
		if err != nil || c.Reason != "merged" || c.Etag != "p7" {
			t.Errorf("cancel %+v, %v", c, err)
		}
		g, err := parse(t, newPlansGetCmd, "ilo/"+testPlanID, "--version", "2")
		if err != nil || g.Version != 2 {
			t.Errorf("get %+v, %v", g, err)
		}
		ap, err := parse(t, newPlansApplyCmd, "-f", "plans.yaml", "--dry-run", "--prune")
		if err != nil || ap.File != "plans.yaml" || !ap.DryRun || !ap.Prune {
			t.Errorf("apply %+v, %v", ap, err)
		}
		im, err := parse(t, newPlansImportIatiCmd, "activities.xml", "--audience", "iom,workingGroups/comm-kh", "--dry-run")
		if err != nil || im.File != "activities.xml" || !im.DryRun {
			t.Fatalf("import %+v, %v", im, err)
		}
		aud, _ := im.audience()
		equalProto(t, aud, &exchangev1.Audience{Agencies: []string{"agencies/iom"}, WorkingGroups: []string{"workingGroups/comm-kh"}})
		if im, _ = parse(t, newPlansImportIatiCmd, "a.xml", "--audience", "all"); im == nil {
			t.Fatal("--audience all refused")
		}
		if aud, _ = im.audience(); !aud.GetAllMembers() {
			t.Errorf("--audience all: %v", aud)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			err  error
		}{
			{"apply without -f", second(parse(t, newPlansApplyCmd))},
			{"diff without --from", second(parse(t, newPlansDiffCmd, "ilo/"+testPlanID))},
			{"diff --to before --from", second(parse(t, newPlansDiffCmd, "ilo/"+testPlanID, "--from", "3", "--to", "2"))},
			{"cancel without --reason", second(parse(t, newPlansCancelCmd, "ilo/"+testPlanID))},
			{"get --version -1", second(parse(t, newPlansGetCmd, "ilo/"+testPlanID, "--version", "-1"))},
			{"gaps without --country", second(parse(t, newPlansGapsCmd))},
			{"coverage with a bad country", second(parse(t, newPlansCoverageCmd, "--country", "Cambodia"))},
			{"overlaps with two niches", second(parse(t, newPlansOverlapsCmd, "--niche", "shelter,prevention"))},
			{"bad period", second(parse(t, newPlansCoverageCmd, "--country", "KH", "--period", "2026-12-31..2026-01-01"))},
			{"unknown niche", second(parse(t, newPlansGapsCmd, "--country", "KH", "--niche", "trafficking"))},
			{"external id without owner", second(parse(t, newPlansListCmd, "--external-id", "X-1"))},
			{"watch bad province", second(parse(t, newPlansWatchCmd, "--province", "Phnom Penh"))},
			{"import-iati all and agencies", second(parse(t, newPlansImportIatiCmd, "a.xml", "--audience", "all,iom"))},
		} {
			if !isUsage(tt.err) {
				t.Errorf("%s: %v, want a usage error", tt.name, tt.err)
			}
		}
	})
}

// second returns the error of a parse.
func second[O any](_ *O, err error) error { return err }

func TestParsePlansFileTestdata(t *testing.T) {
	data, err := os.ReadFile("testdata/plans.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parsePlansFile("plans.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if f.agency != "agencies/ilo" || len(f.plans) != 3 || len(f.lines) != 3 {
		t.Fatalf("agency %q, %d plans, lines %v", f.agency, len(f.plans), f.lines)
	}
	p := f.plans[0]
	want := &exchangev1.DatePeriod{Start: date(2026, 7, 1), End: date(2028, 6, 30)}
	switch {
	case p.GetExternalId() != "XM-DAC-41302-LA-2026-01",
		p.GetStage() != exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
		len(p.GetNiches()) != 2 || p.GetNiches()[1] != exchangev1.Niche_NICHE_MIGRATION,
		!proto.Equal(p.GetPlannedPeriod(), want),
		p.GetBudget().GetTotalAmount() != "620000" || p.GetBudget().GetLines()[0].GetFiscalYear() != "2026",
		p.GetBudget().GetLines()[0].GetStatus() != exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_INDICATIVE,
		p.GetPartners()[0].GetRoles()[0] != exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_FUNDING,
		p.GetPartners()[2].GetAgency() != "agencies/iom",
		!p.GetAudience().GetAllMembers(),
		strings.Join(p.GetTags(), ",") != "sdg-target:8.7,ticw-phase-3",
		!strings.HasPrefix(p.GetDescription(), "Village-level prevention"):
		t.Errorf("first plan: %v", p)
	}
	if f.plans[2].GetPlannedPeriod().GetEnd() != nil || len(f.plans[2].GetAudience().GetAgencies()) != 2 {
		t.Errorf("third plan: %v", f.plans[2])
	}
	if f.lines[0] != 12 {
		t.Errorf("first plan on line %d, want 12", f.lines[0])
	}
}

func TestParsePlansFileFormsAndMistakes(t *testing.T) {
	const plan = `
  - externalId: KH-01
    title: Prevention in Phnom Penh
    stage: concept
    niches: [prevention]
    locations: [{country: KH, subdivision: KH-12}]
    plannedPeriod: {start: 2026-01-01, end: 2026-12-31}
`
	// Forms that parse to the same plan.
	wantPlan := &exchangev1.Plan{
		ExternalId: "KH-01", Title: "Prevention in Phnom Penh", Stage: exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
		Niches:        []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION},
		Locations:     []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-12"}},
		PlannedPeriod: &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)},
	}
	for name, src := range map[string]string{
		"yaml":      "plans:" + plan,
		"bare list": plan,
		"json": `{"plans": [{"externalId": "KH-01", "title": "Prevention in Phnom Penh", "stage": "PLAN_STAGE_CONCEPT",
			"niches": ["NICHE_PREVENTION"], "locations": [{"country": "KH", "subdivision": "KH-12"}],
			"plannedPeriod": {"start": {"year": 2026, "month": 1, "day": 1}, "end": {"year": 2026, "month": 12, "day": 31}}}]}`,
		"proto names and numbers": `plans:
  - external_id: KH-01
    title: Prevention in Phnom Penh
    stage: 1
    niches: [NICHE_PREVENTION]
    locations: [{country: KH, subdivision: KH-12}]
    planned_period: {start: {year: 2026, month: 1, day: 1}, end: 2026-12-31}
`,
	} {
		f, err := parsePlansFile("plans.yaml", []byte(src))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(f.plans) != 1 || !proto.Equal(f.plans[0], wantPlan) {
			t.Errorf("%s: %v", name, f.plans)
		}
	}
	if f, err := parsePlansFile("plans.yaml", []byte("plans: []\n")); err != nil || len(f.plans) != 0 {
		t.Errorf("empty set: %v, %v", f, err)
	}

	tests := []struct {
		name string
		src  string
		// want are substrings of the error.
		want []string
	}{
		{"typo in a field", strings.Replace("plans:"+plan, "niches:", "nichs:", 1), []string{"plans.yaml, line 5", "plans[0].nichs", "unknown field"}},
		{"typo in a nested field", strings.Replace("plans:"+plan, "{start:", "{strat:", 1), []string{"line 7", "plans[0].plannedPeriod.strat", "unknown field"}},
		{"typo in an enum", strings.Replace("plans:"+plan, "stage: concept", "stage: concpt", 1), []string{"line 4", "plans[0].stage", `"concpt"`, "concept, draft"}},
		{"typo in a list enum", strings.Replace("plans:"+plan, "[prevention]", "[prevention, shelters]", 1), []string{"plans[0].niches[1]", `"shelters"`}},
		{"scalar for a list", strings.Replace("plans:"+plan, "[prevention]", "prevention", 1), []string{"line 5", "plans[0].niches", "want a list"}},
		{"not a date", strings.Replace("plans:"+plan, "end: 2026-12-31", "end: 2026-02-30", 1), []string{"line 7", "end", `"2026-02-30" is not a date`}},
		{"second plan", "plans:" + plan + strings.Replace(strings.Replace(plan, "KH-01", "KH-02", 1), "title:", "titel:", 1), []string{"line 10", "plans[1].titel"}},
		{"repeated external id", "plans:" + plan + plan, []string{"plans[1].externalId", `"KH-01" is also the external id of plans[0] (line 2)`}},
		{"no external id", strings.Replace("plans:"+plan, "- externalId: KH-01\n    ", "- ", 1), []string{"plans[0].externalId", "missing"}},
		{"field twice", strings.Replace("plans:"+plan, "    stage: concept\n", "    stage: concept\n    stage: draft\n", 1), []string{"plans[0].stage", "given twice"}},
		{"unknown top-level key", "agency: ilo\nplan:" + plan, []string{"line 2", "plan: unknown key"}},
		{"bad agency", "agency: ILO Bangkok\nplans:" + plan, []string{"line 1", "agency", "not an agency id"}},
		{"no plans key", "agency: ilo\n", []string{"plans: missing"}},
		{"empty file", "", []string{"empty"}},
		{"not YAML", "plans: [\n", []string{"plans.yaml"}},
		{"a string", "hello\n", []string{"want a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parsePlansFile("plans.yaml", []byte(tt.src))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if code := exitCode(err); code != ExitInvalid {
				t.Errorf("exit %d, want %d", code, ExitInvalid)
			}
		})
	}
}

func TestCompareProvinces(t *testing.T) {
	codes := []string{"KH-12", "LA-SV", "KH-2", "", "KH-1", "LA-CH", "KH-25"}
	slices.SortFunc(codes, geo.CompareCodes)
	if got := strings.Join(codes, " "); got != " KH-1 KH-2 KH-12 KH-25 LA-CH LA-SV" {
		t.Errorf("order %q", got)
	}
}
