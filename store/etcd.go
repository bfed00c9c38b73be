package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/alltogether/exchange/store/groupcommit"
	"github.com/alltogether/exchange/store/kv"
	"github.com/alltogether/exchange/store/kv/etcdkv"
)

// quietEtcdLogger keeps etcd's client from logging on its own: the
// store's errors say what failed.
func quietEtcdLogger() *zap.Logger { return zap.NewNop() }

// EtcdOptions say how to reach the etcd cluster a store shared by several
// exchanged replicas lives on (OpenEtcd).
type EtcdOptions struct {
	// Endpoints are the cluster's client URLs, e.g.
	// "https://10.0.0.1:2379"; at least one.
	Endpoints []string
	// TLS is the client's TLS configuration (the cluster's CA, and a
	// client certificate when the cluster asks for one); nil for plain
	// connections, which only tests on loopback should use.
	TLS *tls.Config
	// Prefix is put in front of every key, so that one cluster may hold
	// several exchanges (or other data); default "/exchange/". It must
	// end with "/".
	Prefix string
	// MaxTxnOps and MaxRequestBytes must equal the cluster's
	// --max-txn-ops and --max-request-bytes: one write of the exchange
	// is one etcd transaction, and a write that would not fit is refused
	// with KindResourceExhausted before it is sent. Defaults 8192 and 8
	// MiB, which the cluster must be started with (OpenEtcd checks the
	// first); etcd's own defaults, 128 and 1.5 MiB, are too small for a
	// batch of referrals.
	MaxTxnOps       int
	MaxRequestBytes int
	// DialTimeout bounds the first connection; default 5s.
	DialTimeout time.Duration
	// CommitTimeout bounds one group commit, from its first read to etcd's
	// answer, retries after conflicts included; default 5s. Past it the
	// writes sharing the commit fail with KindUnavailable (if the request
	// may have reached the cluster, saying so: a retry with the same
	// request id is safe).
	CommitTimeout time.Duration
}

// Defaults of EtcdOptions.
const (
	DefaultEtcdPrefix          = "/exchange/"
	DefaultEtcdMaxTxnOps       = 8192
	DefaultEtcdMaxRequestBytes = 8 << 20
)

// OpenEtcd opens the store kept on an etcd cluster under eo.Prefix,
// creating it on first use. Several processes (exchanged replicas) may
// have the same store open at once: every write is one serializable etcd
// transaction, acknowledged once a quorum of the cluster has it, and
// each process learns what the others commit through etcd's watch.
// Options that concern a bbolt file (LockTimeout, MaxSize, CheckOnOpen,
// ReadOnly, ScrubWait) do not apply; MaxSize must be 0 (etcd's own
// --quota-backend-bytes bounds the cluster).
func OpenEtcd(eo EtcdOptions, opt Options) (*Store, error) {
	if len(eo.Endpoints) == 0 {
		return nil, &Error{Kind: KindInvalidArgument, Field: "etcd_endpoints", Message: "give at least one etcd endpoint"}
	}
	if opt.MaxSize != 0 || opt.ReadOnly {
		return nil, &Error{Kind: KindInvalidArgument, Field: "max_size", Message: "a size limit and read-only opening are for a bbolt file; an etcd cluster is bounded by its own --quota-backend-bytes"}
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	client, edb, eo, err := dialEtcd(eo)
	if err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	s := &Store{etcd: edb, etcdClient: client, etcdStop: stop, etcdWhere: "etcd " + strings.Join(eo.Endpoints, ",") + " " + eo.Prefix, etcdPrefix: eo.Prefix,
		etcdMaxOps: eo.MaxTxnOps, opt: opt, now: opt.Now, changed: make(chan struct{}), observer: opt.Observer,
		clock: &revisionClock{now: opt.Now}, readers: newReaders(), scrub: newScrubber()}
	size := 256
	if opt.MaxBatchSize > 0 {
		size = opt.MaxBatchSize
	}
	// One commit, retries after conflicts included, may take at most
	// CommitTimeout: writers waiting in the queue behind it must not wait
	// for a cluster that lost its quorum, their callers' deadlines pass.
	s.commits = groupcommit.New(func(fn func(kv.Tx) error) error {
		ctx, cancel := context.WithTimeout(bg, eo.CommitTimeout)
		defer cancel()
		return edb.Update(ctx, fn)
	}, size, opt.MaxBatchDelay)
	ctx, cancel := context.WithTimeout(context.Background(), eo.DialTimeout)
	defer cancel()
	if err := s.initEtcd(ctx); err != nil {
		stop()
		client.Close()
		return nil, storeError(err)
	}
	s.followEtcd(bg)
	return s, nil
}

// dialEtcd connects to the cluster eo names, with eo's defaults filled
// in, and checks that it accepts transactions as large as eo says.
func dialEtcd(eo EtcdOptions) (*clientv3.Client, *etcdkv.DB, EtcdOptions, error) {
	if eo.Prefix == "" {
		eo.Prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(eo.Prefix, "/") {
		return nil, nil, eo, &Error{Kind: KindInvalidArgument, Field: "etcd_prefix", Message: fmt.Sprintf("%q must end with /", eo.Prefix)}
	}
	if eo.MaxTxnOps == 0 {
		eo.MaxTxnOps = DefaultEtcdMaxTxnOps
	}
	if eo.MaxRequestBytes == 0 {
		eo.MaxRequestBytes = DefaultEtcdMaxRequestBytes
	}
	if eo.DialTimeout == 0 {
		eo.DialTimeout = 5 * time.Second
	}
	if eo.CommitTimeout == 0 {
		eo.CommitTimeout = 5 * time.Second
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints: eo.Endpoints, TLS: eo.TLS, DialTimeout: eo.DialTimeout,
		MaxCallSendMsgSize: eo.MaxRequestBytes + 1<<20,
		MaxCallRecvMsgSize: 64 << 20,
		Logger:             quietEtcdLogger(),
	})
	if err != nil {
		return nil, nil, eo, &Error{Kind: KindUnavailable, Message: "cannot reach the etcd cluster at " + strings.Join(eo.Endpoints, ","), Err: err}
	}
	edb, err := etcdkv.New(etcdkv.Config{Client: client, Prefix: eo.Prefix, MaxTxnOps: eo.MaxTxnOps, MaxRequestBytes: eo.MaxRequestBytes})
	if err != nil {
		client.Close()
		return nil, nil, eo, &Error{Kind: KindInvalidArgument, Message: "cannot use the etcd cluster", Err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), eo.DialTimeout)
	err = edb.ProbeLimits(ctx)
	cancel()
	if err != nil {
		client.Close()
		return nil, nil, eo, &Error{Kind: KindFailedPrecondition, Message: "the etcd cluster at " + strings.Join(eo.Endpoints, ",") + " cannot serve the exchange", Err: err}
	}
	return client, edb, eo, nil
}

// initEtcd records or checks the schema version and the page secret, as
// init does for a file, and loads the revision.
func (s *Store) initEtcd(ctx context.Context) error {
	return s.etcd.Update(ctx, func(tx kv.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta.Get(metaRestoring) != nil {
			return &Error{Kind: KindFailedPrecondition, Message: "a restore into " + s.etcdWhere + " did not finish: run `exchanged restore` again"}
		}
		if v := meta.Get(metaSchemaVersion); v == nil {
			if err := meta.Put(metaSchemaVersion, u64(schemaVersion)); err != nil {
				return err
			}
		} else if got := binary.BigEndian.Uint64(v); got != schemaVersion {
			return &Error{Kind: KindFailedPrecondition, Message: fmt.Sprintf(
				"the exchange on %s has schema version %d and this exchanged writes version %d: run replicas of one version on one cluster", s.etcdWhere, got, schemaVersion)}
		}
		secret := meta.Get(metaPageSecret)
		if secret == nil {
			secret = make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return internal("cannot make the page secret", err)
			}
			if err := meta.Put(metaPageSecret, secret); err != nil {
				return err
			}
		}
		s.pageSecret = bytes.Clone(secret)
		s.revision.Store(readRevision(tx))
		return nil
	})
}

// followEtcd learns what other replicas commit: a new revision wakes the
// watchers, and a change to an agency or a certificate retires the cached
// callers. After a break in etcd's watch, when events may have been
// missed, it reloads the revision and retires the caches.
func (s *Store) followEtcd(ctx context.Context) {
	resync := func() {
		s.directoryGeneration.Add(1)
		var rev int64
		if err := s.etcd.View(ctx, func(tx kv.Tx) error { rev = readRevision(tx); return nil }); err == nil {
			s.published(rev, false)
		}
		s.broadcast()
	}
	go s.etcd.WatchBucket(ctx, bucketMeta, func(key, value []byte) {
		switch {
		case key == nil:
			resync()
		case bytes.Equal(key, metaRevision) && len(value) == 8:
			// This process's own commits are published as they commit;
			// only a revision it has not reached wakes the watchers.
			if s.advance(int64(binary.BigEndian.Uint64(value))) {
				s.broadcast()
			}
		}
	})
	for _, b := range [][]byte{bucketAgencies, bucketCertificates} {
		go s.etcd.WatchBucket(ctx, b, func(key, _ []byte) {
			if key == nil {
				resync()
				return
			}
			s.directoryGeneration.Add(1)
		})
	}
}

// raiseFloor is SafeRevision on etcd. Other replicas allocate revisions
// this process cannot see in flight, so the safe revision is made safe
// in the cluster: a write (group-committed with any others) sets the
// floor every later revision must exceed to the current time, or to the
// last revision if the clock is behind it, and that is the answer.
func (s *Store) raiseFloor(ctx context.Context) (int64, error) {
	var floor int64
	err := s.write(ctx, Op{Actor: "exchange", Method: "SafeRevision"}, true, func(w *writeTx) error {
		floor = max(micros(s.now()), w.currentRevision())
		return w.tx.Bucket(bucketMeta).Put(metaFloor, u64(uint64(floor)))
	})
	return floor, err
}

// kvError maps the errors of the storage engines onto the store's.
func kvError(err error) (error, bool) {
	switch {
	case errors.Is(err, kv.ErrTxFull):
		return &Error{Kind: KindResourceExhausted, Message: "this write is larger than one etcd transaction may be (etcd's --max-txn-ops and --max-request-bytes, and exchanged's --etcd-max-txn-ops): send fewer items per call", Err: err}, true
	case errors.Is(err, kv.ErrNoSpace):
		return &Error{Kind: KindResourceExhausted, Message: "the etcd cluster's space quota is reached: nothing was written; the operator must compact and defragment it or raise --quota-backend-bytes", Err: err}, true
	case errors.Is(err, kv.ErrUnknownOutcome):
		return &Error{Kind: KindUnavailable, Message: "the connection to the etcd cluster broke while the write was being committed: it may or may not be stored; retry with the same request id", Err: err}, true
	case errors.Is(err, kv.ErrConflict), errors.Is(err, kv.ErrUnavailable):
		return &Error{Kind: KindUnavailable, Message: "the etcd cluster is unavailable: nothing was written; retry", Err: err}, true
	}
	return nil, false
}

// compactErased follows an erasure on etcd: the cluster keeps every
// overwritten and deleted value in its history until that history is
// compacted, so the erasure compacts it up to now, after which etcd
// serves the erased values to no one (the members' files keep them in
// free pages until they are defragmented, and their write-ahead logs
// until those are rotated: docs/operations.md). Reads that other replicas
// began on an older snapshot fail with KindUnavailable and are retried
// by their clients.
func (s *Store) compactErased(ctx context.Context, what string) error {
	if err := s.etcd.Compact(ctx); err != nil {
		return &Error{Kind: KindUnavailable, Message: what + " erased and no longer readable through the exchange, but etcd's history still holds them: the compaction that follows the erasure failed; the next erasure or the operator's `etcdctl compact` removes them", Err: err}
	}
	return nil
}

// etcdSize returns the database size the first reachable member reports,
// 0 if none answers.
func (s *Store) etcdSize(ctx context.Context) int64 {
	for _, ep := range s.etcdClient.Endpoints() {
		if st, err := s.etcdClient.Status(ctx, ep); err == nil {
			return st.DbSize
		}
	}
	return 0
}

// backupEtcd copies every bucket of the schema, read at one etcd
// revision, into a new bbolt database file, and writes that file to w.
func (s *Store) backupEtcd(ctx context.Context, w io.Writer, started func(revision, size int64)) error {
	dir, err := os.MkdirTemp("", "exchange-backup-")
	if err != nil {
		return internal("cannot make room for the backup", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "exchange.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return internal("cannot create the backup file", err)
	}
	defer db.Close()
	var revision int64
	err = s.view(ctx, func(src kv.Tx) error {
		revision = readRevision(src)
		return db.Update(func(dst *bolt.Tx) error {
			for _, name := range allBuckets {
				b, err := dst.CreateBucketIfNotExists(name)
				if err != nil {
					return err
				}
				b.FillPercent = BucketFill(string(name))
				if err := src.Bucket(name).ForEach(func(k, v []byte) error {
					if err := ctx.Err(); err != nil {
						return err
					}
					return b.Put(bytes.Clone(k), bytes.Clone(v))
				}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return storeError(err)
	}
	return db.View(func(tx *bolt.Tx) error {
		if started != nil {
			started(revision, tx.Size())
		}
		if _, err := tx.WriteTo(w); err != nil {
			return internal("backup interrupted", err)
		}
		return nil
	})
}

// RestoreEtcd copies the exchange in src, a backup file opened read-only,
// into the etcd cluster eo names. The cluster must hold no exchange under
// eo.Prefix, or replace must be set (then the one there is deleted first;
// no exchanged may be serving it). The copy takes many etcd
// transactions: until the last one, a marker makes OpenEtcd refuse the
// half-restored exchange.
func RestoreEtcd(ctx context.Context, src *Store, eo EtcdOptions, replace bool) error {
	client, edb, eo, err := dialEtcd(eo)
	if err != nil {
		return err
	}
	defer client.Close()
	where := "etcd " + strings.Join(eo.Endpoints, ",") + " " + eo.Prefix
	var exists bool
	if err := edb.View(ctx, func(tx kv.Tx) error {
		exists = tx.Bucket(bucketMeta).Get(metaSchemaVersion) != nil || tx.Bucket(bucketMeta).Get(metaRestoring) != nil
		return nil
	}); err != nil {
		return storeError(err)
	}
	if exists && !replace {
		return &Error{Kind: KindAlreadyExists, Message: where + " already holds an exchange: stop every exchanged serving it and restore with --force to replace it"}
	}
	if err := edb.Update(ctx, func(tx kv.Tx) error { return tx.Bucket(bucketMeta).Put(metaRestoring, []byte{1}) }); err != nil {
		return storeError(err)
	}
	maxOps, maxBytes := eo.MaxTxnOps-8, eo.MaxRequestBytes/2
	// Delete what is there, then copy, a chunk of keys per transaction.
	for _, name := range allBuckets {
		for {
			n := 0
			err := edb.Update(ctx, func(tx kv.Tx) error {
				n = 0
				c := tx.Bucket(name).Cursor()
				for k, _ := c.First(); k != nil && n < maxOps; k, _ = c.Next() {
					if bytes.Equal(name, bucketMeta) && bytes.Equal(k, metaRestoring) {
						continue
					}
					if err := c.Delete(); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			if err != nil {
				return storeError(err)
			}
			if n < maxOps {
				break
			}
		}
	}
	type item struct{ k, v []byte }
	for _, name := range allBuckets {
		var chunk []item
		size := 0
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			err := edb.Update(ctx, func(tx kv.Tx) error {
				b := tx.Bucket(name)
				for _, it := range chunk {
					if err := b.Put(it.k, it.v); err != nil {
						return err
					}
				}
				return nil
			})
			chunk, size = chunk[:0], 0
			return err
		}
		err := src.view(ctx, func(tx kv.Tx) error {
			return tx.Bucket(name).ForEach(func(k, v []byte) error {
				if len(chunk) == maxOps || size+len(k)+len(v) > maxBytes {
					if err := flush(); err != nil {
						return err
					}
				}
				chunk = append(chunk, item{bytes.Clone(k), bytes.Clone(v)})
				size += len(k) + len(v) + len(eo.Prefix) + len(name) + 16
				return nil
			})
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return storeError(err)
		}
	}
	if err := edb.Update(ctx, func(tx kv.Tx) error { return tx.Bucket(bucketMeta).Delete(metaRestoring) }); err != nil {
		return storeError(err)
	}
	return nil
}
