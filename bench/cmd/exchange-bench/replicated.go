package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/bench/loadgen"
	"github.com/alltogether/exchange/client"
)

// The replicated workload (issue #17): what availability costs. Two
// exchanged replicas keep one exchange on a three-member etcd cluster
// (separate processes on 127.0.0.1, etcd's default durability: a write is
// acknowledged once a quorum of members has fsynced it to its write-ahead
// log), and the load generator spreads its calls over both replicas. In
// the same rounds it measures the exchange on bbolt (one process, the
// writes workload's shape) and etcd's own puts and transactions of 100
// puts on a cluster of the same three members; and, to tell the cost of
// etcd from the cost of two replicas contending for its commits, the same
// calls through a single replica on etcd. Every measured window
// starts on a fresh cluster (and fresh replicas, or a fresh bbolt data
// directory), as the writes workload does.

// replicatedMembers and replicatedReplicas are the cluster's and the
// exchange's sizes.
const (
	replicatedMembers  = 3
	replicatedReplicas = 2
)

// The cluster's limits, those exchanged expects by default
// (--etcd-max-txn-ops, --etcd-max-request-bytes): one write of the
// exchange is one etcd transaction.
const (
	clusterMaxTxnOps       = 8192
	clusterMaxRequestBytes = 8 << 20
)

// Names of the replicated workload's systems in the table.
const (
	sysReplicated  = "exchange, 2 replicas on 3-member etcd"
	sysOneReplica  = "exchange, 1 replica on 3-member etcd"
	sysBbolt       = "exchange on bbolt, 1 process"
	sysClusterPut  = "etcd, 3 members, one put per call"
	sysClusterTxnF = "etcd, 3 members, txn of %d puts per call"
)

// etcdCluster is a cluster of etcd members, each a process of its own
// with its own data directory, serving clients over TLS 1.3 like the
// single-node peer (etcd.go).
type etcdCluster struct {
	members   []*proc
	endpoints []string // the members' client URLs
	metrics   []string // the members' metrics addresses, host:port
	dir       string   // the members' data directories' parent
	keep      bool     // keep dir (--keep)
}

// stop stops every member.
func (c *etcdCluster) stop() {
	var wg sync.WaitGroup
	for _, m := range c.members {
		wg.Go(m.stop)
	}
	wg.Wait()
}

// discard stops the cluster and removes its data, unless the bench keeps
// its scratch directory.
func (c *etcdCluster) discard() {
	c.stop()
	if !c.keep {
		os.RemoveAll(c.dir)
	}
}

// peer is the cluster as etcd-load's target: every member's endpoint.
func (c *etcdCluster) peer() *etcdPeer {
	return &etcdPeer{endpoint: strings.Join(c.endpoints, ",")}
}

// kvCalls returns the Range and Txn calls the members have answered so
// far, summed over the members and over every status code (a Txn whose
// guard failed counts).
func (c *etcdCluster) kvCalls(ctx context.Context) (ranges, txns float64, err error) {
	for _, addr := range c.metrics {
		r, err := sumMetric(ctx, addr, "grpc_server_handled_total", `grpc_method="Range"`)
		if err != nil {
			return 0, 0, err
		}
		t, err := sumMetric(ctx, addr, "grpc_server_handled_total", `grpc_method="Txn"`)
		if err != nil {
			return 0, 0, err
		}
		ranges, txns = ranges+r, txns+t
	}
	return ranges, txns, nil
}

// sumMetric sums the samples of a labelled metric on a Prometheus text
// page whose labels contain label.
func sumMetric(ctx context.Context, addr, name, label string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		labels, ok := strings.CutPrefix(sc.Text(), name+"{")
		if !ok || !strings.Contains(labels, label) {
			continue
		}
		_, value, ok := strings.Cut(labels, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// startEtcdCluster starts a new cluster of n members. Members wait for a
// quorum before they serve, so all of them start together.
func (e *env) startEtcdCluster(name string, n int) (*etcdCluster, error) {
	dir, err := os.MkdirTemp(e.work, name+"-")
	if err != nil {
		return nil, err
	}
	// Ports are chosen before the members bind them; another process may
	// take one in between, so try a few times.
	for attempt := 1; ; attempt++ {
		c, err := e.tryEtcdCluster(name, dir, n, attempt)
		if err == nil {
			c.keep = e.opt.keep
			return c, nil
		}
		if attempt == 3 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (e *env) tryEtcdCluster(name, dir string, n, attempt int) (*etcdCluster, error) {
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{dir: dir, members: make([]*proc, n)}
	var peers []string
	for i := range n {
		c.endpoints = append(c.endpoints, fmt.Sprintf("https://127.0.0.1:%d", ports[3*i]))
		peers = append(peers, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[3*i+1]))
		c.metrics = append(c.metrics, fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		peerURL := strings.TrimPrefix(peers[i], fmt.Sprintf("m%d=", i))
		data := filepath.Join(dir, fmt.Sprintf("m%d", i))
		os.RemoveAll(data) // an earlier attempt's
		args := []string{
			"--name", fmt.Sprintf("m%d", i), "--data-dir", data,
			"--listen-client-urls", c.endpoints[i], "--advertise-client-urls", c.endpoints[i],
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(dir),
			"--cert-file", e.dev.ServerCert, "--key-file", e.dev.ServerKey,
			"--client-cert-auth", "--trusted-ca-file", e.dev.CACert, "--tls-min-version", "TLS1.3",
			"--max-txn-ops", strconv.Itoa(clusterMaxTxnOps), "--max-request-bytes", strconv.Itoa(clusterMaxRequestBytes),
			"--quota-backend-bytes", strconv.FormatInt(8<<30, 10),
			// Scraped only between windows, to count the calls a window made.
			"--listen-metrics-urls", "http://" + c.metrics[i],
		}
		member := fmt.Sprintf("%s-m%d", name, i)
		wg.Go(func() {
			c.members[i], errs[i] = startProc(member, filepath.Join(e.bin, "etcd"), args,
				filepath.Join(e.work, "logs", fmt.Sprintf("%s-%d.log", member, attempt)), true, etcdReady, nil, 2*time.Minute)
		})
	}
	wg.Wait()
	err = errors.Join(errs...)
	if err == nil {
		err = c.checkOneLeader()
	}
	if err != nil {
		for _, m := range c.members {
			m.stop() // nil-safe
		}
		return nil, err
	}
	return c, nil
}

// checkOneLeader fails unless exactly one member says it leads: members
// that did not join one another would each lead a cluster of their own.
func (c *etcdCluster) checkOneLeader() error {
	leaders := 0.0
	for i, addr := range c.metrics {
		v, err := scrapeMetric(context.Background(), addr, "etcd_server_is_leader")
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		leaders += v
	}
	if leaders != 1 {
		return fmt.Errorf("%d of the %d etcd members lead: they are not one cluster", int(leaders), len(c.metrics))
	}
	return nil
}

// replicaSet is an exchange served by several exchanged replicas on one
// etcd cluster, with a pool of the sender's connections each of which
// balances its calls over every replica (client.Config.Addresses).
type replicaSet struct {
	procs []*proc
	dir   string // the replicas' shared data directory (pki/ only)
	pool  pool
	keep  bool
}

// freshReplicas starts n replicas on cluster, which must hold no
// exchange yet. The replicas share a data directory, where on etcd
// exchanged keeps only the PKI: every replica presents the same
// certificate. The agencies' certificates are recorded in the cluster
// (exchanged certs record) and the agencies created through the first
// replica before the others start.
func (b *bench) freshReplicas(ctx context.Context, name string, cluster *etcdCluster, n int) (*replicaSet, error) {
	dir, err := os.MkdirTemp(b.work, name+"-")
	if err != nil {
		return nil, err
	}
	rs := &replicaSet{dir: dir, keep: b.opt.keep}
	if err := copyDir(b.dev.Dir, filepath.Join(dir, "pki")); err != nil {
		rs.close()
		return nil, err
	}
	// exchanged is etcd's client as etcd-load is: with the sender's
	// certificate, from the CA the members trust.
	cert := b.certs[sender]
	etcdFlags := []string{"--etcd-endpoints", strings.Join(cluster.endpoints, ","),
		"--etcd-ca", b.dev.CACert, "--etcd-cert", cert[0], "--etcd-key", cert[1]}
	args := append([]string{"certs", "record", "--data-dir", dir}, etcdFlags...)
	for _, id := range benchAgencies() {
		args = append(args, b.certs[id][0])
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(b.bin, "exchanged"), args...).CombinedOutput(); err != nil {
		rs.close()
		return nil, fmt.Errorf("exchanged certs record on etcd: %v\n%s", err, out)
	}
	var addrs []string
	for i := range n {
		p, err := b.startExchanged(fmt.Sprintf("%s-r%d", name, i), dir, false, etcdFlags...)
		if err != nil {
			rs.close()
			return nil, err
		}
		b.track(p)
		rs.procs = append(rs.procs, p)
		addrs = append(addrs, p.addr)
		if i == 0 {
			if err := b.createAgencies(ctx, p.addr); err != nil {
				rs.close()
				return nil, err
			}
		}
	}
	for range b.opt.conns {
		c, err := client.Dial(ctx, client.Config{Addresses: addrs, CAFile: b.dev.CACert, ServerName: "127.0.0.1",
			CertFile: cert[0], KeyFile: cert[1]})
		if err != nil {
			rs.close()
			return nil, err
		}
		rs.pool = append(rs.pool, c)
	}
	return rs, nil
}

// committed returns the writes each replica committed so far and in how
// many commits (exchange_store_writes_per_commit's sum and count).
func (rs *replicaSet) committed(ctx context.Context) (writes, commits []float64, err error) {
	for _, p := range rs.procs {
		w, err := scrapeMetric(ctx, p.metrics, "exchange_store_writes_per_commit_sum")
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.name, err)
		}
		c, err := scrapeMetric(ctx, p.metrics, "exchange_store_writes_per_commit_count")
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p.name, err)
		}
		writes, commits = append(writes, w), append(commits, c)
	}
	return writes, commits, nil
}

// close stops the replicas and removes their data directory, unless the
// bench keeps its scratch directory.
func (rs *replicaSet) close() {
	rs.pool.Close()
	var wg sync.WaitGroup
	for _, p := range rs.procs {
		wg.Go(p.stop)
	}
	wg.Wait()
	if !rs.keep {
		os.RemoveAll(rs.dir)
	}
}

// replicated measures single Create (--clients clients) and the batched
// push (--batch-clients clients of --batch referrals) through two
// replicas on a three-member etcd cluster, the same on the exchange on
// bbolt, through one replica on etcd, and etcd's own puts and
// transactions of --batch puts on a three-member cluster, rounds
// alternating as in every workload.
func (b *bench) replicated(ctx context.Context) error {
	o := b.opt
	const create = "Replicated: Create, 1 per call"
	batchName := fmt.Sprintf("Replicated: batched push, %d per call", o.batch)
	sysClusterTxn := fmt.Sprintf(sysClusterTxnF, o.batch)
	valueSize := proto.Size(newReferral(0))
	b.rep.note("Replicated: %d exchanged replicas on a %d-member etcd cluster (etcd v3.7.3, separate processes on 127.0.0.1, default durability: a write is acknowledged once a quorum has fsynced it; --max-txn-ops %d, --max-request-bytes %d); each of the client's %d connections balances its calls over both replicas (over the one, for the single replica on etcd). etcd's puts and transactions run on a cluster of the same %d members with values of %d bytes. Every measured window starts on a fresh cluster.",
		replicatedReplicas, replicatedMembers, clusterMaxTxnOps, clusterMaxRequestBytes, o.conns, replicatedMembers, valueSize)

	record := func(workload, system string, r loadgen.Result) {
		show(workload, system, r, "referrals/s")
		b.rep.record(workload, system, "referrals/s", r.ItemsPerSec())
		if workload == create {
			b.rep.record(workload, system, "ms p50", r.P50Ms)
		}
	}
	// onReplicas measures workers running op against fresh replicas on a
	// fresh cluster, and fails unless every replica committed writes.
	onReplicas := func(ctx context.Context, workload, system string, replicas, workers int, op func(p pool) loadgen.Op) (loadgen.Result, error) {
		cluster, err := b.startEtcdCluster("replicated-etcd", replicatedMembers)
		if err != nil {
			return loadgen.Result{}, err
		}
		b.track(cluster)
		defer cluster.discard()
		rs, err := b.freshReplicas(ctx, "replicated-exchange", cluster, replicas)
		if err != nil {
			return loadgen.Result{}, err
		}
		defer rs.close()
		before, beforeCommits, err := rs.committed(ctx)
		if err != nil {
			return loadgen.Result{}, err
		}
		rangesBefore, txnsBefore, err := cluster.kvCalls(ctx)
		if err != nil {
			return loadgen.Result{}, err
		}
		r, err := b.throughput(ctx, workers, op(rs.pool))
		if err != nil {
			return r, err
		}
		after, afterCommits, err := rs.committed(ctx)
		if err != nil {
			return r, err
		}
		rangesAfter, txnsAfter, err := cluster.kvCalls(ctx)
		if err != nil {
			return r, err
		}
		var shares []string
		for i := range after {
			w, c := after[i]-before[i], afterCommits[i]-beforeCommits[i]
			if w == 0 {
				return r, fmt.Errorf("replica %d committed no write: the load did not reach both replicas", i)
			}
			shares = append(shares, fmt.Sprintf("replica %d: %s writes in %s etcd transactions", i, num(w), num(c)))
		}
		var writes, commits float64
		for i := range after {
			writes += after[i] - before[i]
			commits += afterCommits[i] - beforeCommits[i]
		}
		ranges, txns := rangesAfter-rangesBefore, txnsAfter-txnsBefore
		fmt.Printf("  %-28s %s; etcd answered %s Range and %s Txn calls\n", "", strings.Join(shares, "; "), num(ranges), num(txns))
		b.rep.record(workload, system, "store writes per committed etcd txn", writes/commits)
		b.rep.record(workload, system, "etcd Range calls per store write", ranges/writes)
		b.rep.record(workload, system, "etcd Txn calls per committed txn", txns/commits)
		return r, nil
	}
	// onCluster runs etcd-load against a fresh cluster, its connections
	// given every member.
	onCluster := func(ctx context.Context, workload string, args ...string) (loadgen.Result, error) {
		cluster, err := b.startEtcdCluster("replicated-etcd", replicatedMembers)
		if err != nil {
			return loadgen.Result{}, err
		}
		b.track(cluster)
		defer cluster.discard()
		return b.etcdLoad(ctx, cluster.peer(), workload, args...)
	}
	onBbolt := func(ctx context.Context, workers int, op func(p pool) loadgen.Op) (loadgen.Result, error) {
		ex, err := b.freshExchange(ctx, "replicated-bbolt")
		if err != nil {
			return loadgen.Result{}, err
		}
		defer ex.close()
		return b.throughput(ctx, workers, op(ex.pool))
	}
	createOp := func(p pool) loadgen.Op {
		return func(ctx context.Context, w int, _ int64) (int, error) {
			_, err := p.get(w).Referrals.Create(ctx, newReferral(pushSeq.Add(1)))
			return 1, err
		}
	}
	batchOp := func(p pool) loadgen.Op {
		return func(ctx context.Context, w int, _ int64) (int, error) { return pushBatch(ctx, p.get(w), o.batch) }
	}
	single := []system{
		{sysReplicated, func(ctx context.Context) error {
			r, err := onReplicas(ctx, create, sysReplicated, replicatedReplicas, o.clients, createOp)
			record(create, sysReplicated, r)
			return err
		}},
		{sysOneReplica, func(ctx context.Context) error {
			r, err := onReplicas(ctx, create, sysOneReplica, 1, o.clients, createOp)
			record(create, sysOneReplica, r)
			return err
		}},
		{sysBbolt, func(ctx context.Context) error {
			r, err := onBbolt(ctx, o.clients, createOp)
			record(create, sysBbolt, r)
			return err
		}},
		{sysClusterPut, func(ctx context.Context) error {
			r, err := onCluster(ctx, "put", "--clients", strconv.Itoa(o.clients), "--value-size", strconv.Itoa(valueSize))
			record(create, sysClusterPut, r)
			return err
		}},
	}
	batch := []system{
		{sysReplicated, func(ctx context.Context) error {
			r, err := onReplicas(ctx, batchName, sysReplicated, replicatedReplicas, o.batchClients, batchOp)
			record(batchName, sysReplicated, r)
			return err
		}},
		{sysOneReplica, func(ctx context.Context) error {
			r, err := onReplicas(ctx, batchName, sysOneReplica, 1, o.batchClients, batchOp)
			record(batchName, sysOneReplica, r)
			return err
		}},
		{sysBbolt, func(ctx context.Context) error {
			r, err := onBbolt(ctx, o.batchClients, batchOp)
			record(batchName, sysBbolt, r)
			return err
		}},
		{sysClusterTxn, func(ctx context.Context) error {
			r, err := onCluster(ctx, "txn", "--clients", strconv.Itoa(o.batchClients), "--batch", strconv.Itoa(o.batch), "--value-size", strconv.Itoa(valueSize))
			record(batchName, sysClusterTxn, r)
			return err
		}},
	}
	for round := range o.rounds {
		fmt.Printf(" round %d\n", round+1)
		if err := b.alternate(ctx, round, single); err != nil {
			return err
		}
		if err := b.alternate(ctx, round, batch); err != nil {
			return err
		}
	}
	get := func(workload, system string) *series { return b.rep.get(workload, system, "referrals/s") }
	b.rep.compare("Replicated Create: 2 replicas on etcd / exchange on bbolt", get(create, sysReplicated), get(create, sysBbolt), "", nil)
	b.rep.compare("Replicated Create: 2 replicas on etcd / etcd put (3 members)", get(create, sysReplicated), get(create, sysClusterPut), "", nil)
	b.rep.compare("Replicated batched push: 2 replicas on etcd / exchange on bbolt", get(batchName, sysReplicated), get(batchName, sysBbolt), "", nil)
	b.rep.compare("Replicated batched push: 2 replicas on etcd / etcd "+strings.TrimPrefix(sysClusterTxn, "etcd, "), get(batchName, sysReplicated), get(batchName, sysClusterTxn), "", nil)
	b.rep.compare("Replicated batched push: 2 replicas on etcd / etcd put (3 members, same round)", get(batchName, sysReplicated), get(create, sysClusterPut), "", nil)
	b.rep.compare("Replicated Create: 2 replicas / 1 replica, both on etcd", get(create, sysReplicated), get(create, sysOneReplica), "", nil)
	b.rep.compare("Replicated batched push: 2 replicas / 1 replica, both on etcd", get(batchName, sysReplicated), get(batchName, sysOneReplica), "", nil)
	return nil
}
