package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testReportName = "agencies/ngo-kh/reports/01jd8x4k2m9q7r3t5v6w8y0z1a"

func TestReportsVerbsRefuseBadInputBeforeAnyCall(t *testing.T) {
	for _, arg := range []string{testReportName, "ngo-kh/01jd8x4k2m9q7r3t5v6w8y0z1a", "ngo-kh/reports/01jd8x4k2m9q7r3t5v6w8y0z1a"} {
		opts, err := parse(t, newReportsGetCmd, arg)
		if err != nil {
			t.Fatalf("%q: %v", arg, err)
		}
		if name, _ := reportName(opts.Name); name != testReportName {
			t.Errorf("%q: name %q", arg, name)
		}
	}
	for _, bad := range [][]string{
		{"ngo-kh"}, {"ngo-kh/short"}, {"Bad/01jd8x4k2m9q7r3t5v6w8y0z1a"}, {testReportName, "--version", "-1"},
	} {
		if _, err := parse(t, newReportsGetCmd, bad...); !isUsage(err) {
			t.Errorf("get %q: got %v, want a usage error", bad, err)
		}
	}
	good := []string{"--fiscal-year", "2026", "--start-month", "7", "--quarter", "2", "--title", "Q2", "--group", "un-wg"}
	opts, err := parse(t, newReportsCreateCmd, good...)
	if err != nil || opts.FiscalYear != 2026 || opts.StartMonth != 7 || opts.Quarter != 2 || len(opts.Groups) != 1 {
		t.Fatalf("create %q: %+v, %v", good, opts, err)
	}
	if opts, err := parse(t, newReportsCreateCmd, "--fiscal-year", "2026", "--quarter", "1", "--title", "Q1", "--agency", "iom"); err != nil || opts.StartMonth != 1 {
		t.Fatalf("create without --start-month: %+v, %v; want the calendar year (1)", opts, err)
	}
	for _, bad := range [][]string{
		{"--fiscal-year", "2026", "--quarter", "2", "--title", "Q2"},                                        // no audience
		{"--fiscal-year", "2026", "--quarter", "5", "--title", "Q2", "--group", "g1"},                       // quarter
		{"--fiscal-year", "2026", "--quarter", "1", "--start-month", "13", "--title", "Q", "--group", "g1"}, // month
		{"--fiscal-year", "26", "--quarter", "1", "--title", "Q", "--group", "g1"},                          // two-digit year
		{"--fiscal-year", "2026", "--quarter", "1", "--group", "g1"},                                        // no title
	} {
		if _, err := parse(t, newReportsCreateCmd, bad...); !isUsage(err) {
			t.Errorf("create %q: got %v, want a usage error", bad, err)
		}
	}
	if _, err := parse(t, newReportsUpdateCmd, testReportName); !isUsage(err) {
		t.Errorf("update with nothing to change: %v, want a usage error", err)
	}
	if _, err := parse(t, newReportsUpdateCmd, testReportName, "--summary", "@/nonexistent/summary.txt"); !isUsage(err) {
		t.Errorf("update from a missing file: %v, want a usage error", err)
	}
	file := filepath.Join(t.TempDir(), "s.txt")
	if err := os.WriteFile(file, []byte("From a file."), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := parse(t, newReportsUpdateCmd, testReportName, "--summary", "@"+file, "--next-quarter", "")
	if err != nil || u.Texts["summary"] != "From a file." || len(u.Texts) != 2 {
		t.Fatalf("update: %+v, %v; want the summary from the file and an emptied next_quarter", u, err)
	}
	if _, err := parse(t, newReportsExportCmd, testReportName); !isUsage(err) {
		t.Errorf("export with no --html or --pdf: %v, want a usage error", err)
	}
	if _, err := parse(t, newReportsCommentCmd, testReportName, "  "); !isUsage(err) {
		t.Errorf("an empty comment: %v, want a usage error", err)
	}
}

func TestReportsExportPDFWithoutChromiumSaysSo(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CHROMIUM", "")
	f := newFixture(t)
	r := f.run("reports", "export", testReportName, "--html", "r.html", "--pdf", "r.pdf")
	if r.code == 0 || !strings.Contains(r.stderr, "--pdf needs Chromium") || !strings.Contains(r.stderr, "--html works without it") {
		t.Fatalf("exit %d, stderr %q; want a failure that names Chromium and --html", r.code, r.stderr)
	}
	if fileExists(filepath.Join(r.env.WorkDir, "r.html")) {
		t.Error("the HTML was written although the command failed before reading the report")
	}
}
