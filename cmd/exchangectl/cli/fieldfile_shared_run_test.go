package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/fieldfile"
)

// A watch left running all day with the field file does not lock the
// writes of the same office out of it: a referral move made in another
// window while the watch runs, with the same field file, goes through;
// the watch waits out a brief holder of the file when it saves its
// position; and a watch run again resumes after the last change it
// printed, nothing twice.
func TestRunReferralsWatchSharesTheFieldFileWithWrites(t *testing.T) {
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
	r2, err := ilo.Referrals.Create(ctx, referralTo("iom", "two"))
	if err != nil {
		t.Fatal(err)
	}
	f.server.SetWatchHeartbeat(20 * time.Millisecond)
	w := f.startWatch(t, "--field-file", field, "--from", fmt.Sprint(from))
	w.waitLines(t, 2)

	// In another window, with the same field file, the case worker
	// acknowledges the first referral while the watch runs.
	r := f.runIn(newTestEnv(t), append(f.agencyFlags("agency/iom"), "--field-file", field, "referrals", "acknowledge", client.ResourceID(r1.GetName()))...)
	if r.code != ExitOK || strings.Contains(r.stderr, "queued") {
		t.Fatalf("acknowledge while a watch runs with the same field file: exit %d, stderr %q", r.code, r.stderr)
	}
	if r = f.runIn(newTestEnv(t), append(f.agencyFlags("agency/iom"), "--field-file", field, "outbox", "list")...); r.code != ExitOK {
		t.Fatalf("outbox list while a watch runs: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := w.waitLines(t, 3); !strings.Contains(got[2], "updated") {
		t.Fatalf("the watch printed %q; want the acknowledgement third", got)
	}

	// Another process holds the file for longer than a second (a write
	// in another window) when the next change arrives: the watch waits
	// to save its place, then carries on.
	held, err := fieldfile.Open(field)
	if err != nil {
		t.Fatalf("the field file while the watch runs: %v", err)
	}
	if _, err := ilo.Referrals.Create(ctx, referralTo("iom", "three")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	w.waitLines(t, 4)
	select {
	case code := <-w.done:
		t.Fatalf("the watch stopped (exit %d) while another held the field file; stderr %q", code, w.stderr)
	default:
	}
	if code := w.stop(t); code != ExitOK {
		t.Fatalf("watch exit %d, stderr %q", code, w.stderr)
	}

	// While no watch runs, iom acknowledges the second referral; the next
	// watch prints only that.
	if _, err := iom.Referrals.Acknowledge(ctx, r2.GetName(), ""); err != nil {
		t.Fatal(err)
	}
	w = f.startWatch(t, "--field-file", field)
	w.waitLines(t, 1)
	time.Sleep(200 * time.Millisecond) // room for a wrong repeat
	w.stop(t)
	got := strings.Split(strings.TrimSpace(w.stdout.String()), "\n")
	if len(got) != 1 || !strings.Contains(got[0], "updated") || !strings.Contains(got[0], client.ResourceID(r2.GetName())) ||
		!strings.Contains(w.stderr.String(), "Resuming the watch") {
		t.Fatalf("the watch run again printed %q (stderr %q); want only the acknowledgement of %s", got, w.stderr, r2.GetName())
	}
}

// A datasets watch and a plans watch running with the field file leave it
// free: a dataset push with the same field file, made while both run,
// writes its rows (it does not queue them), and the datasets watch shows
// them.
func TestRunDatasetsAndPlansWatchesShareTheFieldFileWithAPush(t *testing.T) {
	f, dir := pushedFixture(t)
	field := filepath.Join(dir, "field.db")
	f.server.SetWatchHeartbeat(20 * time.Millisecond)
	rows := f.startRun(t, "agency/mosvy", "--field-file", field, "datasets", "watch", "ilo/returns")
	plans := f.startRun(t, "agency/mosvy", "--field-file", field, "plans", "watch")
	// Both have saved the place they start from.
	deadline := time.Now().Add(10 * time.Second)
	for len(cursorNames(t, field)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the watches kept %q; stderr %q / %q", cursorNames(t, field), rows.stderr, plans.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	writeFile(t, dir, "april.csv", "period,location,sex,age_group,returned,notes",
		"2026-04,KH-1,female,12-17,7,")
	r := f.runAsIn(dir, "agency/iom", "--field-file", field, "datasets", "push", "ilo/returns", "-f", "april.csv")
	if r.code != ExitOK || strings.Contains(r.stderr, "queued") || !strings.Contains(r.stderr, "1 written") {
		t.Fatalf("push while two watches run with the same field file: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := rows.waitLines(t, 1); !strings.Contains(got[0], "written 2026-04 KH-1 iom") {
		t.Errorf("the datasets watch printed %q, want the pushed row", got)
	}
	for _, w := range []*watchRun{rows, plans} {
		if code := w.stop(t); code != ExitOK {
			t.Errorf("watch exit %d; stderr %q", code, w.stderr)
		}
	}
}

// A pull into a file with the field file holds the field file only while
// it saves its place: while the pull waits to resume after a broken link,
// another command opens the field file at once and finds the place saved.
func TestRunDatasetsPullLeavesTheFieldFileFreeWhileItWaits(t *testing.T) {
	f, dir := pushedFixture(t)
	field := filepath.Join(dir, "field.db")
	f.server.SetRowBatch(3)
	f.server.BreakPull(1, 0, 0, 0, 0, 0, 0, 0)
	w := f.startRun(t, "agency/mosvy", "--field-file", field, "datasets", "pull", "ilo/returns", "--out", filepath.Join(dir, "returns.csv"))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.stderr.String(), "pull interrupted") {
		if time.Now().After(deadline) {
			t.Fatalf("the pull never said it was interrupted; stderr %q", w.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ff, err := fieldfile.OpenWithin(field, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("the field file while the pull waits to resume: %v", err)
	}
	list, err := ff.Cursors().List()
	ff.Close()
	if err != nil || len(list) != 1 || !strings.HasPrefix(list[0].Name, "pull:agencies/ilo/datasets/returns>") {
		t.Fatalf("cursors while the pull waits: %+v, %v; want the pull's place", list, err)
	}
	w.stop(t)
}
