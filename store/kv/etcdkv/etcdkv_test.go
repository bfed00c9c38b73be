package etcdkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/alltogether/exchange/store/kv"
	"github.com/alltogether/exchange/store/kv/etcdkv/etcdtest"
	"github.com/alltogether/exchange/store/kv/kvtest"
)

// prefixes gives each DB of the tests its own keys.
var prefixes atomic.Int64

func newDB(t testing.TB, cli *clientv3.Client, cfg Config) *DB {
	t.Helper()
	cfg.Client = cli
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("/test%d/", prefixes.Add(1))
	}
	db, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestEtcdKV runs the engine's tests on one 3-member cluster (starting
// and stopping a cluster costs about a second).
func TestEtcdKV(t *testing.T) {
	began := time.Now()
	c := etcdtest.Start(t, etcdtest.Options{UnsafeNoFsync: true})
	t.Logf("3 members started in %v", time.Since(began))
	t.Run("Conformance", func(t *testing.T) { testConformance(t, c) })
	t.Run("Serializable", func(t *testing.T) { testSerializable(t, c) })
	t.Run("ViewSnapshot", func(t *testing.T) { testViewSnapshot(t, c) })
	t.Run("CursorSnapshot", func(t *testing.T) { testCursorSnapshot(t, c) })
	t.Run("CursorDelete", func(t *testing.T) { testCursorDelete(t, c) })
	t.Run("OnCommit", func(t *testing.T) { testOnCommit(t, c) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, c) })
	t.Run("WatchAfterCompaction", func(t *testing.T) { testWatchAfterCompaction(t, c) })
	t.Run("Compact", func(t *testing.T) { testCompact(t, c) })
	t.Run("ReadOnly", func(t *testing.T) { testReadOnly(t, c) })
}

// testConformance compares the engine with bbolt, with the cursors'
// usual pages and with pages of 2 to 4 keys, whose edges the sequences
// then cross often.
func testConformance(t *testing.T, c *etcdtest.Cluster) {
	cli := c.Client(t)
	t.Run("pages", func(t *testing.T) {
		kvtest.Conformance(t, func(t *testing.T) kvtest.Engine { return newDB(t, cli, Config{MaxTxnOps: 8192}) })
	})
	t.Run("tinyPages", func(t *testing.T) {
		kvtest.Conformance(t, func(t *testing.T) kvtest.Engine {
			db := newDB(t, cli, Config{MaxTxnOps: 8192})
			db.firstPage, db.lastPage = 2, 4
			return db
		})
	})
}

// testSerializable increments one counter from goroutines on two clients,
// each through a different member: no increment is lost.
func testSerializable(t *testing.T, c *etcdtest.Cluster) {
	ctx := testContext(t)
	prefix := fmt.Sprintf("/counter%d/", prefixes.Add(1))
	dbs := []*DB{newDB(t, c.MemberClient(t, 0), Config{Prefix: prefix}), newDB(t, c.MemberClient(t, 1), Config{Prefix: prefix})}
	const goroutines, increments = 6, 20
	var attempts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		db := dbs[g%2]
		wg.Go(func() {
			for range increments {
				err := db.Update(ctx, func(tx kv.Tx) error {
					attempts.Add(1)
					b := tx.Bucket([]byte("counter"))
					n, _ := strconv.Atoi(string(b.Get([]byte("n"))))
					return b.Put([]byte("n"), []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var got string
	if err := dbs[0].View(ctx, func(tx kv.Tx) error {
		got = string(tx.Bucket([]byte("counter")).Get([]byte("n")))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d increments took %d attempts", goroutines*increments, attempts.Load())
	if got != strconv.Itoa(goroutines*increments) {
		t.Fatalf("counter = %s after %d increments", got, goroutines*increments)
	}
}

// testViewSnapshot reads a key in a View before and after another
// client's Update commits a new value: the View sees the old one.
func testViewSnapshot(t *testing.T, c *etcdtest.Cluster) {
	ctx := testContext(t)
	prefix := fmt.Sprintf("/snap%d/", prefixes.Add(1))
	reader, writer := newDB(t, c.MemberClient(t, 0), Config{Prefix: prefix}), newDB(t, c.MemberClient(t, 2), Config{Prefix: prefix})
	put := func(v string) {
		t.Helper()
		if err := writer.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k"), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	put("old")
	err := reader.View(ctx, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("b"))
		if v := string(b.Get([]byte("k"))); v != "old" {
			t.Errorf("first read = %q, want old", v)
		}
		put("new")
		if v := string(b.Get([]byte("k"))); v != "old" {
			t.Errorf("read after another client's commit = %q, want old (the snapshot's)", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = reader.View(ctx, func(tx kv.Tx) error {
		if v := string(tx.Bucket([]byte("b")).Get([]byte("k"))); v != "new" {
			t.Errorf("a new View reads %q, want new", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testCursorSnapshot walks 5,000 keys with a cursor in a View while
// another client deletes, adds and changes keys ahead of it: the cursor
// sees exactly the snapshot.
func testCursorSnapshot(t *testing.T, c *etcdtest.Cluster) {
	ctx := testContext(t)
	prefix := fmt.Sprintf("/walk%d/", prefixes.Add(1))
	reader := newDB(t, c.MemberClient(t, 0), Config{Prefix: prefix, MaxTxnOps: 8192, MaxRequestBytes: 8 << 20})
	writer := newDB(t, c.MemberClient(t, 1), Config{Prefix: prefix, MaxTxnOps: 8192, MaxRequestBytes: 8 << 20})
	const n = 5000
	key := func(i int) []byte { return fmt.Appendf(nil, "key%06d", i) }
	if err := writer.Update(ctx, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("walk"))
		for i := 0; i < n; i++ {
			if err := b.Put(key(2*i), fmt.Appendf(nil, "v%d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Each disturbance changes keys the cursor has not reached yet.
	disturb := func(from int) {
		t.Helper()
		err := writer.Update(ctx, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("walk"))
			for i := from; i < n; i += 97 {
				_ = b.Delete(key(2 * i))
				_ = b.Put(key(2*i+1), []byte("added"))
				_ = b.Put(key(2*(i+1)), []byte("changed"))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	err := reader.View(ctx, func(tx kv.Tx) error {
		cur := tx.Bucket([]byte("walk")).Cursor()
		i := 0
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if !bytes.Equal(k, key(2*i)) || string(v) != fmt.Sprintf("v%d", i) {
				t.Fatalf("key %d: %q=%q, want %q=v%d", i, k, v, key(2*i), i)
			}
			if i == 10 || i == 1000 || i == 3000 {
				disturb(i + 1)
			}
			i++
		}
		if i != n {
			t.Fatalf("the cursor saw %d keys, want %d", i, n)
		}
		// Backward too, after the disturbances.
		for k, _ := cur.Last(); k != nil; k, _ = cur.Prev() {
			i--
			if !bytes.Equal(k, key(2*i)) {
				t.Fatalf("backward key %d: %q, want %q", i, k, key(2*i))
			}
		}
		if i != 0 {
			t.Fatalf("backward the cursor missed %d keys", i)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("walked %d keys forward and back in %v", n, time.Since(began))
}

// testOnCommit checks hooks run after the commit, in order, and not for
// an attempt that lost to another writer or a fn that failed.
func testOnCommit(t *testing.T, c *etcdtest.Cluster) {
	ctx := testContext(t)
	prefix := fmt.Sprintf("/hooks%d/", prefixes.Add(1))
	db, other := newDB(t, c.MemberClient(t, 0), Config{Prefix: prefix}), newDB(t, c.MemberClient(t, 1), Config{Prefix: prefix})
	var ran []string
	attempt := 0
	err := db.Update(ctx, func(tx kv.Tx) error {
		attempt++
		b := tx.Bucket([]byte("b"))
		_ = b.Get([]byte("k")) // fixes the snapshot
		if err := b.Put([]byte("k"), []byte("mine")); err != nil {
			return err
		}
		a := attempt
		tx.OnCommit(func() {
			// The commit is visible to everyone when the hook runs.
			var seen string
			_ = other.View(ctx, func(tx kv.Tx) error { seen = string(tx.Bucket([]byte("b")).Get([]byte("k"))); return nil })
			ran = append(ran, fmt.Sprintf("first of attempt %d saw %s", a, seen))
		})
		tx.OnCommit(func() { ran = append(ran, fmt.Sprintf("second of attempt %d", a)) })
		if a == 1 {
			// Another writer commits after this attempt's snapshot.
			if err := other.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k"), []byte("theirs")) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"first of attempt 2 saw mine", "second of attempt 2"}
	if fmt.Sprint(ran) != fmt.Sprint(want) {
		t.Fatalf("hooks ran %q, want %q", ran, want)
	}
	ran = nil
	failed := errors.New("fn failed")
	err = db.Update(ctx, func(tx kv.Tx) error {
		tx.OnCommit(func() { ran = append(ran, "hook of a failed fn") })
		return failed
	})
	if !errors.Is(err, failed) || len(ran) != 0 {
		t.Fatalf("a failed fn: Update = %v, hooks ran %q", err, ran)
	}
}

// testWatch checks WatchBucket delivers another client's puts and deletes
// of the bucket, in order, and nothing of other buckets.
func testWatch(t *testing.T, c *etcdtest.Cluster) {
	ctx := testContext(t)
	prefix := fmt.Sprintf("/watch%d/", prefixes.Add(1))
	watcher, writer := newDB(t, c.MemberClient(t, 0), Config{Prefix: prefix}), newDB(t, c.MemberClient(t, 1), Config{Prefix: prefix})
	events := make(chan string, 1000)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watcher.WatchBucket(wctx, []byte("w"), func(k, v []byte) { events <- show(k, v) })
	}()
	defer func() { stop(); <-done }()
	update := func(fn func(w, other kv.Bucket)) {
		t.Helper()
		if err := writer.Update(ctx, func(tx kv.Tx) error { fn(tx.Bucket([]byte("w")), tx.Bucket([]byte("w2"))); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Write a marker until the watch is in place and sees it.
	waitFor(t, events, func() { update(func(w, _ kv.Bucket) { _ = w.Put([]byte("marker"), []byte("x")) }) }, `"marker"="x"`)
	var want []string
	for i := range 10 {
		k := fmt.Sprintf("k%d", 9-i)
		update(func(w, other kv.Bucket) {
			_ = w.Put([]byte(k), []byte("v"))
			_ = other.Put([]byte(k), []byte("not this bucket"))
		})
		want = append(want, fmt.Sprintf("%q=%q", k, "v"))
		if i%3 == 0 {
			update(func(w, _ kv.Bucket) { _ = w.Delete([]byte(k)) })
			want = append(want, fmt.Sprintf("%q=<nil>", k))
		}
	}
	update(func(w, _ kv.Bucket) { _ = w.Put([]byte("empty"), nil) })
	want = append(want, `"empty"=""`)
	var got []string
	for len(got) < len(want) {
		select {
		case e := <-events:
			if e != `"marker"="x"` {
				got = append(got, e)
			}
		case <-ctx.Done():
			t.Fatalf("got %q before the timeout, want %q", got, want)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events\n%q, want\n%q", got, want)
	}
}

// testWatchAfterCompaction starts a watch at a revision the cluster has
// compacted: etcd cancels it, and the watch starts again from the current
// revision, telling fn with fn(nil, nil), then delivers new puts.
func testWatchAfterCompaction(t *testing.T, c *etcdtest.Cluster) {
	ctx := testContext(t)
	db := newDB(t, c.Client(t), Config{})
	put := func(k string) {
		t.Helper()
		if err := db.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("w")).Put([]byte(k), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}
	put("before")
	old, err := db.client.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	put("compacted away")
	if err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	events := make(chan string, 100)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.watchBucket(wctx, []byte("w"), old.Header.Revision, func(k, v []byte) { events <- show(k, v) })
	}()
	defer func() { stop(); <-done }()
	select {
	case e := <-events:
		if e != "<nil>" {
			t.Fatalf("first event %s, want fn(nil, nil)", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no fn(nil, nil) after the watch was compacted away")
	}
	waitFor(t, events, func() { put("after") }, `"after"="v"`)
}

// waitFor repeats do until events delivers want, failing at the test's
// deadline.
func waitFor(t *testing.T, events <-chan string, do func(), want string) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	do()
	for {
		select {
		case e := <-events:
			if e == want {
				return
			}
		case <-tick.C:
			do()
		case <-deadline:
			t.Fatalf("no event %s", want)
		}
	}
}

// testCompact checks that after Compact, values overwritten before are no
// longer served by etcd at their old revisions.
func testCompact(t *testing.T, c *etcdtest.Cluster) {
	ctx := testContext(t)
	db := newDB(t, c.Client(t), Config{})
	put := func(v string) {
		t.Helper()
		if err := db.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k"), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	put("erased")
	resp, err := db.client.Get(ctx, db.prefix+"b\x00k")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	rev := resp.Kvs[0].ModRevision
	put("current")
	if resp, err := db.client.Get(ctx, db.prefix+"b\x00k", clientv3.WithRev(rev)); err != nil || string(resp.Kvs[0].Value) != "erased" {
		t.Fatalf("before Compact, the old revision reads %v, %v", resp, err)
	}
	if err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if resp, err := db.client.Get(ctx, db.prefix+"b\x00k", clientv3.WithRev(rev)); err == nil {
		t.Fatalf("after Compact, the old revision still reads %q", resp.Kvs)
	}
}

// testReadOnly checks writes in a View fail and change nothing, and that
// a bucket name with a zero byte has no bucket.
func testReadOnly(t *testing.T, c *etcdtest.Cluster) {
	ctx := testContext(t)
	db := newDB(t, c.Client(t), Config{})
	err := db.View(ctx, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("b"))
		if b.Put([]byte("k"), []byte("v")) == nil || b.Delete([]byte("k")) == nil {
			t.Error("a write in a View succeeded")
		}
		if tx.Bucket([]byte("a\x00b")) != nil {
			t.Error("a bucket name with a zero byte has a bucket")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(ctx, func(tx kv.Tx) error {
		if v := tx.Bucket([]byte("b")).Get([]byte("k")); v != nil {
			t.Errorf("a View's write is there: %q", v)
		}
		return nil
	})
}

func show(k, v []byte) string {
	switch {
	case k == nil:
		return "<nil>"
	case v == nil:
		return fmt.Sprintf("%q=<nil>", k)
	}
	return fmt.Sprintf("%q=%q", k, v)
}

// testCursorDelete checks what kv.Cursor documents (and bbolt does not
// always do, etcd-io/bbolt#146): after a cursor's Delete, Next moves to
// the key after the deleted one and Prev to the key before, also when
// the transaction wrote the bucket before; deleting every key while
// walking leaves none.
func testCursorDelete(t *testing.T, c *etcdtest.Cluster) {
	ctx := testContext(t)
	db := newDB(t, c.Client(t), Config{})
	db.firstPage, db.lastPage = 2, 2
	keys := []string{"a", "b", "c", "d", "e", "f"}
	err := db.Update(ctx, func(tx kv.Tx) error {
		for _, k := range keys[:3] {
			_ = tx.Bucket([]byte("b")).Put([]byte(k), []byte("committed"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(tx kv.Tx) error {
		b := tx.Bucket([]byte("b"))
		for _, k := range keys[3:] {
			_ = b.Put([]byte(k), []byte("own"))
		}
		cur := b.Cursor()
		for i, k := range keys[1:5] {
			if got, _ := cur.Seek([]byte(k)); string(got) != k {
				t.Fatalf("Seek(%s) = %q", k, got)
			}
			if err := cur.Delete(); err != nil {
				return err
			}
			if got, _ := cur.Next(); string(got) != keys[i+2] {
				t.Errorf("Next after deleting %s = %q, want %s", k, got, keys[i+2])
			}
			_, _ = cur.Seek([]byte(k))
			if got, _ := cur.Prev(); string(got) != "a" {
				t.Errorf("Prev after deleting %s = %q, want a", k, got)
			}
		}
		n := 0
		for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
			if err := cur.Delete(); err != nil {
				return err
			}
			n++
		}
		if n != 2 {
			t.Errorf("deleting while walking visited %d keys, want 2 (a, f)", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	assertKeys(t, db, 0)
}
