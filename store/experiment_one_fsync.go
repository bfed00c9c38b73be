package store

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	bolt "go.etcd.io/bbolt"

	"github.com/alltogether/exchange/store/kv"
)

// experimentOneFsync, set only by the build tag
// exchange_experiment_one_fsync (experiment_one_fsync_on.go), makes a
// binary that measures what a write-ahead log could buy single writes,
// for BENCHMARKS.md: bbolt commits without fdatasync, and each commit
// then writes as many bytes as bbolt wrote to a preallocated side file and
// fdatasyncs that, as a log appended once per commit would. Such a binary
// is NOT durable (a power cut may leave the bbolt file damaged) and exists
// only to be benchmarked; never ship one.
var experimentOneFsync = false

// sideLogSize is the side file's preallocated size, etcd's WAL segment
// size, written round and round.
const sideLogSize = 64 << 20

// oneFsyncUpdate is kv.BoltUpdate(db) for the experiment.
func oneFsyncUpdate(db *bolt.DB) func(fn func(kv.Tx) error) error {
	f, err := os.OpenFile(filepath.Join(filepath.Dir(db.Path()), "experiment-side-log"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		panic(err)
	}
	if err := f.Truncate(sideLogSize); err != nil {
		panic(err)
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < sideLogSize; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros, off); err != nil {
			panic(err)
		}
	}
	if err := f.Sync(); err != nil {
		panic(err)
	}
	var at int64
	buf := make([]byte, 0, 1<<20)
	return func(fn func(kv.Tx) error) error {
		var tx *bolt.Tx
		err := db.Update(func(btx *bolt.Tx) error {
			tx = btx
			return fn(kv.Bolt(btx))
		})
		if err != nil {
			return err
		}
		st := tx.Stats()
		n := int(st.GetWrite()) * db.Info().PageSize
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if at+int64(n) > sideLogSize {
			at = 0
		}
		if _, err := f.WriteAt(b, at); err != nil {
			return err
		}
		at += int64(n)
		return unix.Fdatasync(int(f.Fd()))
	}
}
