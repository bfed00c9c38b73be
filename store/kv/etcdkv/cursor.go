package etcdkv

import (
	"errors"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Page sizes of a cursor's reads: the first is small, for cursors that
// look at a key or two; each next read doubles, up to the largest.
const (
	firstPageSize = 32
	lastPageSize  = 1024
)

// errCursorOff is returned by Delete on a cursor that is on no key.
var errCursorOff = errors.New("etcdkv: the cursor is on no key")

// cursor walks a bucket's keys at the transaction's snapshot, merged with
// the transaction's own writes. It keeps the last page it read from etcd:
// every snapshot key in [lo, hi) is in keys, in order.
type cursor struct {
	b     *bucket
	pos   string // the etcd key the cursor is on, if on
	on    bool
	keys  []string
	vals  [][]byte
	lo    string
	hi    string
	paged bool

	pageSize int
}

func (c *cursor) First() ([]byte, []byte) { return c.land(c.ceil(c.b.start)) }
func (c *cursor) Last() ([]byte, []byte)  { return c.land(c.lower(c.b.end)) }

func (c *cursor) Seek(seek []byte) ([]byte, []byte) {
	return c.land(c.ceil(c.b.start + string(seek)))
}

// Next moves to the key after the cursor's; on no key, it stays off.
func (c *cursor) Next() ([]byte, []byte) {
	if !c.on {
		return nil, nil
	}
	return c.land(c.ceil(c.pos + "\x00"))
}

// Prev moves to the key before the cursor's; on no key, it stays off.
func (c *cursor) Prev() ([]byte, []byte) {
	if !c.on {
		return nil, nil
	}
	return c.land(c.lower(c.pos))
}

// Delete deletes the cursor's key; the cursor stays at its place, so Next
// moves to the key after it and Prev to the key before.
func (c *cursor) Delete() error {
	if !c.on {
		return errCursorOff
	}
	return c.b.t.buffer(write{key: c.pos, deleted: true})
}

func (c *cursor) land(key string, value []byte, ok bool) ([]byte, []byte) {
	c.on = ok
	if !ok {
		return nil, nil
	}
	c.pos = key
	return c.b.userKey(key), nonNil(value)
}

// ceil returns the first key at or after s in the transaction's view.
func (c *cursor) ceil(s string) (string, []byte, bool) {
	writes := c.b.t.writes
	for {
		sk, sv, sok := c.snapshotCeil(s)
		j, _ := c.b.t.find(s)
		if j < len(writes) && writes[j].key < c.b.end && (!sok || writes[j].key <= sk) {
			w := writes[j]
			if w.deleted {
				s = w.key + "\x00"
				continue
			}
			return w.key, w.value, true
		}
		return sk, sv, sok
	}
}

// lower returns the last key before e in the transaction's view.
func (c *cursor) lower(e string) (string, []byte, bool) {
	writes := c.b.t.writes
	for {
		sk, sv, sok := c.snapshotLower(e)
		j, _ := c.b.t.find(e)
		j--
		if j >= 0 && writes[j].key >= c.b.start && (!sok || writes[j].key >= sk) {
			w := writes[j]
			if w.deleted {
				e = w.key
				continue
			}
			return w.key, w.value, true
		}
		return sk, sv, sok
	}
}

// snapshotCeil returns the snapshot's first key of the bucket at or after s.
func (c *cursor) snapshotCeil(s string) (string, []byte, bool) {
	if s >= c.b.end {
		return "", nil, false
	}
	if c.paged && c.lo <= s && s <= c.hi {
		i, _ := slices.BinarySearch(c.keys, s)
		if i < len(c.keys) {
			return c.keys[i], c.vals[i], true
		}
		if c.hi == c.b.end {
			return "", nil, false
		}
		s = c.hi
	}
	if !c.fetch(s, c.b.end, false) {
		return "", nil, false
	}
	if len(c.keys) == 0 {
		return "", nil, false
	}
	return c.keys[0], c.vals[0], true
}

// snapshotLower returns the snapshot's last key of the bucket before e.
func (c *cursor) snapshotLower(e string) (string, []byte, bool) {
	if e <= c.b.start {
		return "", nil, false
	}
	if c.paged && c.lo <= e && e <= c.hi {
		i, _ := slices.BinarySearch(c.keys, e)
		if i > 0 {
			return c.keys[i-1], c.vals[i-1], true
		}
		if c.lo == c.b.start {
			return "", nil, false
		}
		e = c.lo
	}
	if !c.fetch(c.b.start, e, true) {
		return "", nil, false
	}
	if len(c.keys) == 0 {
		return "", nil, false
	}
	n := len(c.keys) - 1
	return c.keys[n], c.vals[n], true
}

// fetch reads a page of the snapshot's keys in [from, to): the first ones,
// or the last ones if descending, and keeps it as the cursor's page.
func (c *cursor) fetch(from, to string, descending bool) bool {
	opts := []clientv3.OpOption{clientv3.WithRange(to), clientv3.WithLimit(int64(c.pageSize))}
	if descending {
		opts = append(opts, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
	}
	resp := c.b.t.get("reading a bucket", from, opts...)
	if resp == nil {
		c.paged = false
		return false
	}
	n := len(resp.Kvs)
	full := n == c.pageSize
	c.pageSize = min(2*c.pageSize, c.b.t.db.lastPage)
	c.keys = make([]string, n)
	c.vals = make([][]byte, n)
	for i, kv := range resp.Kvs {
		j := i
		if descending {
			j = n - 1 - i
		}
		c.keys[j] = string(kv.Key)
		c.vals[j] = kv.Value
	}
	c.paged = true
	c.lo, c.hi = from, to
	if full {
		if descending {
			c.lo = c.keys[0]
		} else {
			c.hi = c.keys[n-1] + "\x00"
		}
	}
	return true
}
