// Package kvtest checks that a storage engine behind the store's kv
// interface behaves as bbolt does, the engine the store was written for:
// Conformance runs the same random transactions on a bbolt file and on
// the engine under test and compares every result.
package kvtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/alltogether/exchange/store/kv"
)

// Engine is a storage engine under test: transactions as the store runs
// them.
type Engine interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(kv.Tx) error) error
	// Update runs fn in a write transaction and commits it if fn returns nil.
	Update(ctx context.Context, fn func(kv.Tx) error) error
}

// Buckets are the buckets Conformance uses; an engine that needs buckets
// made before use (bbolt) must have them.
var Buckets = [][]byte{[]byte("a"), []byte("b")}

// Bolt returns db as an Engine, making Buckets in it. bbolt transactions
// cannot be cancelled, so ctx is not used.
func Bolt(t testing.TB, db *bolt.DB) Engine {
	t.Helper()
	err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range Buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("kvtest: making buckets: %v", err)
	}
	return boltEngine{db}
}

// OpenBolt opens a bbolt file in t's temporary directory as an Engine,
// closed when the test ends.
func OpenBolt(t testing.TB) Engine {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "kvtest.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatalf("kvtest: opening bbolt: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return Bolt(t, db)
}

type boltEngine struct{ db *bolt.DB }

func (e boltEngine) View(_ context.Context, fn func(kv.Tx) error) error {
	return e.db.View(func(tx *bolt.Tx) error { return fn(kv.Bolt(tx)) })
}

func (e boltEngine) Update(_ context.Context, fn func(kv.Tx) error) error {
	return e.db.Update(func(tx *bolt.Tx) error { return fn(kv.Bolt(tx)) })
}

// Seeds are the random sequences Conformance runs.
var Seeds = []uint64{1, 2, 3, 4}

// Transactions is the number of transactions of each sequence, and Steps
// the number of operations in each.
const (
	Transactions = 6
	Steps        = 150
)

// errRollback is returned by the transactions that must change nothing.
var errRollback = errors.New("kvtest: rolled back on purpose")

// Conformance runs, for each of Seeds, a random sequence of write and
// read transactions on a new bbolt file and on a new engine from open,
// side by side, and fails at the first result that differs: Get, Put and
// Delete through buckets, cursor moves (First, Last, Seek, Next, Prev,
// Delete) mixed with the transaction's own writes, ForEach, rolled back
// transactions, and the whole contents after each transaction, forward
// and backward.
//
// Sequences follow bbolt's rule for cursors: after a write to the bucket
// (through it or a cursor's Delete), a cursor is moved with First, Last or
// Seek before Next, Prev or Delete; and a cursor past either end is moved
// the same way. What bbolt does otherwise is not specified: in particular
// its Next after a cursor's Delete may skip a key (etcd-io/bbolt#146),
// although kv.Cursor documents the key after the deleted one.
func Conformance(t *testing.T, open func(t *testing.T) Engine) {
	for _, seed := range Seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s := &sequence{t: t, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
			ref, eng := OpenBolt(t), open(t)
			for i := range Transactions {
				s.where = fmt.Sprintf("seed %d tx %d", seed, i)
				rollback := s.rnd.IntN(5) == 0
				errRef := ref.Update(ctx, func(rtx kv.Tx) error {
					return eng.Update(ctx, func(etx kv.Tx) error {
						s.run(rtx, etx, true)
						if rollback {
							return errRollback
						}
						return nil
					})
				})
				if rollback && !errors.Is(errRef, errRollback) || !rollback && errRef != nil {
					t.Fatalf("%s: update: %v", s.where, errRef)
				}
				if t.Failed() {
					return
				}
				s.where += " (after commit)"
				err := ref.View(ctx, func(rtx kv.Tx) error {
					return eng.View(ctx, func(etx kv.Tx) error {
						s.compareAll(rtx, etx)
						s.run(rtx, etx, false)
						return nil
					})
				})
				if err != nil {
					t.Fatalf("%s: view: %v", s.where, err)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// sequence is one random sequence, run on the reference and the engine.
type sequence struct {
	t     *testing.T
	rnd   *rand.Rand
	where string
	log   []string // the steps of the current transaction
}

// alphabet makes short keys that collide often, with the bytes at both
// ends of the order.
const alphabet = "ab\x00\xffc"

func (s *sequence) key() []byte {
	n := 1 + s.rnd.IntN(3)
	k := make([]byte, n)
	for i := range k {
		k[i] = alphabet[s.rnd.IntN(len(alphabet))]
	}
	return k
}

func (s *sequence) value() []byte {
	v := make([]byte, s.rnd.IntN(6))
	for i := range v {
		v[i] = byte('0' + s.rnd.IntN(10))
	}
	return v
}

// pair is a cursor on the reference and the engine, over the same bucket.
type pair struct {
	ref, eng kv.Cursor
	bucket   int
	id       int
	on       bool // landed on a key by its last move, and no write since
}

func (s *sequence) fail(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s, step %d: %s\nsteps:\n%s", s.where, len(s.log), fmt.Sprintf(format, args...), strings.Join(s.log, "\n"))
}

// run does Steps random operations on both transactions.
func (s *sequence) run(rtx, etx kv.Tx, writable bool) {
	s.log = s.log[:0]
	if rtx.Writable() != writable || etx.Writable() != writable {
		s.fail("Writable: reference %v, engine %v, want %v", rtx.Writable(), etx.Writable(), writable)
	}
	buckets := func(i int) (kv.Bucket, kv.Bucket) {
		r, e := rtx.Bucket(Buckets[i]), etx.Bucket(Buckets[i])
		if r == nil || e == nil {
			s.fail("Bucket(%q): reference %v, engine %v", Buckets[i], r, e)
		}
		return r, e
	}
	var cursors []*pair
	for range Steps {
		// Operations go to a random bucket, or to a random cursor's.
		bi := s.rnd.IntN(len(Buckets))
		var c *pair
		if len(cursors) > 0 && s.rnd.IntN(4) != 0 {
			c = cursors[s.rnd.IntN(len(cursors))]
			bi = c.bucket
		}
		rb, eb := buckets(bi)
		switch op := s.rnd.IntN(12); {
		case op < 2:
			k, v := s.key(), s.value()
			s.log = append(s.log, fmt.Sprintf("%s.Put(%q, %q)", Buckets[bi], k, v))
			s.sameErr(rb.Put(k, v), eb.Put(k, v))
			s.invalidate(cursors, bi, writable)
		case op < 3:
			k := s.key()
			s.log = append(s.log, fmt.Sprintf("%s.Delete(%q)", Buckets[bi], k))
			s.sameErr(rb.Delete(k), eb.Delete(k))
			s.invalidate(cursors, bi, writable)
		case op < 5:
			k := s.key()
			s.log = append(s.log, fmt.Sprintf("%s.Get(%q)", Buckets[bi], k))
			s.same(nil, rb.Get(k), nil, eb.Get(k))
		case op < 6 || c == nil:
			cursors = append(cursors, &pair{ref: rb.Cursor(), eng: eb.Cursor(), bucket: bi, id: len(cursors)})
			s.log = append(s.log, fmt.Sprintf("%s.Cursor() #%d", Buckets[bi], len(cursors)-1))
		case op < 11:
			s.move(c, s.rnd.IntN(5))
		default:
			if !c.on {
				s.move(c, 0)
				continue
			}
			s.log = append(s.log, fmt.Sprintf("cursor #%d on %s: Delete()", c.id, Buckets[c.bucket]))
			s.sameErr(c.ref.Delete(), c.eng.Delete())
			// bbolt's Next after a cursor's Delete skips a key when the
			// leaf was written in the transaction (etcd-io/bbolt#146), so
			// every cursor of the bucket moves with First, Last or Seek
			// next.
			s.invalidate(cursors, c.bucket, writable)
		}
	}
	rb, eb := buckets(s.rnd.IntN(len(Buckets)))
	s.log = append(s.log, "ForEach")
	s.sameForEach(rb, eb)
}

// invalidate marks the cursors of bucket bi as needing a First, Last or
// Seek after a write (a read-only transaction's writes fail and change
// nothing).
func (s *sequence) invalidate(cursors []*pair, bi int, writable bool) {
	if !writable {
		return
	}
	for _, c := range cursors {
		if c.bucket == bi {
			c.on = false
		}
	}
}

// move moves c: 0 First, 1 Last, 2 Seek, 3 Next, 4 Prev (Next and Prev
// only from a key).
func (s *sequence) move(c *pair, how int) {
	if !c.on && how >= 3 {
		how = s.rnd.IntN(3)
	}
	var rk, rv, ek, ev []byte
	switch how {
	case 0:
		s.log = append(s.log, fmt.Sprintf("cursor #%d on %s: First()", c.id, Buckets[c.bucket]))
		rk, rv = c.ref.First()
		ek, ev = c.eng.First()
	case 1:
		s.log = append(s.log, fmt.Sprintf("cursor #%d on %s: Last()", c.id, Buckets[c.bucket]))
		rk, rv = c.ref.Last()
		ek, ev = c.eng.Last()
	case 2:
		k := s.key()
		if s.rnd.IntN(5) == 0 {
			k = nil
		}
		s.log = append(s.log, fmt.Sprintf("cursor #%d on %s: Seek(%q)", c.id, Buckets[c.bucket], k))
		rk, rv = c.ref.Seek(k)
		ek, ev = c.eng.Seek(k)
	case 3:
		s.log = append(s.log, fmt.Sprintf("cursor #%d on %s: Next()", c.id, Buckets[c.bucket]))
		rk, rv = c.ref.Next()
		ek, ev = c.eng.Next()
	default:
		s.log = append(s.log, fmt.Sprintf("cursor #%d on %s: Prev()", c.id, Buckets[c.bucket]))
		rk, rv = c.ref.Prev()
		ek, ev = c.eng.Prev()
	}
	s.same(rk, rv, ek, ev)
	c.on = rk != nil
}

// same fails if the engine's key or value differs from the reference's,
// telling nil from empty.
func (s *sequence) same(rk, rv, ek, ev []byte) {
	s.t.Helper()
	if n := len(s.log); n > 0 {
		s.log[n-1] += " -> " + show(rk, rv)
	}
	if !bytes.Equal(rk, ek) || (rk == nil) != (ek == nil) || !bytes.Equal(rv, ev) || (rv == nil) != (ev == nil) {
		s.fail("reference %s, engine %s", show(rk, rv), show(ek, ev))
	}
}

func (s *sequence) sameErr(ref, eng error) {
	s.t.Helper()
	if (ref == nil) != (eng == nil) {
		s.fail("error: reference %v, engine %v", ref, eng)
	}
}

func (s *sequence) sameForEach(rb, eb kv.Bucket) {
	s.t.Helper()
	var ref, eng []string
	s.sameErr(rb.ForEach(func(k, v []byte) error { ref = append(ref, show(k, v)); return nil }), eb.ForEach(func(k, v []byte) error { eng = append(eng, show(k, v)); return nil }))
	if strings.Join(ref, ",") != strings.Join(eng, ",") {
		s.fail("ForEach: reference %v, engine %v", ref, eng)
	}
}

// compareAll compares every bucket's contents, forward and backward.
func (s *sequence) compareAll(rtx, etx kv.Tx) {
	s.log = s.log[:0]
	for _, name := range Buckets {
		rc, ec := rtx.Bucket(name).Cursor(), etx.Bucket(name).Cursor()
		s.log = append(s.log, fmt.Sprintf("%s: forward", name))
		rk, rv := rc.First()
		ek, ev := ec.First()
		for {
			s.same(rk, rv, ek, ev)
			if rk == nil {
				break
			}
			rk, rv = rc.Next()
			ek, ev = ec.Next()
		}
		s.log = append(s.log, fmt.Sprintf("%s: backward", name))
		rk, rv = rc.Last()
		ek, ev = ec.Last()
		for {
			s.same(rk, rv, ek, ev)
			if rk == nil {
				break
			}
			rk, rv = rc.Prev()
			ek, ev = ec.Prev()
		}
	}
}

func show(k, v []byte) string {
	if k == nil {
		return "<nil>"
	}
	if v == nil {
		return fmt.Sprintf("%q=<nil>", k)
	}
	return fmt.Sprintf("%q=%q", k, v)
}
