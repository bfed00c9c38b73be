package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// callOutcomes counts how calls ended around a shutdown: finished (nil
// error, or a stream that ended normally), UNAVAILABLE, or anything else,
// which is a failure.
type callOutcomes struct {
	mu      sync.Mutex
	sigterm time.Time // zero before SIGTERM
	// finished and unavailable count, by method, the calls that finished
	// after SIGTERM was sent and those that got UNAVAILABLE.
	finished    map[string]int
	unavailable map[string]int
	other       []string
}

func newCallOutcomes() *callOutcomes {
	return &callOutcomes{finished: map[string]int{}, unavailable: map[string]int{}}
}

// record records how a call of method ended; who says by whom.
func (o *callOutcomes) record(method, who string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil || errors.Is(err, io.EOF):
		if !o.sigterm.IsZero() {
			o.finished[method]++
		}
	case status.Code(err) == codes.Unavailable:
		o.unavailable[method]++
	default:
		o.other = append(o.other, fmt.Sprintf("%s by %s: %v", method, who, err))
	}
}

func (o *callOutcomes) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var parts []string
	for _, m := range slices.Sorted(maps.Keys(o.finished)) {
		parts = append(parts, fmt.Sprintf("%s finished %d", m, o.finished[m]))
	}
	for _, m := range slices.Sorted(maps.Keys(o.unavailable)) {
		parts = append(parts, fmt.Sprintf("%s UNAVAILABLE %d", m, o.unavailable[m]))
	}
	return fmt.Sprintf("%s; %d other errors", strings.Join(parts, ", "), len(o.other))
}

func (o *callOutcomes) markSigterm() {
	o.mu.Lock()
	o.sigterm = time.Now()
	o.mu.Unlock()
}

// TestGracefulShutdownUnderLoad sends SIGTERM while clients stream: watches
// open, dataset pulls in progress (one so slow that the grace period cuts
// it off), creates and row writes in flight. exchanged must exit 0 within
// the grace period, every call must either finish or get UNAVAILABLE,
// every acknowledged write must be there after a restart, and the
// database must pass the offline check.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	setup(t)
	const grace = 3 * time.Second
	dir := t.TempDir()
	srv := startBinary(t, bin("exchanged"), dir, "--shutdown-grace", grace.String(), "--log-level", "info")
	w := newWorld(t, dir, srv.addr, crashSenders, crashReceivers)
	l := newLedger()
	out := newCallOutcomes()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Rows to pull: every sender fills its location's 600 keys.
	for si, sender := range w.senders {
		c := dial(t, srv.addr, w.ids[sender])
		lw := &loadWorker{l: l, w: w, c: c, sender: sender, location: worldProvinces[si], rng: rand.New(rand.NewPCG(uint64(si), 1))}
		for from := 0; from < rowKeys; from += 300 {
			if !lw.writeKeys(ctx, seq(from, from+300)) {
				t.Fatalf("filling the dataset: %v", l.tally.problems)
			}
		}
		c.Close()
	}

	var clients []*client.Client
	connect := func(id string) *client.Client {
		c := dial(t, srv.addr, w.ids[id])
		clients = append(clients, c)
		return c
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup

	// Watches: every receiver follows its referrals from now.
	watches := map[string]*referralWatch{}
	for _, recv := range w.receivers {
		c := connect(recv)
		_, rev, err := c.Referrals.Snapshot(ctx, &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX})
		if err != nil {
			t.Fatal(err)
		}
		wt := &referralWatch{receiver: recv, known: map[string]bool{}, from: rev,
			opts: []client.WatchOption{client.OnReconnect(func(err error, _ time.Duration, _ int64) { out.record("WatchReferrals (stream broke)", recv, err) })}}
		watches[recv] = wt
		wg.Go(func() { wt.run(loadCtx, c) })
	}

	// Pulls: the owner and a contributor pull the whole dataset again and
	// again, slowly; a third pull is so slow that the grace period ends it.
	var pulls sync.WaitGroup
	var slowRows atomic.Int64 // rows the slow pull received
	pull := func(who, method string, pause time.Duration, once bool) {
		c := connect(who)
		pulls.Go(func() {
			for loadCtx.Err() == nil {
				rows := 0
				err := c.Datasets.Pull(loadCtx, &exchangev1.PullDatasetRowsRequest{Dataset: w.dataset, PageSize: 100},
					func(m *exchangev1.PullDatasetRowsResponse) error {
						rows += len(m.GetRows())
						if once {
							slowRows.Store(int64(rows))
						}
						select { // slowly while exchanged runs
						case <-time.After(pause):
						case <-srv.exited:
						}
						return nil
					},
					client.OnReconnect(func(err error, _ time.Duration, _ int64) {
						out.record(method+" (stream broke)", who, err)
					}))
				if loadCtx.Err() != nil {
					return
				}
				out.record(method, who, err)
				if err == nil && rows < len(w.senders)*rowKeys {
					out.record(method, who, fmt.Errorf("a whole pull delivered %d rows, want at least %d", rows, len(w.senders)*rowKeys))
				}
				if err != nil || once {
					return
				}
			}
		})
	}
	pull(w.owner, "PullDatasetRows", 30*time.Millisecond, false)
	pull(w.senders[0], "PullDatasetRows", 30*time.Millisecond, false)
	pull(w.senders[1], "PullDatasetRows (slow)", 500*time.Millisecond, true)

	// Writers: every sender sends referrals and writes rows, until the
	// exchange goes away.
	for si, sender := range w.senders {
		c := connect(sender)
		lw := &loadWorker{l: l, w: w, c: c, sender: sender, cycle: 1, location: worldProvinces[len(w.senders)+si],
			rng: rand.New(rand.NewPCG(uint64(si), 2)), onCall: func(method string, err error) { out.record(method, sender, err) }}
		wg.Go(func() { lw.run(loadCtx) })
	}

	time.Sleep(time.Second)
	out.markSigterm()
	sent := time.Now()
	if err := signalTerm(srv); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.exited:
	case <-time.After(grace + 5*time.Second):
		t.Fatalf("exchanged did not exit within %v of SIGTERM (grace %v)\nstderr:\n%s", grace+5*time.Second, grace, srv.stderr)
	}
	took := time.Since(sent)
	srv.stopped = true
	t.Logf("exchanged exited %v after SIGTERM (grace %v): %v", took.Round(time.Millisecond), grace, srv.waitErr)
	if srv.waitErr != nil {
		t.Errorf("exchanged exited with %v after SIGTERM, want status 0\nstderr:\n%s", srv.waitErr, srv.stderr)
	}
	if took > grace+time.Second {
		t.Errorf("exchanged took %v to exit after SIGTERM, more than the grace period %v (plus 1s)", took, grace)
	}
	if !strings.Contains(srv.stderr.String(), "stopped cleanly") {
		t.Errorf("exchanged did not log that it stopped cleanly\nstderr:\n%s", srv.stderr)
	}

	// The writers stop at their first UNAVAILABLE, the pulls after theirs;
	// the watches keep reconnecting until stopped.
	waitOrFail(t, "the writers and pulls", 20*time.Second, func() { pulls.Wait() })
	time.Sleep(300 * time.Millisecond)
	stopLoad()
	waitOrFail(t, "the watches and writers", 20*time.Second, wg.Wait)
	for _, c := range clients {
		c.Close()
	}
	t.Logf("calls after SIGTERM: %v; the slow pull received %d of %d rows", out, slowRows.Load(), len(w.senders)*rowKeys)
	if len(out.other) > 0 {
		t.Errorf("calls failed with something other than UNAVAILABLE during the shutdown:\n%s", strings.Join(firstN(out.other, 20), "\n"))
	}
	if out.unavailable["WatchReferrals (stream broke)"] == 0 {
		t.Errorf("no watch stream broke with UNAVAILABLE: the shutdown did not happen under the intended load (%v)", out)
	}

	chk, err := checkOffline(t, dir)
	if err != nil {
		t.Fatalf("after a graceful shutdown: %v", err)
	}
	srv = startBinary(t, bin("exchanged"), dir)
	t.Cleanup(func() { srv.stop(t) })
	cl := map[string]*client.Client{}
	for id, ident := range w.ids {
		cl[id] = dial(t, srv.addr, ident)
		defer cl[id].Close()
	}
	before := l.tally.problems
	l.verify(ctx, w, cl, watches)
	t.Logf("after restart: verified %d acknowledged referrals and %d acknowledged row writes (revision %d, %d audit entries); writes in flight: %d stored, %d not",
		l.tally.ackedReferrals, l.tally.ackedRowWrites, chk.revision, chk.auditEntries, l.tally.inflightStored, l.tally.inflightGone)
	if p := l.tally.problems; len(p) > 0 {
		t.Errorf("%d problems (%d lost writes), %d of them before the restart:\n%s", len(p), l.tally.lost, len(before), strings.Join(firstN(sortedProblems(p), 30), "\n"))
	}
	if l.tally.ackedReferrals == 0 {
		t.Error("no referral was acknowledged: the shutdown happened under no load")
	}
}

// signalTerm sends SIGTERM to exchanged.
func signalTerm(s *server) error {
	return s.cmd.Process.Signal(syscall.SIGTERM)
}

// waitOrFail runs wait and fails the test if it takes longer than d.
func waitOrFail(t *testing.T, what string, d time.Duration, wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not end within %v", what, d)
	}
}

// seq returns from, from+1, …, to-1.
func seq(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}
