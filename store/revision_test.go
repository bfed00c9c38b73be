package store

import (
	"fmt"
	"sync"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestRevisionsMeasureTimeNotCount: the gap between two revisions an
// agency sees is the time between its changes, whatever others did in
// between, as long as they did less than one change a microsecond. With a
// counter, the gap would count the other agencies' changes.
func TestRevisionsMeasureTimeNotCount(t *testing.T) {
	gap := func(others int) int64 {
		s, c := openTest(t)
		first := mustCreateAgency(t, s, "mine-1", nil)
		for i := range others {
			c.advance(time.Millisecond)
			mustCreateAgency(t, s, fmt.Sprintf("other-%03d", i), nil)
		}
		c.advance(time.Second - time.Duration(others)*time.Millisecond)
		mustCreateAgency(t, s, "mine-2", nil)
		all := allChanges(t, s)
		if all[0].GetResourceName() != first.GetName() {
			t.Fatalf("first change %s", all[0].GetResourceName())
		}
		return all[len(all)-1].GetRevision() - all[0].GetRevision()
	}
	quiet, busy := gap(0), gap(500)
	if quiet != busy || quiet != time.Second.Microseconds() {
		t.Fatalf("gap between my two changes: %d µs with no other change, %d µs with 500 others; want %d for both",
			quiet, busy, time.Second.Microseconds())
	}
}

// TestRevisionsGrowWhenTheClockGoesBack: revisions stay unique and
// increasing when the clock steps back or stands still.
func TestRevisionsGrowWhenTheClockGoesBack(t *testing.T) {
	s, c := openTest(t)
	mustCreateAgency(t, s, "a", nil)
	c.advance(-time.Hour)
	mustCreateAgency(t, s, "b", nil)
	mustCreateAgency(t, s, "c", nil)
	all := allChanges(t, s)
	for i := 1; i < len(all); i++ {
		if all[i].GetRevision() <= all[i-1].GetRevision() {
			t.Fatalf("revision %d after %d", all[i].GetRevision(), all[i-1].GetRevision())
		}
	}
	if safe := safeRevision(t, s); safe < s.Revision() {
		t.Fatalf("safe revision %d before the last commit %d", safe, s.Revision())
	}
}

// TestSafeRevision: with no write in flight the safe revision is the
// clock's time (not the last commit's, which would date another agency's
// change); it never reaches a change that is not committed yet; and a
// change that commits after it was handed out gets a higher revision.
func TestSafeRevision(t *testing.T) {
	s, c := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "a", nil)
	last := s.Revision()
	c.advance(time.Minute)
	if got, want := safeRevision(t, s), micros(c.now()); got != want {
		t.Fatalf("idle safe revision %d, want the clock's %d (last commit %d)", got, want, last)
	}

	if onEtcd() {
		return // a write in flight holds up the safe revision's own write on etcd: TestSafeRevisionHoldsAcrossReplicas
	}
	// A write holds its transaction open after taking its revision.
	taken, release := make(chan int64), make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	t.Cleanup(let) // runs before the store closes, should the test stop early
	done := make(chan error, 1)
	go func() {
		done <- s.update(ctx, secretariat("Test"), func(w *writeTx) error {
			rev, err := w.nextRevision()
			if err != nil {
				return err
			}
			taken <- rev
			<-release
			return w.record(exchangev1.ChangeKind_CHANGE_KIND_CREATED, "agencies/held", agencyMsg("held", nil, nil))
		})
	}()
	held := <-taken
	c.advance(time.Minute)
	safe := safeRevision(t, s)
	if safe >= held {
		t.Fatalf("safe revision %d while a change at %d is in flight", safe, held)
	}
	let()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Handed out, a safe revision bounds every later change from below,
	// even when the clock then steps back.
	c.advance(time.Minute)
	safe = safeRevision(t, s)
	c.advance(-2 * time.Hour)
	mustCreateAgency(t, s, "after", nil)
	if s.Revision() <= safe {
		t.Fatalf("a change committed after the safe revision %d got %d", safe, s.Revision())
	}
	if got, err := s.Changes(ctx, safe, 10); err != nil || len(got) != 1 || got[0].GetResourceName() != "agencies/after" {
		t.Fatalf("changes after the safe revision: %v %v", got, err)
	}
}
