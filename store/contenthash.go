package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"slices"

	"github.com/alltogether/exchange/store/kv"
)

// ContentHash returns a SHA-256 digest of the database's logical content:
// every bucket of the schema (schema.go), in name order, and every key
// and value in it, in key order, all read in one read transaction (so the
// digest is of one committed state even while writes go on). It is the
// same for the same content on either storage engine.
//
// It is for tests and operators comparing two databases: a backup with the
// database it was taken from or restored into, a database before and after
// something that must not have changed it (a run of malformed requests, a
// reopen, a compaction). Equal content gives equal digests whatever the
// file's page layout, free pages or size; any committed change to any
// record, index, change-log or audit entry gives a different digest. It
// says nothing about which records differ, and it is no substitute for the
// audit chain, which pins history; ContentHash pins state.
//
// Every item is written with a type tag and a length prefix, so that no
// two different contents encode alike (a key "ab" with value "c" differs
// from a key "a" with value "bc").
func (s *Store) ContentHash(ctx context.Context) ([]byte, error) {
	h := sha256.New()
	err := s.view(ctx, func(tx kv.Tx) error {
		for _, name := range sortedBuckets() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := hashBucket(h, name, tx.Bucket(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// Tags of the ContentHash encoding.
const (
	hashBucketStart = 'B'
	hashBucketEnd   = 'E'
	hashKeyValue    = 'K'
)

// hashBucket writes a bucket's name, its contents and an end marker.
func hashBucket(h hash.Hash, name []byte, b kv.Bucket) error {
	h.Write([]byte{hashBucketStart})
	hashBytes(h, name)
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		h.Write([]byte{hashKeyValue})
		hashBytes(h, k)
		hashBytes(h, v)
	}
	h.Write([]byte{hashBucketEnd})
	return nil
}

// hashBytes writes b with its length in front.
func hashBytes(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// sortedBuckets returns the schema's bucket names in byte order.
func sortedBuckets() [][]byte {
	names := slices.Clone(allBuckets)
	slices.SortFunc(names, bytes.Compare)
	return names
}
