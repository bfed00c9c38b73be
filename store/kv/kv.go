// Package kv is the small transactional key-value interface the store's
// logic is written against, so that the same code for referrals,
// datasets, plans, the directory, the audit chain and the change log runs
// on either of the exchange's storage engines: bbolt, a file on the
// server's own disk (Bolt, in this package), or an etcd cluster shared by
// several exchanged replicas (package etcdkv).
//
// The model is bbolt's, since the store was written for it: named buckets
// of byte keys in byte order, each transaction sees one committed state
// (a snapshot) plus its own writes, and a write transaction either
// commits as a whole or changes nothing. Only the operations the store
// uses are here; each engine's own administration (bbolt's page
// accounting, etcd's compaction) stays with the engine.
//
// Keys and values returned by Get and by cursors are valid only until
// the transaction ends, and must not be modified, as in bbolt.
package kv

import "errors"

// Tx is a read or write transaction.
type Tx interface {
	// Bucket returns the named bucket. In a bbolt file a bucket exists
	// once created, and Bucket returns nil for one that does not; in etcd
	// buckets are key prefixes, and every name has one, empty until
	// written.
	Bucket(name []byte) Bucket
	// Writable reports whether the transaction may write.
	Writable() bool
	// OnCommit registers fn to run after the transaction has committed
	// durably, before the writers sharing it are answered. It is not run
	// if the transaction fails or is rolled back.
	OnCommit(fn func())
}

// Bucket is a set of keys in byte order.
type Bucket interface {
	// Get returns the value of key, or nil if there is none.
	Get(key []byte) []byte
	// Put sets key to value. The value must not be changed until the
	// transaction ends.
	Put(key, value []byte) error
	// Delete removes key; deleting a missing key does nothing.
	Delete(key []byte) error
	// Cursor returns a cursor over the bucket's keys, in byte order,
	// seeing the transaction's own writes.
	Cursor() Cursor
	// ForEach calls fn for every key in order, stopping at its first
	// error. fn must not change the bucket.
	ForEach(fn func(k, v []byte) error) error
}

// Cursor moves over a bucket's keys. Each move returns the key and value
// it lands on, or a nil key past either end.
type Cursor interface {
	// First moves to the first key.
	First() (key, value []byte)
	// Last moves to the last key.
	Last() (key, value []byte)
	// Seek moves to the first key at or after seek.
	Seek(seek []byte) (key, value []byte)
	// Next moves to the next key.
	Next() (key, value []byte)
	// Prev moves to the previous key.
	Prev() (key, value []byte)
	// Delete removes the key the cursor is on; the cursor stays there, so
	// that Next moves to the key after it.
	Delete() error
}

// ErrTxFull is returned by Put and Delete when the transaction would
// exceed what the engine commits at once (etcd's limits on operations
// and bytes per request). A group commit takes the write that hit it out
// and runs it alone; a write that is too large alone fails with it.
var ErrTxFull = errors.New("kv: the transaction is larger than the storage engine commits at once")

// ErrConflict is returned by a commit that another writer overtook: what
// the transaction read has changed since. Nothing was written; running
// the transaction again is safe.
var ErrConflict = errors.New("kv: another writer committed first")

// ErrUnknownOutcome is returned by a commit whose outcome the engine
// could not learn (the connection to the cluster broke after the request
// left): it may or may not have committed. Writes that carry a request id
// are safe to retry with it.
var ErrUnknownOutcome = errors.New("kv: the commit's outcome is unknown")

// ErrUnavailable is returned when the engine cannot be reached or has no
// quorum: nothing was written.
var ErrUnavailable = errors.New("kv: the storage engine is unavailable")

// ErrNoSpace is returned when the engine refuses writes because its
// storage quota is reached.
var ErrNoSpace = errors.New("kv: the storage engine's space quota is reached")
