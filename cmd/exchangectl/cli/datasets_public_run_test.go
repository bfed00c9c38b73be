package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// An agency outside the dataset's readers sees totals of rounded rows:
// no value between 0 and 5, no row counts, and a word on stderr.
func TestRunDatasetsAggregateOutsideTheAudienceIsRounded(t *testing.T) {
	f, dir := datasetFixture(t)
	yaml := mustRead(t, dir, "dataset.yaml")
	closed := strings.Replace(yaml, "audience:\n  allMembers: true\n", "", 1)
	if closed == yaml {
		t.Fatal("testdata/dataset.yaml no longer opens its rows to all members")
	}
	if err := os.WriteFile(filepath.Join(dir, "dataset.yaml"), []byte(closed), 0o600); err != nil {
		t.Fatal(err)
	}
	createReturns(t, f, dir)
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "rows.csv").must(t)

	reader := f.runAs("agency/iom", "datasets", "aggregate", "ilo/returns", "--by", "location,sex,age_group").must(t)
	if !strings.HasSuffix(strings.SplitN(reader.stdout, "\n", 2)[0], "ROWS") || reader.stderr != "" {
		t.Fatalf("a contributor's totals:\n%s\n%s", reader.stdout, reader.stderr)
	}
	r := f.runAs("agency/wvi", "datasets", "aggregate", "ilo/returns", "--by", "location,sex,age_group").must(t)
	if r.stderr != "Outside the dataset's readers: totals of rows whose values below 5 were rounded at random to 0 or 5.\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if lines[0] != "LOCATION  SEX     AGE_GROUP  ASSISTED  REFERRED  RETURNED" {
		t.Errorf("header %q: the public view has no row counts", lines[0])
	}
	for _, line := range lines[1:] {
		for _, field := range strings.Fields(line)[3:] {
			if v, err := strconv.ParseFloat(field, 64); err != nil || v > 0 && v < 5 {
				t.Errorf("public total %q in %q: a small value shows", field, line)
			}
		}
	}
}
