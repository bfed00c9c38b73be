package store

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// The size quota (Options.MaxSize) bounds the database FILE, not the data
// in it. It used to compare bbolt's data size (tx.Size(), the pages up to
// the last one used) with the limit after each commit, while bbolt grows
// the file ahead of the data: with the store's 1 GiB InitialMmapSize,
// every growth adds AllocSize (16 MiB by default) past the last page, so a
// 32 MiB quota ended with a 48 MiB file. It also refused every write at
// the limit, including the audit entry that a read of identifying details
// must write, so reads of details stopped although reads were said to go
// on.
//
// Now bbolt itself enforces the bound: bbolt refuses to allocate a page
// at the end of the file when the file, grown by AllocSize past that
// page, would pass DB.MaxSize (bbolt v1.5.0, DB.allocate and DB.grow), and
// the transaction fails without changing anything. The store sets both
// fields: AllocSize to a 64th of the quota (4 pages at least, bbolt's 16
// MiB at most), so that growth steps are small next to the quota, and
// MaxSize per write transaction, before it commits:
//
//   - to MaxSize − reserve for a transaction of ordinary writes;
//   - to MaxSize itself when the transaction carries a write that may use
//     the reserve: the audit entry of a read of identifying details
//     (RecordRead) and an erasure of identifying details, which frees
//     more than it writes.
//
// The reserve is a 16th of the quota, and at least two growth steps.
// Change-log compaction (which frees data) and the store's own
// bookkeeping run with the whole quota as well. So the file never grows
// past MaxSize; ordinary writes stop where the reserve begins; audited
// reads and erasures go on in the reserve.
//
// Before an ordinary write queues for its commit, update also refuses it
// at once when the pages in use (the file's pages less the free ones, as
// measured after the last commit) leave no room below the reserve, or
// have not dropped since bbolt last refused a transaction: the same
// answer, without a transaction, so that a flood of writes at the quota
// does not hold up the audited reads.

// quota is the size quota of a store; the zero value is no quota.
type quota struct {
	max     int64 // bytes the file may never pass; 0: no quota
	reserve int64 // the last bytes below max that only reserved writes may use
	alloc   int   // bbolt's AllocSize: how much the file grows at a time
}

// newQuota returns the quota of size bytes for a database of
// pageSize-byte pages.
func newQuota(size int64, pageSize int) quota {
	if size <= 0 {
		return quota{}
	}
	page := int64(pageSize)
	alloc := min(max(size/64/page*page, 4*page), 16<<20)
	reserve := max(size/16/page*page, 2*alloc)
	return quota{max: size, reserve: reserve, alloc: int(alloc)}
}

// limit is the DB.MaxSize for a transaction: the whole quota when it
// carries a write that may use the reserve, the quota less the reserve
// otherwise.
func (q quota) limit(reserved bool) int {
	if q.max == 0 || reserved {
		return int(q.max)
	}
	return int(q.max - q.reserve)
}

// apply sets db's growth step and the limit for the transaction about to
// commit; it runs inside the write transaction, which alone reads them.
func (q quota) apply(db *bolt.DB, reserved bool) {
	if q.max == 0 {
		return
	}
	db.AllocSize = q.alloc
	db.MaxSize = q.limit(reserved)
}

// refusesOrdinary reports whether an ordinary write must be refused at
// once, without a transaction: inUse, the bytes of the pages in use,
// leaves less than one growth step below the reserve, or has not dropped
// since bbolt last refused a transaction at refusedAt bytes in use (0 for
// never). The second rule matters more: free pages are scattered, and
// bbolt needs a run of them for the freelist and for large nodes, so it
// refuses while some free pages are left; a refusal stands until space
// is freed (an erasure, a compaction).
func (q quota) refusesOrdinary(inUse, refusedAt int64) bool {
	return q.max > 0 && (inUse+int64(q.alloc) > int64(q.limit(false)) || refusedAt > 0 && inUse >= refusedAt)
}

// exhausted is the error of a write refused by the quota; reserved tells
// whether the write could use the reserve (and so found it used up).
func (q quota) exhausted(reserved bool) error {
	if reserved {
		return &Error{Kind: KindResourceExhausted, Message: fmt.Sprintf(
			"the database has reached its size limit (%d bytes), including the reserve kept for audited reads and erasures: "+
				"writes, and reads of identifying details (each needs room for its audit entry), are refused; "+
				"the secretariat must raise --max-db-size or archive data", q.max)}
	}
	return &Error{Kind: KindResourceExhausted, Message: fmt.Sprintf(
		"the database has reached its size limit (%d bytes, of which the last %d are kept for audited reads and erasures): "+
			"writes are refused, reads go on; the secretariat must raise --max-db-size or archive data", q.max, q.reserve)}
}

// inUse returns the bytes of the pages tx's database uses: up to the last
// page, less the free ones (pages freed but still held for older readers
// count as used). It runs in a transaction that has closed its writes or
// only reads.
func inUse(db *bolt.DB, tx *bolt.Tx) int64 {
	return tx.Size() - int64(db.Stats().FreePageN)*int64(db.Info().PageSize)
}

// measure records the pages in use after a commit, for refusesOrdinary,
// and forgets the last refusal once space was freed below it.
func (s *Store) measure() {
	_ = s.db.View(func(tx *bolt.Tx) error {
		used := inUse(s.db, tx)
		s.size.Store(used)
		if at := s.refusedAt.Load(); at > 0 && used < at {
			s.refusedAt.CompareAndSwap(at, 0)
		}
		return nil
	})
}

// errDiskFull is what a write that failed because the file system is full
// (or the data directory's owner is over its disk quota) answers: nothing
// of it was stored, and the cause says what to do.
func errDiskFull(cause error) error {
	return &Error{Kind: KindResourceExhausted, Err: cause, Message: "the exchange's disk is full: " +
		"writes, and reads of identifying details (each needs room for its audit entry), are refused until the secretariat frees space in the data directory; " +
		"nothing of this request was stored"}
}

// isDiskFull tells whether err comes from a full file system or a disk
// quota: ENOSPC or EDQUOT from writing or syncing the file. bbolt wraps
// some causes with %s (when it grows the file), which keeps only their
// text, so the text is checked too.
func isDiskFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EDQUOT.Error())
}
