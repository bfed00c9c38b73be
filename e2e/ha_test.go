package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The high-availability fault test (issue #17): three etcd members and two
// exchanged replicas on them, under a steady write load from clients that
// dial both replicas. The etcd leader is killed with SIGKILL and
// restarted on its data, then one exchanged replica is, and:
//   - every acknowledged referral and row write is stored, exactly once
//     (the crash harness's ledger, crash_ledger_test.go);
//   - referral watches connected to the surviving replica alone deliver
//     every stored referral once, in revision order, without a resume;
//   - the audit chain verifies.
//
// The writers follow the client's retry rules: the client retries a call
// that failed with UNAVAILABLE on the other replica (client/retry.go), and
// when it gives up the writer sends the same request again, with the same
// request ids (the same row values for a dataset write), until it is
// acknowledged. The write outage around each kill is the longest gap
// between two acknowledgements, logged in seconds.

// haCallTimeout bounds one attempt of a writer's call, retries by the
// client included; a call stuck on a dead member is then sent again.
const haCallTimeout = 10 * time.Second

// haOptions configure one run of the fault test.
type haOptions struct {
	// binary is the exchanged the replicas run.
	binary string
	seed   uint64
	// workersPerSender is how many concurrent writers each sender runs.
	workersPerSender int
	// settle is how long the load runs before, between and after the
	// faults.
	settle time.Duration
}

// haReport is what a run found.
type haReport struct {
	tally
	// resent counts the calls the writers sent again after the client
	// gave up on them, by gRPC code.
	resent map[codes.Code]int
	// failedAttempts counts the writers' attempts that failed with
	// UNAVAILABLE, each retried by the client on a replica that answers.
	failedAttempts int64
	// watchEvents counts the referrals the watches on the surviving
	// replica delivered, and watchReconnects how often they reconnected.
	watchEvents, watchReconnects int
	// baseline is the longest gap between acknowledgements before the
	// first fault; etcdOutage and replicaOutage the longest around the
	// kill and restart of the etcd leader and of a replica.
	baseline, etcdOutage, replicaOutage time.Duration
	// election is how long the cluster had no leader that answered.
	election time.Duration
	// auditVerify is what `exchangectl audit verify` printed.
	auditVerify string
	elapsed     time.Duration
}

func (r haReport) String() string {
	return fmt.Sprintf("HA fault run in %v: verified %d acknowledged referrals and %d acknowledged row writes, lost %d; in flight at the end: %d stored, %d not; "+
		"%d attempts failed with UNAVAILABLE and the client retried them; writers re-sent %d calls after the client gave up (%v); watches on the surviving replica delivered %d referrals (%d reconnects); %d problems; "+
		"write outage: %.2fs around the etcd leader's kill -9 and restart (new leader after %.2fs), %.2fs around the replica's kill -9 and restart, %.2fs longest gap with no fault; audit: %s",
		r.elapsed.Round(time.Millisecond), r.ackedReferrals, r.ackedRowWrites, r.lost, r.inflightStored, r.inflightGone,
		r.failedAttempts, sumCodes(r.resent), r.resent, r.watchEvents, r.watchReconnects, len(r.problems),
		r.etcdOutage.Seconds(), r.election.Seconds(), r.replicaOutage.Seconds(), r.baseline.Seconds(), strings.TrimSpace(r.auditVerify))
}

func sumCodes(m map[codes.Code]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestHAFault runs the fault test against the real exchanged.
func TestHAFault(t *testing.T) {
	setup(t)
	seed := crashSeed(t)
	t.Logf("HA fault test: seed %d (CRASH_SEED=%d repeats the writers' choices)", seed, seed)
	rep := runHA(t, haOptions{binary: bin("exchanged"), seed: seed, workersPerSender: 2, settle: 3 * time.Second})
	t.Log(rep)
	if len(rep.problems) > 0 {
		t.Errorf("the HA fault test found %d problems (seed %d):\n%s", len(rep.problems), seed, strings.Join(firstN(sortedProblems(rep.problems), 30), "\n"))
	}
	if rep.ackedReferrals == 0 || rep.ackedRowWrites == 0 || rep.watchEvents == 0 {
		t.Errorf("the test verified %d acknowledged referrals, %d row writes and %d watch events: it tested nothing", rep.ackedReferrals, rep.ackedRowWrites, rep.watchEvents)
	}
}

// runHA starts the cluster and the replicas, builds the world, runs the
// load through the faults and verifies what the replicas serve.
func runHA(t *testing.T, o haOptions) haReport {
	t.Helper()
	start := time.Now()
	rng := rand.New(rand.NewPCG(o.seed, 0x4a17))
	dir := t.TempDir()
	etcdDir := filepath.Join(dir, "etcd")
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cluster := startEtcdCluster(t, etcdDir, 3, makeEtcdTLS(t, pkiDir(dir)))

	// Fixed ports, so that a replica restarted after its kill is where
	// the clients look for it. Both replicas run in dir: on etcd,
	// exchanged keeps only the PKI in its data directory.
	var addrs []string
	for _, p := range freeLoopbackPorts(t, 2) {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	startReplica := func(i int) *server {
		t.Helper()
		args := append([]string{"--rate", "-1", "--listen", addrs[i]}, cluster.exchangedFlags()...)
		return startBinary(t, o.binary, dir, args...)
	}
	replicas := []*server{startReplica(0), startReplica(1)}
	defer func() {
		for _, r := range replicas {
			r.stop(t)
		}
	}()
	const survivor, victim = 0, 1

	w := newWorld(t, dir, addrs[survivor], crashSenders, crashReceivers)
	l := newLedger()
	rep := haReport{resent: map[codes.Code]int{}}

	// The watches: one per receiver, on the surviving replica alone.
	var reconnects atomic.Int64
	watches := map[string]*referralWatch{}
	watchCtx, stopWatches := context.WithCancel(context.Background())
	defer stopWatches()
	var watchWG sync.WaitGroup
	for _, recv := range w.receivers {
		c := dial(t, addrs[survivor], w.ids[recv])
		defer c.Close()
		_, rev, err := c.Referrals.Snapshot(watchCtx, &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX})
		if err != nil {
			t.Fatal(err)
		}
		wt := &referralWatch{receiver: recv, known: map[string]bool{}, from: rev,
			opts: []client.WatchOption{client.OnReconnect(func(error, time.Duration, int64) { reconnects.Add(1) })}}
		watches[recv] = wt
		watchWG.Go(func() { wt.run(watchCtx, c) })
	}

	// The writers, each dialling both replicas. An interceptor inside the
	// client's retries counts the attempts that failed with UNAVAILABLE.
	var failedAttempts atomic.Int64
	countFailed := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) == codes.Unavailable {
			failedAttempts.Add(1)
		}
		return err
	})
	acks := &ackClock{}
	var resentMu sync.Mutex
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var loadWG sync.WaitGroup
	for si, sender := range w.senders {
		for k := range o.workersPerSender {
			c := dialReplicas(t, addrs, w.ids[sender], countFailed)
			defer c.Close()
			hw := &haWorker{
				loadWorker: &loadWorker{
					l: l, w: w, c: c, sender: sender, cycle: 1, index: k,
					location: worldProvinces[(si*o.workersPerSender+k)%len(worldProvinces)],
					rng:      rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
				},
				acks: acks,
				resent: func(code codes.Code) {
					resentMu.Lock()
					rep.resent[code]++
					resentMu.Unlock()
				},
			}
			loadWG.Go(func() { hw.run(loadCtx) })
		}
	}
	loadBegan := time.Now()

	// Fault 1: kill -9 the etcd leader, restart it on its data.
	time.Sleep(o.settle)
	leader := cluster.leader()
	if leader < 0 {
		t.Fatalf("no etcd leader under load\n%s", cluster.logs())
	}
	etcdKill := time.Now()
	rep.baseline = acks.longestGap(loadBegan.Add(time.Second), etcdKill)
	cluster.members[leader].kill()
	if l := cluster.waitLeader(20 * time.Second); l < 0 {
		t.Fatalf("no new etcd leader within 20s of killing %s\n%s", cluster.members[leader].name, cluster.logs())
	}
	rep.election = time.Since(etcdKill)
	t.Logf("killed etcd leader %s; a new leader answered after %v", cluster.members[leader].name, rep.election.Round(time.Millisecond))
	time.Sleep(o.settle)
	cluster.restart(leader)
	etcdRestarted := time.Now()
	t.Logf("restarted etcd member %s", cluster.members[leader].name)
	time.Sleep(o.settle)
	rep.etcdOutage = acks.longestGapAround(etcdKill, etcdRestarted.Add(2*time.Second))

	// Fault 2: kill -9 a replica right after an acknowledgement, restart
	// it on the same address.
	select { // drop an acknowledgement signalled earlier
	case <-l.acks:
	default:
	}
	select {
	case <-l.acks:
	case <-time.After(10 * time.Second):
		t.Errorf("no write was acknowledged for 10s before the replica's kill")
	}
	replicaKill := time.Now()
	replicas[victim].kill(t)
	t.Logf("killed replica %s", addrs[victim])
	time.Sleep(o.settle)
	replicas[victim] = startReplica(victim)
	replicaRestarted := time.Now()
	t.Logf("restarted replica %s", addrs[victim])
	time.Sleep(o.settle)
	rep.replicaOutage = acks.longestGapAround(replicaKill, replicaRestarted.Add(2*time.Second))

	stopLoad()
	loadWG.Wait()
	rep.failedAttempts = failedAttempts.Load()

	// The live watches on the surviving replica must have delivered every
	// referral stored, without the resume that verify does after a crash.
	for _, recv := range w.receivers {
		checkLiveWatch(t, l, addrs[survivor], w.ids[recv], watches[recv])
	}
	stopWatches()
	watchWG.Wait()
	for _, wt := range watches {
		rep.watchEvents += wt.events
	}
	rep.watchReconnects = int(reconnects.Load())

	cl := map[string]*client.Client{}
	for id, ident := range w.ids {
		cl[id] = dialReplicas(t, addrs, ident)
		defer cl[id].Close()
	}
	vctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	l.verify(vctx, w, cl, watches)
	cancel()

	// The audit chain, checked by a replica that was killed and restarted.
	sec := newSession(dir, "EXCHANGE_SERVER="+addrs[victim])
	rep.auditVerify = sec.ok(t, "audit", "verify")
	if !strings.Contains(rep.auditVerify, "entries") {
		t.Errorf("exchangectl audit verify printed no entry count: %s", rep.auditVerify)
	}
	rep.tally = l.tally
	rep.elapsed = time.Since(start)
	return rep
}

// checkLiveWatch waits up to 10s until the watch wt, running on the
// replica at addr, has delivered every referral in its receiver's inbox,
// and records in the ledger those it has not.
func checkLiveWatch(t *testing.T, l *ledger, addr string, id identity, wt *referralWatch) {
	t.Helper()
	c := dial(t, addr, id)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inbox, _, err := c.Referrals.Snapshot(ctx, &exchangev1.ListReferralsRequest{
		Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX, PageSize: 1000})
	if err != nil {
		l.fail(false, "listing the inbox of %s: %v", wt.receiver, err)
		return
	}
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		missing = missing[:0]
		wt.mu.Lock()
		for _, r := range inbox {
			if !wt.known[r.GetName()] {
				missing = append(missing, r.GetName())
			}
		}
		wt.mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		l.fail(false, "GAP: the live watch of %s on the surviving replica did not deliver %d of the %d referrals in the inbox (%s)",
			wt.receiver, len(missing), len(inbox), strings.Join(firstN(missing, 3), ", "))
	}
}

// dialReplicas prepares a client of the exchange replicas at addrs as id,
// like dial, with any extra gRPC dial options.
func dialReplicas(t *testing.T, addrs []string, id identity, opts ...grpc.DialOption) *client.Client {
	t.Helper()
	ring, pins := keyRingBeside(id.cert)
	c, err := client.Dial(context.Background(), client.Config{
		Addresses: addrs, CertFile: id.cert, KeyFile: id.key, CAFile: id.ca,
		Timeout:     30 * time.Second,
		KeyRingFile: ring, PinsFile: pins,
	}, opts...)
	if err != nil {
		t.Fatalf("dial %v: %v", addrs, err)
	}
	return c
}

// ackClock records when writes were acknowledged. It is safe for
// concurrent use.
type ackClock struct {
	mu    sync.Mutex
	times []time.Time
}

func (a *ackClock) ack() {
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
}

// longestGap is the longest time between two acknowledgements in
// [from, to], the ends of the range counting as acknowledgements.
func (a *ackClock) longestGap(from, to time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	ts := slices.SortedFunc(slices.Values(a.times), time.Time.Compare)
	prev, gap := from, time.Duration(0)
	for _, at := range ts {
		if at.Before(from) || at.After(to) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return max(gap, to.Sub(prev))
}

// longestGapAround is the longest time between two acknowledgements from
// the last one before a fault at fault until to.
func (a *ackClock) longestGapAround(fault, to time.Time) time.Duration {
	a.mu.Lock()
	from := fault
	for _, at := range a.times {
		if at.Before(fault) && (from.Equal(fault) || at.After(from)) {
			from = at
		}
	}
	a.mu.Unlock()
	return a.longestGap(from, to)
}

// haWorker is a loadWorker that follows the client's retry rules through
// the faults: a call the client gave up on (UNAVAILABLE after its own
// retries, or haCallTimeout) is sent again unchanged, with the same
// request ids, until it is acknowledged or the load ends.
type haWorker struct {
	*loadWorker
	acks *ackClock
	// resent is told the code of each call sent again.
	resent func(codes.Code)
}

func (hw *haWorker) run(ctx context.Context) {
	for ctx.Err() == nil {
		switch p := hw.rng.Float64(); {
		case p < 0.4:
			hw.createOne(ctx)
		case p < 0.8:
			hw.createBatch(ctx, 2+hw.rng.IntN(9))
		default:
			hw.writeRows(ctx, 1+hw.rng.IntN(12))
		}
	}
}

// again reports whether a call that failed with err is to be sent again:
// when the exchange was unavailable or the attempt timed out, and the load
// goes on. Any other error is a problem.
func (hw *haWorker) again(ctx context.Context, what string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch code := status.Code(err); code {
	case codes.Unavailable, codes.DeadlineExceeded:
		hw.resent(code)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
		return true
	}
	hw.l.fail(false, "%s by %s: unexpected error %v", what, hw.sender, err)
	return false
}

func (hw *haWorker) createOne(ctx context.Context) {
	id, recv := hw.requestID(), hw.receiver()
	hw.l.sentReferrals(hw.sender, recv, false, id)
	for {
		actx, cancel := context.WithTimeout(ctx, haCallTimeout)
		r, err := hw.c.Referrals.Create(actx, worldReferral(id, recv), client.WithRequestID(id))
		cancel()
		if err == nil {
			hw.l.ackedReferral(id, r.GetName())
			hw.acks.ack()
			return
		}
		if !hw.again(ctx, "CreateReferral", err) {
			return
		}
	}
}

func (hw *haWorker) createBatch(ctx context.Context, n int) {
	recv := hw.receiver()
	ids := make([]string, n)
	reqs := make([]*exchangev1.CreateReferralRequest, n)
	for i := range ids {
		ids[i] = hw.requestID()
		reqs[i] = &exchangev1.CreateReferralRequest{Referral: worldReferral(ids[i], recv), RequestId: ids[i]}
	}
	hw.l.sentReferrals(hw.sender, recv, true, ids...)
	for {
		actx, cancel := context.WithTimeout(ctx, haCallTimeout)
		res, err := hw.c.Referrals.BatchCreate(actx, reqs)
		cancel()
		if err != nil {
			if hw.again(ctx, "BatchCreateReferrals", err) {
				continue
			}
			return
		}
		if len(res) != n {
			hw.l.fail(false, "BatchCreateReferrals by %s: %d results for %d requests", hw.sender, len(res), n)
			return
		}
		for i, r := range res {
			switch r.GetStatus() {
			case exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED, exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE:
				hw.l.ackedReferral(ids[i], r.GetReferral())
			default:
				hw.l.fail(false, "BatchCreateReferrals by %s: request %s %s: %s %s", hw.sender, ids[i], r.GetStatus(), r.GetCode(), r.GetMessage())
			}
		}
		hw.acks.ack()
		return
	}
}

// writeRows writes n of the worker's row keys, chosen at random, sending
// the same values again until they are acknowledged.
func (hw *haWorker) writeRows(ctx context.Context, n int) {
	keys := make([]rowSpec, 0, n)
	for _, k := range hw.rng.Perm(rowKeys)[:n] {
		month := k / 2
		keys = append(keys, rowSpec{period: fmt.Sprintf("%04d-%02d", 1990+month/12, month%12+1), sex: [2]string{"female", "male"}[k%2]})
	}
	contributor := client.AgencyName(hw.sender)
	values := hw.l.sentRows(contributor, hw.location, keys)
	writes := make([]*exchangev1.RowWrite, n)
	for i, k := range keys {
		writes[i] = &exchangev1.RowWrite{Row: worldRow(k.period, hw.location, k.sex, values[i])}
	}
	for {
		actx, cancel := context.WithTimeout(ctx, haCallTimeout)
		resp, err := hw.c.Datasets.Write(actx, hw.w.dataset, writes)
		cancel()
		if err != nil {
			if hw.again(ctx, "WriteDatasetRows", err) {
				continue
			}
			return
		}
		if len(resp.GetResults()) != n {
			hw.l.fail(false, "WriteDatasetRows by %s: %d results for %d writes", hw.sender, len(resp.GetResults()), n)
			return
		}
		for i, r := range resp.GetResults() {
			if !r.GetAccepted() {
				hw.l.fail(false, "WriteDatasetRows by %s: row %d refused: %s %v", hw.sender, i, r.GetCode(), r.GetViolations())
				continue
			}
			hw.l.ackedRow(contributor, hw.location, keys[i], values[i])
		}
		hw.acks.ack()
		return
	}
}
