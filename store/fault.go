package store

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/alltogether/exchange/store/kv"
)

// ackBeforeCommit plants a durability fault, for the crash harness in e2e
// to prove that it catches one: when set, update acknowledges a write as
// soon as its function has run inside the transaction and lets the commit
// follow ackBeforeCommitWindow later, so that a crash in between loses a
// write the caller was told is stored. It is false in every real build;
// only the build tag exchange_fault_ack_before_commit sets it (see
// fault_ackbeforecommit.go). Never ship a binary built with that tag.
var ackBeforeCommit = false

// ackBeforeCommitWindow is how long the planted fault holds a transaction
// open after acknowledging a write in it.
const ackBeforeCommitWindow = 200 * time.Millisecond

// batchAckingEarly is s.commits.Do(fn) with the planted fault: it returns as
// soon as fn has succeeded inside the transaction (or the batch has
// failed), while the batch goes on in its own goroutine, sleeps
// ackBeforeCommitWindow and only then lets the commit proceed. The
// caller's result variables may be written again if the committer re-runs
// fn;
// that race is part of the fault.
func (s *Store) batchAckingEarly(fn func(kv.Tx) error) error {
	acked := make(chan error, 1)
	go func() {
		var once sync.Once
		err := s.commits.Do(func(tx kv.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			once.Do(func() { acked <- nil })
			time.Sleep(ackBeforeCommitWindow)
			return nil
		})
		if err != nil {
			select {
			case acked <- err:
			default:
			}
		}
	}()
	return <-acked
}

// commitFault, when set, is called in every write transaction after its
// writes, as its commit begins; an error from it fails the transaction
// (nothing is stored, the callers get the error) as a failed write of the
// file would. Only tests set it, to give the store a full disk where the
// test cannot mount a small file system (store/disk_full_test.go); it is
// nil in every build.
var commitFault atomic.Pointer[func() error]
