package etcdkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/store/kv"
	"github.com/alltogether/exchange/store/kv/etcdkv/etcdtest"
)

// TestLimits runs against one member started with --max-txn-ops=16 and
// --max-request-bytes=64 KiB.
func TestLimits(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1, UnsafeNoFsync: true, MaxTxnOps: 16, MaxRequestBytes: 64 << 10})
	cli := c.Client(t)
	ctx := testContext(t)

	// The most writes a DB configured as the member takes commit there:
	// the count matches etcd's, commit key included.
	t.Run("TxFullAtMaxTxnOps", func(t *testing.T) {
		db := newDB(t, cli, Config{MaxTxnOps: 16, MaxRequestBytes: 64 << 10})
		err := db.Update(ctx, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("b"))
			for i := range 15 {
				if err := b.Put(fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
					return fmt.Errorf("put %d: %w", i, err)
				}
			}
			if err := b.Put([]byte("k0"), []byte("again")); err != nil {
				return fmt.Errorf("overwriting a buffered key counts a new op: %w", err)
			}
			if err := b.Put([]byte("k15"), []byte("v")); !errors.Is(err, kv.ErrTxFull) {
				return fmt.Errorf("the 16th write: %v, want kv.ErrTxFull", err)
			}
			if err := b.Delete([]byte("other")); !errors.Is(err, kv.ErrTxFull) {
				return fmt.Errorf("a delete past the limit: %v, want kv.ErrTxFull", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		assertKeys(t, db, 15)
	})

	// The largest value a DB configured as the member takes commits there:
	// the byte count keeps enough margin.
	t.Run("TxFullAtMaxRequestBytes", func(t *testing.T) {
		db := newDB(t, cli, Config{MaxTxnOps: 16, MaxRequestBytes: 64 << 10})
		var largest int
		err := db.Update(ctx, func(tx kv.Tx) error {
			b := tx.Bucket([]byte("b"))
			if err := b.Put([]byte("big"), make([]byte, 64<<10)); !errors.Is(err, kv.ErrTxFull) {
				return fmt.Errorf("a 64 KiB value: %v, want kv.ErrTxFull", err)
			}
			lo, hi := 0, 64<<10 // lo fits, hi does not
			for hi-lo > 1 {
				mid := (lo + hi) / 2
				if b.Put([]byte("big"), make([]byte, mid)) == nil {
					lo = mid
				} else {
					hi = mid
				}
			}
			largest = lo
			return b.Put([]byte("big"), bytes.Repeat([]byte{'x'}, lo))
		})
		if err != nil {
			t.Fatalf("committing the largest value the DB takes, %d bytes: %v", largest, err)
		}
		t.Logf("largest value taken: %d bytes of a %d-byte --max-request-bytes", largest, 64<<10)
	})

	// A DB that believes the cluster takes more operations or bytes fails
	// at commit, with kv.ErrTxFull still, and writes nothing.
	t.Run("ClusterRefusesCommit", func(t *testing.T) {
		db := newDB(t, cli, Config{MaxTxnOps: 128})
		err := db.Update(ctx, func(tx kv.Tx) error {
			for i := range 20 {
				if err := tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, kv.ErrTxFull) {
			t.Fatalf("Update = %v, want kv.ErrTxFull", err)
		}
		assertKeys(t, db, 0)
		db = newDB(t, cli, Config{MaxRequestBytes: 1 << 20})
		err = db.Update(ctx, func(tx kv.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("big"), make([]byte, 100<<10)) })
		if !errors.Is(err, kv.ErrTxFull) {
			t.Fatalf("Update of 100 KiB = %v, want kv.ErrTxFull", err)
		}
		assertKeys(t, db, 0)
	})

	t.Run("ProbeLimits", func(t *testing.T) {
		revision := func() int64 {
			resp, err := cli.Get(ctx, "any")
			if err != nil {
				t.Fatal(err)
			}
			return resp.Header.Revision
		}
		before := revision()
		if err := newDB(t, cli, Config{MaxTxnOps: 16, MaxRequestBytes: 64 << 10}).ProbeLimits(ctx); err != nil {
			t.Fatalf("limits equal to the member's: %v", err)
		}
		if after := revision(); after != before {
			t.Fatalf("ProbeLimits wrote: the revision went from %d to %d", before, after)
		}
		err := newDB(t, cli, Config{MaxTxnOps: 17, MaxRequestBytes: 64 << 10}).ProbeLimits(ctx)
		if err == nil || !strings.Contains(err.Error(), "--max-txn-ops=17") {
			t.Fatalf("MaxTxnOps above the member's: %v, want an error naming --max-txn-ops=17", err)
		}
		err = newDB(t, cli, Config{MaxTxnOps: 16, MaxRequestBytes: 128 << 10}).ProbeLimits(ctx)
		if err == nil || !strings.Contains(err.Error(), "--max-request-bytes=131072") {
			t.Fatalf("MaxRequestBytes above the member's: %v, want an error naming --max-request-bytes=131072", err)
		}
	})

	// A stopped cluster: reads and the start of a write fail with
	// kv.ErrUnavailable, wrapping the cause.
	t.Run("Unavailable", func(t *testing.T) {
		db := newDB(t, cli, Config{})
		c.StopMember(0)
		defer c.RestartMember(0)
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		err := db.View(short, func(tx kv.Tx) error { tx.Bucket([]byte("b")).Get([]byte("k")); return nil })
		if !errors.Is(err, kv.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("View = %v, want kv.ErrUnavailable wrapping the deadline", err)
		}
		err = db.Update(short, func(tx kv.Tx) error { return tx.Bucket([]byte("b")).Put([]byte("k"), []byte("v")) })
		if !errors.Is(err, kv.ErrUnavailable) {
			t.Fatalf("Update = %v, want kv.ErrUnavailable", err)
		}
	})
}

// assertKeys checks bucket b of db has n keys.
func assertKeys(t *testing.T, db *DB, n int) {
	t.Helper()
	got := 0
	err := db.View(testContext(t), func(tx kv.Tx) error {
		return tx.Bucket([]byte("b")).ForEach(func(_, _ []byte) error { got++; return nil })
	})
	if err != nil || got != n {
		t.Fatalf("bucket b has %d keys (%v), want %d", got, err, n)
	}
}

// TestNewChecksConfig checks New refuses each bad Config with an error
// naming the field.
func TestNewChecksConfig(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1, UnsafeNoFsync: true})
	cli := c.Client(t)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Prefix: "/x/"}, "Config.Client"},
		{Config{Client: cli}, "Config.Prefix is required"},
		{Config{Client: cli, Prefix: "/x"}, `must end with "/"`},
		{Config{Client: cli, Prefix: "/x\x00/"}, "zero byte"},
		{Config{Client: cli, Prefix: "/x/", MaxTxnOps: -1}, "Config.MaxTxnOps"},
		{Config{Client: cli, Prefix: "/x/", MaxTxnOps: 1}, "Config.MaxTxnOps"},
		{Config{Client: cli, Prefix: "/x/", MaxRequestBytes: 100}, "Config.MaxRequestBytes"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}
