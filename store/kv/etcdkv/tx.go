package etcdkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/alltogether/exchange/store/kv"
)

// errReadOnly is returned by writes in a View.
var errReadOnly = errors.New("etcdkv: the transaction is read-only")

// errKeyRequired is returned by a Put of an empty key, as bbolt does.
var errKeyRequired = errors.New("etcdkv: a key is required")

// write is one buffered write of a transaction: a put, or a delete when
// deleted is set. key is the full etcd key.
type write struct {
	key     string
	value   []byte
	deleted bool
}

// tx is a transaction: a snapshot revision, fixed by its first read, and
// for an Update the writes it buffers, kept sorted by key (the overlay
// every read of the transaction sees first).
type tx struct {
	db       *DB
	ctx      context.Context
	writable bool

	started   bool
	rev       int64 // the snapshot's revision
	commitRev int64 // the commit key's ModRevision at the snapshot (0: none)

	writes   []write // sorted by key, one per key
	bytes    int     // keys, values and framing of writes
	onCommit []func()

	err error // the first failed read; the transaction fails with it
}

func (db *DB) newTx(ctx context.Context, writable bool) *tx {
	return &tx{db: db, ctx: ctx, writable: writable}
}

// begin fixes the snapshot with a linearizable read of the commit key.
func (t *tx) begin() bool {
	if t.started {
		return t.err == nil
	}
	if t.err != nil {
		return false
	}
	resp, err := t.db.client.Get(t.ctx, t.db.commitKey)
	if err != nil {
		t.fail(readError("starting a transaction", err))
		return false
	}
	t.started = true
	t.rev = resp.Header.Revision
	if len(resp.Kvs) == 1 {
		t.commitRev = resp.Kvs[0].ModRevision
	}
	return true
}

func (t *tx) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

// get reads keys at the snapshot; it returns nil after recording a failure.
func (t *tx) get(what string, key string, opts ...clientv3.OpOption) *clientv3.GetResponse {
	if !t.begin() {
		return nil
	}
	// The snapshot's revision was fixed by a linearizable read, so a read
	// at it needs no round of consensus: the member answers from what it
	// has applied (serializable). A member behind the snapshot (the client
	// moved to another one) says so, and the read goes through the leader.
	opts = append(opts, clientv3.WithRev(t.rev))
	resp, err := t.db.client.Get(t.ctx, key, append(opts, clientv3.WithSerializable())...)
	if errors.Is(err, rpctypes.ErrFutureRev) {
		resp, err = t.db.client.Get(t.ctx, key, opts...)
	}
	if err != nil {
		t.fail(readError(what, err))
		return nil
	}
	return resp
}

// Bucket returns the named bucket. Buckets are key prefixes, so every
// name has one, except names with a zero byte, which none can have.
func (t *tx) Bucket(name []byte) kv.Bucket {
	if bytes.IndexByte(name, 0) >= 0 {
		return nil
	}
	start, end := t.db.bucketRange(name)
	return &bucket{t: t, start: start, end: end}
}

func (t *tx) Writable() bool { return t.writable }

func (t *tx) OnCommit(fn func()) { t.onCommit = append(t.onCommit, fn) }

// find returns the index of key's buffered write, or where it would go.
func (t *tx) find(key string) (int, bool) {
	return slices.BinarySearchFunc(t.writes, key, func(w write, k string) int { return strings.Compare(w.key, k) })
}

// buffer records a put or delete, unless it would make the commit exceed
// the cluster's limits.
func (t *tx) buffer(w write) error {
	if !t.writable {
		return errReadOnly
	}
	if t.err != nil {
		return t.err
	}
	i, found := t.find(w.key)
	size, writes := t.bytes+len(w.key)+len(w.value)+opOverhead, len(t.writes)+1
	if found {
		old := t.writes[i]
		size -= len(old.key) + len(old.value) + opOverhead
		writes--
	}
	// One more op for the commit key's put.
	if writes+1 > t.db.maxTxnOps {
		return fmt.Errorf("etcdkv: %d writes and the commit exceed MaxTxnOps %d: %w", writes, t.db.maxTxnOps, kv.ErrTxFull)
	}
	if size+len(t.db.commitKey)+requestMargin > t.db.maxRequestBytes {
		return fmt.Errorf("etcdkv: %d bytes of writes exceed MaxRequestBytes %d: %w", size, t.db.maxRequestBytes, kv.ErrTxFull)
	}
	t.bytes = size
	if found {
		t.writes[i] = w
	} else {
		t.writes = slices.Insert(t.writes, i, w)
	}
	return nil
}

// commit sends the buffered writes in one Txn guarded by the commit key's
// revision at the snapshot. It reports false if another writer committed
// since (nothing was written).
func (t *tx) commit() (bool, error) {
	if len(t.writes) == 0 {
		return true, nil // a read-only Update: its snapshot was consistent
	}
	if !t.begin() {
		return false, t.err
	}
	ops := make([]clientv3.Op, 0, len(t.writes)+1)
	for _, w := range t.writes {
		if w.deleted {
			ops = append(ops, clientv3.OpDelete(w.key))
		} else {
			ops = append(ops, clientv3.OpPut(w.key, string(w.value)))
		}
	}
	ops = append(ops, clientv3.OpPut(t.db.commitKey, ""))
	resp, err := t.db.client.Txn(t.ctx).
		If(clientv3.Compare(clientv3.ModRevision(t.db.commitKey), "=", t.commitRev)).
		Then(ops...).
		Commit()
	if err != nil {
		return false, commitError(err)
	}
	return resp.Succeeded, nil
}

// bucket is a key prefix in a transaction.
type bucket struct {
	t          *tx
	start, end string // the bucket's etcd keys: [start, end)
}

func (b *bucket) userKey(key string) []byte { return []byte(key[len(b.start):]) }

func (b *bucket) Get(key []byte) []byte {
	k := b.start + string(key)
	if i, found := b.t.find(k); found {
		w := b.t.writes[i]
		if w.deleted {
			return nil
		}
		return nonNil(w.value)
	}
	resp := b.t.get("reading a key", k)
	if resp == nil || len(resp.Kvs) == 0 {
		return nil
	}
	return nonNil(resp.Kvs[0].Value)
}

func (b *bucket) Put(key, value []byte) error {
	if len(key) == 0 {
		return errKeyRequired
	}
	return b.t.buffer(write{key: b.start + string(key), value: value})
}

func (b *bucket) Delete(key []byte) error {
	return b.t.buffer(write{key: b.start + string(key), deleted: true})
}

func (b *bucket) Cursor() kv.Cursor { return &cursor{b: b, pageSize: b.t.db.firstPage} }

func (b *bucket) ForEach(fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return b.t.err
}

// nonNil returns v, or an empty non-nil slice for an empty value, so that
// an empty value is told from a missing key.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}
