package etcdkv

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchBucket calls fn(key, value) for each put to the bucket (value nil
// for a delete), in revision order, from the cluster's current revision
// until ctx ends. If the watch breaks (the cluster compacted past it, lost
// its leader, or the connection failed), WatchBucket watches again from
// the current revision and calls fn(nil, nil) once to say events may have
// been missed: whatever the caller caches from the bucket must be read
// again. fn runs on WatchBucket's goroutine; WatchBucket returns when ctx
// ends.
func (db *DB) WatchBucket(ctx context.Context, bucket []byte, fn func(key, value []byte)) {
	db.watchBucket(ctx, bucket, 0, fn)
}

// watchBucket is WatchBucket from revision rev (0: the current one).
func (db *DB) watchBucket(ctx context.Context, bucket []byte, rev int64, fn func(key, value []byte)) {
	start, end := db.bucketRange(bucket)
	pause := 10 * time.Millisecond
	missed := false // a watch broke: fn must hear fn(nil, nil)
	for ctx.Err() == nil {
		if rev == 0 {
			resp, err := db.client.Get(ctx, db.commitKey)
			if err != nil {
				// Unreachable: wait and try again, until ctx ends.
				select {
				case <-ctx.Done():
					return
				case <-time.After(pause):
				}
				pause = min(2*pause, time.Second)
				continue
			}
			rev = resp.Header.Revision + 1
		}
		pause = 10 * time.Millisecond
		if missed {
			// Whatever fn reads now is at rev or later; the watch sends
			// every event from rev on.
			fn(nil, nil)
		}
		db.watchFrom(ctx, start, end, rev, fn)
		rev, missed = 0, true
	}
}

// watchFrom delivers the events of [start, end) from revision rev until the
// watch ends, is cancelled, or reports an error.
func (db *DB) watchFrom(ctx context.Context, start, end string, rev int64, fn func(key, value []byte)) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range db.client.Watch(wctx, start, clientv3.WithRange(end), clientv3.WithRev(rev)) {
		if resp.Canceled || resp.Err() != nil || resp.CompactRevision != 0 {
			return
		}
		for _, ev := range resp.Events {
			key := ev.Kv.Key[len(start):]
			if ev.Type == clientv3.EventTypeDelete {
				fn(key, nil)
			} else {
				fn(key, nonNil(ev.Kv.Value))
			}
		}
	}
}
