package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/alltogether/exchange/store/kv"
)

// check walks every page of the database and reports the first problems
// bbolt finds, with what to do about them.
func (s *Store) check() error {
	var problems []string
	err := s.read(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			problems = append(problems, err.Error())
			if len(problems) == 5 {
				break
			}
		}
		return nil
	})
	if err != nil {
		return internal("cannot check the database", err)
	}
	if len(problems) > 0 {
		return &Error{Kind: KindFailedPrecondition, Message: fmt.Sprintf(
			"database %s is damaged (%s): do not serve it; restore the last backup with `exchanged restore --from BACKUP`",
			s.db.Path(), strings.Join(problems, "; "))}
	}
	return nil
}

// Check walks every page of the open database, as CheckOnOpen does.
//
// On etcd it does nothing: the members check their own data (etcd's
// --experimental-initial-corrupt-check and `etcdctl check`,
// docs/operations.md).
func (s *Store) Check(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed()
	}
	if s.etcd != nil {
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.check()
}

// Status describes the store for operators.
type Status struct {
	// Size is the database's size in bytes.
	Size int64
	// MaxSize is the size past which writes are refused; 0 for none.
	MaxSize int64
	// Revision is the last committed revision.
	Revision int64
	// Compacted is the revision up to which the change log was compacted.
	Compacted int64
	// AuditSequence and AuditHead identify the last audit entry.
	AuditSequence uint64
	// AuditHead is the SHA-256 hash of the last audit entry.
	AuditHead []byte
	// UnscrubbedErasures counts the erasures committed whose freed pages
	// are not all overwritten yet (scrub.go): 0 but for a moment after an
	// erasure, unless a read that began before it (a backup) still runs.
	UnscrubbedErasures int64
}

// Status reads the store's size, revisions and audit head.
func (s *Store) Status(ctx context.Context) (Status, error) {
	var st Status
	err := s.view(ctx, func(tx kv.Tx) error {
		meta := tx.Bucket(bucketMeta)
		st = Status{MaxSize: s.maxSize, Revision: readRevision(tx), UnscrubbedErasures: s.scrub.unscrubbed()}
		if btx := kv.BoltTx(tx); btx != nil {
			st.Size = btx.Size()
		} else {
			st.Size = s.etcdSize(ctx)
		}
		if v := meta.Get(metaCompacted); v != nil {
			st.Compacted = int64(binary.BigEndian.Uint64(v))
		}
		if head := meta.Get(metaAuditHead); head != nil {
			st.AuditSequence = binary.BigEndian.Uint64(head[:8])
			st.AuditHead = append([]byte(nil), head[8:]...)
		}
		return nil
	})
	return st, err
}

// Backup writes a consistent snapshot of the whole database to w, from one
// read transaction, while writes go on. It returns the snapshot's revision
// and size. The snapshot is a database file: open it like one, or restore
// it with `exchanged restore`.
//
// On etcd the snapshot is read at one etcd revision and written as the
// same kind of database file, so a backup restores into either engine.
func (s *Store) Backup(ctx context.Context, w io.Writer, started func(revision, size int64)) error {
	if s.etcd != nil {
		return s.backupEtcd(ctx, w, started)
	}
	return s.viewBolt(ctx, func(tx *bolt.Tx) error {
		if started != nil {
			started(readRevision(kv.Bolt(tx)), tx.Size())
		}
		_, err := tx.WriteTo(w)
		if err != nil && !errors.Is(err, context.Canceled) {
			return internal("backup interrupted", err)
		}
		return err
	})
}

// CompactChangeLog keeps the newest keep entries of the change log and
// removes older ones; watchers behind the new horizon get KindOutOfRange
// and must list again. It returns the new horizon, the revision of the
// newest entry removed (0 when nothing was). Revisions are commit times
// (revision.go), so the horizon counts entries, not revisions.
func (s *Store) CompactChangeLog(ctx context.Context, keep int64) (int64, error) {
	var horizon int64
	err := s.view(ctx, func(tx kv.Tx) error {
		c := tx.Bucket(bucketChanges).Cursor()
		k, _ := c.Last()
		for n := int64(0); k != nil && n < keep; n++ {
			k, _ = c.Prev()
		}
		if k != nil {
			horizon = int64(binary.BigEndian.Uint64(k[:8]))
		}
		return nil
	})
	if err != nil || horizon == 0 {
		return 0, err
	}
	return horizon, s.Compact(ctx, horizon)
}

// Vacuum rewrites the database into a new file holding only live data and
// replaces the old file with it, so that nothing deleted (an erased
// referral's sealed details above all) survives in a freed page. Every other call
// waits while it runs: the whole file is copied once.
func (s *Store) Vacuum(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed()
	}
	if s.etcd != nil {
		return &Error{Kind: KindFailedPrecondition, Message: "vacuum rewrites a bbolt file; an etcd cluster is compacted and defragmented with etcdctl"}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	path := s.db.Path()
	tmp := path + ".vacuum"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, boltOptions(s.opt))
	if err != nil {
		return internal("cannot create the vacuumed copy", err)
	}
	s.quota.apply(dst, true) // the copy grows in the quota's steps, within it
	if err := bolt.Compact(dst, s.db, 64<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return internal("cannot copy the live data", err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return internal("cannot sync the vacuumed copy", err)
	}
	dst.Close()
	if err := s.db.Close(); err != nil {
		return internal("cannot close the database for the swap", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return internal("cannot replace the database with the vacuumed copy", err)
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync()
		dir.Close()
	}
	db, err := bolt.Open(path, 0o600, boltOptions(s.opt))
	if err != nil {
		s.closed = true
		return internal("cannot reopen the vacuumed database", err)
	}
	s.db = db
	s.quota.apply(db, true)
	s.commits = newCommitter(db, s.opt)
	s.directoryGeneration.Add(1) // a new file: read callers from it afresh
	s.scrub.newEpoch()           // and no freed page: every erasure so far is served
	return s.db.View(func(tx *bolt.Tx) error {
		s.size.Store(tx.Size())
		return nil
	})
}
