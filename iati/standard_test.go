package iati

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// activityDoc is a valid IATI 2.03 file of one activity in Phnom Penh
// (KH-12) with a child-protection sector and a one-year budget; parts
// replaces each key of the defaults below by its value.
func activityDoc(parts map[string]string) []byte {
	p := map[string]string{
		"version":   "2.03",
		"title":     `<title><narrative>Shelter for children</narrative></title>`,
		"status":    `<activity-status code="2"/>`,
		"countries": `<recipient-country code="KH"/>`,
		"locations": `<location><administrative vocabulary="G1" level="1" code="KH-12"/></location>`,
		"sectors":   `<sector vocabulary="1" code="15261"/>`,
		"budgets": `<budget type="1" status="1"><period-start iso-date="2026-01-01"/><period-end iso-date="2026-12-31"/>` +
			`<value currency="USD" value-date="2026-01-01">1000</value></budget>`,
		"transactions": "",
	}
	for k, v := range parts {
		if _, ok := p[k]; !ok {
			panic("activityDoc: no part " + k)
		}
		p[k] = v
	}
	return []byte(fmt.Sprintf(`<iati-activities version=%q><iati-activity default-currency="USD">
<iati-identifier>XM-TEST-1</iati-identifier>
<reporting-org ref="XM-TEST" type="21"><narrative>Test</narrative></reporting-org>
%s
<description><narrative>An activity.</narrative></description>
<participating-org ref="XM-TEST" role="4"><narrative>Test</narrative></participating-org>
%s
<activity-date iso-date="2026-01-01" type="1"/>
%s
%s
%s
%s
%s
</iati-activity></iati-activities>`, p["version"], p["title"], p["status"], p["countries"], p["locations"], p["sectors"], p["budgets"], p["transactions"]))
}

// oneActivity parses doc and returns its only activity.
func oneActivity(t *testing.T, doc []byte) Activity {
	t.Helper()
	f, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Activities) != 1 {
		t.Fatalf("%d activities", len(f.Activities))
	}
	return f.Activities[0]
}

// wantProblem checks that the activity has no plan and a problem that
// mentions every text.
func wantProblem(t *testing.T, a Activity, texts ...string) {
	t.Helper()
	if a.Plan != nil {
		t.Errorf("a plan was made: %v", a.Plan)
	}
	for _, p := range a.Problems {
		all := true
		for _, x := range texts {
			all = all && strings.Contains(p, x)
		}
		if all {
			return
		}
	}
	t.Errorf("no problem mentions %q; problems %q", texts, a.Problems)
}

func TestDefaultActivityDocMakesAPlan(t *testing.T) {
	a := oneActivity(t, activityDoc(nil))
	if a.Plan == nil {
		t.Fatalf("problems %q", a.Problems)
	}
	if got := a.Plan.GetLocations(); len(got) != 1 || got[0].GetSubdivision() != "KH-12" || a.Plan.GetBudget().GetTotalAmount() != "1000" {
		t.Errorf("plan %v", a.Plan)
	}
}

func TestActivitiesOutsideTheSubRegionAreRefused(t *testing.T) {
	// What the standard's annotated example holds: two countries and a
	// province outside the sub-region.
	a := oneActivity(t, activityDoc(map[string]string{
		"countries": `<recipient-country code="AF" percentage="25"/><recipient-country code="AG" percentage="25"/>`,
		"locations": `<location ref="AF-KAN"><name><narrative>Location name</narrative></name></location>`,
	}))
	wantProblem(t, a, "no location in the Mekong sub-region", "recipient-country AF, AG", "AF-KAN")
	wantUnmapped(t, a.Unmapped, map[string]string{
		"iati-activity[1]/recipient-country[1]": "AF is outside",
		"iati-activity[1]/location[1]":          "AF-KAN is outside",
	})
	// A province outside the sub-region beside one in it: the plan keeps
	// only the one in it.
	a = oneActivity(t, activityDoc(map[string]string{
		"countries": `<recipient-country code="KH"/><recipient-country code="IN"/>`,
		"locations": `<location ref="IN-DL"/><location ref="KH-12"/>`,
	}))
	if a.Plan == nil || len(a.Plan.GetLocations()) != 1 || a.Plan.GetLocations()[0].GetSubdivision() != "KH-12" {
		t.Errorf("KH-12 and IN-DL: plan %v, problems %q", a.Plan, a.Problems)
	}
	wantUnmapped(t, a.Unmapped, map[string]string{"iati-activity[1]/location[1]": "IN-DL is outside", "iati-activity[1]/recipient-country[2]": "IN is outside"})
	// China is in the sub-region through Yunnan and Guangxi alone.
	a = oneActivity(t, activityDoc(map[string]string{"countries": `<recipient-country code="CN"/>`, "locations": ""}))
	wantProblem(t, a, "no location in the Mekong sub-region", "CN without a location in Yunnan")
	a = oneActivity(t, activityDoc(map[string]string{"countries": `<recipient-country code="CN"/>`, "locations": `<location ref="CN-GD"/>`}))
	wantProblem(t, a, "CN-GD is outside it")
}

func TestOldCodesMapToTheUnitsThatReplacedThem(t *testing.T) {
	// CN-53 is Yunnan's code before ISO 3166-2's 2017 change; VN-03 Ha
	// Giang was absorbed into Tuyen Quang (VN-07) on 1 July 2025.
	a := oneActivity(t, activityDoc(map[string]string{
		"countries": "",
		"locations": `<location><administrative vocabulary="G1" level="1" code="CN-53"/></location><location ref="VN-03"/>`,
	}))
	if a.Plan == nil {
		t.Fatalf("problems %q", a.Problems)
	}
	var subs []string
	for _, l := range a.Plan.GetLocations() {
		subs = append(subs, l.GetSubdivision())
	}
	if !slices.Equal(subs, []string{"CN-YN", "VN-07"}) {
		t.Errorf("locations %v, want CN-YN and VN-07", subs)
	}
	wantUnmapped(t, a.Unmapped, map[string]string{
		"iati-activity[1]/location[1]": "CN-53 is the code ISO 3166-2 replaced with CN-YN",
		"iati-activity[1]/location[2]": "absorbed into VN-07",
	})
}

func TestVersionsComeFromTheVersionCodelist(t *testing.T) {
	for _, v := range []string{"2.01", "2.02", "2.03"} {
		if _, err := Parse(activityDoc(map[string]string{"version": v})); err != nil {
			t.Errorf("version %s: %v", v, err)
		}
	}
	for _, v := range []string{"2.04", "2.0banana", "2.0", "2.00", "1.05", " 2.03x"} {
		_, err := Parse(activityDoc(map[string]string{"version": v}))
		if err == nil || !strings.Contains(err.Error(), "not in the IATI Version codelist") || !strings.Contains(err.Error(), "2.01, 2.02, 2.03") {
			t.Errorf("version %q: %v", v, err)
		}
	}
}

// budget is one budget element.
func budget(typ, start, end, value string) string {
	return fmt.Sprintf(`<budget type=%q status="1"><period-start iso-date=%q/><period-end iso-date=%q/><value currency="USD" value-date=%q>%s</value></budget>`, typ, start, end, start, value)
}

func TestBudgetsFollowTheIATIRuleset(t *testing.T) {
	for name, tc := range map[string]struct {
		budgets string
		broken  string   // the budget that breaks a rule; none for a plan with a budget
		want    []string // in the reason it is left out
	}{
		"18 months":             {budget("1", "2026-01-01", "2027-06-30", "1800"), "budget[1]", []string{"7.5.3", "longer than one year", "2026-01-01 to 2027-06-30"}},
		"a year and a day":      {budget("1", "2026-01-01", "2027-01-02", "1800"), "budget[1]", []string{"7.5.3"}},
		"exactly a year":        {budget("1", "2026-01-01", "2027-01-01", "1800"), "", nil},
		"start after end":       {budget("1", "2026-12-31", "2026-01-01", "1800"), "budget[1]", []string{"8.6.3", "2026-12-31 is after period-end 2026-01-01"}},
		"one day":               {budget("1", "2026-03-01", "2026-03-01", "5"), "", nil},
		"overlapping":           {budget("1", "2026-01-01", "2026-12-31", "1000") + budget("1", "2026-07-01", "2027-06-30", "1000"), "budget[2]", []string{"this and iati-activity[1]/budget[1]", "must not overlap", "original (type 1)"}},
		"overlapping a day":     {budget("2", "2026-01-01", "2026-12-31", "1000") + budget("2", "2026-12-31", "2027-06-30", "1000"), "budget[2]", []string{"must not overlap", "revised (type 2)"}},
		"adjacent":              {budget("1", "2026-01-01", "2026-12-31", "1000") + budget("1", "2027-01-01", "2027-12-31", "1000"), "", nil},
		"revised over original": {budget("1", "2026-01-01", "2026-12-31", "1000") + budget("2", "2026-01-01", "2026-12-31", "1200"), "", nil},
	} {
		t.Run(name, func(t *testing.T) {
			a := oneActivity(t, activityDoc(map[string]string{"budgets": tc.budgets}))
			// A budget breaking a rule costs the plan its budget, not the
			// plan itself.
			if a.Plan == nil {
				t.Fatalf("problems %q", a.Problems)
			}
			if tc.broken == "" {
				if a.Plan.GetBudget() == nil {
					t.Fatalf("no budget; unmapped %v", a.Unmapped)
				}
				return
			}
			if a.Plan.GetBudget() != nil {
				t.Fatalf("budget %v kept although %s breaks a rule", a.Plan.GetBudget(), tc.broken)
			}
			found := false
			for _, u := range a.Unmapped {
				if u.Path != "iati-activity[1]/"+tc.broken {
					continue
				}
				found = true
				for _, w := range tc.want {
					if !strings.Contains(u.Reason, w) {
						t.Errorf("%s left out for %q, want %q in it", u.Path, u.Reason, w)
					}
				}
			}
			if !found {
				t.Errorf("%s not reported; unmapped %v", tc.broken, a.Unmapped)
			}
			// Every other budget is left out with it, and says so.
			for _, u := range a.Unmapped {
				if strings.Contains(u.Path, "/budget[") && u.Path != "iati-activity[1]/"+tc.broken && !strings.Contains(u.Reason, "without a budget") {
					t.Errorf("%s: %q", u.Path, u.Reason)
				}
			}
		})
	}
}

func TestTransactionLevelSectorsAndCountriesAreUsed(t *testing.T) {
	tx := func(sector, country string) string {
		return fmt.Sprintf(`<transaction><transaction-type code="2"/><transaction-date iso-date="2026-02-01"/><value currency="USD" value-date="2026-02-01">10</value>`+
			`<sector vocabulary="1" code=%q/><recipient-country code=%q/></transaction>`, sector, country)
	}
	a := oneActivity(t, activityDoc(map[string]string{
		"countries": "", "locations": "", "sectors": "",
		"transactions": tx("15261", "LA") + tx("16062", "TH"),
	}))
	if a.Plan == nil {
		t.Fatalf("problems %q", a.Problems)
	}
	if got := a.Plan.GetNiches(); !slices.Equal(got, []exchangev1.Niche{exchangev1.Niche_NICHE_CHILD_PROTECTION, exchangev1.Niche_NICHE_RESEARCH_AND_DATA}) {
		t.Errorf("niches %v", got)
	}
	if got := a.Plan.GetLocations(); len(got) != 2 || got[0].GetCountry() != "LA" || got[1].GetCountry() != "TH" {
		t.Errorf("locations %v", got)
	}
	wantUnmapped(t, a.Unmapped, map[string]string{"iati-activity[1]/transaction[1]": "sectors given on them were used"})
	// Activity-level sectors win: the transactions' are not mixed in.
	a = oneActivity(t, activityDoc(map[string]string{"transactions": tx("16062", "TH")}))
	if got := a.Plan.GetNiches(); !slices.Equal(got, []exchangev1.Niche{exchangev1.Niche_NICHE_CHILD_PROTECTION}) {
		t.Errorf("with activity-level sectors: niches %v", got)
	}
}

func TestAmbiguousPlaceNamesNameTheCandidates(t *testing.T) {
	named := func(name string) string {
		return `<location><name><narrative>` + name + `</narrative></name></location>`
	}
	a := oneActivity(t, activityDoc(map[string]string{"countries": `<recipient-country code="LA"/>`, "locations": named("Vientiane")}))
	wantUnmapped(t, a.Unmapped, map[string]string{"iati-activity[1]/location[1]": `"Vientiane" is ambiguous: it names LA-VI Vientiane Province or LA-VT Vientiane Prefecture`})
	// Without a recipient country to fall back on, the activity says why.
	a = oneActivity(t, activityDoc(map[string]string{"countries": "", "locations": named("Vientiane")}))
	wantProblem(t, a, "LA-VI Vientiane Province or LA-VT Vientiane Prefecture")
	for name, want := range map[string]string{"Vientiane Prefecture": "LA-VT", "Vientiane Province": "LA-VI", "Shan State": "MM-17", "Shan": "MM-17"} {
		a = oneActivity(t, activityDoc(map[string]string{"countries": "", "locations": named(name)}))
		if a.Plan == nil || a.Plan.GetLocations()[0].GetSubdivision() != want {
			t.Errorf("%q: plan %v, problems %q, want %s", name, a.Plan, a.Problems, want)
		}
	}
}

func TestSchemaViolationsAreReportedAsSuch(t *testing.T) {
	a := oneActivity(t, activityDoc(map[string]string{"title": `<title><narrative>One</narrative></title><title><narrative>Two</narrative></title>`}))
	wantProblem(t, a, "schema violation", "one title per activity", "title[1], iati-activity[1]/title[2]")
	a = oneActivity(t, activityDoc(map[string]string{"status": `<activity-status code="2"/><activity-status code="3"/>`}))
	wantProblem(t, a, "schema violation", "one activity-status per activity; this one has 2")
	wantUnmapped(t, a.Unmapped, map[string]string{"iati-activity[1]/activity-status[2]": "schema violation"})
}

func TestSectorMappingFollowsTheDACDescriptions(t *testing.T) {
	// 93010 is the cost of refugees in donor countries: not return and
	// reintegration in the sub-region.
	if got := SectorNiches("1", "93010"); got != nil {
		t.Errorf("93010 → %v", got)
	}
	// 15190's text names safe migration, counter-trafficking, and the
	// voluntary return and reintegration of migrants.
	want := []exchangev1.Niche{exchangev1.Niche_NICHE_MIGRATION, exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION, exchangev1.Niche_NICHE_PREVENTION}
	if got := SectorNiches("1", "15190"); !slices.Equal(got, want) {
		t.Errorf("15190 → %v", got)
	}
}
