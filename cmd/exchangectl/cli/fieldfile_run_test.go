package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/client/fieldfile"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// partialFiles lists the partial files of resumable pulls in dir.
func partialFiles(t *testing.T, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, ".*.partial"))
	if err != nil {
		t.Fatal(err)
	}
	return matches
}

// cursorNames lists the cursors kept in the field file at path.
func cursorNames(t *testing.T, path string) []string {
	t.Helper()
	ff, err := fieldfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	list, err := ff.Cursors().List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	return names
}

func TestRunDatasetsPullResumesAcrossRunsWithAFieldFile(t *testing.T) {
	f, dir := pushedFixture(t)
	rev := f.server.Revision()
	f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--out", "whole.csv").must(t)
	whole := mustRead(t, dir, "whole.csv")

	// The first run gets two messages of three rows, then the exchange
	// stays away and the run gives up.
	f.server.SetRowBatch(3)
	f.server.BreakPull(2, 0, 0, 0)
	r := f.runAsIn(dir, "agency/mosvy", "--field-file", "field.db", "datasets", "pull", "ilo/returns", "--out", "returns.csv")
	if r.code != ExitUnavailable || !strings.Contains(r.stderr, "The pull stopped after 6 rows, kept in ") ||
		!strings.Contains(r.stderr, "run the same command again to resume it") {
		t.Fatalf("interrupted pull: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "returns.csv")); !os.IsNotExist(err) {
		t.Errorf("returns.csv exists after an interrupted pull: %v", err)
	}
	partials := partialFiles(t, dir)
	if len(partials) != 1 || fileMode(t, partials[0]) != 0o600 {
		t.Fatalf("partial files %q, want one of mode 0600", partials)
	}
	if n := cursorNames(t, filepath.Join(dir, "field.db")); len(n) != 1 || !strings.HasPrefix(n[0], "pull:agencies/ilo/datasets/returns>"+filepath.Join(dir, "returns.csv")+"?") {
		t.Errorf("cursors %q, want the pull's", n)
	}
	// A process killed after writing rows but before saving the position
	// leaves rows the position does not count, more of them than the
	// rest of the pull.
	pf, err := os.OpenFile(partials[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		fmt.Fprintf(pf, "2026-03,KH-1,iom,female,0-11,1,1,1,shelter,written before the kill %d\n", i)
	}
	pf.Close()

	// The second run, with the field file named in the environment.
	e := newTestEnvIn(t, dir)
	e.vars[EnvFieldFile] = "field.db"
	r = f.runIn(e, append(f.agencyFlags("agency/mosvy"), "datasets", "pull", "ilo/returns", "--out", "returns.csv")...).must(t)
	if !strings.Contains(r.stderr, "Resuming the pull into returns.csv after row 6 ") ||
		!strings.Contains(r.stderr, fmt.Sprintf("Pulled 16 rows into returns.csv at revision %d. Next time: --since %d\n", rev, rev)) {
		t.Errorf("resumed pull's stderr %q", r.stderr)
	}
	if got := mustRead(t, dir, "returns.csv"); got != whole {
		t.Errorf("the resumed pull wrote\n%s\nwant, as one unbroken pull writes,\n%s", got, whole)
	}
	if fileMode(t, filepath.Join(dir, "returns.csv")) != 0o600 {
		t.Error("returns.csv is not readable by its owner only")
	}
	if p := partialFiles(t, dir); len(p) != 0 {
		t.Errorf("partial files left behind: %q", p)
	}
	if n := cursorNames(t, filepath.Join(dir, "field.db")); len(n) != 0 {
		t.Errorf("cursors after the pull completed: %q, want none", n)
	}
	// The next pull starts over.
	e = newTestEnvIn(t, dir)
	e.vars[EnvFieldFile] = "field.db"
	r = f.runIn(e, append(f.agencyFlags("agency/mosvy"), "datasets", "pull", "ilo/returns", "--out", "returns.csv")...).must(t)
	if strings.Contains(r.stderr, "Resuming") || mustRead(t, dir, "returns.csv") != whole {
		t.Errorf("a pull after a completed one: stderr %q", r.stderr)
	}
}

func TestRunDatasetsPullResumeKeepsItsFlagsOrStartsOver(t *testing.T) {
	f, dir := pushedFixture(t)
	f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--out", "whole.csv").must(t)
	whole := mustRead(t, dir, "whole.csv")
	field := []string{"--field-file", filepath.Join(dir, "field.db")}
	f.server.SetRowBatch(3)
	f.server.BreakPull(1, 0, 0, 0)
	if r := f.runAsIn(dir, "agency/mosvy", append(field, "datasets", "pull", "ilo/returns", "--format", "jsonl", "--out", "returns")...); r.code != ExitUnavailable {
		t.Fatalf("interrupted pull: exit %d, stderr %q", r.code, r.stderr)
	}
	r := f.runAsIn(dir, "agency/mosvy", append(field, "datasets", "pull", "ilo/returns", "--format", "csv", "--out", "returns")...)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "this pull into returns began with --format jsonl; run it again with the same flags to resume it, or with --start-over") {
		t.Errorf("resume with another format: exit %d, stderr %q", r.code, r.stderr)
	}
	r = f.runAsIn(dir, "agency/mosvy", append(field, "datasets", "pull", "ilo/returns", "--format", "csv", "--out", "returns", "--start-over")...).must(t)
	if strings.Contains(r.stderr, "Resuming") || mustRead(t, dir, "returns") != whole {
		t.Errorf("--start-over: stderr %q, file\n%s", r.stderr, mustRead(t, dir, "returns"))
	}
	if p := partialFiles(t, dir); len(p) != 0 {
		t.Errorf("partial files left behind: %q", p)
	}
	// A symbolic link is followed, never replaced, as without a field
	// file: the file it leads to is.
	if err := os.WriteFile(filepath.Join(dir, "real.csv"), []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.csv", filepath.Join(dir, "link.csv")); err != nil {
		t.Fatal(err)
	}
	f.runAsIn(dir, "agency/mosvy", append(field, "datasets", "pull", "ilo/returns", "--out", "link.csv")...).must(t)
	if fi, err := os.Lstat(filepath.Join(dir, "link.csv")); err != nil || fi.Mode()&os.ModeSymlink == 0 || mustRead(t, dir, "real.csv") != whole {
		t.Errorf("pull through a symbolic link: link %v (%v), real.csv\n%s", fi, err, mustRead(t, dir, "real.csv"))
	}
	// A pull that got nothing leaves nothing behind.
	f.server.BreakPull(0, 0, 0, 0)
	if r := f.runAsIn(dir, "agency/mosvy", append(field, "datasets", "pull", "ilo/returns", "--out", "none.csv")...); r.code != ExitUnavailable || !strings.Contains(r.stderr, "Nothing was written to none.csv.") {
		t.Errorf("a pull that got nothing: exit %d, stderr %q", r.code, r.stderr)
	}
	if p := partialFiles(t, dir); len(p) != 0 {
		t.Errorf("a pull that got nothing left %q", p)
	}
	// A pull to standard output keeps no place.
	f.server.BreakPull(2, 0, 0, 0)
	if r := f.runAsIn(dir, "agency/mosvy", append(field, "datasets", "pull", "ilo/returns")...); r.code != ExitUnavailable || strings.Contains(r.stderr, "kept in") {
		t.Errorf("interrupted pull to standard output: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := cursorNames(t, field[1]); len(n) != 0 {
		t.Errorf("a pull to standard output kept %q", n)
	}
	// Without a field file, or to standard output, there is nothing to
	// start over.
	for _, args := range [][]string{
		{"datasets", "pull", "ilo/returns", "--out", "returns", "--start-over"},
		append(field, "datasets", "pull", "ilo/returns", "--start-over"),
	} {
		if r := f.runAsIn(dir, "agency/mosvy", args...); r.code != ExitUsage || !strings.Contains(r.stderr, "--start-over is for a pull into --out FILE with a field file") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestRunDatasetsWatchResumesAcrossRunsWithAFieldFile(t *testing.T) {
	f, dir := pushedFixture(t)
	field := filepath.Join(dir, "field.db")
	from := f.server.Revision()
	writeFile(t, dir, "april.csv", "period,location,sex,age_group,returned,notes",
		"2026-04,KH-1,female,12-17,7,",
		"2026-04,KH-1,male,12-17,3,")
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "april.csv").must(t)
	f.server.SetWatchHeartbeat(time.Hour)

	w := f.startRun(t, "agency/mosvy", "--field-file", field, "datasets", "watch", "ilo/returns", "--from", fmt.Sprint(from))
	first := w.waitLines(t, 2)
	if code := w.stop(t); code != ExitOK {
		t.Fatalf("exit %d after interrupt; stderr:\n%s", code, w.stderr)
	}
	// While no watch runs, a row is deleted.
	writeFile(t, dir, "gone.csv", "period,location,sex,age_group,deleted", "2026-04,KH-1,male,12-17,true")
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "gone.csv").must(t)

	// The next watch, without --from, starts where the first stopped.
	w = f.startRun(t, "agency/mosvy", "--field-file", field, "datasets", "watch", "ilo/returns")
	w.waitLines(t, 1)
	time.Sleep(100 * time.Millisecond) // room for a wrong repeat
	if code := w.stop(t); code != ExitOK {
		t.Fatalf("exit %d after interrupt; stderr:\n%s", code, w.stderr)
	}
	second := strings.Split(strings.TrimSpace(w.stdout.String()), "\n")
	want := fmt.Sprintf("%-8d deleted 2026-04 KH-1 iom age_group=12-17 sex=male", from+2)
	if len(first) != 2 || len(second) != 1 || second[0] != want {
		t.Errorf("first watch printed %q, second %q; want the second to print only %q", first, second, want)
	}
	if !strings.Contains(w.stderr.String(), "Resuming the watch where it stopped (kept in "+field+")") {
		t.Errorf("second watch's stderr %q", w.stderr)
	}
	// --start-over watches from now: nothing to print.
	w = f.startRun(t, "agency/mosvy", "--field-file", field, "datasets", "watch", "ilo/returns", "--start-over")
	time.Sleep(300 * time.Millisecond)
	if code := w.stop(t); code != ExitOK || w.stdout.String() != "" || strings.Contains(w.stderr.String(), "Resuming") {
		t.Errorf("--start-over: exit %d, stdout %q, stderr %q", code, w.stdout, w.stderr)
	}
	if n := cursorNames(t, field); len(n) != 1 || n[0] != "watch:rows:agencies/ilo/datasets/returns" {
		t.Errorf("cursors %q", n)
	}
	// That watch printed nothing, yet kept the revision it started at:
	// a row written after it, while no watch runs, is not missed.
	writeFile(t, dir, "may.csv", "period,location,sex,age_group,returned,notes", "2026-05,KH-12,male,12-17,4,")
	f.runAsIn(dir, "agency/iom", "datasets", "push", "ilo/returns", "-f", "may.csv").must(t)
	w = f.startRun(t, "agency/mosvy", "--field-file", field, "datasets", "watch", "ilo/returns")
	w.waitLines(t, 1)
	time.Sleep(100 * time.Millisecond)
	w.stop(t)
	if got := strings.TrimSpace(w.stdout.String()); !strings.HasPrefix(got, fmt.Sprintf("%-8d written 2026-05 KH-12 iom", from+3)) || strings.Contains(got, "\n") {
		t.Errorf("a watch after one that saw nothing printed %q, want only the May row", got)
	}
}

// fileMode returns the permission bits of path.
func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestRunDatasetsPullWithTheFieldFileLostStartsOver(t *testing.T) {
	f, dir := pushedFixture(t)
	f.runAsIn(dir, "agency/mosvy", "datasets", "pull", "ilo/returns", "--out", "whole.csv").must(t)
	whole := mustRead(t, dir, "whole.csv")
	stored := rowKeys(f.server.DatasetRows("agencies/ilo/datasets/returns"))
	f.server.SetRowBatch(3)
	f.server.BreakPull(2, 0, 0, 0)
	if r := f.runAsIn(dir, "agency/mosvy", "--field-file", "field.db", "datasets", "pull", "ilo/returns", "--out", "returns.csv"); r.code != ExitUnavailable {
		t.Fatalf("interrupted pull: exit %d, stderr %q", r.code, r.stderr)
	}
	// The field file is lost: the next pull begins again, and ends with
	// each row once; pulling changed nothing on the exchange.
	if err := os.Remove(filepath.Join(dir, "field.db")); err != nil {
		t.Fatal(err)
	}
	r := f.runAsIn(dir, "agency/mosvy", "--field-file", "field.db", "datasets", "pull", "ilo/returns", "--out", "returns.csv").must(t)
	if strings.Contains(r.stderr, "Resuming") || mustRead(t, dir, "returns.csv") != whole {
		t.Errorf("pull after the field file was lost: stderr %q, file\n%s", r.stderr, mustRead(t, dir, "returns.csv"))
	}
	if p := partialFiles(t, dir); len(p) != 0 {
		t.Errorf("partial files left behind: %q", p)
	}
	if got := rowKeys(f.server.DatasetRows("agencies/ilo/datasets/returns")); !slices.Equal(got, stored) {
		t.Errorf("the exchange's rows changed:\n%q\nwant\n%q", got, stored)
	}
}

func TestRunReferralsWatchResumesAcrossRunsWithAFieldFile(t *testing.T) {
	f := referralFixture(t)
	ctx := context.Background()
	field := filepath.Join(t.TempDir(), "field.db")
	ilo := f.server.DialSealing(t, "agency/ilo")
	iom := f.server.DialSealing(t, "agency/iom")
	from := f.server.Revision()
	r1, err := ilo.Referrals.Create(ctx, referralTo("iom", "one"))
	if err != nil {
		t.Fatal(err)
	}
	f.server.SetWatchHeartbeat(20 * time.Millisecond)
	w := f.startWatch(t, "--field-file", field, "--from", fmt.Sprint(from))
	first := w.waitLines(t, 1)
	w.stop(t)
	// While no watch runs, iom acknowledges the referral.
	if _, err := iom.Referrals.Acknowledge(ctx, r1.GetName(), ""); err != nil {
		t.Fatal(err)
	}
	w = f.startWatch(t, "--field-file", field)
	w.waitLines(t, 1)
	time.Sleep(100 * time.Millisecond) // room for a wrong repeat
	w.stop(t)
	second := strings.Split(strings.TrimSpace(w.stdout.String()), "\n")
	if len(first) != 1 || !strings.Contains(first[0], "created") || len(second) != 1 || !strings.Contains(second[0], "updated") {
		t.Errorf("first watch printed %q, second %q; want the creation, then only the acknowledgement", first, second)
	}
	// --from goes back there, whatever was saved.
	w = f.startWatch(t, "--field-file", field, "--from", fmt.Sprint(from))
	if got := w.waitLines(t, 2); len(got) != 2 || strings.Contains(w.stderr.String(), "Resuming") {
		t.Errorf("--from with a saved place printed %q, stderr %q", got, w.stderr)
	}
	w.stop(t)
}

func TestRunPlansWatchKeepsAPlacePerFilter(t *testing.T) {
	f := planFixture(t)
	ctx := context.Background()
	field := filepath.Join(t.TempDir(), "field.db")
	ilo := f.server.Dial(t, "agency/ilo")
	newPlan := func(id, province string) *exchangev1.Plan {
		p, err := ilo.Plans.Create(ctx, "agencies/ilo", &exchangev1.Plan{
			ExternalId: id, Title: "Plan " + id, Stage: exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
			Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}, Locations: []*exchangev1.LocationRef{{Country: "KH", Subdivision: province}},
			PlannedPeriod: &exchangev1.DatePeriod{Start: date(2026, 1, 1)}, Audience: &exchangev1.Audience{AllMembers: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	from := f.server.Revision()
	kh1 := newPlan("ILO-1", "KH-1")
	newPlan("ILO-12", "KH-12")
	f.server.SetWatchHeartbeat(20 * time.Millisecond)
	w := f.startPlansWatch(t, "--field-file", field, "--province", "KH-1", "--from", fmt.Sprint(from))
	w.waitLines(t, 1)
	w.stop(t)
	// Another filter is another watch, with a place of its own.
	w = f.startPlansWatch(t, "--field-file", field, "--province", "KH-12", "--from", fmt.Sprint(from))
	w.waitLines(t, 1)
	w.stop(t)
	if _, err := ilo.Plans.Cancel(ctx, kh1.GetName(), "merged", ""); err != nil {
		t.Fatal(err)
	}
	w = f.startPlansWatch(t, "--field-file", field, "--province", "KH-1")
	w.waitLines(t, 1)
	time.Sleep(100 * time.Millisecond)
	w.stop(t)
	if got := strings.Split(strings.TrimSpace(w.stdout.String()), "\n"); len(got) != 1 || !strings.Contains(got[0], "cancelled") || !strings.Contains(got[0], "ILO-1") {
		t.Errorf("the KH-1 watch resumed with %q, want only ILO-1's cancellation", got)
	}
	if n := cursorNames(t, field); len(n) != 2 {
		t.Errorf("cursors %q, want one per filter", n)
	}
}
