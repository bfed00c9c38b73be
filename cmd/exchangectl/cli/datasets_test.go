package cli

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/rowfile"
)

// testDataset is the definition in testdata/dataset.yaml.
func testDataset(t *testing.T) *exchangev1.Dataset {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "dataset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	def, err := parseDatasetDefinition("dataset.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return def.dataset
}

func TestDatasetEnumNames(t *testing.T) {
	for _, e := range []enumNames{periodTypeNames, adminLevelNames, measureTypeNames} {
		for i := range e.desc.Values().Len() {
			if n := e.desc.Values().Get(i).Number(); n != 0 {
				if got, err := e.parse(e.name(n)); err != nil || got != n {
					t.Errorf("%s: parse(%q) = %v, %v", e.what, e.name(n), got, err)
				}
			}
		}
	}
}

func TestDatasetExampleFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "dataset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	def, err := parseDatasetDefinition("dataset.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	d := def.dataset
	s := d.GetSchema()
	if def.id != "returns" || d.GetPeriodType() != exchangev1.PeriodType_PERIOD_TYPE_MONTH ||
		s.GetLocationLevel() != exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE || s.GetLocationHxl() != "#adm1+code" ||
		len(s.GetCategories()) != 2 || len(s.GetMeasures()) != 5 || !d.GetAudience().GetAllMembers() ||
		!d.GetPublicAggregates() || d.GetSuppressionThreshold() != 5 || len(d.GetContributors()) != 4 || len(d.GetExpectedLocations()) != 6 {
		t.Errorf("parsed %v", d)
	}
	if c := s.GetCategories()[1]; c.GetKey() != "age_group" || strings.Join(c.GetValues(), " ") != "0-11 12-17 18-24 25+" || !c.GetRequired() {
		t.Errorf("age group %v", c)
	}
	m := s.GetMeasures()[0]
	if m.GetKey() != "returned" || m.GetType() != exchangev1.MeasureType_MEASURE_TYPE_INTEGER || m.Min == nil || m.GetMin() != 0 || m.GetMax() != 100000 || !m.GetRequired() {
		t.Errorf("returned %v", m)
	}
	if m := s.GetMeasures()[3]; m.GetType() != exchangev1.MeasureType_MEASURE_TYPE_CODE || len(m.GetCodes()) != 6 || m.GetHxl() != "#service+main" {
		t.Errorf("main service %v", m)
	}
	if !strings.HasPrefix(d.GetDescription(), "Victims of trafficking") || !strings.HasSuffix(d.GetDescription(), "never names.\n") {
		t.Errorf("description %q", d.GetDescription())
	}
	// The rows file fits the schema.
	f, err := os.Open(filepath.Join("testdata", "rows.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := rowfile.NewCSVReader(f, d)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 8 {
		t.Errorf("%d rows in rows.csv, want 8", n)
	}
}

func TestDatasetDefinitionFileErrors(t *testing.T) {
	const good = "id: returns\ntitle: Returns\nperiodType: month\nschema:\n  locationLevel: province\n  measures:\n    - key: returned\n      type: integer\n"
	tests := []struct {
		name, file string
		// want are the parts of the error; "" means no error.
		want []string
	}{
		{"good", good, nil},
		{"json", `{"id": "returns", "title": "Returns", "periodType": "PERIOD_TYPE_MONTH",
	"schema": {"locationLevel": "ADMIN_LEVEL_PROVINCE", "measures": [{"key": "returned", "type": "MEASURE_TYPE_INTEGER"}]}}`, nil},
		{"proto names and numbers", "id: returns\ntitle: 2026\nperiod_type: 1\nsuppression_threshold: 0x0a\nschema:\n  location_level: ADMIN_LEVEL_PROVINCE\n  measures: [{key: returned, type: integer, max_length: 10}]\n", nil},
		{"name instead of id", "name: agencies/ilo/datasets/returns\ntitle: Returns\nperiodType: month\n", nil},
		{"old name", "name: datasets/returns\n", []string{`name: "datasets/returns" is not a dataset name: want agencies/AGENCY/datasets/ID`}},
		{"short name", "name: ilo/returns\n", []string{`name: "ilo/returns" is not a dataset name`}},
		{"typo at the top", good + "titel: Returned victims\n", []string{"dataset.yaml, line 9: titel: unknown field", "title", "periodType"}},
		{"typo in a measure", good + "      lable: Returned\n", []string{"line 9: schema.measures[0].lable: unknown field (a Measure has key, title, type"}},
		{"typo in a category", "id: returns\nschema:\n  categories:\n    - key: sex\n      valeus: [female, male]\n", []string{"line 5: schema.categories[0].valeus: unknown field"}},
		{"bad enum", "id: returns\nperiodType: monthly\n", []string{"line 2: periodType: unknown period type \"monthly\"; valid: month, quarter, year, fiscal-year"}},
		{"bad nested enum", "id: returns\nschema:\n  measures: [{key: x, type: number}]\n", []string{"line 3: schema.measures[0].type: unknown measure type \"number\""}},
		{"bad integer", "id: returns\nsuppressionThreshold: five\n", []string{"line 2: suppressionThreshold: \"five\" is not a whole number"}},
		{"bad decimal", "id: returns\nschema:\n  measures: [{key: x, min: low}]\n", []string{"schema.measures[0].min: \"low\" is not a number"}},
		{"bad bool", "id: returns\npublicAggregates: maybe\n", []string{"line 2: publicAggregates: \"maybe\" is not true or false"}},
		{"scalar for a list", "id: returns\ncontributors: agencies/iom\n", []string{"line 2: contributors: want a list"}},
		{"list for a message", "id: returns\naudience: [a]\n", []string{"audience: want a mapping of Audience fields"}},
		{"twice", "id: returns\ntitle: a\ntitle: b\n", []string{"line 3: title: given twice"}},
		{"twice in two spellings", "id: returns\nperiodType: month\nperiod_type: year\n", []string{"line 3: periodType: given twice"}},
		{"no id", "title: Returns\n", []string{"id: missing"}},
		{"bad id", "id: Returns\n", []string{"line 1: id: \"Returns\" is not a dataset id"}},
		{"id twice", "id: returns\nid: arrivals\n", []string{"line 2: id: given twice"}},
		{"name mismatch", "id: returns\nname: agencies/ilo/datasets/arrivals\n", []string{"name: agencies/ilo/datasets/arrivals does not match the id returns"}},
		{"empty", "", []string{"empty"}},
		{"not a mapping", "- returns\n", []string{"line 1: want a mapping"}},
		{"bad yaml", "id: returns\n  title: [\n", []string{"dataset.yaml: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def, err := parseDatasetDefinition("dataset.yaml", []byte(tc.file))
			if tc.want == nil {
				if err != nil || def.id != "returns" {
					t.Fatalf("%v, %v", def, err)
				}
				return
			}
			var ie *inputError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v, want an input error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if exitCode(err) != ExitInvalid {
				t.Errorf("exit code %d", exitCode(err))
			}
		})
	}
	def, err := parseDatasetDefinition("x", []byte("id: returns\ntitle: 2026\nperiod_type: 1\nsuppression_threshold: 0x0a\nschema:\n  location_level: ADMIN_LEVEL_PROVINCE\n  measures: [{key: returned, type: integer, max_length: 10, min: 1e2}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := def.dataset; d.GetTitle() != "2026" || d.GetPeriodType() != exchangev1.PeriodType_PERIOD_TYPE_MONTH || d.GetSuppressionThreshold() != 10 ||
		d.GetSchema().GetMeasures()[0].GetMaxLength() != 10 || d.GetSchema().GetMeasures()[0].GetMin() != 100 {
		t.Errorf("parsed %v", d)
	}
}

func TestDatasetsFlags(t *testing.T) {
	if _, err := parse(t, newDatasetsCreateCmd); !isUsage(err) {
		t.Errorf("create without -f: %v", err)
	}
	if o, err := parse(t, newDatasetsCreateCmd, "-f", "dataset.yaml", "--dry-run"); err != nil || o.File != "dataset.yaml" || !o.DryRun {
		t.Errorf("create: %+v, %v", o, err)
	}
	if _, err := parse(t, newDatasetsUpdateCmd, "returns"); !isUsage(err) {
		t.Errorf("update without -f: %v", err)
	}
	for _, bad := range [][]string{{"Returns"}, {"datasets/"}, {"a"}, {"returns", "extra"}, {"datasets/returns"}, {"ilo/"}, {"/returns"},
		{"ILO/returns"}, {"ilo/returns/x"}, {"agencies/ilo/returns"}, {"agencies/ilo/plans/returns"}, {"agencies/ilo/datasets/"}} {
		if _, err := parse(t, newDatasetsGetCmd, bad...); !isUsage(err) {
			t.Errorf("get %q: %v", bad, err)
		}
	}
	for _, good := range []string{"returns", "ilo/returns", "agencies/ilo/datasets/returns"} {
		if o, err := parse(t, newDatasetsGetCmd, good); err != nil || o.Dataset != good {
			t.Errorf("get %s: %+v, %v", good, o, err)
		}
	}

	for _, tc := range []struct {
		args   []string
		format string
		batch  int
	}{
		{[]string{"returns", "-f", "rows.csv"}, "csv", 1000},
		{[]string{"returns", "-f", "rows.JSONL", "--batch-size", "10000"}, "jsonl", 10000},
		{[]string{"returns", "-f", "-", "--batch-size", "1"}, "csv", 1},
		{[]string{"returns", "-f", "rows.txt", "--format", "JSONL"}, "jsonl", 1000},
	} {
		o, err := parse(t, newDatasetsPushCmd, tc.args...)
		if err != nil || o.Format != tc.format || o.BatchSize != tc.batch {
			t.Errorf("push %q: %+v, %v", tc.args, o, err)
		}
	}
	for _, bad := range [][]string{
		{"returns"},
		{"returns", "-f", "rows.csv", "--batch-size", "0"},
		{"returns", "-f", "rows.csv", "--batch-size", "10001"},
		{"returns", "-f", "rows.csv", "--format", "hxl"},
		{"returns", "-f", "rows.csv", "--format", "xlsx"},
		{"-f", "rows.csv"},
	} {
		if _, err := parse(t, newDatasetsPushCmd, bad...); !isUsage(err) {
			t.Errorf("push %q: %v, want a usage error", bad, err)
		}
	}
}

func TestDatasetsPullFlags(t *testing.T) {
	o, err := parse(t, newDatasetsPullCmd, "returns", "--since", "42", "--tombstones", "--format", "HXL", "--out", "x.csv",
		"--from", "2026-01", "--to", "2026-03", "--location", "kh-12,KH", "--location", "kh-12.1201",
		"--contributor", "iom", "--contributor", "agencies/unicef", "--category", "sex=female", "--category", "age_group = 12-17")
	if err != nil {
		t.Fatal(err)
	}
	req, err := o.request("agencies/ilo/datasets/returns")
	if err != nil {
		t.Fatal(err)
	}
	equalProto(t, req, &exchangev1.PullDatasetRowsRequest{
		Dataset: "agencies/ilo/datasets/returns", SinceRevision: 42, PeriodFrom: "2026-01", PeriodTo: "2026-03",
		Locations:    []string{"KH-12", "KH", "KH-12.1201"},
		Contributors: []string{"agencies/iom", "agencies/unicef"},
		Categories:   map[string]string{"sex": "female", "age_group": "12-17"},
	})
	if o.Format != formatHXL || o.Out != "x.csv" || !o.Tombstones {
		t.Errorf("options %+v", o)
	}
	if o, err := parse(t, newDatasetsPullCmd, "returns"); err != nil || o.Format != formatCSV || o.Out != "" {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	for _, bad := range [][]string{
		{"returns", "--tombstones"},
		{"returns", "--since", "-1"},
		{"returns", "--format", "xlsx"},
		{"returns", "--location", "Cambodia"},
		{"returns", "--contributor", "I"},
		{"returns", "--category", "sex"},
		{"returns", "--category", "Sex=female"},
		{"returns", "--category", "sex=female", "--category", "sex=male"},
		{"returns", "--from", "the beginning of 2026"},
		{"Returns"},
	} {
		if _, err := parse(t, newDatasetsPullCmd, bad...); !isUsage(err) {
			t.Errorf("pull %q: %v, want a usage error", bad, err)
		}
	}

	a, err := parse(t, newDatasetsAggregateCmd, "returns", "--by", "location,sex", "--suppress-below", "5", "--location", "KH", "--from", "2026-01")
	if err != nil {
		t.Fatal(err)
	}
	areq, err := a.request("agencies/ilo/datasets/returns")
	if err != nil {
		t.Fatal(err)
	}
	equalProto(t, areq, &exchangev1.AggregateDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns", GroupBy: []string{"location", "sex"}, SuppressBelow: 5, Locations: []string{"KH"}, PeriodFrom: "2026-01"})
	for _, bad := range [][]string{
		{"returns", "--suppress-below", "1001"},
		{"returns", "--by", "Location"},
		{"returns", "--by", "sex,sex"},
	} {
		if _, err := parse(t, newDatasetsAggregateCmd, bad...); !isUsage(err) {
			t.Errorf("aggregate %q: %v", bad, err)
		}
	}

	if o, err := parse(t, newDatasetsLockCmd, "returns", "2026-03"); err != nil || o.Period != "2026-03" {
		t.Errorf("lock: %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"returns"}, {"returns", ""}, {"x", "2026-03"}} {
		if _, err := parse(t, newDatasetsLockCmd, bad...); !isUsage(err) {
			t.Errorf("lock %q: %v", bad, err)
		}
	}
	if _, err := parse(t, newDatasetsUnlockCmd, "returns", "2026-03"); !isUsage(err) {
		t.Errorf("unlock without a reason: %v", err)
	}
	if _, err := parse(t, newDatasetsUnlockCmd, "returns", "2026-03", "--reason", "  "); !isUsage(err) {
		t.Errorf("unlock with a blank reason: %v", err)
	}
	if o, err := parse(t, newDatasetsUnlockCmd, "returns", "2026-03", "--reason", "correction"); err != nil || o.Reason != "correction" {
		t.Errorf("unlock: %+v, %v", o, err)
	}
	if _, err := parse(t, newDatasetsWatchCmd, "returns", "--from", "-1"); !isUsage(err) {
		t.Errorf("watch --from -1: %v", err)
	}
	if o, err := parse(t, newDatasetsCompletenessCmd, "returns", "2026-Q1"); err != nil || o.Period != "2026-Q1" {
		t.Errorf("completeness: %+v, %v", o, err)
	}
}

// rowLines reads file through a line counter and a rowfile reader and
// returns the line of each row, "!" and its line for each bad one.
func rowLines(t *testing.T, file string, csv bool, d *exchangev1.Dataset) []string {
	t.Helper()
	lines := newLineCounter(strings.NewReader(file), csv)
	var r *rowfile.Reader
	if csv {
		var err error
		if r, err = rowfile.NewCSVReader(lines, d); err != nil {
			t.Fatal(err)
		}
		lines.afterHeader()
	} else {
		r = rowfile.NewJSONLReader(lines)
	}
	var out []string
	for {
		_, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		var bad *rowfile.LineError
		switch {
		case errors.As(err, &bad):
			lines.next()
			out = append(out, "!"+strconv.Itoa(bad.Line))
		case err != nil:
			t.Fatal(err)
		default:
			out = append(out, strconv.Itoa(lines.next()))
		}
	}
}

func TestLineCounterFindsEachRowsLine(t *testing.T) {
	d := testDataset(t)
	const h = "period,location,sex,age_group,returned\n"
	row := "2026-03,KH-12,female,18-24,4\n"
	tests := []struct {
		name, file string
		csv        bool
		want       string
	}{
		{"plain", h + row + row + row, true, "2 3 4"},
		{"hxl row", h + "#date+period,#adm1+code,#x_sex,,\n" + row + row, true, "3 4"},
		{"first row read with the header", h + row, true, "2"},
		{"blank and comma-only lines", h + "\n" + row + ",,,,\n\n" + row + " , ,\n" + row, true, "3 6 8"},
		{"quoted line breaks", h + `2026-03,KH-12,female,18-24,4` + "\n" + `2026-03,KH-1,"fe` + "\n" + `male",18-24,4` + "\n" + row, true, "2 3 5"},
		{"crlf and bom", "\ufeff" + strings.ReplaceAll(h+row+row, "\n", "\r\n"), true, "2 3"},
		{"no final newline", h + row + strings.TrimSuffix(row, "\n"), true, "2 3"},
		{"bad lines", h + row + "2026-03,KH-12,female,18-24,four\n" + row + `2026-03,"KH` + "\n" + row, true, "2 !3 4 !5"},
		{"jsonl", "{\"period\":\"2026-03\"}\n\n  \n{\"period\":\"2026-04\"}\n{bad\n{}", false, "1 4 !5 6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(rowLines(t, tc.file, tc.csv, d), " "); got != tc.want {
				t.Errorf("lines %q, want %q", got, tc.want)
			}
		})
	}
}
