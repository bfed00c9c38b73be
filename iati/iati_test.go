package iati

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func parseFile(t *testing.T, name string) *File {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

func d(y, m, day int32) *exchangev1.CalendarDate {
	return &exchangev1.CalendarDate{Year: y, Month: m, Day: day}
}

func loc(country, sub, area string) *exchangev1.LocationRef {
	return &exchangev1.LocationRef{Country: country, Subdivision: sub, Area: area}
}

// wantPlan compares a mapped plan with the expected one field by field,
// so a failure names the field.
func wantPlan(t *testing.T, got, want *exchangev1.Plan) {
	t.Helper()
	if got == nil {
		t.Fatal("no plan")
	}
	gr, wr := got.ProtoReflect(), want.ProtoReflect()
	fields := gr.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		x, y := gr.Type().New(), wr.Type().New()
		if gr.Has(fd) {
			x.Set(fd, gr.Get(fd))
		}
		if wr.Has(fd) {
			y.Set(fd, wr.Get(fd))
		}
		if !proto.Equal(x.Interface(), y.Interface()) {
			t.Errorf("%s:\n got %s\nwant %s", fd.Name(), protojson.Format(x.Interface()), protojson.Format(y.Interface()))
		}
	}
}

// unmappedPaths maps each unmapped path to its reason.
func unmappedPaths(us []Unmapped) map[string]string {
	out := map[string]string{}
	for _, u := range us {
		out[u.Path] = u.Reason
	}
	return out
}

// wantUnmapped checks that each path is reported, with a reason
// containing the given text.
func wantUnmapped(t *testing.T, us []Unmapped, want map[string]string) {
	t.Helper()
	got := unmappedPaths(us)
	for path, text := range want {
		reason, ok := got[path]
		if !ok {
			t.Errorf("%s not reported as unmapped", path)
		} else if !strings.Contains(reason, text) {
			t.Errorf("%s: reason %q, want it to mention %q", path, reason, text)
		}
	}
}

func wantNotUnmapped(t *testing.T, us []Unmapped, paths ...string) {
	t.Helper()
	got := unmappedPaths(us)
	for _, p := range paths {
		if _, ok := got[p]; ok {
			t.Errorf("%s reported as unmapped, but it is mapped", p)
		}
	}
}

func TestILOFileMapsEveryField(t *testing.T) {
	f := parseFile(t, "ilo-mekong-2026.xml")
	if f.Version != "2.03" || len(f.Activities) != 2 {
		t.Fatalf("version %s, %d activities", f.Version, len(f.Activities))
	}
	wantUnmapped(t, f.Unmapped, map[string]string{"iati-activities/@generated-datetime": "metadata"})

	a := f.Activities[0]
	if len(a.Problems) > 0 {
		t.Fatal(a.Problems)
	}
	ilo := &exchangev1.PlanPartner{DisplayName: "International Labour Organization", IatiRef: "XM-DAC-41302",
		Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_EXTENDING, exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_IMPLEMENTING}}
	wantPlan(t, a.Plan, &exchangev1.Plan{
		ExternalId: "XM-DAC-41302-KH-TICW-2026-01",
		Title:      "Safe migration and rural skills for adolescent girls in north-west Cambodia",
		Description: "Community-based prevention of trafficking in children and women: safe-migration information, village watch groups and rural skills training linked to local labour markets." +
			"\n\nObjectives: Reduce unsafe migration of girls aged 15-17 from border districts.",
		Stage:  exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
		Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION, exchangev1.Niche_NICHE_LIVELIHOODS_AND_SKILLS},
		// By @ref, by name, and a district by administrative level 2.
		Locations:     []*exchangev1.LocationRef{loc("KH", "KH-1", ""), loc("KH", "KH-2", ""), loc("KH", "KH-1", "Poipet")},
		PlannedPeriod: &exchangev1.DatePeriod{Start: d(2026, 4, 1), End: d(2028, 3, 31)},
		// The revised budget replaces the original of the same period.
		Budget: &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "800000.5", Lines: []*exchangev1.PlanBudgetLine{
			{Period: &exchangev1.DatePeriod{Start: d(2026, 4, 1), End: d(2027, 3, 31)}, Amount: "420000.5", Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_INDICATIVE},
			{Period: &exchangev1.DatePeriod{Start: d(2027, 4, 1), End: d(2028, 3, 31)}, Amount: "380000", Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_COMMITTED},
		}},
		Partners: []*exchangev1.PlanPartner{
			{DisplayName: "Australian Government, Department of Foreign Affairs and Trade", IatiRef: "AU-5", Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_FUNDING}},
			ilo,
			{DisplayName: "Ministry of Labour and Vocational Training, Cambodia", Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_ACCOUNTABLE}},
		},
		TargetGroups: []string{"Adolescent girls aged 15-17 in border villages", "returnee young women", "parents and village leaders"},
		Tags:         []string{"sdg-target:8.7", "sdg-target:5.2"},
	})
	wantUnmapped(t, a.Unmapped, map[string]string{
		"iati-activity[1]/@last-updated-datetime":              "update times",
		"iati-activity[1]/@hierarchy":                          "hierarch",
		"iati-activity[1]/reporting-org[1]":                    "owner",
		"iati-activity[1]/title[1]/narrative[2]":               "translation (fr)",
		"iati-activity[1]/other-identifier[1]":                 "external id",
		"iati-activity[1]/contact-info[1]":                     "focal points",
		"iati-activity[1]/activity-scope[1]":                   "locations",
		"iati-activity[1]/recipient-country[1]/@percentage":    "percentage",
		"iati-activity[1]/location[1]/point[1]":                "coordinates",
		"iati-activity[1]/location[1]/administrative[1]":       "not an ISO 3166-2",
		"iati-activity[1]/location[2]/administrative[1]":       "not an ISO 3166-2",
		"iati-activity[1]/location[3]/administrative[2]/@code": "by name",
		"iati-activity[1]/participating-org[4]/@activity-id":   "activity id",
		"iati-activity[1]/sector[1]/@percentage":               "percentages",
		"iati-activity[1]/sector[3]":                           "15110 maps to no niche",
		"iati-activity[1]/budget[1]":                           "replaced by the revised budget",
		"iati-activity[1]/budget[2]/value[1]/@value-date":      "exchange-rate",
		"iati-activity[1]/default-aid-type[1]":                 "financing",
		"iati-activity[1]/transaction[1]":                      "transactions",
		"iati-activity[1]/result[1]":                           "datasets",
		"iati-activity[1]/location[1]/location-reach[1]":       "beneficiaries",
		"iati-activity[1]/location[1]/name[1]":                 "district name or to find the province",
	})
	wantNotUnmapped(t, a.Unmapped, "iati-activity[1]/@default-currency", "iati-activity[1]/@xml:lang", "iati-activity[1]/location[1]/@ref",
		"iati-activity[1]/budget[2]", "iati-activity[1]/location[2]/name[1]", "iati-activity[1]/location[3]/name[1]",
		"iati-activity[1]/tag[1]", "iati-activity[1]/activity-date[1]", "iati-activity[1]/description[3]")

	b := f.Activities[1]
	wantPlan(t, b.Plan, &exchangev1.Plan{
		ExternalId:  "XM-DAC-41302-LA-TICW-2025-03",
		Title:       "Provincial child labour and trafficking committees in southern Lao PDR",
		Description: "Technical support to provincial steering committees on child labour and trafficking, with the National Steering Committee.",
		Stage:       exchangev1.PlanStage_PLAN_STAGE_IN_IMPLEMENTATION,
		// The default vocabulary is DAC 5-digit.
		Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_ADVOCACY, exchangev1.Niche_NICHE_COORDINATION},
		// ISO 3166-2 codes in administrative and location-id, whatever
		// the vocabulary claims.
		Locations:     []*exchangev1.LocationRef{loc("LA", "LA-KH", ""), loc("LA", "LA-SV", ""), loc("LA", "LA-CH", "")},
		PlannedPeriod: &exchangev1.DatePeriod{Start: d(2025, 1, 1), End: d(2026, 12, 31)},
		ActualPeriod:  &exchangev1.DatePeriod{Start: d(2025, 2, 10)},
		Budget: &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "605000", Lines: []*exchangev1.PlanBudgetLine{
			{Period: &exchangev1.DatePeriod{Start: d(2025, 1, 1), End: d(2025, 12, 31)}, Amount: "310000", Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_INDICATIVE},
			{Period: &exchangev1.DatePeriod{Start: d(2026, 1, 1), End: d(2026, 12, 31)}, Amount: "295000", Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_INDICATIVE},
		}},
		Partners: []*exchangev1.PlanPartner{
			{DisplayName: "United States Department of Labor", IatiRef: "US-GOV-1", Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_FUNDING}},
			{DisplayName: "Lao Women's Union", Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_IMPLEMENTING}},
		},
	})
	if len(b.Unmapped) != 3 {
		t.Errorf("second activity: unmapped %v, want reporting-org and two org types", b.Unmapped)
	}
}

func TestUNICEFFileTranslationsNamesVocabulariesAndProblems(t *testing.T) {
	f := parseFile(t, "unicef-vn-2025.xml")
	if f.Version != "2.02" || len(f.Activities) != 4 {
		t.Fatalf("version %s, %d activities", f.Version, len(f.Activities))
	}
	wantUnmapped(t, f.Unmapped, map[string]string{"iati-activities/@linked-data-default": "linked-data"})

	a := f.Activities[0]
	wantPlan(t, a.Plan, &exchangev1.Plan{
		ExternalId: "XM-DAC-41122-VN-CP-2025-007",
		// The narrative without a language tag, not the Vietnamese one.
		Title: "Protecting children on the move in the Mekong Delta",
		Description: "Strengthening the child protection system at commune level, case management for children at risk of trafficking, and family tracing for children returned across the border." +
			"\n\nOther: Implemented with the provincial Departments of Labour, Invalids and Social Affairs.",
		Stage: exchangev1.PlanStage_PLAN_STAGE_IN_IMPLEMENTATION,
		// DAC 16015; the 3-digit category 112 holds more than non-formal
		// education, so it maps to none.
		Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_CHILD_PROTECTION},
		// Provinces found by name, English with a suffix and Vietnamese
		// with diacritics; Viet Nam as a whole is not added.
		Locations:     []*exchangev1.LocationRef{loc("VN", "VN-44", ""), loc("VN", "VN-45", "")},
		PlannedPeriod: &exchangev1.DatePeriod{Start: d(2025, 7, 1), End: d(2027, 6, 30)},
		ActualPeriod:  &exchangev1.DatePeriod{Start: d(2025, 7, 15)},
		Budget: &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "275000", Lines: []*exchangev1.PlanBudgetLine{
			{Period: &exchangev1.DatePeriod{Start: d(2025, 7, 1), End: d(2026, 6, 30)}, Amount: "275000", Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_COMMITTED},
		}},
		Partners: []*exchangev1.PlanPartner{
			{DisplayName: "UNICEF", IatiRef: "XM-DAC-41122", Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_FUNDING, exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_IMPLEMENTING}},
			{DisplayName: "Ministry of Labour, Invalids and Social Affairs", Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_ACCOUNTABLE}},
		},
		TargetGroups: []string{"Children aged 10-17 in migrant households", "unaccompanied children returned from Cambodia"},
		Tags:         []string{"sdg-goal:16", "children on the move"},
	})
	wantUnmapped(t, a.Unmapped, map[string]string{
		"iati-activity[1]/title[1]/narrative[1]":             "translation (vi)",
		"iati-activity[1]/participating-org[3]/narrative[2]": "translation (vi)",
		"iati-activity[1]/activity-date[3]/narrative[1]":     "not kept",
		"iati-activity[1]/recipient-region[1]":               "region",
		"iati-activity[1]/location[3]":                       "no ISO 3166-2 province code",
		"iati-activity[1]/sector[4]":                         "vocabulary 99",
		"iati-activity[1]/budget[2]":                         "a budget in EUR",
		"iati-activity[1]/policy-marker[1]":                  "policy markers",
		"iati-activity[1]/collaboration-type[1]":             "collaboration",
		"iati-activity[1]/planned-disbursement[1]":           "disbursement",
		"iati-activity[1]/document-link[1]":                  "documents",
		"iati-activity[1]/@humanitarian":                     "humanitarian",
	})
	wantUnmapped(t, a.Unmapped, map[string]string{"iati-activity[1]/sector[2]": "DAC sector 112 maps to no niche"})
	wantNotUnmapped(t, a.Unmapped, "iati-activity[1]/reporting-org[1]/@type", "iati-activity[1]/sector[3]", "iati-activity[1]/tag[1]")

	// Cancelled in IATI: a plan in the cancelled stage, for the whole
	// country.
	if p := f.Activities[1].Plan; p.GetStage() != exchangev1.PlanStage_PLAN_STAGE_CANCELLED || !proto.Equal(p.GetLocations()[0], loc("VN", "", "")) {
		t.Errorf("cancelled activity %v", p)
	}
	// Suspended: no stage of its own, so tagged and reported.
	s := f.Activities[2]
	if s.Plan.GetStage() != exchangev1.PlanStage_PLAN_STAGE_IN_IMPLEMENTATION || !slices.Contains(s.Plan.GetTags(), "iati:suspended") {
		t.Errorf("suspended activity %v", s.Plan)
	}
	wantUnmapped(t, s.Unmapped, map[string]string{
		"iati-activity[3]/activity-status[1]": "suspended",
		"iati-activity[3]/sector[1]":          "14030 maps to no niche",
	})
	// What a plan needs and the activity lacks.
	p := f.Activities[3]
	if p.Plan != nil || len(p.Problems) != 2 || !strings.Contains(p.Problems[0], "no start date") || !strings.Contains(p.Problems[1], "no sector maps to a niche") {
		t.Errorf("activity without start date and niche: plan %v, problems %q", p.Plan, p.Problems)
	}
}

func TestIOMFileDatesOrganisationsAndOtherNamespaces(t *testing.T) {
	f := parseFile(t, "iom-mm-th-2024.xml")
	if f.Version != "2.01" || len(f.Activities) != 2 {
		t.Fatalf("version %s, %d activities", f.Version, len(f.Activities))
	}
	a := f.Activities[0]
	iom := &exchangev1.PlanPartner{DisplayName: "International Organization for Migration", IatiRef: "XM-DAC-47066",
		Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_ACCOUNTABLE, exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_IMPLEMENTING}}
	wantPlan(t, a.Plan, &exchangev1.Plan{
		ExternalId:  "XM-DAC-47066-TH-RR-2024-14",
		Title:       "Return and reintegration of trafficked women from Thailand to Myanmar",
		Description: "Assisted voluntary return, shelter on arrival, trauma counselling and reintegration grants for women and girls identified as victims of trafficking in northern Thailand.",
		Stage:       exchangev1.PlanStage_PLAN_STAGE_IN_IMPLEMENTATION,
		// 15190 covers migration, return and reintegration and
		// counter-trafficking; 93010 (refugees in donor countries) none.
		Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_MIGRATION, exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION, exchangev1.Niche_NICHE_PREVENTION, exchangev1.Niche_NICHE_SHELTER},
		// Two by @ref, one by name ("Shan State").
		Locations: []*exchangev1.LocationRef{loc("TH", "TH-50", ""), loc("TH", "TH-57", ""), loc("MM", "MM-17", "")},
		// No planned start: the actual start stands in.
		PlannedPeriod: &exchangev1.DatePeriod{Start: d(2024, 10, 1), End: d(2026, 9, 30)},
		ActualPeriod:  &exchangev1.DatePeriod{Start: d(2024, 10, 1)},
		Budget: &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "1200000.5", Lines: []*exchangev1.PlanBudgetLine{
			{Period: &exchangev1.DatePeriod{Start: d(2024, 10, 1), End: d(2025, 9, 30)}, Amount: "1200000.5", Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_COMMITTED},
		}},
		Partners: []*exchangev1.PlanPartner{
			{DisplayName: "UK Foreign, Commonwealth and Development Office", IatiRef: "GB-GOV-1", Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_FUNDING}},
			iom,
		},
		TargetGroups: []string{"Women and girls identified as victims of trafficking", "Families receiving returnees"},
	})
	wantUnmapped(t, a.Unmapped, map[string]string{
		"iati-activity[1]/participating-org[5]":          "role 9",
		"iati-activity[1]/location[1]/location-id[1]":    "gazetteer",
		"iati-activity[1]/location[3]/administrative[1]": "not an ISO 3166-2",
		"iati-activity[1]/location[2]/location-class[1]": "class",
		"iati-activity[1]/sector[2]":                     "93010 maps to no niche",
		"iati-activity[1]/sector[4]":                     "vocabulary 3",
		"iati-activity[1]/budget[2]":                     "not a non-negative decimal",
		"iati-activity[1]/usg:treasury-account[1]":       "no place in a plan",
		"iati-activity[1]/related-activity[1]":           "links",
	})
	wantNotUnmapped(t, a.Unmapped, "iati-activity[1]/location[3]/name[1]", "iati-activity[1]/@xmlns:usg")

	b := f.Activities[1]
	if b.Plan != nil || len(b.Problems) != 1 || !strings.Contains(b.Problems[0], "no start date") {
		t.Errorf("activity with a bad date: %v %q", b.Plan, b.Problems)
	}
	wantUnmapped(t, b.Unmapped, map[string]string{"iati-activity[2]/activity-date[1]": "not a date"})
}

func TestParseRefusesWhatIsNotAnIATI2ActivityFile(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":              "",
		"not XML":            "plans, in a spreadsheet",
		"another root":       `<iati-organisations version="2.03"/>`,
		"version 1":          `<iati-activities version="1.05"><iati-activity/></iati-activities>`,
		"no version":         `<iati-activities><iati-activity/></iati-activities>`,
		"no activity":        `<iati-activities version="2.03"></iati-activities>`,
		"unclosed":           `<iati-activities version="2.03"><iati-activity>`,
		"mismatched":         `<iati-activities version="2.03"><iati-activity></title></iati-activities>`,
		"two roots":          `<iati-activities version="2.03"><iati-activity/></iati-activities><x/>`,
		"external entity":    `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><iati-activities version="2.03"><iati-activity><title>&e;</title></iati-activity></iati-activities>`,
		"another encoding":   `<?xml version="1.0" encoding="ISO-8859-1"?><iati-activities version="2.03"><iati-activity/></iati-activities>`,
		"too deep":           `<iati-activities version="2.03"><iati-activity>` + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + `</iati-activity></iati-activities>`,
		"invalid UTF-8 text": "<iati-activities version=\"2.03\"><iati-activity><title>\xff</title></iati-activity></iati-activities>",
	} {
		t.Run(name, func(t *testing.T) {
			if f, err := Parse([]byte(doc)); err == nil {
				t.Fatalf("parsed: %+v", f)
			}
		})
	}
}

func TestSectorTableCodesAreDACCodes(t *testing.T) {
	five, three := regexp.MustCompile(`^[1-9][0-9]{4}$`), regexp.MustCompile(`^[1-9][0-9]{2}$`)
	for code, niches := range dacSectors {
		if !five.MatchString(code) || len(niches) == 0 {
			t.Errorf("5-digit table: %q → %v", code, niches)
		}
	}
	for code, niches := range dacCategories {
		if !three.MatchString(code) || len(niches) == 0 {
			t.Errorf("3-digit table: %q → %v", code, niches)
		}
	}
	if got := SectorNiches("", "15180"); !slices.Equal(got, []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}) {
		t.Errorf("default vocabulary: %v", got)
	}
	if got := SectorNiches("2", "15180"); got != nil {
		t.Errorf("a 5-digit code as a category: %v", got)
	}
}

// FuzzParse checks that no input makes Parse panic, and that every plan
// it maps has what a plan needs.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		for _, a := range file.Activities {
			if a.Plan == nil {
				if len(a.Problems) == 0 {
					t.Fatalf("activity %d: no plan and no problem", a.Index)
				}
				continue
			}
			p := a.Plan
			if p.GetExternalId() == "" || p.GetTitle() == "" || p.GetStage() == 0 || len(p.GetNiches()) == 0 || len(p.GetLocations()) == 0 || p.GetPlannedPeriod().GetStart() == nil {
				t.Fatalf("activity %d: incomplete plan %v", a.Index, p)
			}
		}
	})
}
