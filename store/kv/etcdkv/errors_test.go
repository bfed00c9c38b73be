package etcdkv

import (
	"context"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/store/kv"
	"github.com/alltogether/exchange/store/kv/etcdkv/etcdtest"
)

// TestNoSpace fills a member whose quota is 1 MiB: the write that finds
// the quota reached fails with kv.ErrNoSpace, and reads still work.
func TestNoSpace(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1, UnsafeNoFsync: true, QuotaBackendBytes: 1 << 20})
	db := newDB(t, c.Client(t), Config{MaxRequestBytes: 1 << 20})
	ctx := testContext(t)
	var err error
	// etcd learns its size at its backend's periodic commits, so the
	// quota is noticed some writes after it is passed.
	i := 0
	for ; i < 128 && err == nil; i++ {
		err = db.Update(ctx, func(tx kv.Tx) error {
			return tx.Bucket([]byte("b")).Put([]byte{byte(i)}, make([]byte, 256<<10))
		})
	}
	if !errors.Is(err, kv.ErrNoSpace) {
		t.Fatalf("filling the quota: %v, want kv.ErrNoSpace", err)
	}
	t.Logf("the quota of 1 MiB was reached at write %d of 256 KiB", i)
	if err := db.View(ctx, func(tx kv.Tx) error { tx.Bucket([]byte("b")).Get([]byte{0}); return nil }); err != nil {
		t.Fatalf("a read once the quota is reached: %v", err)
	}
}

// TestCommitErrors checks how the errors etcd's client returns for a
// commit map onto the kv errors: whether the commit may have happened
// decides between kv.ErrUnknownOutcome and kv.ErrUnavailable.
func TestCommitErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"space", rpctypes.ErrNoSpace, kv.ErrNoSpace},
		{"ops", rpctypes.ErrTooManyOps, kv.ErrTxFull},
		{"bytes", rpctypes.ErrRequestTooLarge, kv.ErrTxFull},
		{"client send limit", status.Error(codes.ResourceExhausted, "trying to send message larger than max (2000 vs. 1000)"), kv.ErrTxFull},
		{"no leader", rpctypes.ErrNoLeader, kv.ErrUnavailable},
		{"timed out", rpctypes.ErrTimeout, kv.ErrUnknownOutcome},
		{"connection lost", rpctypes.ErrTimeoutDueToConnectionLost, kv.ErrUnknownOutcome},
		{"deadline", context.DeadlineExceeded, kv.ErrUnknownOutcome},
		{"transport", status.Error(codes.Unavailable, "connection reset"), kv.ErrUnknownOutcome},
	} {
		got := commitError(tc.err)
		if !errors.Is(got, tc.want) || !errors.Is(got, tc.err) {
			t.Errorf("%s: commitError(%v) = %v, want %v wrapping the cause", tc.name, tc.err, got, tc.want)
		}
	}
	if got := commitError(rpctypes.ErrPermissionDenied); errors.Is(got, kv.ErrUnknownOutcome) || errors.Is(got, kv.ErrUnavailable) {
		t.Errorf("a refused commit maps to %v", got)
	}
}
