package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/alltogether/exchange/store/groupcommit"
	"github.com/alltogether/exchange/store/kv"
	"github.com/alltogether/exchange/store/kv/etcdkv"
)

// Options tune how the database is opened. The zero value gives the
// defaults described on each field.
type Options struct {
	// LockTimeout bounds the wait for the file lock held by another process
	// using the same database; default 1s. A second server on the same data
	// directory then fails fast instead of hanging.
	LockTimeout time.Duration
	// MaxBatchSize is the most concurrent writes committed together in one
	// transaction (group commit); default 256.
	MaxBatchSize int
	// MaxBatchDelay is how long each commit waits for more writes to share
	// it before it starts; default 0: a commit starts as soon as the one
	// before it ends, and the writes that arrived meanwhile share it.
	// Tests set it to hold writes in a batch.
	MaxBatchDelay time.Duration
	// Now returns the current time; default time.Now. Tests set it.
	Now func() time.Time
	// MaxSize bounds the database file, in bytes: the file never grows
	// past it. Ordinary writes are refused with KindResourceExhausted when
	// the file would grow into the last 16th of it (the reserve, at least
	// two growth steps); the audit entries of reads of identifying details
	// and erasures may use the reserve, so that reads of details go on
	// (quota.go). 0 means no limit; otherwise at least MinMaxSize.
	MaxSize int64
	// CheckOnOpen walks every page of the database before Open returns and
	// refuses a damaged file. It reads the whole file once.
	CheckOnOpen bool
	// Observer receives the store's measurements; nil for none.
	Observer Observer
	// ReadOnly opens the file for reading only (a backup being verified):
	// nothing is created or migrated, writes fail, and other readers may
	// hold it too.
	ReadOnly bool
	// ScrubWait bounds how long an erasure waits for read transactions
	// that began before it (a backup, say) to end, so that the pages it
	// freed can be overwritten (scrub.go); default 30s. Past it the
	// erasure answers KindUnavailable, and the pages are overwritten as
	// soon as those reads end.
	ScrubWait time.Duration
}

// Observer receives measurements of the store's writes, for metrics. Its
// methods must be quick and safe for concurrent use.
type Observer interface {
	// ObserveWrite reports one write: how long it took from the call to
	// its durable commit, and whether it committed.
	ObserveWrite(wait time.Duration, committed bool)
	// ObserveCommit reports one commit and how many writes shared it.
	ObserveCommit(writes int)
}

// Store is the exchange's database. It is safe for concurrent use. Writes
// are acknowledged only after their transaction is durably committed
// (fsync); concurrent writers share commits.
type Store struct {
	db      *bolt.DB
	commits *groupcommit.Committer // group commit of writes to db
	opt     Options                // as opened, to reopen after Vacuum
	now     func() time.Time
	// mu is held for reading by every call and for writing by Close, so
	// that Close waits for the calls in flight (including writes still
	// waiting for their batch) and later calls see closed.
	mu       sync.RWMutex
	closed   bool         // guarded by mu
	revision atomic.Int64 // last committed revision, for readers

	notifyMu sync.Mutex
	changed  chan struct{} // closed and replaced at every commit with changes; guarded by notifyMu

	maxSize int64
	quota   quota        // maxSize, as the limits of each write transaction
	size    atomic.Int64 // the bytes of the pages in use after the last commit; see quota.go
	// refusedAt is size when the quota last refused a transaction; until
	// space is freed below it, ordinary writes are refused at once.
	refusedAt atomic.Int64

	// directoryGeneration counts the commits that changed an agency or a
	// certificate; callers caches LookupCaller results by it (serial ∅
	// agency id → cachedCaller), cachedCallers counts its stores.
	directoryGeneration atomic.Uint64
	callers             sync.Map
	cachedCallers       atomic.Int64

	observer Observer
	batch    *batchState // the write transaction being filled; only touched inside it

	clock *revisionClock // hands out revisions and safe revisions (revision.go)

	pageSecret []byte    // metaPageSecret, read at open
	readers    *readers  // the open read transactions (readers.go)
	scrub      *scrubber // the scrubs of freed pages after erasures (scrub.go)

	// On an etcd cluster (OpenEtcd), db is nil and these are set.
	etcd       *etcdkv.DB
	etcdClient *clientv3.Client
	etcdStop   context.CancelFunc // stops following the cluster
	etcdWhere  string             // the endpoints and prefix, for messages
	etcdPrefix string             // the prefix of the exchange's keys
	etcdMaxOps int                // the cluster's --max-txn-ops
}

// batchState is what the functions sharing one write transaction tell its
// commit hook. The functions of a transaction and its commit run in one
// goroutine, one after another.
type batchState struct {
	tx        kv.Tx
	last      int64 // the highest revision recorded so far
	directory bool  // an agency or a certificate changed
	writes    int   // functions run so far
	reserved  bool  // a write that may use the quota's reserve is in it
}

// Op describes who makes a change and through which method, for the audit
// chain and for idempotency.
type Op struct {
	// Actor is the caller: "agencies/{agency}", "secretariat" or "exchange".
	Actor string
	// Method is the full gRPC method name, or a name for internal changes.
	Method string
	// RequestID is the caller's idempotency key on create-like calls; empty
	// for none.
	RequestID string
	// ActorCertificate is the serial (lowercase hex) of the client
	// certificate the caller presented; empty for the exchange's own
	// changes. Every audit entry the write appends records it.
	ActorCertificate string
	// Reason is why, as a short code (never free text: it goes into the
	// audit chain), for changes that carry one, such as an erasure's
	// "person-request"; empty for none. Every audit entry the write
	// appends records it.
	Reason string
}

// ErasureRetention is the Op.Reason of the erasures the retention job
// makes.
const ErasureRetention = "retention"

// Open opens (creating if needed) the database file at path with mode
// 0600, creates missing buckets and checks the schema version. A database
// locked by another process fails after opt.LockTimeout with
// KindFailedPrecondition; one written by a newer schema also fails with
// KindFailedPrecondition, and one written by an older schema is brought up
// to date (unless opened read-only). The package documentation explains
// the bbolt options Open chooses.
func Open(path string, opt Options) (*Store, error) {
	if opt.LockTimeout == 0 {
		opt.LockTimeout = time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxSize != 0 && opt.MaxSize < MinMaxSize {
		return nil, &Error{Kind: KindInvalidArgument, Field: "max_size", Message: fmt.Sprintf(
			"a size limit of %d bytes cannot hold an empty exchange: set at least %d bytes, or 0 for none", opt.MaxSize, MinMaxSize)}
	}
	if opt.ScrubWait == 0 {
		opt.ScrubWait = 30 * time.Second
	}
	_, statErr := os.Stat(path)
	existed := statErr == nil
	db, err := openBolt(path, opt)
	if err != nil {
		var damaged *damagedFileError
		if errors.As(err, &damaged) {
			return nil, &Error{Kind: KindFailedPrecondition, Message: fmt.Sprintf(
				"database %s is damaged (%v): do not serve it; restore the last backup with `exchanged restore --from BACKUP`", path, damaged.cause), Err: err}
		}
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &Error{Kind: KindFailedPrecondition, Message: fmt.Sprintf(
				"database %s is locked by another process (is another exchanged running on this data directory?)", path)}
		}
		return nil, &Error{Kind: KindInternal, Message: fmt.Sprintf(
			"cannot open database %s (if it is damaged, restore it from a backup)", path), Err: err}
	}
	if !opt.ReadOnly {
		if err := os.Chmod(path, 0o600); err != nil {
			db.Close()
			return nil, internal("cannot set database file mode", err)
		}
	}
	s := &Store{db: db, commits: newCommitter(db, opt), opt: opt, now: opt.Now, changed: make(chan struct{}), maxSize: opt.MaxSize,
		quota: newQuota(opt.MaxSize, db.Info().PageSize), observer: opt.Observer, clock: &revisionClock{now: opt.Now},
		readers: newReaders(), scrub: newScrubber()}
	// Until a write transaction sets its own limit, the file may grow to
	// the whole quota (opening, migrating and compacting only free or
	// bring the schema up to date).
	s.quota.apply(db, true)
	if opt.CheckOnOpen {
		if err := s.check(); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := refuseDamaged(path, func() error { return s.init(opt.ReadOnly) }); err != nil {
		db.Close()
		return nil, storeError(err)
	}
	if existed && !opt.ReadOnly {
		// Pages freed by a process that stopped before its scrub, or by a
		// version that did not scrub, may still hold erased details.
		if err := refuseDamaged(path, func() error { _, err := s.scrubAll(); return err }); err != nil {
			db.Close()
			return nil, err
		}
	}
	return s, nil
}

// MinMaxSize is the smallest size limit Options.MaxSize takes: an empty
// exchange, its reserve and two growth steps of the file.
const MinMaxSize = 128 << 10

// init creates missing buckets, records or checks the schema version
// (bringing an older database up to date), and loads the revision.
// Read-only, it only checks and loads.
func (s *Store) init(readOnly bool) error {
	if readOnly {
		return s.read(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta == nil || meta.Get(metaSchemaVersion) == nil {
				return &Error{Kind: KindFailedPrecondition, Message: s.db.Path() + " is not an exchange database"}
			}
			if got := binary.BigEndian.Uint64(meta.Get(metaSchemaVersion)); got > schemaVersion {
				return &Error{Kind: KindFailedPrecondition, Message: fmt.Sprintf(
					"database schema version %d is newer than this program understands (%d)", got, schemaVersion)}
			}
			if err := refuseServerHeldKeys(tx, s.db.Path()); err != nil {
				return err
			}
			s.revision.Store(readRevision(kv.Bolt(tx)))
			s.size.Store(inUse(s.db, tx))
			return nil
		})
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return internal("cannot create bucket "+string(name), err)
			}
		}
		if _, err := dropScratchBuckets(tx); err != nil { // left by a scrub that stopped half-way
			return internal("cannot delete the scratch buckets of an interrupted scrub", err)
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(metaSchemaVersion); v == nil {
			if err := meta.Put(metaSchemaVersion, u64(schemaVersion)); err != nil {
				return internal("cannot write schema version", err)
			}
		} else if got := binary.BigEndian.Uint64(v); got > schemaVersion {
			return &Error{Kind: KindFailedPrecondition, Message: fmt.Sprintf(
				"database schema version %d is newer than this exchanged understands (%d): upgrade exchanged", got, schemaVersion)}
		} else if got < schemaVersion {
			if err := refuseServerHeldKeys(tx, s.db.Path()); err != nil {
				return err
			}
			if err := migrate(tx, got); err != nil {
				return err
			}
			if err := meta.Put(metaSchemaVersion, u64(schemaVersion)); err != nil {
				return internal("cannot write schema version", err)
			}
		}
		if meta.Get(metaPageSecret) == nil {
			secret := make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return internal("cannot make the page secret", err)
			}
			if err := meta.Put(metaPageSecret, secret); err != nil {
				return internal("cannot write the page secret", err)
			}
		}
		s.pageSecret = bytes.Clone(meta.Get(metaPageSecret))
		s.revision.Store(readRevision(kv.Bolt(tx)))
		return nil
	})
	if err == nil {
		s.measure()
	}
	return err
}

// PageSecret returns a random 32-byte key kept in the database, for
// sealing page tokens whose positions would otherwise tell a caller how
// much others did (an audit sequence number, say). It is the same after a
// restart, so such tokens stay valid; nil for a store opened read-only.
func (s *Store) PageSecret() []byte { return bytes.Clone(s.pageSecret) }

// Close closes the database. Calls in flight finish first; later calls
// fail with KindClosed. Closing a closed store does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.scrub.closing)
	if s.etcd != nil {
		s.etcdStop()
		if err := s.etcdClient.Close(); err != nil && !errors.Is(err, context.Canceled) {
			return internal("cannot close the connection to etcd", err)
		}
		return nil
	}
	if err := s.db.Close(); err != nil {
		return internal("cannot close the database", err)
	}
	return nil
}

// Revision returns the last committed revision.
func (s *Store) Revision() int64 { return s.revision.Load() }

// Path returns the database file's path, or the etcd endpoints and
// prefix of a store on etcd.
func (s *Store) Path() string {
	if s.etcd != nil {
		return s.etcdWhere
	}
	return s.db.Path()
}

// OnEtcd reports whether the store lives on an etcd cluster.
func (s *Store) OnEtcd() bool { return s.etcd != nil }

func readRevision(tx kv.Tx) int64 {
	v := tx.Bucket(bucketMeta).Get(metaRevision)
	if v == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(tx kv.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.etcd != nil {
		return storeError(s.etcd.View(ctx, fn))
	}
	return storeError(s.read(func(tx *bolt.Tx) error { return fn(kv.Bolt(tx)) }))
}

// viewBolt runs fn in a read transaction of the bbolt file, for what only
// bbolt has (its pages, its file).
func (s *Store) viewBolt(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return s.view(ctx, func(tx kv.Tx) error { return fn(kv.BoltTx(tx)) })
}

// updateAlone runs fn in a write transaction of its own, outside group
// commit, for maintenance that commits in chunks (compaction). It records
// no revision: fn must not record changes.
func (s *Store) updateAlone(fn func(tx kv.Tx) error) error {
	if s.etcd != nil {
		return s.etcd.Update(context.Background(), fn)
	}
	return kv.BoltUpdate(s.db)(func(tx kv.Tx) error {
		s.quota.apply(kv.BoltTx(tx).DB(), true) // maintenance frees space: the reserve is its to use
		return fn(tx)
	})
}

// update runs fn in a write transaction shared with concurrent writers
// (group commit) and returns once the transaction is durably committed and
// its revisions published. fn may run more than once (the group committer
// runs the others again when one fails), so it must keep its results only
// in variables it sets afresh on each run. Under a size quota the write
// may not grow the file into the reserve (quota.go).
func (s *Store) update(ctx context.Context, op Op, fn func(w *writeTx) error) error {
	return s.write(ctx, op, false, fn)
}

// updateUsingReserve is update for the writes the quota's reserve is kept
// for: the audit entry of a read of identifying details, without which
// the read cannot be answered, and an erasure, which frees more than it
// writes.
func (s *Store) updateUsingReserve(ctx context.Context, op Op, fn func(w *writeTx) error) error {
	return s.write(ctx, op, true, fn)
}

// write is update; reserved lets the write use the quota's reserve.
func (s *Store) write(ctx context.Context, op Op, reserved bool, fn func(w *writeTx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !reserved && s.quota.refusesOrdinary(s.size.Load(), s.refusedAt.Load()) {
		return s.quota.exhausted(false)
	}
	start := time.Now()
	batch := s.commits.Do
	if ackBeforeCommit {
		batch = s.batchAckingEarly // a planted fault, only in test builds (fault.go)
	}
	err := batch(func(tx kv.Tx) error {
		b := s.joinBatch(tx)
		b.reserved = b.reserved || reserved
		if btx := kv.BoltTx(tx); btx != nil {
			s.quota.apply(btx.DB(), b.reserved)
		}
		w := &writeTx{tx: tx, op: op, now: s.now().UTC(), clock: s.clock}
		if err := fn(w); err != nil {
			return err
		}
		if err := w.flush(); err != nil {
			return err
		}
		if fault := commitFault.Load(); fault != nil {
			if err := (*fault)(); err != nil {
				return err
			}
		}
		b.last = max(b.last, w.last)
		b.directory = b.directory || w.directory
		return nil
	})
	if s.observer != nil {
		s.observer.ObserveWrite(time.Since(start), err == nil)
	}
	if errors.Is(err, berrors.ErrMaxSizeReached) {
		s.refusedAt.Store(s.size.Load())
		return s.quota.exhausted(reserved)
	}
	return storeError(err)
}

// published makes the revisions a commit recorded, up to last, visible to
// readers and wakes the watchers, once per commit however many writes
// shared it; if the commit changed the directory, it also advances the
// directory generation, which retires every cached LookupCaller result. It
// runs as the commit's hook, after the data is durable and visible to new
// read transactions and before any of its writers is answered.
func (s *Store) published(last int64, directory bool) {
	if directory {
		s.directoryGeneration.Add(1)
	}
	if last == 0 {
		return // the commit recorded no change
	}
	s.advance(last)
	s.broadcast()
}

// advance raises the published revision to rev, and reports whether it
// was below.
func (s *Store) advance(rev int64) bool {
	for {
		cur := s.revision.Load()
		if rev <= cur {
			return false
		}
		if s.revision.CompareAndSwap(cur, rev) {
			return true
		}
	}
}

// Changed returns a channel that is closed at the next commit that records
// a change. Watchers take it before reading the change log, so that a
// commit between the read and the wait is never missed.
func (s *Store) Changed() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.changed
}

func (s *Store) broadcast() {
	s.notifyMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.notifyMu.Unlock()
}

func errClosed() error { return &Error{Kind: KindClosed, Message: "store is closed"} }

// storeError passes the store's own errors through and wraps anything else
// (bbolt's errors, a panic recovered by the committer) so that no bbolt error
// leaves the package.
func storeError(err error) error {
	var e *Error
	switch {
	case err == nil || errors.As(err, &e):
		return err
	}
	if e, ok := kvError(err); ok {
		return e // before the context's errors: a commit cut off by its timeout is the cluster's failure
	}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return &Error{Kind: KindClosed, Message: "store is closed", Err: err}
	case isDiskFull(err):
		return errDiskFull(err)
	}
	return internal("database transaction failed", err)
}

// joinBatch is called by every write function as it runs in a (possibly
// shared) write transaction, and returns the transaction's batch state. For
// the first one in a transaction it sets the fill of the append-mostly
// buckets and arranges for the commit to publish the revisions the
// transaction recorded and to report how many writes shared it. The
// hook keeps its own batch state: it runs after the transaction has let go
// of the database, when the next one may already be filling s.batch.
func (s *Store) joinBatch(tx kv.Tx) *batchState {
	if s.batch == nil || s.batch.tx != tx {
		b := &batchState{tx: tx}
		s.batch = b
		s.clock.begin()
		if btx := kv.BoltTx(tx); btx != nil {
			fillAppendBuckets(btx)
		}
		tx.OnCommit(func() {
			if s.quota.max > 0 {
				s.measure()
			}
			s.published(b.last, b.directory)
			s.clock.committed()
			if s.observer != nil {
				s.observer.ObserveCommit(b.writes)
			}
		})
	}
	s.batch.writes++
	return s.batch
}

// boltOptions are the bbolt settings for opt; see Open.
func boltOptions(opt Options) *bolt.Options {
	return &bolt.Options{
		Timeout:         opt.LockTimeout,
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  false,
		InitialMmapSize: 1 << 30,
		ReadOnly:        opt.ReadOnly,
		NoSync:          experimentOneFsync, // false in every real build
	}
}

// newCommitter sets up group commit for db: at most MaxBatchSize writes
// (default 256) per transaction, each commit waiting MaxBatchDelay
// (default 0) for company.
func newCommitter(db *bolt.DB, opt Options) *groupcommit.Committer {
	size := 256
	if opt.MaxBatchSize > 0 {
		size = opt.MaxBatchSize
	}
	if experimentOneFsync {
		return groupcommit.New(oneFsyncUpdate(db), size, opt.MaxBatchDelay)
	}
	return groupcommit.New(kv.BoltUpdate(db), size, opt.MaxBatchDelay)
}

// readFloor returns the revision every later one must exceed (metaFloor),
// 0 for none.
func readFloor(tx kv.Tx) int64 {
	v := tx.Bucket(bucketMeta).Get(metaFloor)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// damagedFileError is bbolt's panic on opening a file whose metadata or
// freelist pages are unreadable, turned into an error.
type damagedFileError struct{ cause any }

func (e *damagedFileError) Error() string { return fmt.Sprintf("damaged database file: %v", e.cause) }

// openBolt opens the bbolt file, turning the panic bbolt raises on some
// damaged files (an unreadable freelist page) into a damagedFileError, so
// that a damaged file is refused with a clear error rather than crashing
// exchanged at start.
func openBolt(path string, opt Options) (db *bolt.DB, err error) {
	defer func() {
		if v := recover(); v != nil {
			db, err = nil, &damagedFileError{cause: v}
		}
	}()
	return bolt.Open(path, 0o600, boltOptions(opt))
}
