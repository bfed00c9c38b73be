package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/store"
	"github.com/alltogether/exchange/store/groupcommit"
	"github.com/alltogether/exchange/store/kv"
)

// The storage ceiling: raw bbolt, opened with the options store.Open uses,
// the same group commit (store/groupcommit, at most 256 writes per
// transaction, no delay) and the same page fill per bucket, writing for each referral exactly the key/value
// pairs the store writes for one referral (the overwritten ones, revision
// and audit head, once per call as the store does). Those pairs are not rebuilt by hand: they are
// captured by creating referrals through the store package in a scratch
// database and diffing every bucket before and after each, so the ceiling
// follows the store's schema as it changes (record, indexes, idempotency
// key, change log, audit entry, sealed details, revision and audit head).
// The captures also show how each new key varies from one referral to the
// next (growing like a time-ordered id or a revision, shrinking like a
// newest-first index, or at random like a client's request id), and the
// ceiling makes its keys vary the same way, because where keys land in
// the B+tree decides how many pages a commit writes. What the ceiling
// leaves out is the work that produces those bytes: validation, protobuf
// encoding, hashing, encryption, and the RPC around it.

// put is one key/value pair of a referral's write set.
type put struct {
	bucket, key, value []byte
	// insert: a new key per referral, whose bytes from varFrom on vary as
	// order says; otherwise an overwrite of a fixed key (the revision,
	// the audit head).
	insert  bool
	varFrom int
	order   keyOrder
}

type keyOrder int

const (
	ascending keyOrder = iota
	descending
	random
)

// captures is how many referrals are created to see how keys vary.
const captures = 6

// captureWriteSet creates referrals through the store in a scratch
// database, as CreateReferral (batched false) or BatchCreateReferrals
// (batched) does: through CreateReferrals, the request id given with the
// referral, none in the Op, and the method's name for the audit chain. It
// returns the pairs that creating one writes.
func captureWriteSet(ctx context.Context, dir string, batched bool) ([]put, error) {
	path := filepath.Join(dir, "capture.db")
	os.Remove(path)
	defer os.Remove(path)
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return nil, err
	}
	for _, id := range []string{sender, receiver} {
		if _, err := st.CreateAgency(ctx, store.Op{Actor: "secretariat", Method: "bench/setup"}, id, benchAgency(id)); err != nil {
			st.Close()
			return nil, err
		}
	}
	st.Close()
	create := func(n int64) error {
		st, err := store.Open(path, store.Options{})
		if err != nil {
			return err
		}
		defer st.Close()
		id := client.NewRequestID()
		op := store.Op{Actor: "agencies/" + sender, Method: createReferralMethod}
		if batched {
			op.Method = batchCreateMethod
		}
		res, err := st.CreateReferrals(ctx, op, []store.NewReferral{{RequestID: id, Referral: newReferral(n)}})
		if err == nil && res[0].Err != nil {
			err = res[0].Err
		}
		time.Sleep(3 * time.Millisecond) // ids are ordered by the millisecond
		return err
	}
	// A first referral, so that every bucket exists and later ones show
	// the steady state (overwrites, not first writes).
	if err := create(0); err != nil {
		return nil, err
	}
	before, err := dumpBuckets(path)
	if err != nil {
		return nil, err
	}
	// diffs[i][bucket] holds the new keys (sorted) of referral i, and
	// last[bucket][key] the overwritten values.
	var diffs []map[string][]string
	var puts []put
	for i := range captures {
		if err := create(int64(i + 1)); err != nil {
			return nil, err
		}
		after, err := dumpBuckets(path)
		if err != nil {
			return nil, err
		}
		diff := map[string][]string{}
		for bucket, kvs := range after {
			for k, v := range kvs {
				old, existed := before[bucket][k]
				switch {
				case !existed:
					diff[bucket] = append(diff[bucket], k)
				case old != v && i == 0:
					puts = append(puts, put{bucket: []byte(bucket), key: []byte(k), value: []byte(v)})
				}
			}
			slices.Sort(diff[bucket])
		}
		if i == 0 {
			for bucket, keys := range diff {
				for _, k := range keys {
					puts = append(puts, put{bucket: []byte(bucket), key: []byte(k), value: []byte(after[bucket][k]), insert: true})
				}
			}
		}
		diffs = append(diffs, diff)
		before = after
	}
	// How each new key varies: compare the same key (same bucket, same
	// rank) across the captures.
	rank := map[string]int{}
	for i := range puts {
		p := &puts[i]
		if !p.insert {
			continue
		}
		b := string(p.bucket)
		r := rank[b]
		rank[b]++
		var seen []string
		for _, d := range diffs {
			if r >= len(d[b]) {
				return nil, fmt.Errorf("bucket %s: referrals write different numbers of keys", b)
			}
			seen = append(seen, d[b][r])
		}
		p.varFrom, p.order = variation(seen)
	}
	if len(puts) == 0 {
		return nil, fmt.Errorf("creating a referral wrote nothing the capture could see")
	}
	return puts, nil
}

// variation finds where successive keys start to differ and in which
// order they come.
func variation(keys []string) (from int, order keyOrder) {
	from = len(keys[0])
	for _, k := range keys[1:] {
		n := 0
		for n < len(k) && n < len(keys[0]) && k[n] == keys[0][n] {
			n++
		}
		from = min(from, n)
	}
	switch {
	case slices.IsSorted(keys):
		return from, ascending
	case slices.IsSortedFunc(keys, func(a, b string) int { return strings.Compare(b, a) }):
		return from, descending
	}
	return from, random
}

const createReferralMethod = "/alltogether.exchange.v1.ReferralService/CreateReferral"

// dumpBuckets reads every top-level bucket of a bbolt file.
func dumpBuckets(path string) (map[string]map[string]string, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	out := map[string]map[string]string{}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			kvs := map[string]string{}
			out[string(name)] = kvs
			return b.ForEach(func(k, v []byte) error {
				if v != nil { // nil: a nested bucket, not a value
					kvs[string(k)] = string(v)
				}
				return nil
			})
		})
	})
	return out, err
}

// describeWriteSet says, per bucket, how a referral's keys vary.
func describeWriteSet(puts []put) string {
	var parts []string
	for _, p := range puts {
		how := "overwritten"
		if p.insert {
			how = [...]string{"ascending", "descending", "random"}[p.order]
		}
		parts = append(parts, fmt.Sprintf("%s %s", p.bucket, how))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// writeSetBytes is the bytes of keys and values one referral writes.
func writeSetBytes(puts []put) int {
	n := 0
	for _, p := range puts {
		n += len(p.key) + len(p.value)
	}
	return n
}

// ceiling is the storage ceiling's database.
type ceiling struct {
	db      *bolt.DB
	commits *groupcommit.Committer
	puts    []put
	seq     atomic.Uint64
}

// openCeiling opens a fresh bbolt file with store.Open's options.
func openCeiling(path string, puts []put) (*ceiling, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         time.Second,
		FreelistType:    bolt.FreelistMapType,
		NoFreelistSync:  false,
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, p := range puts {
			if _, err := tx.CreateBucketIfNotExists(p.bucket); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &ceiling{db: db, commits: groupcommit.New(kv.BoltUpdate(db), 256, 0), puts: puts}, nil
}

// write durably stores n referrals' write sets in one function of a
// group-committed transaction, as one CreateReferrals call of the store
// does: the new keys of every referral, and the overwritten ones (the
// revision, the audit head) once, at the end, as the store writes them
// once per call.
func (c *ceiling) write(n int) error {
	return c.commits.Do(func(ktx kv.Tx) error {
		tx := kv.BoltTx(ktx)
		for _, p := range c.puts {
			tx.Bucket(p.bucket).FillPercent = store.BucketFill(string(p.bucket))
		}
		for range n {
			seq := c.seq.Add(1)
			for _, p := range c.puts {
				if !p.insert {
					continue
				}
				if err := tx.Bucket(p.bucket).Put(p.nextKey(seq), p.value); err != nil {
					return err
				}
			}
		}
		for _, p := range c.puts {
			if p.insert {
				continue
			}
			if err := tx.Bucket(p.bucket).Put(p.key, p.value); err != nil {
				return err
			}
		}
		return nil
	})
}

// nextKey is the key of the seq-th referral: the captured key with its
// varying bytes replaced by seq (ascending), its complement (descending)
// or random bytes, and a tail that keeps keys of the same length unique.
func (p *put) nextKey(seq uint64) []byte {
	key := slices.Clone(p.key)
	tail := key[p.varFrom:]
	var v [8]byte
	switch p.order {
	case ascending:
		binary.BigEndian.PutUint64(v[:], seq)
	case descending:
		binary.BigEndian.PutUint64(v[:], ^seq)
	default:
		binary.BigEndian.PutUint64(v[:], rand.Uint64())
	}
	// The most significant bytes of v that the tail can hold; if it holds
	// fewer than 8, the least significant ones, so that keys stay unique.
	if len(tail) >= 8 {
		copy(tail, v[:])
		if p.order == random {
			for i := 8; i < len(tail); i++ {
				tail[i] = byte(rand.Uint32())
			}
		}
	} else {
		copy(tail, v[8-len(tail):])
	}
	return key
}

func (c *ceiling) close() {
	path := c.db.Path()
	c.db.Close()
	os.Remove(path)
}
