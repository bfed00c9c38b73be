package cli

import (
	"strings"
	"testing"
)

// Issue 19, item 3: a line that repeats the key of an earlier line is
// reported and not sent, identical or not, also when the two lines go in
// different calls (which the exchange, checking each call, cannot see);
// the count says what was written.
func TestRunDatasetsPushRefusesRepeatedKeys(t *testing.T) {
	f, dir := datasetFixture(t)
	createReturns(t, f, dir)
	writeFile(t, dir, "repeats.csv",
		"period,location,sex,age_group,returned", // 1
		"2026-04,KH-12,female,18-24,3",           // 2
		"2026-04,KH-12,male,18-24,4",             // 3
		"2026-04,KH-12,female,18-24,30",          // 4: key of 2, in the next call
		"2026-04,KH-12,male,18-24,4",             // 5: identical to 3
	)
	r := f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "repeats.csv", "--batch-size", "2")
	if r.code != ExitInvalid {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, ExitInvalid, r.stdout, r.stderr)
	}
	want := []string{
		"LINE    FIELD                 CODE                 REASON",
		"4       -                     INVALID_ARGUMENT     repeats the key (period, location and categories) of line 2",
		"5       -                     INVALID_ARGUMENT     repeats the key (period, location and categories) of line 3",
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
	if !strings.HasPrefix(r.stderr, "4 rows from repeats.csv: 2 written, 2 rejected.\n") {
		t.Errorf("stderr %q", r.stderr)
	}
	for _, row := range f.server.DatasetRows("agencies/ilo/datasets/returns") {
		if row.GetCategories()["sex"] == "female" && row.GetValues()["returned"].GetIntValue() != 3 {
			t.Errorf("line 4 replaced line 2: %v", row)
		}
	}
}

// Issue 19, item 5: a file made by an HXL tool, whose header texts are
// not ours, is pushed by its hashtag row; an unknown hashtag stops the
// push before anything is sent, naming the line and the column.
func TestRunDatasetsPushMatchesHashtags(t *testing.T) {
	f, dir := datasetFixture(t)
	createReturns(t, f, dir)
	writeFile(t, dir, "hxl.csv",
		"Province P-code,Reporting month,Sex,Age,Returnees,Note",
		"#adm1+code,#date+period,#x_sex,#x_age_group,#affected +Returned,#meta+notes",
		"KH-12,2026-04,female,18-24,3,from an HXL tool",
		"KH-1,2026-04,male,25+,5,",
	)
	r := f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "hxl.csv").must(t)
	if r.stderr != "2 rows from hxl.csv: 2 written, 0 rejected.\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	rows := f.server.DatasetRows("agencies/ilo/datasets/returns")
	if len(rows) != 2 || rows[0].GetValues()["returned"] == nil {
		t.Fatalf("stored %v", rows)
	}
	// A hashtag row first, without header texts: lines are still right.
	writeFile(t, dir, "tags-first.csv",
		"#date+period,#adm1+code,#x_sex,#x_age_group,#affected+returned", // 1
		"2026-06,KH-12,female,18-24,3",                                   // 2
		"2026-06,KH-12,male,18-24,many",                                  // 3
		"2026-06,KH-12,female,18-24,4",                                   // 4: key of 2
	)
	r = f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "tags-first.csv")
	if r.code != ExitInvalid || !strings.Contains(r.stdout, "\n3       returned              INVALID_ARGUMENT     \"many\" is not an integer") ||
		!strings.Contains(r.stdout, "\n4       -                     INVALID_ARGUMENT     repeats the key (period, location and categories) of line 2") ||
		!strings.HasPrefix(r.stderr, "3 rows from tags-first.csv: 1 written, 2 rejected.") {
		t.Errorf("tags first: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, dir, "unknown.csv",
		"Province,Month,Sex,Age,Returnees",
		"#adm1+code,#date+period,#x_sex,#x_age_group,#affected+returnees",
		"KH-12,2026-05,female,18-24,3",
	)
	calls := len(f.server.Calls(mWriteRows))
	r = f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "unknown.csv")
	if r.code != ExitInvalid || !strings.Contains(r.stderr, "unknown.csv, line 2: #affected+returnees: unknown hashtag in column 5 (E)") || len(f.server.Calls(mWriteRows)) != calls {
		t.Errorf("unknown hashtag: exit %d, stderr %q", r.code, r.stderr)
	}
}
