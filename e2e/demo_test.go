package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tourTimeout bounds one run of demo/tour.sh; it takes a few seconds.
const tourTimeout = 2 * time.Minute

// TestDemoTour runs the newcomer's tour, demo/tour.sh (what `make demo`
// runs), against the binaries TestMain built, and checks that it succeeds
// and shows what it promises: every section, a referral taken to
// completion, a bad dataset row reported with its line and field, and the
// overlap between ILO-TICW's and UNICEF's prevention plans that the seed
// document warns about. The tour uses only the CLI, so this also covers
// the referral, dataset and plan commands end to end.
func TestDemoTour(t *testing.T) {
	setup(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("the tour is a bash script and bash is not installed")
	}
	script, err := filepath.Abs(filepath.Join("..", "demo", "tour.sh"))
	if err != nil {
		t.Fatal(err)
	}
	tmpdir := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), tourTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, script)
	// The tour runs elsewhere than the repository, to show it needs no
	// particular working directory; its temporary directory goes in tmpdir,
	// so that the test can check it was removed.
	cmd.Dir = t.TempDir()
	cmd.Env = append(baseEnv(), "EXCHANGE_BIN="+binDir, "TMPDIR="+tmpdir)
	// On timeout, SIGTERM the whole process group: the script's trap then
	// stops exchanged and removes its directory.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout + 5*time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	output := out.String()
	if ctx.Err() != nil {
		t.Fatalf("the tour did not finish within %v\noutput:\n%s", tourTimeout, output)
	}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		t.Fatalf("the tour exited with status %d, want 0\noutput:\n%s", exitErr.ExitCode(), output)
	case err != nil:
		t.Fatalf("running the tour: %v", err)
	}
	t.Logf("the tour took %v", elapsed.Round(100*time.Millisecond))

	for _, header := range []string{
		"==== 1. Start a throw-away exchange ====",
		"==== 2. The secretariat builds the directory ====",
		"==== 3. Referrals: people move between agencies, with consent ====",
		"==== 4. Joint data collection: one dataset, three contributors ====",
		"==== 5. Plans at inception stage: overlaps and gaps while they can change ====",
		"==== 6. What you just saw ====",
	} {
		if !strings.Contains(output, header) {
			t.Errorf("the tour does not print the section header %q", header)
		}
	}

	for what, re := range map[string]*regexp.Regexp{
		// The secretariat created the agencies the seed names, plus the
		// national NGOs and project offices, and issued their certificates.
		"the directory of 19 agencies":     regexp.MustCompile(`created\s+19 agencies`),
		"a project office with its parent": regexp.MustCompile(`(?m)^\[secretariat\] \$ exchangectl agencies create ticw-la .*--parent ilo$`),
		"the working group with observers": regexp.MustCompile(`(?m)^Observers:\s+save-the-children, world-vision$`),
		// Referrals.
		"the push of five referrals":  regexp.MustCompile(`5 records from \S+referrals\.jsonl: 5 accepted, 0 duplicates, 0 rejected`),
		"the idempotent second push":  regexp.MustCompile(`5 records from \S+referrals\.jsonl: 0 accepted, 5 duplicates, 0 rejected`),
		"a completed referral":        regexp.MustCompile(`(?m)^[0-9a-z]{26}\s+completed\s+afesip\s+urgent\s+shelter\s+KH-1\s`),
		"the completion in history":   regexp.MustCompile(`(?m)afesip\s+in-progress\s+completed\s+completed: successful$`),
		"a referral in progress":      regexp.MustCompile(`(?m)^[0-9a-z]{26}\s+in-progress\s+world-vision\s`),
		"a rejection as outside area": regexp.MustCompile(`(?m)^Rejected:\s+outside-area: `),
		"a forwarded referral":        regexp.MustCompile(`(?m)^Forwarded from:\s+referrals/[0-9a-z]{26}$`),
		"revoked consent":             regexp.MustCompile(`(?m)^Consent revoked:\s+\d{4}-\d\d-\d\d `),
		"details withheld":            regexp.MustCompile(`(?m)^Identifying details:\s+withheld$`),
		"NOT_FOUND for a third party": regexp.MustCompile(`NOT_FOUND: referrals/[0-9a-z]{26} not found\n\(exit code 3, as expected\)`),
		// Joint data collection.
		"the bad row reported":           regexp.MustCompile(`(?m)^5\s+age_group\s+INVALID_ARGUMENT\s+"18\+" is not an allowed value`),
		"the other rows stored":          regexp.MustCompile(`5 rows from \S+world-vision\.csv: 4 written, 1 rejected`),
		"completeness":                   regexp.MustCompile(`3 of 3 contributors have reported for 2026-10`),
		"the locked period":              regexp.MustCompile(`(?m)^2\s+period\s+FAILED_PRECONDITION\s+period 2026-10 is locked$`),
		"the aggregate by province":      regexp.MustCompile(`(?m)^KH-1\s+female\s+38\s+42\s+3$`),
		"small cells hidden":             regexp.MustCompile(`1 group hidden`),
		"the HXL hashtag row":            regexp.MustCompile(`(?m)^#date\+period,#adm1\+code,#org\+code,`),
		"all 16 rows pulled":             regexp.MustCompile(`\.\.\. \(16 rows\)`),
		"plans created":                  regexp.MustCompile(`(?m)^create\s+ILO-TICW-LA-2027-01\s`),
		"the idempotent second apply":    regexp.MustCompile(`Created 0, updated 0, cancelled 0; 2 unchanged`),
		"the coverage matrix of LA":      regexp.MustCompile(`(?m)^LA-KH\s+Khammuane\s+2\s`),
		"the coverage matrix of KH":      regexp.MustCompile(`(?m)^KH-1\s+Banteay Meanchey\s+2\s`),
		"ILO and UNICEF overlap in LA":   regexp.MustCompile(`(?m)^ilo ILO-TICW-LA-2027-01 .*unicef UNICEF-LA-2027-CP1 .*\sprevention\s+LA-KH, LA-SV\s`),
		"ILO and UNICEF overlap in KH":   regexp.MustCompile(`(?m)^ilo ILO-TICW-KH-2027-02 .*unicef UNICEF-KH-2027-CP2 .*\sprevention\s+KH-1\s`),
		"gaps in LA":                     regexp.MustCompile(`(?m)^LA-AT\s+Attapeu\s+prevention, return-and-reintegration, psychosocial-counselling$`),
		"gaps in KH":                     regexp.MustCompile(`(?m)^KH-22\s+Oddar Meanchey\s+prevention, return-and-reintegration, psychosocial-counselling$`),
		"the report's prefilled figures": regexp.MustCompile(`(?m)^referrals:\s+5$`),
		"the report submitted":           regexp.MustCompile(`(?m)^state:\s+submitted$`),
		"the report printed":             regexp.MustCompile(`Printed report\.html \(\d+ bytes\)`),
		"the dashboard's URL":            regexp.MustCompile(`(?m)^Dashboard \(as iom\): http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{43}$`),
	} {
		if !re.MatchString(output) {
			t.Errorf("the tour does not show %s (no match for %s)", what, re)
		}
	}
	if strings.Contains(output, "tour: ") {
		t.Errorf("the tour reported a problem of its own")
	}
	if t.Failed() {
		t.Logf("output of the tour:\n%s", output)
	}

	// The trap stopped exchanged and removed the temporary directory.
	left, err := os.ReadDir(tmpdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("the tour left %s behind in its temporary directory", e.Name())
	}
}
