package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunPlansImportIatiExitsNonZeroWhenNothingCouldBeImported(t *testing.T) {
	f := planFixture(t)
	// The IATI standard's annotated example: its one activity is in
	// Afghanistan and Antigua and Barbuda, outside the sub-region.
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "iati", "testdata", "real", "activity-standard-example-annotated.xml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "example.xml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		args := []string{"plans", "import-iati", path}
		if dry {
			args = append(args, "--dry-run")
		}
		r := f.runAs("agency/iom", args...)
		if r.code != ExitInvalid {
			t.Errorf("dry run %v: exit %d, want %d\n%s%s", dry, r.code, ExitInvalid, r.stdout, r.stderr)
		}
		for _, want := range []string{
			"Skipped 1 of 1 activity:",
			"1 AA-AAA-123456789-ABC123: the activity cannot become a plan: no location in the Mekong sub-region",
			"recipient-country AF, AG outside it",
			"nothing could be imported: all 1 activity was skipped",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("dry run %v: stderr lacks %q:\n%s", dry, want, r.stderr)
			}
		}
	}
	if len(f.server.Plans()) != 0 {
		t.Errorf("plans stored: %v", f.server.Plans())
	}

	// One imported, one skipped: the exit code says what changed, and
	// the skipped one is still listed with its reason.
	r := f.runAs("agency/iom", "plans", "import-iati", copyTestdata(t, "iom-activities.xml"), "--dry-run")
	if r.code != 1 || !strings.Contains(r.stderr, "Skipped 1 of 2 activities:\n  2 ") || !strings.Contains(r.stderr, "no recipient-country and no location with a province") {
		t.Errorf("one of two skipped: exit %d\n%s", r.code, r.stderr)
	}
}
