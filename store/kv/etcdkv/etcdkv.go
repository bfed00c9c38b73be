// Package etcdkv is the etcd engine behind the store's kv interface: the
// store's buckets live as key prefixes in an etcd cluster that several
// exchanged replicas share (issue #17). bbolt (kv.Bolt) stays the default.
//
// Layout: a bucket's key k is stored at Prefix + bucket + 0x00 + k, so a
// bucket is the range [Prefix+bucket+0x00, Prefix+bucket+0x01). The commit
// key, Prefix + 0x00 + "commit", lies outside every bucket.
//
// A View reads one snapshot: its first read is linearizable and fixes the
// revision every later read of the transaction uses. An Update also reads
// the commit key's modification revision at its snapshot, buffers its
// writes, and commits them in one etcd Txn guarded by that revision
// unchanged, putting the commit key again. So no two write transactions
// commit on the same snapshot, whatever replica they run on: writes are
// strictly serializable. A guard that fails makes Update run fn again on a
// fresh snapshot.
package etcdkv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/store/kv"
)

// DefaultMaxTxnOps is etcd's default --max-txn-ops.
const DefaultMaxTxnOps = 128

// DefaultMaxRequestBytes is etcd's default --max-request-bytes (1.5 MiB).
const DefaultMaxRequestBytes = 1536 * 1024

// requestMargin is the room kept in each commit request for the guard,
// the commit key's put and the protobuf framing of the request.
const requestMargin = 1024

// opOverhead is the framing counted per buffered write on top of its key
// and value (protobuf tags and lengths of the RequestOp and its request).
const opOverhead = 16

// Config says which cluster and key prefix a DB uses and the limits the
// cluster enforces on one request.
type Config struct {
	// Client is connected by the caller, who also closes it.
	Client *clientv3.Client
	// Prefix is prepended to every key, e.g. "/exchange/". Required; it
	// must end with "/".
	Prefix string
	// MaxTxnOps is the cluster's --max-txn-ops; 0 means etcd's default,
	// DefaultMaxTxnOps.
	MaxTxnOps int
	// MaxRequestBytes is the cluster's --max-request-bytes; 0 means
	// etcd's default, DefaultMaxRequestBytes.
	MaxRequestBytes int
}

// DB is the store's data in an etcd cluster, under one prefix.
type DB struct {
	client          *clientv3.Client
	prefix          string
	commitKey       string
	maxTxnOps       int
	maxRequestBytes int

	// Page sizes of cursors' reads: firstPageSize, lastPageSize but for
	// tests of the paging.
	firstPage, lastPage int
}

// New checks cfg and returns the DB it describes. It does not contact the
// cluster; ProbeLimits checks the cluster accepts the configured limits.
func New(cfg Config) (*DB, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("etcdkv: Config.Client is required")
	case cfg.Prefix == "":
		return nil, errors.New(`etcdkv: Config.Prefix is required (e.g. "/exchange/")`)
	case !strings.HasSuffix(cfg.Prefix, "/"):
		return nil, fmt.Errorf("etcdkv: Config.Prefix %q must end with %q", cfg.Prefix, "/")
	case strings.IndexByte(cfg.Prefix, 0) >= 0:
		return nil, fmt.Errorf("etcdkv: Config.Prefix %q must not contain a zero byte", cfg.Prefix)
	case cfg.MaxTxnOps < 0:
		return nil, fmt.Errorf("etcdkv: Config.MaxTxnOps %d is negative", cfg.MaxTxnOps)
	case cfg.MaxTxnOps == 1:
		return nil, errors.New("etcdkv: Config.MaxTxnOps 1 leaves no room for a write beside the commit key")
	case cfg.MaxRequestBytes < 0:
		return nil, fmt.Errorf("etcdkv: Config.MaxRequestBytes %d is negative", cfg.MaxRequestBytes)
	case cfg.MaxRequestBytes > 0 && cfg.MaxRequestBytes < 2*requestMargin:
		return nil, fmt.Errorf("etcdkv: Config.MaxRequestBytes %d is below the %d bytes a commit needs", cfg.MaxRequestBytes, 2*requestMargin)
	}
	db := &DB{
		client:          cfg.Client,
		prefix:          cfg.Prefix,
		commitKey:       cfg.Prefix + "\x00commit",
		maxTxnOps:       cfg.MaxTxnOps,
		maxRequestBytes: cfg.MaxRequestBytes,
		firstPage:       firstPageSize,
		lastPage:        lastPageSize,
	}
	if db.maxTxnOps == 0 {
		db.maxTxnOps = DefaultMaxTxnOps
	}
	if db.maxRequestBytes == 0 {
		db.maxRequestBytes = DefaultMaxRequestBytes
	}
	return db, nil
}

// View runs fn in a read-only transaction over one snapshot of the
// cluster. fn's reads that fail (Get and cursor moves cannot return
// errors) make View return the first such error.
func (db *DB) View(ctx context.Context, fn func(kv.Tx) error) error {
	t := db.newTx(ctx, false)
	err := fn(t)
	if t.err != nil {
		return t.err
	}
	return err
}

// Update runs fn in a write transaction and commits its writes at once.
// If another writer committed after fn's snapshot, the attempt is
// discarded (its OnCommit hooks too) and fn runs again on a fresh
// snapshot, after a short jittered pause, until ctx ends; then Update
// returns an error wrapping kv.ErrConflict. fn must therefore have no
// effects outside the transaction except through OnCommit. OnCommit hooks
// run after a successful commit, in the order they were registered.
func (db *DB) Update(ctx context.Context, fn func(kv.Tx) error) error {
	pause := time.Millisecond
	for attempt := 1; ; attempt++ {
		t := db.newTx(ctx, true)
		err := fn(t)
		switch {
		case t.err != nil && errors.Is(t.err, errSnapshotCompacted):
			// The snapshot was compacted under the attempt: retry on a new one.
		case t.err != nil:
			return t.err
		case err != nil:
			return err
		default:
			committed, err := t.commit()
			if err != nil {
				return err
			}
			if committed {
				for _, hook := range t.onCommit {
					hook()
				}
				return nil
			}
		}
		// Jittered pause, growing to 50 ms, before the next attempt.
		wait := pause/2 + rand.N(pause)
		if pause < 50*time.Millisecond {
			pause *= 2
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcdkv: update gave up after %d attempts: %w: %w", attempt, kv.ErrConflict, context.Cause(ctx))
		case <-time.After(wait):
		}
	}
}

// Compact compacts the cluster's history up to its current revision and
// waits until the old revisions are physically removed, so that values
// overwritten or deleted before (erasures) are no longer served by etcd's
// API. It compacts the whole cluster's keyspace, not only the prefix.
func (db *DB) Compact(ctx context.Context) error {
	resp, err := db.client.Get(ctx, db.commitKey)
	if err != nil {
		return readError("reading the current revision", err)
	}
	if _, err := db.client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil // already compacted at least this far
		}
		return readError("compacting", err)
	}
	return nil
}

// ProbeLimits checks that the cluster accepts a transaction of MaxTxnOps
// operations and a request of MaxRequestBytes, by sending harmless ones
// that write nothing. Its error names the etcd flag to raise (or the
// Config field to lower).
func (db *DB) ProbeLimits(ctx context.Context) error {
	ops := make([]clientv3.Op, db.maxTxnOps)
	for i := range ops {
		ops[i] = clientv3.OpGet(db.commitKey, clientv3.WithCountOnly())
	}
	if _, err := db.client.Txn(ctx).Then(ops...).Commit(); err != nil {
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			return fmt.Errorf("etcdkv: the cluster refuses a transaction of %d operations: start etcd with --max-txn-ops=%d or more, or lower MaxTxnOps: %w", db.maxTxnOps, db.maxTxnOps, err)
		}
		return readError("probing the cluster's --max-txn-ops", err)
	}
	// etcd checks the size of requests it replicates only, so this one
	// has a put the size of the largest commit, which its guard (a key
	// created at a negative revision) never lets run: nothing is written.
	probe := db.prefix + "\x00probe"
	value := strings.Repeat("x", db.maxRequestBytes-requestMargin-len(probe)-opOverhead)
	_, err := db.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(probe), "<", 0)).
		Then(clientv3.OpPut(probe, value)).
		Commit()
	if err != nil {
		if isTooLarge(err) {
			return fmt.Errorf("etcdkv: the cluster or client refuses a request of %d bytes: start etcd with --max-request-bytes=%d or more (and the client with a MaxCallSendMsgSize as large), or lower MaxRequestBytes: %w", db.maxRequestBytes, db.maxRequestBytes, err)
		}
		return readError("probing the cluster's --max-request-bytes", err)
	}
	return nil
}

// bucketRange returns the etcd keys a bucket's keys lie between: from
// start (inclusive) to end (exclusive).
func (db *DB) bucketRange(bucket []byte) (start, end string) {
	b := db.prefix + string(bucket)
	return b + "\x00", b + "\x01"
}

// errSnapshotCompacted marks a read at a revision etcd has compacted.
var errSnapshotCompacted = errors.New("etcdkv: the transaction's snapshot was compacted")

// readError maps an error of a read (or of compaction) onto the kv errors.
func readError(what string, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("etcdkv: %s: %w: %w", what, errSnapshotCompacted, err)
	case isUnavailable(err):
		return fmt.Errorf("etcdkv: %s: %w: %w", what, kv.ErrUnavailable, err)
	}
	return fmt.Errorf("etcdkv: %s: %w", what, err)
}

// commitError maps an error of a commit's Txn onto the kv errors.
func commitError(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrNoSpace):
		return fmt.Errorf("etcdkv: commit: %w: %w", kv.ErrNoSpace, err)
	case errors.Is(err, rpctypes.ErrTooManyOps), isTooLarge(err):
		return fmt.Errorf("etcdkv: commit: %w: %w", kv.ErrTxFull, err)
	case errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrNotCapable):
		// Refused before the request was proposed: nothing was written.
		return fmt.Errorf("etcdkv: commit: %w: %w", kv.ErrUnavailable, err)
	case isUnavailable(err):
		// The request may have reached the leader and been applied.
		return fmt.Errorf("etcdkv: commit: %w: %w", kv.ErrUnknownOutcome, err)
	}
	return fmt.Errorf("etcdkv: commit: %w", err)
}

// isUnavailable reports whether err says the cluster could not be reached
// or answer in time (no quorum, no leader, a broken connection, a timeout).
func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var etcdErr rpctypes.EtcdError
	if errors.As(err, &etcdErr) {
		switch etcdErr.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			return true
		}
		return false
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
			return true
		}
	}
	return false
}

// isTooLarge reports whether err says a request exceeded the server's
// --max-request-bytes or the client's gRPC message limit.
func isTooLarge(err error) bool {
	if errors.Is(err, rpctypes.ErrRequestTooLarge) {
		return true
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.ResourceExhausted &&
		strings.Contains(s.Message(), "larger than max") {
		return true
	}
	return false
}
