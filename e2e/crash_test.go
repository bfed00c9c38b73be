package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The crash harness: many clients write to a real exchanged through the
// real client, the process is killed with SIGKILL at a random moment, the
// database is checked offline, exchanged is started again on the same
// files, and every acknowledged write must be there exactly once, nothing
// that was never sent, and a watch resumed from where it was must miss
// nothing. Many cycles on one data directory.
//
// `go test ./e2e/` runs a few cycles; `make crash` runs CRASH_CYCLES
// (default 100). CRASH_SEED repeats a run's random choices (the
// interleaving of the clients and the kill still varies).

// Agencies of the crash harness.
var (
	crashSenders   = []string{"ilo-kh", "iom-kh", "unicef-kh", "afesip-kh"}
	crashReceivers = []string{"shelter-kh", "legal-aid-kh"}
)

// crashOptions configure one run of the harness.
type crashOptions struct {
	// binary is the exchanged to run.
	binary string
	cycles int
	seed   uint64
	// workersPerSender is how many concurrent clients each sender runs.
	workersPerSender int
	// afterAckOnly kills every time right after an acknowledgement;
	// otherwise half the kills are, the others land at a random moment.
	afterAckOnly bool
	// stopAtLoss ends the run after the first cycle that lost an
	// acknowledged write.
	stopAtLoss bool
	// logCycles logs a line per cycle.
	logCycles bool
}

// crashReport is what a run found.
type crashReport struct {
	tally
	cycles        int
	killsAfterAck int
	// lostCycle is the first cycle that lost an acknowledged write.
	lostCycle    int
	auditEntries uint64
	revision     int64
	elapsed      time.Duration
}

func (r crashReport) String() string {
	return fmt.Sprintf("%d kill -9 cycles (%d right after an acknowledgement) in %v: verified %d acknowledged referrals and %d acknowledged row writes, lost %d; "+
		"writes in flight at the kill: %d found stored, %d not stored; resumed watches delivered %d referrals they had not seen; %d problems; audit chain of %d entries verified at revision %d",
		r.cycles, r.killsAfterAck, r.elapsed.Round(time.Millisecond), r.ackedReferrals, r.ackedRowWrites, r.lost,
		r.inflightStored, r.inflightGone, r.watchResumed, len(r.problems), r.auditEntries, r.revision)
}

// crashCycles is CRASH_CYCLES, or 3 for the short run of `go test`.
func crashCycles(t *testing.T) int {
	if v := os.Getenv("CRASH_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CRASH_CYCLES=%q: want a positive number", v)
		}
		return n
	}
	return 3
}

// crashSeed is CRASH_SEED, or a fresh seed.
func crashSeed(t *testing.T) uint64 {
	if v := os.Getenv("CRASH_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CRASH_SEED=%q: want a number", v)
		}
		return n
	}
	return rand.Uint64()
}

// TestCrashHarness runs the harness against the real exchanged: no
// acknowledged write may be lost.
func TestCrashHarness(t *testing.T) {
	setup(t)
	seed := crashSeed(t)
	cycles := crashCycles(t)
	t.Logf("crash harness: seed %d (CRASH_SEED=%d repeats it), %d cycles", seed, seed, cycles)
	rep := runCrashHarness(t, crashOptions{
		binary: bin("exchanged"), cycles: cycles, seed: seed, workersPerSender: 2, logCycles: cycles > 3 || testing.Verbose(),
	})
	t.Log(rep)
	if len(rep.problems) > 0 {
		t.Errorf("the crash harness found %d problems (seed %d):\n%s", len(rep.problems), seed, strings.Join(firstN(sortedProblems(rep.problems), 30), "\n"))
	}
	if rep.ackedReferrals == 0 || rep.ackedRowWrites == 0 {
		t.Errorf("the harness verified %d acknowledged referrals and %d row writes: it tested nothing", rep.ackedReferrals, rep.ackedRowWrites)
	}
}

// TestCrashHarnessCatchesAckBeforeCommit runs the harness against an
// exchanged built with a planted fault (the store acknowledges a write
// 200ms before committing it): the harness must report lost
// acknowledged writes within a few cycles, or it proves nothing.
func TestCrashHarnessCatchesAckBeforeCommit(t *testing.T) {
	setup(t)
	path, err := faultBinary()
	if err != nil {
		t.Fatal(err)
	}
	seed := crashSeed(t)
	const maxCycles = 5
	t.Logf("crash harness against %s: seed %d", faultTag, seed)
	rep := runCrashHarness(t, crashOptions{
		binary: path, cycles: maxCycles, seed: seed, workersPerSender: 2, afterAckOnly: true, stopAtLoss: true, logCycles: testing.Verbose(),
	})
	t.Log(rep)
	if rep.lost == 0 {
		t.Fatalf("the crash harness did not catch the planted ack-before-commit fault in %d cycles (seed %d): it cannot be trusted\n%s",
			rep.cycles, seed, strings.Join(firstN(rep.problems, 10), "\n"))
	}
	t.Logf("the planted fault was caught in cycle %d of %d: %d acknowledged writes lost, for example:\n%s",
		rep.lostCycle, maxCycles, rep.lost, strings.Join(firstN(sortedProblems(rep.problems), 3), "\n"))
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// runCrashHarness runs o.cycles cycles of load, SIGKILL, offline check,
// restart and verification on one data directory, then stops exchanged
// gracefully and checks the database once more.
func runCrashHarness(t *testing.T, o crashOptions) crashReport {
	t.Helper()
	start := time.Now()
	rng := rand.New(rand.NewPCG(o.seed, 0xc4a5))
	dir := t.TempDir()
	// The load is as fast as the server allows; the per-agency rate limit
	// (200 calls/s by default) would refuse part of it, which tests the
	// abuse policy, not durability. A refused write is harmless but is
	// reported as a problem, so the harness lifts the limit.
	noLimit := []string{"--rate", "-1"}
	srv := startBinary(t, o.binary, dir, noLimit...)
	w := newWorld(t, dir, srv.addr, crashSenders, crashReceivers)
	l := newLedger()
	ctx := context.Background()

	watches := map[string]*referralWatch{}
	for _, recv := range w.receivers {
		c := dial(t, srv.addr, w.ids[recv])
		_, rev, err := c.Referrals.Snapshot(ctx, &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX})
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		watches[recv] = &referralWatch{receiver: recv, known: map[string]bool{}, from: rev}
	}

	var rep crashReport
	for cycle := 1; cycle <= o.cycles; cycle++ {
		afterAck := o.afterAckOnly || rng.IntN(2) == 0
		if afterAck {
			rep.killsAfterAck++
		}
		before := l.tally
		killedAt := runLoad(t, srv, w, l, watches, cycle, afterAck, rng, o.workersPerSender)

		chk, err := checkOffline(t, dir)
		if err != nil {
			t.Fatalf("cycle %d: the database after SIGKILL fails the offline check: %v\n%s", cycle, err, rep)
		}
		srv = startBinary(t, o.binary, dir, noLimit...)
		cl := map[string]*client.Client{}
		for id, ident := range w.ids {
			cl[id] = dial(t, srv.addr, ident)
		}
		vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		l.verify(vctx, w, cl, watches)
		cancel()
		for _, c := range cl {
			c.Close()
		}
		rep.cycles = cycle
		if o.logCycles {
			t.Logf("cycle %d: killed %v after load began%s; acknowledged and verified %d referrals, %d row writes; in flight: %d stored, %d not; lost %d; database revision %d, %d audit entries, %d KiB",
				cycle, killedAt.Round(time.Millisecond), map[bool]string{true: " (right after an acknowledgement)"}[afterAck],
				l.tally.ackedReferrals-before.ackedReferrals, l.tally.ackedRowWrites-before.ackedRowWrites,
				l.tally.inflightStored-before.inflightStored, l.tally.inflightGone-before.inflightGone,
				l.tally.lost-before.lost, chk.revision, chk.auditEntries, chk.size>>10)
		}
		if l.tally.lost > 0 && rep.lostCycle == 0 {
			rep.lostCycle = cycle
			if o.stopAtLoss {
				break
			}
		}
	}
	srv.stop(t)
	chk, err := checkOffline(t, dir)
	if err != nil {
		t.Errorf("the database after a graceful stop fails the offline check: %v", err)
	}
	rep.tally = l.tally
	rep.auditEntries, rep.revision = chk.auditEntries, chk.revision
	rep.elapsed = time.Since(start)
	return rep
}

// runLoad runs the workers and the watches against srv, kills it with
// SIGKILL (right after an acknowledgement if afterAck, else at a random
// moment), waits for every client to give up and returns when the kill
// came.
func runLoad(t *testing.T, srv *server, w *world, l *ledger, watches map[string]*referralWatch, cycle int, afterAck bool, rng *rand.Rand, workersPerSender int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var clients []*client.Client
	for _, recv := range w.receivers {
		c := dial(t, srv.addr, w.ids[recv])
		clients = append(clients, c)
		wt := watches[recv]
		wg.Go(func() { wt.run(ctx, c) })
	}
	for si, sender := range w.senders {
		for k := range workersPerSender {
			c := dial(t, srv.addr, w.ids[sender])
			clients = append(clients, c)
			lw := &loadWorker{
				l: l, w: w, c: c, sender: sender, cycle: cycle, index: k,
				location: worldProvinces[(si*workersPerSender+k)%len(worldProvinces)],
				rng:      rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
			}
			wg.Go(func() { lw.run(ctx) })
		}
	}

	began := time.Now()
	if afterAck {
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		select { // drop an acknowledgement signalled earlier
		case <-l.acks:
		default:
		}
		select {
		case <-l.acks:
		case <-time.After(10 * time.Second):
			t.Errorf("cycle %d: no write was acknowledged for 10s", cycle)
		}
	} else {
		time.Sleep(time.Duration(150+rng.IntN(1350)) * time.Millisecond)
	}
	srv.kill(t)
	killedAt := time.Since(began)
	cancel()
	wg.Wait()
	for _, c := range clients {
		c.Close()
	}
	return killedAt
}

// loadWorker is one client of a sender agency: it sends referrals one at
// a time and in batches, and writes rows of its own location, recording
// each write in the ledger before it is sent and again when acknowledged.
type loadWorker struct {
	l        *ledger
	w        *world
	c        *client.Client
	sender   string
	location string
	cycle    int
	index    int
	rng      *rand.Rand
	seq      int
	// onCall, if set, is told the outcome of every call.
	onCall func(method string, err error)
}

// rowKeys is how many row keys a worker writes: two sexes for 25 years of
// months.
const rowKeys = 600

func (lw *loadWorker) run(ctx context.Context) {
	for ctx.Err() == nil {
		var ok bool
		switch p := lw.rng.Float64(); {
		case p < 0.35:
			ok = lw.createOne(ctx)
		case p < 0.65:
			ok = lw.createBatch(ctx, 2+lw.rng.IntN(9))
		default:
			ok = lw.writeRows(ctx, 1+lw.rng.IntN(12))
		}
		if !ok {
			return
		}
	}
}

func (lw *loadWorker) requestID() string {
	lw.seq++
	return fmt.Sprintf("c%d-%s-w%d-%d", lw.cycle, lw.sender, lw.index, lw.seq)
}

func (lw *loadWorker) receiver() string { return lw.w.receivers[lw.rng.IntN(len(lw.w.receivers))] }

func (lw *loadWorker) called(method string, err error) {
	if lw.onCall != nil {
		lw.onCall(method, err)
	}
}

// failed records an unexpected error and reports whether the worker should
// go on: errors of a server that is going away (UNAVAILABLE, or the
// worker's own cancellation) are expected.
func (lw *loadWorker) failed(ctx context.Context, what string, err error) bool {
	switch {
	case ctx.Err() != nil || status.Code(err) == codes.Unavailable:
	default:
		lw.l.fail(false, "%s by %s: unexpected error %v", what, lw.sender, err)
	}
	return false
}

func (lw *loadWorker) createOne(ctx context.Context) bool {
	id, recv := lw.requestID(), lw.receiver()
	lw.l.sentReferrals(lw.sender, recv, false, id)
	r, err := lw.c.Referrals.Create(ctx, worldReferral(id, recv), client.WithRequestID(id))
	lw.called("CreateReferral", err)
	if err != nil {
		return lw.failed(ctx, "CreateReferral", err)
	}
	lw.l.ackedReferral(id, r.GetName())
	return true
}

func (lw *loadWorker) createBatch(ctx context.Context, n int) bool {
	recv := lw.receiver()
	ids := make([]string, n)
	reqs := make([]*exchangev1.CreateReferralRequest, n)
	for i := range ids {
		ids[i] = lw.requestID()
		reqs[i] = &exchangev1.CreateReferralRequest{Referral: worldReferral(ids[i], recv), RequestId: ids[i]}
	}
	lw.l.sentReferrals(lw.sender, recv, true, ids...)
	res, err := lw.c.Referrals.BatchCreate(ctx, reqs)
	lw.called("BatchCreateReferrals", err)
	if err != nil {
		return lw.failed(ctx, "BatchCreateReferrals", err)
	}
	if len(res) != n {
		lw.l.fail(false, "BatchCreateReferrals by %s: %d results for %d requests", lw.sender, len(res), n)
		return false
	}
	for i, r := range res {
		switch r.GetStatus() {
		case exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED, exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE:
			lw.l.ackedReferral(ids[i], r.GetReferral())
		default:
			lw.l.fail(false, "BatchCreateReferrals by %s: request %s %s: %s %s", lw.sender, ids[i], r.GetStatus(), r.GetCode(), r.GetMessage())
		}
	}
	return true
}

// writeRows writes n of the worker's row keys, chosen at random.
func (lw *loadWorker) writeRows(ctx context.Context, n int) bool {
	return lw.writeKeys(ctx, lw.rng.Perm(rowKeys)[:n])
}

// writeKeys writes the worker's row keys ks (from 0 to rowKeys-1) in one
// call.
func (lw *loadWorker) writeKeys(ctx context.Context, ks []int) bool {
	n := len(ks)
	keys := make([]rowSpec, 0, n)
	for _, k := range ks {
		month := k / 2
		keys = append(keys, rowSpec{period: fmt.Sprintf("%04d-%02d", 1990+month/12, month%12+1), sex: [2]string{"female", "male"}[k%2]})
	}
	contributor := client.AgencyName(lw.sender)
	values := lw.l.sentRows(contributor, lw.location, keys)
	writes := make([]*exchangev1.RowWrite, n)
	for i, k := range keys {
		writes[i] = &exchangev1.RowWrite{Row: worldRow(k.period, lw.location, k.sex, values[i])}
	}
	resp, err := lw.c.Datasets.Write(ctx, lw.w.dataset, writes)
	lw.called("WriteDatasetRows", err)
	if err != nil {
		return lw.failed(ctx, "WriteDatasetRows", err)
	}
	if len(resp.GetResults()) != n {
		lw.l.fail(false, "WriteDatasetRows by %s: %d results for %d writes", lw.sender, len(resp.GetResults()), n)
		return false
	}
	for i, r := range resp.GetResults() {
		if !r.GetAccepted() {
			lw.l.fail(false, "WriteDatasetRows by %s: row %d refused: %s %v", lw.sender, i, r.GetCode(), r.GetViolations())
			continue
		}
		lw.l.ackedRow(contributor, lw.location, keys[i], values[i])
	}
	return true
}
