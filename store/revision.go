package store

import (
	"context"

	"sync"
	"time"

	"github.com/alltogether/exchange/store/kv"
)

// Revisions are commit times. Each recorded change takes the next
// revision, which is the commit's time in microseconds since the Unix
// epoch, or one more than the revision before it when several changes
// share a microsecond (a batch, a group commit) or the clock went back.
// Revisions still only grow, and each change still has one of its own, as
// etcd's do; but the difference between two revisions an agency sees
// measures time, not how many changes other agencies made in between.
// A counter would let any agency watch the whole network's activity
// through the revisions of its own lists, events and heartbeats.
//
// For the same reason what the exchange tells an agency about "now" is
// never the revision of the last commit (that would date other agencies'
// last change) but a safe revision from SafeRevision: a time before which
// every change is committed and after which every change will get a
// higher revision. A list answers with the safe revision taken before its
// read, and a watch's heartbeat with the safe revision reached; either
// may be resumed from exactly like a counter's revision.

// revisionClock hands out revisions to write transactions and safe
// revisions to readers, and keeps the two consistent.
type revisionClock struct {
	now func() time.Time

	mu sync.Mutex
	// handedOut is the highest safe revision given to a reader; every
	// revision allocated afterwards is higher.
	handedOut int64
	// inflight is the lowest revision allocated by the write transaction
	// that has not committed yet, 0 when none has allocated.
	inflight int64
}

// micros is t in microseconds since the Unix epoch.
func micros(t time.Time) int64 { return t.UnixMicro() }

// allocate returns the revision of the next change of the current write
// transaction, after last, the transaction's revision so far.
func (c *revisionClock) allocate(last int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	rev := max(last+1, micros(c.now()), c.handedOut+1)
	if c.inflight == 0 {
		c.inflight = rev
	}
	return rev
}

// begin is called as a write transaction starts: the one before it has
// committed or was rolled back, so none of its revisions is in flight.
func (c *revisionClock) begin() {
	c.mu.Lock()
	c.inflight = 0
	c.mu.Unlock()
}

// committed is called once the write transaction's changes are visible
// to new read transactions.
func (c *revisionClock) committed() { c.begin() }

// safe returns a revision h such that every change with a revision up to
// h is committed (a read transaction begun after safe returns sees it)
// and every change not yet committed has, or will get, a revision above
// h. published is the last committed revision.
func (c *revisionClock) safe(published int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := micros(c.now())
	if c.inflight != 0 {
		h = min(h, c.inflight-1)
	}
	h = max(h, published, c.handedOut)
	c.handedOut = h
	return h
}

// LatestRevision returns the last committed revision: Revision on a
// bbolt file; on etcd, the cluster's, read at once (other replicas' commits
// reach Revision through etcd's watch, a moment later), so that a cache
// rebuilt up to it holds every change acknowledged before the call.
func (s *Store) LatestRevision(ctx context.Context) (int64, error) {
	if s.etcd == nil {
		return s.Revision(), nil
	}
	var rev int64
	err := s.view(ctx, func(tx kv.Tx) error { rev = readRevision(tx); return nil })
	if err != nil {
		return 0, err
	}
	s.advance(rev)
	return rev, nil
}

// SafeRevision returns a revision up to which every change is committed
// and after which every change will have a higher revision, without
// dating the last commit: it is the current time when no write is in
// flight. Lists and watch heartbeats give it to callers as the revision
// to resume from; a read transaction begun after SafeRevision returns
// sees every change up to it.
//
// On etcd, where other replicas allocate revisions too, it is a write to
// the cluster (raiseFloor) and may fail as writes do; on a bbolt file it
// never fails.
func (s *Store) SafeRevision(ctx context.Context) (int64, error) {
	if s.etcd != nil {
		return s.raiseFloor(ctx)
	}
	return s.clock.safe(s.revision.Load()), nil
}
