// Command etcd-load drives the etcd peer of make bench through etcd's own
// Go client (go.etcd.io/etcd/client/v3) with the load generator every
// system of the benchmark shares (package loadgen, the same source file as
// exchange-bench's, linked into this module). exchange-bench runs it once
// per round and reads the one JSON line it prints (loadgen.Result).
//
// Workloads (--workload):
//
//	put    one durable put per call, of --value-size bytes, under a new key
//	txn    --batch durable puts in one transaction per call
//	load   set-up: --keys keys under preload/, in transactions of 100
//	get    a (linearizable) get of a random preloaded key per call
//	range  a page of --batch preloaded keys per call, each worker paging on
//	watch  --watchers watch streams, --writes transactions of --batch puts
//	       from --clients writers; events delivered per second
//
// Every connection uses TLS 1.3 with a client certificate (--cert, --key,
// --ca), like the exchange's clients; --conns clients (one gRPC connection
// each) carry the --clients workers, worker w on connection w mod conns.
// --endpoint may list several members of one cluster, comma-separated:
// every connection is then given all of them and etcd's client spreads
// its calls over them round robin.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/alltogether/exchange/bench/etcd/internal/loadgen"
)

type options struct {
	endpoint, cert, key, ca string
	workload                string
	clients, conns          int
	valueSize, batch, keys  int
	watchers, writes        int
	warmup, duration        time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.endpoint, "endpoint", "", "etcd client URL, https://127.0.0.1:PORT, or several members' URLs, comma-separated")
	flag.StringVar(&o.cert, "cert", "", "client certificate")
	flag.StringVar(&o.key, "key", "", "client key")
	flag.StringVar(&o.ca, "ca", "", "CA certificate of the server")
	flag.StringVar(&o.workload, "workload", "put", "put, txn, load, get, range or watch")
	flag.IntVar(&o.clients, "clients", 64, "concurrent workers (writers, for watch)")
	flag.IntVar(&o.conns, "conns", 4, "gRPC connections")
	flag.IntVar(&o.valueSize, "value-size", 512, "bytes per value")
	flag.IntVar(&o.batch, "batch", 100, "puts per transaction (txn, watch), keys per page (range)")
	flag.IntVar(&o.keys, "keys", 100_000, "preloaded keys (load, get, range)")
	flag.IntVar(&o.watchers, "watchers", 100, "watch streams (watch)")
	flag.IntVar(&o.writes, "writes", 100, "write transactions (watch)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up, not measured")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time")
	flag.Parse()
	r, err := run(o)
	if err != nil {
		r.Err = err.Error()
		fmt.Println(r.Encode())
		fmt.Fprintln(os.Stderr, "etcd-load:", err)
		os.Exit(1)
	}
	fmt.Println(r.Encode())
}

func run(o options) (loadgen.Result, error) {
	tlsConfig, err := clientTLS(o.cert, o.key, o.ca)
	if err != nil {
		return loadgen.Result{}, err
	}
	var clients []*clientv3.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range o.conns {
		c, err := clientv3.New(clientv3.Config{
			Endpoints: strings.Split(o.endpoint, ","), TLS: tlsConfig, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		})
		if err != nil {
			return loadgen.Result{}, err
		}
		clients = append(clients, c)
	}
	ctx := context.Background()
	// Every call must reach the server: wait until each connection answers.
	for _, c := range clients {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.Get(cctx, "ping")
		cancel()
		if err != nil {
			return loadgen.Result{}, fmt.Errorf("etcd not answering: %w", err)
		}
	}
	client := func(w int) *clientv3.Client { return clients[w%len(clients)] }
	value := make([]byte, o.valueSize)
	rand.Read(value)
	val := string(value)
	// Keys of this invocation never collide with an earlier round's.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var next atomic.Int64
	newKey := func(prefix string) string { return fmt.Sprintf("%s%s/%016d", prefix, run, next.Add(1)) }
	preload := func(i int) string { return fmt.Sprintf("preload/%016d", i) }

	switch o.workload {
	case "put":
		return loadgen.Run(ctx, o.clients, o.warmup, o.duration, func(ctx context.Context, w int, _ int64) (int, error) {
			_, err := client(w).Put(ctx, newKey("referrals/"), val)
			return 1, err
		})
	case "txn":
		return loadgen.Run(ctx, o.clients, o.warmup, o.duration, func(ctx context.Context, w int, _ int64) (int, error) {
			ops := make([]clientv3.Op, o.batch)
			for i := range ops {
				ops[i] = clientv3.OpPut(newKey("referrals/"), val)
			}
			_, err := client(w).Txn(ctx).Then(ops...).Commit()
			return o.batch, err
		})
	case "load":
		start := time.Now()
		for i := 0; i < o.keys; i += 100 {
			var ops []clientv3.Op
			for j := i; j < min(o.keys, i+100); j++ {
				ops = append(ops, clientv3.OpPut(preload(j), val))
			}
			if _, err := client(i).Txn(ctx).Then(ops...).Commit(); err != nil {
				return loadgen.Result{}, err
			}
		}
		return loadgen.Result{Ops: int64(o.keys), Items: int64(o.keys), Seconds: time.Since(start).Seconds()}, nil
	case "get":
		return loadgen.Run(ctx, o.clients, o.warmup, o.duration, func(ctx context.Context, w int, _ int64) (int, error) {
			resp, err := client(w).Get(ctx, preload(mrand.IntN(o.keys)))
			if err == nil && len(resp.Kvs) != 1 {
				err = errors.New("preloaded key missing")
			}
			return 1, err
		})
	case "range":
		cursors := make([]string, o.clients)
		return loadgen.Run(ctx, o.clients, o.warmup, o.duration, func(ctx context.Context, w int, _ int64) (int, error) {
			from := cursors[w]
			if from == "" {
				from = "preload/"
			}
			resp, err := client(w).Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd("preload/")), clientv3.WithLimit(int64(o.batch)))
			if err != nil {
				return 0, err
			}
			if !resp.More || len(resp.Kvs) == 0 {
				cursors[w] = ""
			} else {
				cursors[w] = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
			}
			return len(resp.Kvs), nil
		})
	case "watch":
		head, err := clients[0].Get(ctx, "ping")
		if err != nil {
			return loadgen.Result{}, err
		}
		from := head.Header.Revision + 1
		prefix := "watch/" + run + "/"
		return loadgen.FanOut(ctx, o.watchers, o.clients, o.writes, 5*time.Minute,
			func(ctx context.Context, i int, ready func(), got func(int)) error {
				// A stream of its own per watcher (the client shares one
				// stream among watches with the same metadata).
				ctx = metadata.AppendToOutgoingContext(ctx, "watcher", strconv.Itoa(i))
				ch := client(i).Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithCreatedNotify())
				for resp := range ch {
					if err := resp.Err(); err != nil {
						return err
					}
					if resp.Created {
						ready()
					}
					if n := len(resp.Events); n > 0 {
						got(n)
					}
				}
				return ctx.Err()
			},
			func(ctx context.Context, w int, _ int64) (int, error) {
				ops := make([]clientv3.Op, o.batch)
				for i := range ops {
					ops[i] = clientv3.OpPut(newKey(prefix), val)
				}
				_, err := client(w).Txn(ctx).Then(ops...).Commit()
				return o.batch, err
			})
	}
	return loadgen.Result{}, fmt.Errorf("unknown workload %q", o.workload)
}

func clientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no CA certificate in " + caFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1"}, nil
}
