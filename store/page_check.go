package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// CheckHoldingWrites checks every page of the open database, as
// CheckOnOpen does, while the store serves: reads go on, and writes wait
// (in the group commit's queue) until the check ends, so that none is
// committed to a file that has not passed it. exchanged runs it in the
// background once it listens, so that a large file on a cold page cache
// does not keep the exchange down for the time it takes to read it.
//
// It first reads the file once from start to end, so that the check's
// walk of the tree (in key order, all over the file) reads from the page
// cache rather than from the disk one page at a time; writes wait for
// both. ctx ends that read early (the walk itself cannot be stopped).
//
// A damaged file fails with KindFailedPrecondition, naming the first
// problems bbolt found (their page numbers) and what to do; the store
// then closes the file before any waiting write commits, so those writes
// fail, and every later call fails too.
//
// On etcd it does nothing (Check).
func (s *Store) CheckHoldingWrites(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed()
	}
	if s.etcd != nil {
		return ctx.Err()
	}
	return s.commits.Exclusive(func() error {
		if err := readThrough(ctx, s.db.Path()); err != nil {
			return err
		}
		if err := s.check(); err != nil {
			// No write may commit to it: close the file while the
			// waiting writes still wait (bbolt then refuses them).
			_ = s.db.Close()
			return err
		}
		return nil
	})
}

// readThrough reads the file at path from start to end and discards what
// it reads: the kernel keeps it in the page cache and reads ahead of a
// sequential read, which is many times faster than the random reads of a
// tree walk on a cold cache.
func readThrough(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return internal("cannot read the database to check it", err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := f.Read(buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return internal("cannot read the database to check it", err)
		}
	}
}

// refuseDamaged runs fn, a step of Open that reads the file, and turns the
// panic bbolt raises on reaching a damaged page into the error Open gives
// a damaged file. Without the page check at open (exchanged checks once
// it listens), opening is where a damaged file is first read.
func refuseDamaged(path string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if !raisedInBbolt() {
				panic(v)
			}
			err = damagedError(path, v)
		}
	}()
	return fn()
}

// damagedError is the error of a read that reached a damaged page: bbolt
// panicked with v.
func damagedError(path string, v any) error {
	return &Error{Kind: KindFailedPrecondition, Message: fmt.Sprintf(
		"database %s is damaged (%v): do not serve it; restore the last backup with `exchanged restore --from BACKUP`", path, v),
		Err: &damagedFileError{cause: v}}
}

// raisedInBbolt tells, in a deferred function that recovered a panic,
// whether bbolt's own code raised it (an assertion on a page it read, or
// an index into one), as it does on a damaged page; a panic raised
// anywhere else is a bug, and is raised again.
func raisedInBbolt() bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	panicking := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			panicking = true
		case panicking && !strings.HasPrefix(f.Function, "runtime."):
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
}
