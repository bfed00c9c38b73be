package main

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/store"
)

// storeDelta creates referrals through the store, calls calls of perCall
// referrals each, the way CreateReferral (batched false) or
// BatchCreateReferrals makes the store write them, and returns, per
// bucket, how many keys were added and which existing values changed.
func storeDelta(t *testing.T, calls, perCall int, batched bool) (added map[string]int, changed map[string][]string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { st.Close() }()
	if err := seedAgencies(ctx, st); err != nil {
		t.Fatal(err)
	}
	op := store.Op{Actor: "agencies/" + sender, Method: createReferralMethod}
	if batched {
		op.Method = batchCreateMethod
	}
	create := func(n int) {
		items := make([]store.NewReferral, n)
		for i := range items {
			items[i] = store.NewReferral{RequestID: client.NewRequestID(), Referral: newReferral(pushSeq.Add(1))}
		}
		res, err := st.CreateReferrals(ctx, op, items)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	create(1) // as the capture does: every bucket exists, later calls are the steady state
	dump := func() map[string]map[string]string {
		st.Close()
		d, err := dumpBuckets(path)
		if err != nil {
			t.Fatal(err)
		}
		if st, err = store.Open(path, store.Options{}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	before := dump()
	for range calls {
		create(perCall)
	}
	after := dump()
	added, changed = map[string]int{}, map[string][]string{}
	for bucket, kvs := range after {
		for k, v := range kvs {
			old, existed := before[bucket][k]
			switch {
			case !existed:
				added[bucket]++
			case old != v:
				changed[bucket] = append(changed[bucket], k)
			}
		}
	}
	return added, changed
}

// ceilingDelta writes calls × perCall referrals into a fresh storage
// ceiling and returns the keys per bucket it holds.
func ceilingDelta(t *testing.T, puts []put, calls, perCall int) map[string]map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ceiling.db")
	c, err := openCeiling(path, puts)
	if err != nil {
		t.Fatal(err)
	}
	for range calls {
		if err := c.write(perCall); err != nil {
			t.Fatal(err)
		}
	}
	c.db.Close()
	d, err := dumpBuckets(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestStorageCeilingWritesWhatTheStoreWrites checks the premise of the
// storage ceiling: per call it writes, bucket by bucket, as many new keys
// as the store does and overwrites the same keys, so that the ratio to it
// compares the same disk work.
func TestStorageCeilingWritesWhatTheStoreWrites(t *testing.T) {
	for _, c := range []struct {
		name           string
		batched        bool
		calls, perCall int
	}{
		{"CreateReferral", false, 5, 1},
		{"BatchCreateReferrals", true, 2, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			puts, err := captureWriteSet(context.Background(), t.TempDir(), c.batched)
			if err != nil {
				t.Fatal(err)
			}
			added, changed := storeDelta(t, c.calls, c.perCall, c.batched)
			got := ceilingDelta(t, puts, c.calls, c.perCall)

			want := map[string]int{}
			for b, n := range added {
				want[b] = n
			}
			for b, keys := range changed {
				want[b] += len(keys)
			}
			have := map[string]int{}
			for b, kvs := range got {
				have[b] = len(kvs)
			}
			if !maps.Equal(have, want) {
				t.Errorf("keys per bucket after %d calls of %d referrals:\n ceiling %v\n store   %v", c.calls, c.perCall, have, want)
			}
			for b, keys := range changed {
				for _, k := range keys {
					if _, ok := got[b][k]; !ok {
						t.Errorf("the store overwrites %s/%q; the ceiling does not write it", b, k)
					}
				}
			}
			var size int
			for _, p := range puts {
				if p.insert {
					size += len(p.value)
				}
			}
			var ceilingSize int
			for _, kvs := range got {
				for _, v := range kvs {
					ceilingSize += len(v)
				}
			}
			if n := c.calls * c.perCall; ceilingSize < n*size {
				t.Errorf("the ceiling stored %d bytes of values for %d referrals of %d bytes each", ceilingSize, n, size)
			}
		})
	}
}

func TestVariationFindsWhereAndHowKeysChange(t *testing.T) {
	for _, c := range []struct {
		keys  []string
		from  int
		order keyOrder
	}{
		{[]string{"ilo/a1", "ilo/a2", "ilo/b0"}, 4, ascending},
		{[]string{"x9", "x8", "x1"}, 1, descending},
		{[]string{"k3", "k1", "k2"}, 1, random},
		{[]string{"same", "same"}, 4, ascending},
	} {
		from, order := variation(c.keys)
		if from != c.from || order != c.order {
			t.Errorf("variation(%q) = %d, %d; want %d, %d", c.keys, from, order, c.from, c.order)
		}
	}
}

func TestNextKeyKeepsKeysUniqueAndOrdered(t *testing.T) {
	for _, p := range []put{
		{key: []byte("prefix/0000000000000000"), varFrom: 7, order: ascending},
		{key: []byte("prefix/0000000000000000"), varFrom: 7, order: descending},
		{key: []byte("p/abc"), varFrom: 2, order: ascending}, // a tail shorter than 8 bytes
		{key: []byte("r/0123456789abcdef"), varFrom: 2, order: random},
	} {
		var keys []string
		for seq := uint64(1); seq <= 1000; seq++ {
			k := p.nextKey(seq)
			if string(k[:p.varFrom]) != string(p.key[:p.varFrom]) || len(k) != len(p.key) {
				t.Fatalf("nextKey(%d) of %q = %q: prefix or length changed", seq, p.key, k)
			}
			keys = append(keys, string(k))
		}
		if u := slices.Compact(slices.Sorted(slices.Values(keys))); len(u) != len(keys) {
			t.Errorf("%q %d: %d distinct keys of %d", p.key, p.order, len(u), len(keys))
		}
		switch p.order {
		case ascending:
			if !slices.IsSorted(keys) {
				t.Errorf("%q: ascending keys are not sorted", p.key)
			}
		case descending:
			if !slices.IsSortedFunc(keys, func(a, b string) int { return strings.Compare(b, a) }) {
				t.Errorf("%q: descending keys are not sorted in reverse", p.key)
			}
		}
	}
}
