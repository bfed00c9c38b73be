// Package fieldfile is a field office's local durable state: the outbox
// of writes made while the exchange could not be reached, and the revision
// each pull and watch last saw, so that both survive a restart of the
// client process.
//
// The state lives in one bbolt file beside the agency's certificate, mode
// 0600, opened by one process at a time. A process that runs for long
// (a watch left open all day, a long pull) should not hold it: CursorsAt
// keeps positions by opening the file for each Load, Save or Delete and
// closing it again, so that a short command that writes through the
// outbox can open the file in between. Each side waits for the other's
// brief hold (Open up to LockWait, CursorsAt up to CursorLockWait)
// instead of failing at once.
//
// The file holds what the client would have sent: identifying details
// are only ever in it sealed, as the exchange stores them, because the
// client seals before anything reaches the outbox.
//
// This package is the client's own storage. It is not the exchange's store
// (package store) and shares nothing with it but the bbolt library.
package fieldfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DefaultName is the file's name beside the certificate when no other
// path is given.
const DefaultName = "field.db"

// formatVersion is the layout of the file's buckets; a file of another
// version is refused rather than misread.
const formatVersion = "1"

// Bucket names. Each part of the package owns its bucket.
var (
	bucketMeta    = []byte("meta")
	bucketOutbox  = []byte("outbox")
	bucketCursors = []byte("cursors")
)

// File is an open field file.
type File struct {
	db   *bolt.DB
	path string
}

// PathBeside returns the default field file path for an agency whose
// certificate is certFile: DefaultName in the certificate's directory.
func PathBeside(certFile string) string {
	return filepath.Join(filepath.Dir(certFile), DefaultName)
}

// ErrInUse is returned by Open when another process holds the file.
var ErrInUse = errors.New("fieldfile: the file is in use by another process")

// LockWait is how long Open waits for another process to let go of the
// file: long enough for a watch or pull saving its position (which holds
// the file for a moment, see CursorsAt), far shorter than a command held
// open all day.
const LockWait = 5 * time.Second

// Open opens the field file at path, creating it with mode 0600 if it does
// not exist. It refuses a file that others than its owner can read or
// write (a file holding sealed referrals and the agency's pending work is
// the agency's alone), a file of another format version, and a file
// another process holds (after waiting up to LockWait).
func Open(path string) (*File, error) { return OpenWithin(path, LockWait) }

// OpenWithin is Open waiting up to wait (at least a millisecond) for
// another process to let go of the file; it then fails with ErrInUse and
// the path.
func OpenWithin(path string, wait time.Duration) (*File, error) {
	if fi, err := os.Stat(path); err == nil {
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("fieldfile: %s has mode %#o; it must be readable and writable by its owner only (chmod 600 %s)", path, perm, path)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("fieldfile: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: max(wait, time.Millisecond)})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if err != nil {
		return nil, fmt.Errorf("fieldfile: open %s: %w", path, err)
	}
	f := &File{db: db, path: path}
	if err := f.init(); err != nil {
		db.Close()
		return nil, err
	}
	return f, nil
}

// init checks the file's format and creates its buckets. A file already
// set up is only read, so that opening it costs no write to disk (CursorsAt
// opens it for every position it saves).
func (f *File) init() error {
	ready := false
	err := f.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if v := meta.Get([]byte("format")); v != nil && string(v) != formatVersion {
			return f.formatError(v)
		}
		ready = meta.Get([]byte("format")) != nil && tx.Bucket(bucketOutbox) != nil && tx.Bucket(bucketCursors) != nil
		return nil
	})
	if err != nil || ready {
		return err
	}
	return f.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get([]byte("format")); {
		case v == nil:
			if err := meta.Put([]byte("format"), []byte(formatVersion)); err != nil {
				return err
			}
		case string(v) != formatVersion:
			return f.formatError(v)
		}
		for _, b := range [][]byte{bucketOutbox, bucketCursors} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// formatError refuses a file of format v.
func (f *File) formatError(v []byte) error {
	return fmt.Errorf("fieldfile: %s is of format %q; this client reads format %s", f.path, v, formatVersion)
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Close closes the file.
func (f *File) Close() error { return f.db.Close() }
