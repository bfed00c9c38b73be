package client_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/fieldfile"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// These tests run a pull or a watch in a first "process" (its own
// connection and its own opening of the field file) that stops in the
// middle, as a process killed or interrupted does, then a second one on
// the same field file, and check that the second starts where the first
// stopped: together they deliver each message once.

// errKilled is what fn returns for the message a process was killed
// before handling.
var errKilled = errors.New("killed")

// openFieldFile opens the field file at path; it is closed at cleanup
// unless the test closed it.
func openFieldFile(t *testing.T, path string) *fieldfile.File {
	t.Helper()
	f, err := fieldfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// savedCursors lists the names of the cursors saved in f.
func savedCursors(t *testing.T, f *fieldfile.File) []string {
	t.Helper()
	list, err := f.Cursors().List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, c.Name)
	}
	return names
}

func TestPullResumesInANewProcessFromTheFieldFile(t *testing.T) {
	s, ilo, iom, _ := datasetExchange(t)
	ctx := context.Background()
	writeMonths(t, iom, 1, 4) // 12 rows
	req := &exchangev1.PullDatasetRowsRequest{Dataset: returnsName, PageSize: 3}
	var full pulled
	if err := ilo.Datasets.Pull(ctx, req, full.add); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), fieldfile.DefaultName)
	const name = "pull:" + returnsName

	// The first process handles two messages of three rows and dies
	// before handling the third.
	f := openFieldFile(t, path)
	var first pulled
	err := ilo.Datasets.Pull(ctx, req, func(m *exchangev1.PullDatasetRowsResponse) error {
		if len(first.revisions) == 2 {
			return errKilled
		}
		return first.add(m)
	}, client.ResumeFrom(f.Cursors(), name))
	if err != errKilled {
		t.Fatalf("interrupted pull = %v, want fn's error", err)
	}
	if got, want := savedCursors(t, f), []string{client.PullCursorName(name, req)}; !slices.Equal(got, want) {
		t.Fatalf("cursors after the interrupted pull: %q, want %q", got, want)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The exchange moves on meanwhile (a plan), without touching the
	// dataset's rows.
	meanwhile := newPlan("meanwhile", exchangev1.Niche_NICHE_SHELTER, "KH-12")
	meanwhile.Name, meanwhile.Owner = "agencies/iom/plans/meanwhile", "agencies/iom"
	s.PutPlan(meanwhile)
	if s.Revision() == first.revisions[0] {
		t.Fatal("the exchange's revision did not move")
	}

	// The second process: a new connection, the field file opened again.
	ilo2 := s.Dial(t, "agency/ilo")
	f = openFieldFile(t, path)
	// A pull under the same name with another filter is another pull: it
	// gets all its rows, and leaves the first pull's position alone.
	filtered := &exchangev1.PullDatasetRowsRequest{Dataset: returnsName, PageSize: 3, Locations: []string{"KH-12"}}
	var kh12 pulled
	if err := ilo2.Datasets.Pull(ctx, filtered, kh12.add, client.ResumeFrom(f.Cursors(), name)); err != nil {
		t.Fatal(err)
	}
	if len(kh12.rows) != 4 {
		t.Errorf("the filtered pull under the same name delivered %d rows, want its 4: %v", len(kh12.rows), kh12.rows)
	}
	var second pulled
	if err := ilo2.Datasets.Pull(ctx, req, second.add, client.ResumeFrom(f.Cursors(), name)); err != nil {
		t.Fatal(err)
	}
	if got := append(slices.Clone(first.rows), second.rows...); !slices.Equal(got, full.rows) {
		t.Errorf("first process delivered %d rows, second %d; together\n%s\nwant each row once:\n%s",
			len(first.rows), len(second.rows), strings.Join(got, "\n"), strings.Join(full.rows, "\n"))
	}
	if len(second.rows) == 0 || len(second.rows) >= len(full.rows) {
		t.Errorf("the second process delivered %d rows: it did not resume", len(second.rows))
	}
	for _, rev := range second.revisions {
		if rev != first.revisions[0] {
			t.Errorf("the resumed pull's messages carry revisions %v, want the first message's %d", second.revisions, first.revisions[0])
			break
		}
	}
	// The pull completed: its cursor is gone, and the next one starts
	// over.
	if got := savedCursors(t, f); len(got) != 0 {
		t.Errorf("cursors after the pull completed: %q, want none", got)
	}
	var again pulled
	if err := ilo2.Datasets.Pull(ctx, req, again.add, client.ResumeFrom(f.Cursors(), name)); err != nil {
		t.Fatal(err)
	}
	if len(again.rows) != len(full.rows) {
		t.Errorf("a pull after a completed one delivered %d rows, want all %d", len(again.rows), len(full.rows))
	}
}

func TestPullKeepsItsPositionWhenFnFails(t *testing.T) {
	_, ilo, iom, _ := datasetExchange(t)
	ctx := context.Background()
	writeMonths(t, iom, 1, 4)
	req := &exchangev1.PullDatasetRowsRequest{Dataset: returnsName, PageSize: 3}
	var full pulled
	if err := ilo.Datasets.Pull(ctx, req, full.add); err != nil {
		t.Fatal(err)
	}
	f := openFieldFile(t, filepath.Join(t.TempDir(), fieldfile.DefaultName))
	store := f.Cursors()
	// fn takes the first message and refuses the second (a full disk):
	// the second is not counted as handled.
	var first pulled
	diskFull := fmt.Errorf("disk full")
	err := ilo.Datasets.Pull(ctx, req, func(m *exchangev1.PullDatasetRowsResponse) error {
		if len(first.revisions) == 1 {
			return diskFull
		}
		return first.add(m)
	}, client.ResumeFrom(store, "pull"))
	if err != diskFull {
		t.Fatalf("Pull = %v, want fn's error unchanged", err)
	}
	var rest pulled
	if err := ilo.Datasets.Pull(ctx, req, rest.add, client.ResumeFrom(store, "pull")); err != nil {
		t.Fatal(err)
	}
	if got := append(first.rows, rest.rows...); !slices.Equal(got, full.rows) {
		t.Errorf("rows delivered around a failing fn:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(full.rows, "\n"))
	}
}

func TestResumeFromRefusesAPositionItDidNotSave(t *testing.T) {
	_, ilo, iom, _ := datasetExchange(t)
	ctx := context.Background()
	writeMonths(t, iom, 1, 1)
	f := openFieldFile(t, filepath.Join(t.TempDir(), fieldfile.DefaultName))
	store := f.Cursors()
	req := &exchangev1.PullDatasetRowsRequest{Dataset: returnsName}
	// A watch's position under the pull's name, and garbage under a
	// watch's.
	if err := store.Save(client.PullCursorName("shared", req), `{"kind":"watch","done":3}`); err != nil {
		t.Fatal(err)
	}
	if err := store.Save("watch:referrals", "not json"); err != nil {
		t.Fatal(err)
	}
	called := false
	err := ilo.Datasets.Pull(ctx, req, func(*exchangev1.PullDatasetRowsResponse) error { called = true; return nil }, client.ResumeFrom(store, "shared"))
	if err == nil || !strings.Contains(err.Error(), "position of a watch, not of a pull") || !strings.Contains(err.Error(), client.PullCursorName("shared", req)) || called {
		t.Errorf("Pull over a watch's cursor = %v (fn called: %v), want an error naming the cursor and what it holds", err, called)
	}
	err = ilo.Referrals.Watch(ctx, 0, func(*exchangev1.WatchReferralsResponse) error { called = true; return nil }, client.ResumeFrom(store, "watch:referrals"))
	if err == nil || !strings.Contains(err.Error(), `cursor "watch:referrals" does not hold a position`) || called {
		t.Errorf("Watch over a damaged cursor = %v (fn called: %v), want an error naming the cursor", err, called)
	}
	if v, _ := store.Load("watch:referrals"); v != "not json" {
		t.Errorf("the refused cursor was changed to %q", v)
	}
}

func TestWatchResumesInANewProcessFromTheFieldFile(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	start := s.Revision()
	var refs []*exchangev1.Referral
	for i := range 2 {
		r, err := ilo.Referrals.Create(ctx, newReferral("iom", fmt.Sprintf("need %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	if _, err := iom.Referrals.Acknowledge(ctx, refs[1].GetName(), ""); err != nil {
		t.Fatal(err)
	}
	// A forward changes two referrals at one revision: two events.
	child, err := iom.Referrals.Forward(ctx, &exchangev1.ForwardReferralRequest{
		Name: refs[1].GetName(), Receiver: "agencies/unicef",
		Service: &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
		Consent: &exchangev1.Consent{GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_PERSON, GivenTime: timestamppb.Now(),
			ReceivingAgency: "agencies/unicef", Services: []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER}},
	})
	if err != nil {
		t.Fatal(err)
	}
	fwdRev := s.Revision()
	want := []string{
		fmt.Sprintf("%d CREATED %s", start+1, refs[0].GetName()),
		fmt.Sprintf("%d CREATED %s", start+2, refs[1].GetName()),
		fmt.Sprintf("%d UPDATED %s", start+3, refs[1].GetName()),
		fmt.Sprintf("%d UPDATED %s", fwdRev, refs[1].GetName()),
		fmt.Sprintf("%d CREATED %s", fwdRev, child.GetName()),
	}
	s.SetWatchHeartbeat(time.Hour)
	path := filepath.Join(t.TempDir(), fieldfile.DefaultName)

	// The first process dies after handling the first event of the
	// forward's revision: the second must skip exactly that one.
	f := openFieldFile(t, path)
	first := newCollector()
	err = iom.Referrals.Watch(ctx, start, func(ev *exchangev1.WatchReferralsResponse) error {
		if n := len(first.keys()); n > 0 && strings.HasPrefix(first.keys()[n-1], fmt.Sprint(fwdRev)) {
			return errKilled
		}
		return first.add(ev)
	}, client.ResumeFrom(f.Cursors(), "watch:referrals"))
	if err != errKilled {
		t.Fatalf("interrupted watch = %v, want fn's error", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	late, err := ilo.Referrals.Create(ctx, newReferral("iom", "while the office was offline"))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf("%d CREATED %s", s.Revision(), late.GetName()))

	// The second process watches "from now" (fromRevision 0), as a
	// program restarted with the same code does: the saved position wins.
	iom2 := s.Dial(t, "agency/iom")
	f = openFieldFile(t, path)
	second := newCollector()
	stopWatch := watch(t, iom2, 0, second.add, client.ResumeFrom(f.Cursors(), "watch:referrals"))
	second.waitFor(t, len(want)-len(first.keys()))
	time.Sleep(100 * time.Millisecond) // room for a wrong extra event
	if err := stopWatch(); status.Code(err) != codes.Canceled {
		t.Errorf("Watch returned %v after cancel, want CANCELED", err)
	}
	if got := append(first.keys(), second.keys()...); !slices.Equal(got, want) {
		t.Errorf("events of the two processes:\n%s\nwant each once:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(first.keys()) != 4 {
		t.Errorf("the first process saw %v, want it stopped after the forward's first event", first.keys())
	}
}

func TestWatchRowsResumesInANewProcessFromTheFieldFile(t *testing.T) {
	s, ilo, iom, _ := datasetExchange(t)
	ctx := context.Background()
	from := s.Revision()
	writeMonths(t, iom, 1, 2) // two revisions of three rows
	s.SetWatchHeartbeat(time.Hour)
	s.SetRowBatch(3) // a message per revision
	path := filepath.Join(t.TempDir(), fieldfile.DefaultName)

	f := openFieldFile(t, path)
	first := newRowCollector()
	err := ilo.Datasets.WatchRows(ctx, returnsName, from, func(m *exchangev1.WatchDatasetRowsResponse) error {
		if len(first.rows) > 0 {
			return errKilled
		}
		return first.add(m)
	}, client.ResumeFrom(f.Cursors(), "watch:rows:"+returnsName))
	if err != errKilled {
		t.Fatalf("interrupted watch = %v, want fn's error", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	writeMonths(t, iom, 3, 3)

	ilo2 := s.Dial(t, "agency/ilo")
	f = openFieldFile(t, path)
	second := newRowCollector()
	stopWatch := watchRowsFrom(t, ilo2, 0, second.add, client.ResumeFrom(f.Cursors(), "watch:rows:"+returnsName))
	all := s.DatasetRows(returnsName)
	seen := ids(first.rows)
	var rest []*exchangev1.Row
	for _, r := range all {
		if !slices.Contains(seen, rowID(r)) {
			rest = append(rest, r)
		}
	}
	second.waitFor(t, rest)
	time.Sleep(100 * time.Millisecond)
	if err := stopWatch(); status.Code(err) != codes.Canceled {
		t.Errorf("WatchRows returned %v after cancel, want CANCELED", err)
	}
	got := append(ids(first.rows), ids(second.rows)...)
	slices.Sort(got)
	if !slices.Equal(got, ids(all)) {
		t.Errorf("rows of the two processes:\n%s\nwant each of the 9 once:\n%s", strings.Join(got, "\n"), strings.Join(ids(all), "\n"))
	}
}
