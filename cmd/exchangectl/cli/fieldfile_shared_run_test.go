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
