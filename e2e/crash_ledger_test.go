package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The ledger is the clients' side of the story: every write they sent,
// whether the exchange acknowledged it, and what a restart after a crash
// showed. verify compares it with what a restarted exchanged serves.

// refStatus is what is known of a referral that was sent.
type refStatus int

const (
	// refPending: sent, not yet looked for after a crash.
	refPending refStatus = iota
	// refStored: found stored after a crash, exactly once; it must stay.
	refStored
	// refGone: never acknowledged and not stored after the crash: lost
	// with the process, which is allowed. It must never appear later.
	refGone
)

// refRecord is one referral a worker sent.
type refRecord struct {
	requestID string
	sender    string
	receiver  string
	// batch says it went through BatchCreateReferrals, not CreateReferral.
	batch bool
	// acked says the exchange acknowledged it, as name.
	acked  bool
	name   string
	status refStatus
}

// rowRecord is one row key of the dataset. Only one worker writes a key,
// one call at a time, and each write of it carries a higher value than the
// last, so the value stored after a crash says which write won.
type rowRecord struct {
	contributor, period, location, sex string
	// durable is the value found stored after the last crash; 0 for none.
	durable int64
	// last is the last value sent.
	last int64
	// acked is the highest value acknowledged since the last crash, and
	// ackedN how many writes of the key were acknowledged since then.
	acked  int64
	ackedN int
	// sent holds the values sent since the last crash.
	sent map[int64]bool
}

func rowKey(contributor, period, location, sex string) string {
	return contributor + "|" + period + "|" + location + "|" + sex
}

// tally counts what the verifications found.
type tally struct {
	// ackedReferrals and ackedRowWrites count acknowledged writes found
	// stored after a crash (a row write counts when its value or a later
	// one is stored).
	ackedReferrals int
	ackedRowWrites int
	// inflightStored and inflightGone count unacknowledged writes in
	// flight when the process died, found stored and not stored.
	inflightStored int
	inflightGone   int
	// watchResumed counts the referrals that watches resumed after a
	// crash delivered (those the watch had not seen before it).
	watchResumed int
	// lost counts acknowledged writes (or writes a client had seen) that
	// were missing or wrong after a crash.
	lost int
	// problems describes every failure, lost writes included.
	problems []string
}

// ledger records what the clients sent and what was acknowledged. It is
// safe for concurrent use.
type ledger struct {
	mu    sync.Mutex
	refs  map[string]*refRecord
	rows  map[string]*rowRecord
	tally tally
	// acks receives a signal, without blocking, after each acknowledged
	// write is recorded, for a kill right after an acknowledgement.
	acks chan struct{}
}

func newLedger() *ledger {
	return &ledger{refs: map[string]*refRecord{}, rows: map[string]*rowRecord{}, acks: make(chan struct{}, 1)}
}

// fail records a problem; lost says it is an acknowledged write lost.
func (l *ledger) fail(lost bool, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failLocked(lost, format, args...)
}

func (l *ledger) failLocked(lost bool, format string, args ...any) {
	if lost {
		l.tally.lost++
		format = "LOST: " + format
	}
	l.tally.problems = append(l.tally.problems, fmt.Sprintf(format, args...))
}

func (l *ledger) signal() {
	select {
	case l.acks <- struct{}{}:
	default:
	}
}

// sentReferrals records referrals about to be sent.
func (l *ledger) sentReferrals(sender, receiver string, batch bool, ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		l.refs[id] = &refRecord{requestID: id, sender: sender, receiver: receiver, batch: batch}
	}
}

// ackedReferral records the exchange's acknowledgement of a referral.
func (l *ledger) ackedReferral(id, name string) {
	l.mu.Lock()
	rec := l.refs[id]
	rec.acked, rec.name = true, name
	l.mu.Unlock()
	l.signal()
}

// sentRows records rows about to be written and returns the value each
// carries: one more than the last value sent for its key.
func (l *ledger) sentRows(contributor, location string, keys []rowSpec) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	values := make([]int64, len(keys))
	for i, k := range keys {
		key := rowKey(contributor, k.period, location, k.sex)
		rec := l.rows[key]
		if rec == nil {
			rec = &rowRecord{contributor: contributor, period: k.period, location: location, sex: k.sex, sent: map[int64]bool{}}
			l.rows[key] = rec
		}
		rec.last++
		rec.sent[rec.last] = true
		values[i] = rec.last
	}
	return values
}

// ackedRow records the acknowledgement of one row write.
func (l *ledger) ackedRow(contributor, location string, k rowSpec, value int64) {
	l.mu.Lock()
	rec := l.rows[rowKey(contributor, k.period, location, k.sex)]
	rec.acked = max(rec.acked, value)
	rec.ackedN++
	l.mu.Unlock()
	l.signal()
}

// rowSpec is a row key within a worker's location.
type rowSpec struct{ period, sex string }

// verify compares what a restarted exchange serves with the ledger: each
// receiver's inbox, a re-send of every referral newly found stored, the
// dataset's rows, and each receiver's watch resumed from where it was when
// the process died. cl holds a client per agency.
func (l *ledger) verify(ctx context.Context, w *world, cl map[string]*client.Client, watches map[string]*referralWatch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	newlyStored := l.verifyInboxes(ctx, w, cl, watches)
	l.resend(ctx, cl, newlyStored)
	l.verifyRows(ctx, w, cl[w.owner])
}

// verifyInboxes lists each receiver's inbox and checks that every
// acknowledged (or previously found) referral is there exactly once under
// its name, and that nothing is there that was never sent. It settles the
// fate of the referrals in flight at the crash and returns those found
// stored for the first time.
func (l *ledger) verifyInboxes(ctx context.Context, w *world, cl map[string]*client.Client, watches map[string]*referralWatch) []*refRecord {
	found := map[string][]string{} // request id → names stored under it
	for _, recv := range w.receivers {
		inbox, rev, err := cl[recv].Referrals.Snapshot(ctx, &exchangev1.ListReferralsRequest{
			Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX, PageSize: 1000})
		if err != nil {
			l.failLocked(false, "listing the inbox of %s: %v", recv, err)
			continue
		}
		names := map[string]bool{}
		for _, r := range inbox {
			names[r.GetName()] = true
			id := r.GetSubjectReference()
			rec := l.refs[id]
			switch {
			case rec == nil:
				l.failLocked(false, "PHANTOM: %s's inbox holds %s (subject reference %q), which no client sent", recv, r.GetName(), id)
				continue
			case rec.receiver != recv || r.GetSender() != client.AgencyName(rec.sender):
				l.failLocked(false, "PHANTOM: %s's inbox holds %s for request %s, sent by %s to %s", recv, r.GetName(), id, rec.sender, rec.receiver)
				continue
			case rec.status == refGone:
				l.failLocked(false, "PHANTOM: request %s was not stored after an earlier crash, yet %s's inbox now holds it as %s", id, recv, r.GetName())
			}
			found[id] = append(found[id], r.GetName())
		}
		watches[recv].verifyResume(ctx, l, cl[recv], names, rev)
	}
	var newly []*refRecord
	for _, id := range slices.Sorted(maps.Keys(l.refs)) {
		rec := l.refs[id]
		names := found[id]
		switch {
		case len(names) > 1:
			l.failLocked(false, "DUPLICATE: request %s is stored %d times: %v", id, len(names), names)
		case len(names) == 0 && (rec.acked || rec.status == refStored):
			what := "acknowledged"
			if !rec.acked {
				what = "found stored after an earlier crash"
			}
			l.failLocked(true, "referral %s (request %s from %s to %s) was %s, but is not in the inbox", rec.name, id, rec.sender, rec.receiver, what)
			rec.status = refGone // reported once
		case len(names) == 0 && rec.status == refPending:
			rec.status = refGone
			l.tally.inflightGone++
		case len(names) == 1 && rec.name != "" && rec.name != names[0]:
			l.failLocked(true, "request %s was acknowledged as %s, but the inbox holds %s under it", id, rec.name, names[0])
		case len(names) == 1 && rec.status == refPending:
			rec.status, rec.name = refStored, names[0]
			if rec.acked {
				l.tally.ackedReferrals++
			} else {
				l.tally.inflightStored++
			}
			newly = append(newly, rec)
		}
	}
	return newly
}

// resend sends each referral again with its request id, as a case system
// retrying would: the exchange must answer with the referral stored the
// first time, never store a second one.
func (l *ledger) resend(ctx context.Context, cl map[string]*client.Client, recs []*refRecord) {
	bySender := map[string][]*refRecord{}
	for _, rec := range recs {
		bySender[rec.sender] = append(bySender[rec.sender], rec)
	}
	var mu sync.Mutex
	var problems []string
	failf := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for sender, recs := range bySender {
		c := cl[sender]
		wg.Go(func() {
			var batch []*refRecord
			for _, rec := range recs {
				if rec.batch {
					batch = append(batch, rec)
					continue
				}
				r, err := c.Referrals.Create(ctx, worldReferral(rec.requestID, rec.receiver), client.WithRequestID(rec.requestID))
				switch {
				case err != nil:
					failf("re-sending request %s: %v", rec.requestID, err)
				case r.GetName() != rec.name:
					failf("DUPLICATE: re-sending request %s stored %s; the first was %s", rec.requestID, r.GetName(), rec.name)
				}
			}
			for chunk := range slices.Chunk(batch, client.MaxReferralBatch) {
				reqs := make([]*exchangev1.CreateReferralRequest, len(chunk))
				for i, rec := range chunk {
					reqs[i] = &exchangev1.CreateReferralRequest{Referral: worldReferral(rec.requestID, rec.receiver), RequestId: rec.requestID}
				}
				res, err := c.Referrals.BatchCreate(ctx, reqs)
				if err != nil || len(res) != len(chunk) {
					failf("re-sending a batch of %d: %d results, %v", len(chunk), len(res), err)
					continue
				}
				for i, r := range res {
					if r.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE || r.GetReferral() != chunk[i].name {
						failf("DUPLICATE: re-sending request %s in a batch: %s %s; the first was %s",
							chunk[i].requestID, r.GetStatus(), r.GetReferral(), chunk[i].name)
					}
				}
			}
		})
	}
	wg.Wait()
	for _, p := range problems {
		l.failLocked(false, "%s", p)
	}
}

// verifyRows pulls the whole dataset as its owner and checks every row
// key: an acknowledged value (or a later one that was sent) is stored,
// nothing older, and nothing that was never sent.
func (l *ledger) verifyRows(ctx context.Context, w *world, owner *client.Client) {
	stored := map[string]int64{}
	err := owner.Datasets.Pull(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: w.dataset, PageSize: 10000},
		func(m *exchangev1.PullDatasetRowsResponse) error {
			for _, r := range m.GetRows() {
				key := rowKey(r.GetContributor(), r.GetPeriod(), r.GetLocation(), r.GetCategories()["sex"])
				if _, dup := stored[key]; dup {
					l.failLocked(false, "DUPLICATE: the pull delivered row %s twice", key)
				}
				stored[key] = r.GetValues()["cases"].GetIntValue()
			}
			return nil
		})
	if err != nil {
		l.failLocked(false, "pulling %s: %v", w.dataset, err)
		return
	}
	for key, v := range stored {
		if rec := l.rows[key]; rec == nil {
			l.failLocked(false, "PHANTOM: row %s = %d was never written", key, v)
		}
	}
	for key, rec := range l.rows {
		v, ok := stored[key]
		switch {
		case !ok && (rec.durable != 0 || rec.acked != 0):
			l.failLocked(true, "row %s is missing; acknowledged value %d, value stored before %d", key, rec.acked, rec.durable)
		case ok && v != rec.durable && !rec.sent[v]:
			l.failLocked(false, "PHANTOM: row %s holds %d, a value never sent (sent since the last crash: %v)", key, v, slices.Sorted(maps.Keys(rec.sent)))
		case ok && (v < rec.acked || v < rec.durable):
			l.failLocked(true, "row %s holds %d; acknowledged value %d, value stored before %d", key, v, rec.acked, rec.durable)
		case rec.ackedN > 0:
			l.tally.ackedRowWrites += rec.ackedN
		}
		switch {
		case rec.acked == 0 && len(rec.sent) > 0 && (!ok || v == rec.durable):
			l.tally.inflightGone++
		case rec.acked < v && v != rec.durable:
			l.tally.inflightStored++
		}
		rec.durable = v // 0 if missing: reported once
		rec.acked, rec.ackedN = 0, 0
		clear(rec.sent)
	}
}

// referralWatch follows a receiver's referrals during a cycle and records
// how far it got, so that the watch can be resumed after the crash.
type referralWatch struct {
	receiver string
	mu       sync.Mutex
	// known holds the referral names delivered by a watch or listed in
	// the inbox so far.
	known map[string]bool
	// from is the revision this cycle's watch started after.
	from int64
	// last is the revision of the last event delivered this cycle (0 for
	// none), and seen the names delivered this cycle.
	last   int64
	seen   []string
	events int
	// problems found while watching.
	problems []string
	// opts are passed to Watch.
	opts []client.WatchOption
}

// run watches until ctx ends.
func (wt *referralWatch) run(ctx context.Context, c *client.Client) {
	wt.mu.Lock()
	from := wt.from
	wt.mu.Unlock()
	err := c.Referrals.Watch(ctx, from, func(ev *exchangev1.WatchReferralsResponse) error {
		if ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_CREATED {
			return nil
		}
		wt.mu.Lock()
		defer wt.mu.Unlock()
		name := ev.GetReferral().GetName()
		if wt.known[name] {
			wt.problems = append(wt.problems, fmt.Sprintf("the watch of %s delivered %s twice", wt.receiver, name))
		}
		if ev.GetRevision() < wt.last {
			wt.problems = append(wt.problems, fmt.Sprintf("the watch of %s went back from revision %d to %d", wt.receiver, wt.last, ev.GetRevision()))
		}
		wt.known[name] = true
		wt.seen = append(wt.seen, name)
		wt.last = ev.GetRevision()
		wt.events++
		return nil
	}, wt.opts...)
	if ctx.Err() == nil {
		wt.mu.Lock()
		wt.problems = append(wt.problems, fmt.Sprintf("the watch of %s ended: %v", wt.receiver, err))
		wt.mu.Unlock()
	}
}

var errCaughtUp = errors.New("caught up")

// verifyResume checks the watch against the receiver's inbox after a
// restart (its names, listed at revision rev): what the watch delivered
// before the crash is still there, and a watch resumed from the last
// revision it delivered (less one, as the client documents, since a
// revision may have been delivered in part) delivers every referral of the
// inbox it had not seen, without repeating any other. Then it prepares
// the next cycle's watch to start at rev.
func (wt *referralWatch) verifyResume(ctx context.Context, l *ledger, c *client.Client, inbox map[string]bool, rev int64) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	for _, p := range wt.problems {
		l.failLocked(false, "%s", p)
	}
	for _, name := range wt.seen {
		if !inbox[name] {
			l.failLocked(true, "the watch of %s delivered %s before the crash, but it is not in the inbox after it", wt.receiver, name)
		}
	}
	expected := map[string]bool{}
	for name := range inbox {
		if !wt.known[name] {
			expected[name] = true
		}
	}
	from := wt.from
	if wt.last > 0 {
		from = wt.last - 1
	}
	if len(expected) > 0 {
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := c.Referrals.Watch(wctx, from, func(ev *exchangev1.WatchReferralsResponse) error {
			if ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_CREATED {
				return nil
			}
			name := ev.GetReferral().GetName()
			switch {
			case !inbox[name]:
				l.failLocked(false, "PHANTOM: the watch of %s resumed after revision %d delivered %s, which is not in the inbox", wt.receiver, from, name)
			case wt.known[name] && !expected[name] && ev.GetRevision() != wt.last:
				l.failLocked(false, "the watch of %s resumed after revision %d delivered %s (revision %d) again", wt.receiver, from, name, ev.GetRevision())
			}
			if expected[name] {
				l.tally.watchResumed++
				delete(expected, name)
			}
			if len(expected) == 0 {
				return errCaughtUp
			}
			return nil
		})
		cancel()
		if !errors.Is(err, errCaughtUp) {
			missing := slices.Sorted(maps.Keys(expected))
			l.failLocked(false, "GAP: the watch of %s resumed after revision %d did not deliver %d referrals of the inbox (%s): %v",
				wt.receiver, from, len(missing), strings.Join(missing[:min(3, len(missing))], ", "), err)
		}
	}
	wt.known = maps.Clone(inbox)
	wt.from, wt.last, wt.seen, wt.problems = rev, 0, nil, nil
}

// sortedProblems returns the problems with lost writes first.
func sortedProblems(p []string) []string {
	out := slices.Clone(p)
	sort.SliceStable(out, func(i, j int) bool {
		return strings.HasPrefix(out[i], "LOST") && !strings.HasPrefix(out[j], "LOST")
	})
	return out
}
