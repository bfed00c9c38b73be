package store

import (
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// readers keeps count of the store's open read transactions and of the
// bbolt transaction each one reads: the id of the last commit when it
// began. bbolt lets a page freed by a commit be used again only once no
// read transaction that began before that commit is open, so the scrub
// that follows an erasure (scrub.go) waits, through readers, for the reads
// that may still see the erased pages, and learns whether a write
// transaction began with no read open at all. Every read of the database
// goes through Store.read so that it is counted; one that bypassed it
// would not be waited for (bbolt would still keep its pages intact, but
// the scrub could believe it had overwritten pages it had not).
type readers struct {
	mu      sync.Mutex
	started uint64            // reads started so far
	open    map[uint64]uint64 // read number → bbolt txid it reads, or at least
	newest  uint64            // the newest txid a read has begun on
	changed chan struct{}     // closed at the next change to open when someone waits; nil otherwise
}

func newReaders() *readers { return &readers{open: make(map[uint64]uint64)} }

// start counts a read about to begin its transaction and returns its
// number. It runs before bbolt begins the transaction, so that no read
// transaction is ever open without being counted. Until it has begun, the
// read counts as reading the newest transaction a read has begun on:
// commits only add to it, so its own will be that one or a later one.
func (r *readers) start() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started++
	r.open[r.started] = r.newest
	return r.started
}

// begun records the bbolt transaction read number n reads.
func (r *readers) begun(n, txid uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open[n] = txid
	r.newest = max(r.newest, txid)
	r.notify()
}

// end forgets read number n.
func (r *readers) end(n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.open, n)
	r.notify()
}

// notify wakes whoever waits for a change; r.mu is held.
func (r *readers) notify() {
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// quiet reports whether no read is open, and how many reads have started
// so far. If no read is open now and none has started by a later call
// that returns the same count, no read was open at any moment between.
func (r *readers) quiet() (idle bool, started uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.open) == 0, r.started
}

// startedCount returns how many reads have started so far.
func (r *readers) startedCount() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started
}

// oldest returns the smallest transaction id an open read reads (for a
// read whose transaction has not begun yet, the least it will read), and
// whether a read is open.
func (r *readers) oldest() (uint64, bool) {
	var min uint64
	found := false
	for _, txid := range r.open {
		if !found || txid < min {
			min, found = txid, true
		}
	}
	return min, found
}

// waitPast waits until every open read reads a transaction after txid, or
// until the deadline; it reports whether that happened. Reads that begin
// after the caller saw a commit later than txid read a later transaction,
// so once the caller has seen one, what it waits for can only end.
func (r *readers) waitPast(txid uint64, deadline time.Time) bool {
	for {
		r.mu.Lock()
		if oldest, ok := r.oldest(); !ok || oldest > txid {
			r.mu.Unlock()
			return true
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed := r.changed
		r.mu.Unlock()
		wait := time.Until(deadline)
		if wait <= 0 {
			return false
		}
		timer := time.NewTimer(wait)
		select {
		case <-changed:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// read runs fn in a read transaction counted by s.readers. Every read of
// the database goes through it. A read that reaches a damaged page (bbolt
// panics) fails with the error of a damaged file rather than crashing the
// process: the file is checked only once the exchange listens
// (CheckHoldingWrites), so reads may reach damage before the check does.
func (s *Store) read(fn func(tx *bolt.Tx) error) (err error) {
	n := s.readers.start()
	defer s.readers.end(n)
	defer func() {
		if v := recover(); v != nil {
			if !raisedInBbolt() {
				panic(v)
			}
			err = damagedError(s.db.Path(), v)
		}
	}()
	return s.db.View(func(tx *bolt.Tx) error {
		s.readers.begun(n, uint64(tx.ID()))
		return fn(tx)
	})
}
