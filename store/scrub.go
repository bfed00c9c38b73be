package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/alltogether/exchange/store/kv"
)

// An erasure must leave nothing readable in the file, and bbolt never
// writes a page in place: a transaction writes the pages it changes
// somewhere else and frees the old ones. After EraseReferralDetails
// commits, the referral's data key and sealed details are no longer in the
// tree, but the pages that held them (and every older copy of those pages,
// which also held the neighbouring referrals' keys) are still in the file
// as free pages, until bbolt happens to use them again. Anyone with the
// file could open the details with the key.
//
// So every erasure is followed by a scrub, and is answered only once the
// scrub has overwritten every page the erasure or any earlier transaction
// freed. The scrub goes through bbolt's own allocator and never writes to
// the file behind bbolt's back: a freed page may still be read by a read
// transaction that began before the erasure (a streaming backup, say), and
// bbolt alone knows which pages are safe to use again (it releases the
// pages a transaction freed only once no read that may see them is open).
//
// A fill is a write transaction that puts zero-filled values into a new
// scratch bucket, sized so that its pages take every free page: bbolt
// hands out free pages before it grows the file, and writes each page it
// allocates whole, from a zeroed buffer. It learns how many pages are free
// from bbolt's statistics, which count the free and the pending pages as
// the previous write left them. A page left free when some later write
// ends with no free page at all has been allocated, and so written, since.
// The scratch buckets are then deleted, and their pages (zeros now) are
// free for the next writes. The fills and the deletion run while no other
// write commits (groupcommit's Exclusive): a write between them would find
// no free page and grow the file. A scrub runs:
//
//  1. A fill that begins while no read is open (readers.go counts them):
//     bbolt then released every pending page, the erasure's included, and
//     the count is exact. It takes every free page but the few that the
//     deletion will take (its root bucket and freelist pages).
//  2. If reads were open each time it tried: a commit after the erasure,
//     if there has been none (an empty transaction), so that reads
//     beginning from then on cannot see what it freed; a wait for the
//     reads that began before it to end, bounded by Options.ScrubWait;
//     then a pinned read (see 4) and a fill of the pages that were free
//     before it began, again but those the deletion (and the empty commit
//     after it, see 4) will take. Pending pages that newer reads still
//     hold are not counted: filling them would only grow the file.
//  3. More fills while more pages than those are left free at a fill's
//     commit (pages released as it began, or a count that was off).
//  4. The deletion of the scratch buckets. A read pinned before it keeps
//     bbolt from handing it the pages the fills freed, so it takes the
//     pages left for it and ends with no page free. When reads are open,
//     an empty commit follows (and takes the last page left), from which
//     new reads begin, and a brief wait for the reads begun before it:
//     those would keep the next writes from using the scratch pages, and
//     make them grow the file instead. If the deletion did not end with
//     no page free (a count was off), a fill that leaves none and another
//     deletion follow; that deletion grows the file by its few pages.
//
// Scrubs are shared: one scrub started after an erasure committed serves
// every erasure committed before it, so concurrent erasures wait for one
// or two scrubs between them, not one each. The cost of a scrub grows with
// the number of free pages, not with the size of the file. Open scrubs a
// file it did not create, so that pages freed by a process that stopped
// before its scrub, or by a version of the exchange that did not scrub,
// are overwritten too.

// Scratch buckets are named scratchPrefix followed by a number; nothing
// else in the database has a name starting so (schema.go).
const scratchPrefix = "scrub/"

// isScratchBucket tells whether a top-level bucket is a scrub's scratch
// bucket.
func isScratchBucket(name []byte) bool { return bytes.HasPrefix(name, []byte(scratchPrefix)) }

// scratchItemsPerPage is how many zero-filled values a scratch leaf page
// holds. Four values of a quarter page each make exactly one page; bbolt
// (v1.5) never splits a node of four items or fewer, so the last leaf of a
// scratch bucket is one page too, and one value alone is too large for the
// bucket to be stored inline in its parent.
const scratchItemsPerPage = 4

// maxFillPages bounds the pages one fill transaction writes (16 MiB with
// 4 KiB pages), so that a file with many free pages is overwritten in
// several transactions and other writes get their turn in between.
const maxFillPages = 4096

// quietTries is how many times the first fill of a scrub starts and gives
// up again because a read was open, hoping for a moment without reads
// (when it needs no wait and its count of free pages is exact);
// fewQuietTries is the same for the fills after it.
const (
	quietTries    = 5
	fewQuietTries = 2
)

// errNotQuiet, errNothingFree and errNoFill end a fill transaction
// without a commit.
var (
	errNotQuiet    = errors.New("a read transaction was open")
	errNothingFree = errors.New("no free page")
	errNoFill      = errors.New("no more free pages than the deletion takes")
)

// scrubber coordinates the scrubs of a store: erasures register the
// transaction that committed them and wait; one goroutine at a time runs
// scrubs until every registered erasure is served.
type scrubber struct {
	mu sync.Mutex
	// epoch counts the files the store has had: Vacuum replaces the file
	// with one that holds no freed page at all, and bbolt's transaction ids
	// start again in it, so erasures of an earlier epoch are served.
	epoch uint64
	// wanted is the newest transaction id an erasure waits for, and done
	// the newest one every page freed up to which has been overwritten.
	wanted, done uint64
	// pending counts the erasures committed by each transaction that are
	// not served yet.
	pending map[uint64]int
	running bool          // a goroutine is running scrubs
	wake    chan struct{} // closed and replaced after every scrub
	failure error         // why the last scrub did not finish; nil after one that did
	seq     uint64        // numbers scratch buckets

	// others is how many pages a fill transaction writes besides its
	// scratch pages (the root bucket's and the freelist's), as the last
	// fill measured; only the goroutine running scrubs uses it.
	others atomic.Int64
	// dropPages is how many pages deleting the scratch buckets writes, as
	// last measured.
	dropPages atomic.Int64
	// closing is closed by Close, to stop a scrub waiting to retry.
	closing chan struct{}
}

func newScrubber() *scrubber {
	sc := &scrubber{pending: make(map[uint64]int), wake: make(chan struct{}), closing: make(chan struct{})}
	sc.others.Store(2)
	sc.dropPages.Store(2)
	return sc
}

// erasure identifies committed erasures for their scrub.
type erasure struct {
	epoch uint64 // the file's epoch
	txid  uint64 // the bbolt transaction that committed them
	count int    // how many referrals they erased
}

// erasureIn returns the erasure the write transaction tx commits; the
// store's lock is held, so the epoch cannot change.
func (s *Store) erasureIn(tx kv.Tx, count int) erasure {
	btx := kv.BoltTx(tx)
	if btx == nil {
		return erasure{count: count} // not a bbolt file: nothing to scrub
	}
	s.scrub.mu.Lock()
	defer s.scrub.mu.Unlock()
	return erasure{epoch: s.scrub.epoch, txid: uint64(btx.ID()), count: count}
}

// awaitScrub registers committed erasures and waits until a scrub has
// overwritten every page they freed. If that does not happen within
// Options.ScrubWait, or before ctx ends, it returns KindUnavailable saying
// what was done and what follows: the scrub goes on by itself.
func (s *Store) awaitScrub(ctx context.Context, e erasure, what string) error {
	if s.etcd != nil {
		return s.compactErased(ctx, what)
	}
	sc := s.scrub
	sc.mu.Lock()
	if e.epoch != sc.epoch {
		sc.mu.Unlock()
		return nil
	}
	sc.pending[e.txid] += e.count
	sc.wanted = max(sc.wanted, e.txid)
	if !sc.running {
		sc.running = true
		go s.runScrubs()
	}
	sc.mu.Unlock()
	timer := time.NewTimer(s.opt.ScrubWait)
	defer timer.Stop()
	for {
		sc.mu.Lock()
		if e.epoch != sc.epoch || sc.done >= e.txid {
			sc.mu.Unlock()
			return nil
		}
		wake, failure := sc.wake, sc.failure
		sc.mu.Unlock()
		select {
		case <-wake:
			continue
		case <-ctx.Done():
		case <-timer.C:
		}
		return scrubPending(what, failure)
	}
}

// scrubPending is the error of an erasure whose scrub has not finished.
func scrubPending(what string, failure error) error {
	msg := what + " erased and no longer readable through the exchange, but the file still holds freed pages with them: "
	if failure == nil || KindOf(failure) == KindUnavailable {
		msg += "a read that began before the erasure (a backup, say) is still running and may read those pages; the exchange overwrites them as soon as it ends, with no further call"
	} else {
		msg += "the exchange could not overwrite them yet and tries again by itself (exchange_store_unscrubbed_erasures counts the erasures waiting)"
	}
	return &Error{Kind: KindUnavailable, Message: msg, Err: failure}
}

// runScrubs runs scrubs until every registered erasure is served. After a
// scrub that could not finish it waits, longer each time up to a minute,
// and tries again; it stops when the store closes.
func (s *Store) runScrubs() {
	sc := s.scrub
	retry := 100 * time.Millisecond
	for {
		sc.mu.Lock()
		epoch, target := sc.epoch, sc.wanted
		if sc.done >= target {
			sc.running = false
			sc.mu.Unlock()
			return
		}
		sc.mu.Unlock()
		start := time.Now()
		pages, err := s.scrubThrough(epoch, target)
		// Observed before the erasures waiting for it are answered, so
		// that what an answered erasure reads in the metrics includes it.
		if o, ok := s.observer.(ScrubObserver); ok {
			o.ObserveScrub(time.Since(start), pages, err)
		}
		sc.mu.Lock()
		if epoch == sc.epoch {
			if err == nil {
				sc.done = max(sc.done, target)
				for txid := range sc.pending {
					if txid <= target {
						delete(sc.pending, txid)
					}
				}
			}
			sc.failure = err
		}
		close(sc.wake)
		sc.wake = make(chan struct{})
		sc.mu.Unlock()
		if err == nil {
			retry = 100 * time.Millisecond
			continue
		}
		if KindOf(err) == KindClosed {
			sc.stop()
			return
		}
		select {
		case <-sc.closing:
			sc.stop()
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, time.Minute)
	}
}

// stop records that no goroutine runs scrubs any more.
func (sc *scrubber) stop() {
	sc.mu.Lock()
	sc.running = false
	sc.mu.Unlock()
}

// newEpoch records that the file was replaced by one without freed pages
// (Vacuum): every erasure registered so far is served.
func (sc *scrubber) newEpoch() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.epoch++
	sc.wanted, sc.done, sc.failure = 0, 0, nil
	clear(sc.pending)
	close(sc.wake)
	sc.wake = make(chan struct{})
}

// unscrubbed returns how many committed erasures still wait for their
// scrub.
func (sc *scrubber) unscrubbed() int64 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var n int64
	for _, c := range sc.pending {
		n += int64(c)
	}
	return n
}

// ScrubObserver is an Observer that also receives the store's scrubs of
// freed pages after erasures (scrub.go). The store calls ObserveScrub
// if its Observer implements it.
type ScrubObserver interface {
	// ObserveScrub reports one scrub: how long it took, how many pages it
	// wrote, and nil if it overwrote every page freed before the erasures
	// it served, or why not.
	ObserveScrub(took time.Duration, pages int, err error)
}

// scrubThrough overwrites every free page that a transaction up to target
// freed (see the top of this file), and returns how many pages it wrote.
// The fills and the deletion of their scratch buckets run while no other
// write commits: a write between them would find no free page (the
// scratch buckets hold them all) and grow the file.
func (s *Store) scrubThrough(epoch, target uint64) (written int, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, errClosed()
	}
	s.scrub.mu.Lock()
	vacuumed := epoch != s.scrub.epoch
	s.scrub.mu.Unlock()
	if vacuumed {
		return 0, nil
	}
	// The fills leave free the pages that deleting the scratch buckets
	// will take, and a pinned read keeps the pages the fills free from
	// being handed to it instead (see dropScratch).
	reserve := int(s.scrub.dropPages.Load())
	// A fill that begins while no read is open finds every pending page
	// released, the target's included: nothing to wait for.
	done := false
	err = s.commits.Exclusive(func() error {
		f, err := s.fillOnce(quietTries, false, reserve)
		switch {
		case errors.Is(err, errNotQuiet):
			return nil
		case errors.Is(err, errNothingFree):
			done = true
			return nil
		}
		done = true
		written, err = s.finishScrub(f, err, reserve, false, s.pinRead())
		return err
	})
	if done || err != nil {
		return written, err
	}
	// Reads are open. Make sure a commit later than the target exists, so
	// that reads beginning from now on cannot see what it freed, and wait
	// for the reads that may.
	deadline := time.Now().Add(s.opt.ScrubWait)
	var committed uint64
	if err := s.read(func(tx *bolt.Tx) error { committed = uint64(tx.ID()); return nil }); err != nil {
		return 0, storeError(err)
	}
	if committed <= target {
		if err := s.db.Update(func(*bolt.Tx) error { return nil }); err != nil {
			return 0, internal("cannot commit after the erasure", err)
		}
	}
	if !s.readers.waitPast(target, deadline) {
		return 0, &Error{Kind: KindUnavailable, Message: fmt.Sprintf(
			"a read transaction that began before transaction %d is still open after %s", target, s.opt.ScrubWait)}
	}
	err = s.commits.Exclusive(func() error {
		pin := s.pinRead() // it reads a transaction after the target
		reserve++          // the empty commit after the deletion, see dropScratch
		f, err := s.fillOnce(fewQuietTries, true, reserve)
		written, err = s.finishScrub(f, err, reserve, true, pin)
		return err
	})
	return written, err
}

// finishScrub follows the scrub's first fill f (or its error): more fills
// until no more than reserve pages are free, then the deletion of the
// scratch buckets, which ends pin, and, if the deletion did not take all
// the pages left for it, a fill that leaves none and a deletion again.
// busy tells whether reads were open. It returns how many pages it wrote.
func (s *Store) finishScrub(f fill, err error, reserve int, busy bool, pin *pinnedRead) (written int, _ error) {
	defer func() { pin.end() }()
	for {
		maxRounds := 8 + f.left/maxFillPages // a large file takes a fill per maxFillPages
		for round := 1; err == nil && f.left > f.reserve; round++ {
			if round == maxRounds {
				err = internal(fmt.Sprintf("%d free pages remain after %d fills", f.left, round), nil)
				break
			}
			written += f.pages
			f, err = s.fillOnce(fewQuietTries, true, reserve)
		}
		reserve = f.reserve
		written += f.pages
		if err != nil && !errors.Is(err, errNothingFree) {
			pin.end()
			s.dropScratch(busy, nil) // if this fails too, the next scrub or Open deletes them
			return written, err
		}
		var left int
		left, err = s.dropScratch(busy, pin)
		pin = nil
		if err != nil || left == 0 || reserve == 0 {
			return written, err
		}
		// The pages left for the deletion were not all it took (a write
		// came between, or the freelist needed pages in a row): fill
		// again, leaving nothing; the deletion then takes pages past the
		// end of the file.
		reserve = 0
		f, err = s.fillOnce(fewQuietTries, true, 0)
	}
}

// pinnedRead is a read transaction the scrub keeps open: while it is open,
// bbolt hands out no page freed by a transaction after it began.
type pinnedRead struct {
	release chan struct{}
	ended   chan struct{}
}

// pinRead opens a pinned read of the last commit.
func (s *Store) pinRead() *pinnedRead {
	p := &pinnedRead{release: make(chan struct{}), ended: make(chan struct{})}
	began := make(chan struct{})
	go func() {
		defer close(p.ended)
		s.read(func(*bolt.Tx) error {
			close(began)
			<-p.release
			return nil
		})
	}()
	<-began
	return p
}

// end ends the pinned read, if any.
func (p *pinnedRead) end() {
	if p == nil {
		return
	}
	select {
	case <-p.release:
	default:
		close(p.release)
	}
	<-p.ended
}

// dropScratch deletes the scratch buckets, whose pages (zeros) are then
// free for the next writes, ends pin, and returns how many pages were left
// free when it ended.
//
// The fills left free the pages the deletion takes (its root bucket and
// freelist pages), and pin, begun before the deletion, keeps bbolt from
// handing it the pages the fills freed instead: so the deletion ends with
// no page free, unless a write came between or its freelist needed pages
// in a row. Reads that begin right after the deletion would keep bbolt
// from handing out the pages it freed (bbolt cannot know that they never
// read them), and the writes meanwhile would grow the file instead of
// using them: so when reads are open (busy), an empty commit follows
// (taking one more page left for it), from which new reads begin, and
// dropScratch waits briefly for the reads begun before it.
func (s *Store) dropScratch(busy bool, pin *pinnedRead) (left int, err error) {
	var dropped uint64
	err = s.db.Update(func(tx *bolt.Tx) error {
		n, err := dropScratchBuckets(tx)
		if err != nil {
			return err
		}
		dropped = uint64(tx.ID())
		s.size.Store(tx.Size())
		tx.OnCommit(func() {
			if n > 0 {
				stats := tx.Stats()
				s.scrub.dropPages.Store(max(stats.GetPageCount(), 1))
			}
			left = s.db.Stats().FreePageN
		})
		return nil
	})
	if err != nil {
		pin.end()
		return 0, internal("cannot delete the scrub's scratch buckets", err)
	}
	if busy {
		err = s.db.Update(func(tx *bolt.Tx) error {
			tx.OnCommit(func() { left = s.db.Stats().FreePageN })
			return nil
		})
	}
	pin.end()
	if err != nil {
		return 0, internal("cannot commit after deleting the scratch buckets", err)
	}
	if !s.readers.waitPast(dropped, time.Now()) {
		if !busy {
			if err := s.db.Update(func(*bolt.Tx) error { return nil }); err != nil {
				return 0, internal("cannot commit after deleting the scratch buckets", err)
			}
		}
		s.readers.waitPast(dropped, time.Now().Add(min(s.opt.ScrubWait, 100*time.Millisecond)))
	}
	return left, nil
}

// fill is what one fill transaction did.
type fill struct {
	pages   int // pages it wrote
	left    int // pages still free as it ended
	reserve int // of which it meant to leave this many for the deletion
}

// fillOnce runs one fill transaction, which leaves reserve pages free. It
// tries to begin it while no read is open, tries times: then bbolt has
// released every pending page and the count of free pages is exact (free
// and pending pages as the last write left them). If a read was open each
// time, it returns errNotQuiet, or, if inexact is allowed, fills the pages
// that were free before it began (pages released as it began are left;
// the next fill takes them), or, if there were none, commits nothing but
// a new freelist, so that what bbolt released shows as free.
func (s *Store) fillOnce(tries int, inexact bool, reserve int) (fill, error) {
	pageSize := s.db.Info().PageSize
	for try := 0; ; try++ {
		idle, started := s.readers.quiet()
		var f fill
		err := s.db.Update(func(tx *bolt.Tx) error {
			exact := idle && s.readers.startedCount() == started
			if !exact && (try < tries || !inexact) {
				return errNotQuiet
			}
			st := s.db.Stats()
			budget := st.FreePageN
			if exact {
				budget += st.PendingPageN
			}
			switch {
			case budget == 0 && exact:
				return errNothingFree
			case budget <= reserve && !exact:
				return errNoFill // the pages bbolt released as this began show once it ends
			case budget <= reserve:
				reserve = 0 // too few pages to leave some: take them all, and a few more
			}
			f.reserve = reserve
			leaves := scratchLeavesFor(budget-reserve-int(s.scrub.others.Load()), pageSize)
			s.scrub.mu.Lock()
			s.scrub.seq++
			name := []byte(scratchPrefix + strconv.FormatUint(s.scrub.seq, 10))
			s.scrub.mu.Unlock()
			b, err := tx.CreateBucket(name)
			if err != nil {
				return err
			}
			b.FillPercent = 1.0
			zeros := make([]byte, scratchValueSize(pageSize))
			for i := range leaves * scratchItemsPerPage {
				if err := b.Put(u64(uint64(i)), zeros); err != nil {
					return err
				}
			}
			tx.OnCommit(func() {
				stats := tx.Stats()
				f.pages = int(stats.GetPageCount())
				f.left = s.db.Stats().FreePageN
				s.scrub.others.Store(max(int64(f.pages-scratchPages(leaves, pageSize)), 1))
			})
			return nil
		})
		if errors.Is(err, errNotQuiet) && try < tries {
			time.Sleep(time.Duration(try+1) * 50 * time.Microsecond)
			continue
		}
		if errors.Is(err, errNoFill) {
			return fill{left: s.db.Stats().FreePageN, reserve: reserve}, nil
		}
		if err != nil && !errors.Is(err, errNotQuiet) && !errors.Is(err, errNothingFree) {
			err = internal("cannot fill the free pages", err)
		}
		return f, err
	}
}

// scratchValueSize is the size of a scratch value: scratchItemsPerPage of
// them, with their 8-byte keys and bbolt's 16-byte element headers, fill a
// page after its 16-byte header.
func scratchValueSize(pageSize int) int {
	return (pageSize-16)/scratchItemsPerPage - 16 - 8
}

// scratchPages is how many pages a new scratch bucket of the given leaves
// takes: the leaves and the branch pages above them (a branch element is
// 16 bytes and an 8-byte key).
func scratchPages(leaves, pageSize int) int {
	perBranch := (pageSize - 16) / 24
	total := leaves
	for n := leaves; n > 1; {
		n = (n + perBranch - 1) / perBranch
		total += n
	}
	return total
}

// scratchLeavesFor returns the most leaves (at least 1, at most
// maxFillPages) whose scratch bucket takes no more than budget pages.
func scratchLeavesFor(budget, pageSize int) int {
	leaves := min(max(budget, 1), maxFillPages)
	for leaves > 1 && scratchPages(leaves, pageSize) > budget {
		leaves--
	}
	return leaves
}

// dropScratchBuckets deletes every scratch bucket and returns how many
// there were.
func dropScratchBuckets(tx *bolt.Tx) (int, error) {
	var names [][]byte
	err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if isScratchBucket(name) {
			names = append(names, bytes.Clone(name))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, name := range names {
		if err := tx.DeleteBucket(name); err != nil {
			return 0, err
		}
	}
	return len(names), nil
}

// scrubAll overwrites every free page of the file now, as the scrub after
// an erasure does, and returns how many pages it wrote. Open runs it on a
// file it did not create.
func (s *Store) scrubAll() (int, error) {
	var committed uint64
	if err := s.read(func(tx *bolt.Tx) error { committed = uint64(tx.ID()); return nil }); err != nil {
		return 0, storeError(err)
	}
	s.scrub.mu.Lock()
	epoch := s.scrub.epoch
	s.scrub.mu.Unlock()
	return s.scrubThrough(epoch, committed)
}
