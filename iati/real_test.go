package iati

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The files under testdata/real were written by others: the IATI
// standard's annotated example activity and two of IATI-Schemas' own
// should-fail tests (see testdata/real/README.md).

func readReal(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "real", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealAnnotatedExampleIsRefusedForItsPlace(t *testing.T) {
	data := readReal(t, "activity-standard-example-annotated.xml")
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != "2.03" || len(f.Activities) != 1 {
		t.Fatalf("version %s, %d activities", f.Version, len(f.Activities))
	}
	a := f.Activities[0]
	// Afghanistan, Antigua and Barbuda, and Kandahar (AF-KAN): nothing in
	// the sub-region, so no plan.
	wantProblem(t, a, "no location in the Mekong sub-region", "recipient-country AF, AG outside it", "location[1] AF-KAN is outside it")
	// Its sectors: 111 and 112 are DAC categories too broad for one
	// niche, A1 is the publisher's own vocabulary.
	wantProblem(t, a, "no sector maps to a niche")
	if len(a.Problems) != 2 {
		t.Errorf("problems %q, want the places and the sectors", a.Problems)
	}
	wantUnmapped(t, a.Unmapped, map[string]string{
		"iati-activity[1]/recipient-country[1]": "AF is outside",
		"iati-activity[1]/location[1]":          "AF-KAN is outside",
		// Phnom Penh's ISO 3166-2 code is KH-12.
		"iati-activity[1]/location[2]":         "KH-PNH is not an ISO 3166-2 code of the exchange's directory",
		"iati-activity[1]/recipient-region[1]": "a region is not a location",
		"iati-activity[1]/sector[1]":           "DAC sector 111 maps to no niche",
		"iati-activity[1]/transaction[1]":      "financial transactions are not part of a plan",
	})

	// The same activity placed in Phnom Penh, with DAC 11231 "Basic life
	// skills for youth" for category 112, becomes a plan: the rest of the
	// example (status, dates, budget, organisations) is valid IATI the
	// importer takes.
	moved := bytes.Replace(data, []byte(`<recipient-country code="AF" percentage="25" />`), []byte(`<recipient-country code="KH" percentage="25" />`), 1)
	moved = bytes.ReplaceAll(moved, []byte(`ref="KH-PNH"`), []byte(`ref="KH-12"`))
	moved = bytes.Replace(moved, []byte(`<sector vocabulary="2" code="112"`), []byte(`<sector vocabulary="1" code="11231"`), 1)
	a = oneActivity(t, moved)
	if a.Plan == nil {
		t.Fatalf("moved to Phnom Penh: problems %q", a.Problems)
	}
	var subs []string
	for _, l := range a.Plan.GetLocations() {
		subs = append(subs, l.GetCountry()+"/"+l.GetSubdivision())
	}
	if !slices.Equal(subs, []string{"KH/KH-12"}) || !slices.Equal(a.Plan.GetNiches(), []exchangev1.Niche{exchangev1.Niche_NICHE_NON_FORMAL_EDUCATION}) ||
		a.Plan.GetExternalId() != "AA-AAA-123456789-ABC123" || a.Plan.GetStage() != exchangev1.PlanStage_PLAN_STAGE_IN_IMPLEMENTATION {
		t.Errorf("moved to Phnom Penh: locations %v, plan %v", subs, a.Plan)
	}
}

func TestRealIATISchemasShouldFailTests(t *testing.T) {
	for name, want := range map[string]string{
		"iati-schemas-24-two-titles.xml":          "one title per activity; this one has 2",
		"iati-schemas-26-two-activity-status.xml": "one activity-status per activity; this one has 2",
	} {
		t.Run(name, func(t *testing.T) {
			data := readReal(t, name)
			// As published they declare version "xx".
			if _, err := Parse(data); err == nil || !strings.Contains(err.Error(), `IATI version "xx" is not in the IATI Version codelist`) {
				t.Errorf("as published: %v", err)
			}
			// With a real version, the schema violation they test.
			a := oneActivity(t, bytes.Replace(data, []byte(`version="xx"`), []byte(`version="2.03"`), 1))
			wantProblem(t, a, "schema violation", want)
		})
	}
}
