package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/alltogether/exchange/store/kv"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// AuditHead returns the sequence number and hash of the last audit entry
// (0 and nil for an empty chain).
func (s *Store) AuditHead(ctx context.Context) (uint64, []byte, error) {
	var seq uint64
	var hash []byte
	err := s.view(ctx, func(tx kv.Tx) error {
		if head := tx.Bucket(bucketMeta).Get(metaAuditHead); head != nil {
			seq = binary.BigEndian.Uint64(head[:8])
			hash = bytes.Clone(head[8:])
		}
		return nil
	})
	return seq, hash, err
}

// AuditEntries returns up to limit audit entries with sequence after
// afterSeq, in order.
func (s *Store) AuditEntries(ctx context.Context, afterSeq uint64, limit int) ([]*exchangev1.AuditEntry, error) {
	var out []*exchangev1.AuditEntry
	err := s.view(ctx, func(tx kv.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(u64(afterSeq + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			e := new(exchangev1.AuditEntry)
			if err := unmarshal(v, e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Changes returns up to limit change-log entries with revision after
// afterRevision, in order; each revision holds one change, so a caller
// resumes from the last entry's revision without missing anything. A
// revision older than the compacted horizon fails with KindOutOfRange.
func (s *Store) Changes(ctx context.Context, afterRevision int64, limit int) ([]*exchangev1.Change, error) {
	var out []*exchangev1.Change
	err := s.view(ctx, func(tx kv.Tx) error {
		if err := checkNotCompacted(tx, afterRevision); err != nil {
			return err
		}
		c := tx.Bucket(bucketChanges).Cursor()
		for k, v := c.Seek(changeKey(afterRevision + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			ch := new(exchangev1.Change)
			if err := unmarshal(v, ch); err != nil {
				return err
			}
			out = append(out, ch)
		}
		return nil
	})
	return out, err
}

// CheckNotCompacted fails with KindOutOfRange, as Changes does, when the
// change log no longer holds every entry after afterRevision: a caller
// that keeps entries it read earlier (the watch's shared cache) checks
// this before it serves them from memory.
func (s *Store) CheckNotCompacted(ctx context.Context, afterRevision int64) error {
	return s.view(ctx, func(tx kv.Tx) error { return checkNotCompacted(tx, afterRevision) })
}

// checkNotCompacted is CheckNotCompacted inside a transaction.
func checkNotCompacted(tx kv.Tx, afterRevision int64) error {
	if v := tx.Bucket(bucketMeta).Get(metaCompacted); v != nil {
		if compacted := int64(binary.BigEndian.Uint64(v)); afterRevision < compacted {
			return &Error{Kind: KindOutOfRange, Message: fmt.Sprintf(
				"revision %d has been compacted (the change log starts after %d): list again and watch from the list's revision", afterRevision, compacted)}
		}
	}
	return nil
}

// Compact removes change-log entries up to and including revision; Changes
// after an older revision then fails with KindOutOfRange. The audit chain
// is not compacted. It deletes at most compactChunk entries per
// transaction, each recording how far it got, so that a long backlog (the
// first compaction after the horizon was lowered) neither holds every
// other write back until it ends nor keeps its whole undo in memory; if
// ctx ends or a transaction fails, what was compacted stays compacted.
func (s *Store) Compact(ctx context.Context, revision int64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed()
	}
	chunk := compactChunk
	if s.etcd != nil {
		chunk = min(chunk, s.etcdMaxOps-8) // one etcd transaction each, with the meta writes
	}
	for done := false; !done; {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.updateAlone(func(tx kv.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if v := meta.Get(metaCompacted); v != nil && int64(binary.BigEndian.Uint64(v)) >= revision {
				done = true
				return nil
			}
			if revision > readRevision(tx) {
				return &Error{Kind: KindInvalidArgument, Message: fmt.Sprintf("cannot compact to %d, beyond the current revision", revision)}
			}
			c := tx.Bucket(bucketChanges).Cursor()
			end := changeKey(revision + 1)
			reached := revision
			n := 0
			for k, _ := c.First(); k != nil && bytes.Compare(k, end) < 0; k, _ = c.First() {
				if n == chunk {
					reached = int64(binary.BigEndian.Uint64(k[:8])) - 1 // the entries before k are gone
					break
				}
				if err := c.Delete(); err != nil {
					return internal("cannot compact the change log", err)
				}
				n++
			}
			done = reached == revision
			return meta.Put(metaCompacted, u64(uint64(reached)))
		})
		if err != nil {
			return storeError(err)
		}
	}
	return nil
}

// compactChunk is the most change-log entries one compaction transaction
// deletes (a variable so that tests can make it small).
var compactChunk = 10_000

// RecordRead appends an audit entry for a read of identifying details in
// the named resource: the reader, the method and the resource, nothing of
// what was read. It returns once the entry is durable. Under a size quota
// it may use the reserve (quota.go): a read of details needs room for its
// audit entry, and the reserve keeps such reads working after ordinary
// writes are refused.
func (s *Store) RecordRead(ctx context.Context, op Op, name string) error {
	return s.updateUsingReserve(ctx, op, func(w *writeTx) error {
		return w.appendAudit(w.currentRevision(), name)
	})
}
