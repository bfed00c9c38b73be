package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// watchReferralsFrom opens a referral watch of c from rev.
func watchReferralsFrom(t *testing.T, ctx context.Context, c as, rev int64) exchangev1.ReferralService_WatchReferralsClient {
	t.Helper()
	stream, err := c.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{StartRevision: rev})
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// nextReferralEvents reads n events of a watch, skipping heartbeats.
func nextReferralEvents(t *testing.T, stream exchangev1.ReferralService_WatchReferralsClient, n int) []*exchangev1.WatchReferralsResponse {
	t.Helper()
	var out []*exchangev1.WatchReferralsResponse
	for len(out) < n {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d events: %v", len(out), err)
		}
		if ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
			out = append(out, ev)
		}
	}
	return out
}

// listRevisionOf is the revision a list of c's referrals answers with.
func listRevisionOf(t *testing.T, c as) int64 {
	t.Helper()
	list, err := c.referrals().ListReferrals(context.Background(), &exchangev1.ListReferralsRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	return list.GetRevision()
}

// Watchers of three agencies follow the same change log, whose events
// they share: each still gets exactly the referrals it is party to, as
// summaries, and nothing else.
func TestWatchersSharingEventsSeeOnlyTheirOwnReferrals(t *testing.T) {
	_, _, ilo, iom, unicef := threeAgencies(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	from := listRevisionOf(t, ilo)
	toIOM := map[string]bool{}
	toUNICEF := map[string]bool{}
	for range 3 {
		toIOM[refer(t, ilo, "iom").GetName()] = true
		toUNICEF[refer(t, ilo, "unicef").GetName()] = true
	}
	// Two watchers per agency, so that most pages come from the shared
	// events rather than the store.
	for round := range 2 {
		for _, w := range []struct {
			c    as
			want map[string]bool
		}{{iom, toIOM}, {unicef, toUNICEF}, {ilo, unionOf(toIOM, toUNICEF)}} {
			stream := watchReferralsFrom(t, ctx, w.c, from)
			got := nextReferralEvents(t, stream, len(w.want))
			for _, ev := range got {
				r := ev.GetReferral()
				if !w.want[r.GetName()] {
					t.Fatalf("round %d: %s was sent %s, which it is not party to", round, w.c.agencyID, r.GetName())
				}
				if ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_CREATED || r.GetSubject() != nil || len(r.GetSealedDetails()) != 0 || !r.GetDetailsWithheld() {
					t.Fatalf("round %d: %s got %v, want a created summary without details", round, w.c.agencyID, ev)
				}
			}
			// Nothing more: the next message is a heartbeat.
			ev, err := stream.Recv()
			if err != nil || ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
				t.Fatalf("round %d: %s after its events: %v %v", round, w.c.agencyID, ev, err)
			}
		}
	}
}

func unionOf(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// The second reader of a log entry gets the first one's encoding, not a
// decoding and an encoding of its own.
func TestWatchEventsAreEncodedOncePerEntry(t *testing.T) {
	x, _, ilo, iom, _ := threeAgencies(t)
	from := listRevisionOf(t, iom)
	for range 3 {
		refer(t, ilo, "iom")
	}
	s := &referralService{server: x.server, store: x.store, deadlines: DefaultAckDeadlines, now: time.Now}
	s.events = &referralEvents{store: x.store, service: s}
	ctx := context.Background()
	first, err := s.events.after(ctx, from, watchPage)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.events.after(ctx, from, watchPage)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 || len(second) != 3 {
		t.Fatalf("%d and %d events, want 3", len(first), len(second))
	}
	for i := range first {
		if first[i].message != second[i].message || first[i].summary != second[i].summary {
			t.Fatalf("event %d (revision %d) was decoded and encoded again for the second reader", i, first[i].revision)
		}
	}
	// A reader from the middle gets the rest, from memory as well.
	rest, err := s.events.after(ctx, first[0].revision, watchPage)
	if err != nil || len(rest) != 2 || rest[0].message != first[1].message {
		t.Fatalf("from the first event's revision: %d events (%v)", len(rest), err)
	}
	// A new stream starts past the last entry, at a safe revision, and
	// finds nothing; the events the others share stay shared.
	safe, err := x.store.SafeRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if none, err := s.events.after(ctx, safe, watchPage); err != nil || len(none) != 0 {
		t.Fatalf("after the safe revision %d: %d events (%v)", safe, len(none), err)
	}
	again, err := s.events.after(ctx, from, watchPage)
	if err != nil || len(again) != 3 || again[0].message != first[0].message {
		t.Fatalf("after a stream started at the safe revision, the shared events were read again (%v)", err)
	}
}

// Events kept in memory are not served past the compacted horizon: a
// watch from a compacted revision fails as it did when every watch read
// the store.
func TestSharedWatchEventsStillRefuseACompactedRevision(t *testing.T) {
	x, _, ilo, iom, _ := threeAgencies(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	from := listRevisionOf(t, iom)
	for range 3 {
		refer(t, ilo, "iom")
	}
	nextReferralEvents(t, watchReferralsFrom(t, ctx, iom, from), 3) // the events are now shared
	if err := x.store.Compact(ctx, x.store.Revision()); err != nil {
		t.Fatal(err)
	}
	_, err := watchReferralsFrom(t, ctx, iom, from).Recv()
	if st := wantCode(t, err, codes.OutOfRange); reason(st) != "REVISION_COMPACTED" {
		t.Errorf("reason %q", reason(st))
	}
}

// A shared event was encoded with the overdue flag of its time; a watcher
// that gets it after the deadline passed sees it overdue.
func TestASharedWatchEventIsFlaggedOverdueOnceTheDeadlinePassed(t *testing.T) {
	x, _, _, _, _ := threeAgencies(t)
	var ahead atomic.Int64 // how far the server's clock runs ahead
	x.stop()
	x.serveWith(func(c *Config) { c.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) } })
	ilo, iom := x.asAgency("ilo"), x.asAgency("iom")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	from := listRevisionOf(t, iom)
	refer(t, ilo, "iom") // urgent: overdue after 24 hours
	if ev := nextReferralEvents(t, watchReferralsFrom(t, ctx, iom, from), 1)[0]; ev.GetReferral().GetOverdue() {
		t.Fatal("a new referral is overdue")
	}
	ahead.Store(int64(25 * time.Hour))
	if ev := nextReferralEvents(t, watchReferralsFrom(t, ctx, iom, from), 1)[0]; !ev.GetReferral().GetOverdue() {
		t.Fatal("25 hours later the shared event still says the referral is not overdue")
	}
	ahead.Store(0)
	if ev := nextReferralEvents(t, watchReferralsFrom(t, ctx, ilo, from), 1)[0]; ev.GetReferral().GetOverdue() {
		t.Fatal("the event kept the overdue flag of another watcher's time")
	}
}

// The shared encoding is what the JSON face transcodes too: a watch over
// Connect with JSON gets the same events as one over gRPC.
func TestSharedWatchEventsReachTheJSONFace(t *testing.T) {
	x, _, ilo, iom, _ := threeAgencies(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	from := listRevisionOf(t, iom)
	var names []string
	for range 2 {
		names = append(names, refer(t, ilo, "iom").GetName())
	}
	nextReferralEvents(t, watchReferralsFrom(t, ctx, iom, from), 2) // the events are now shared

	c := x.jsonClientFor(t, pki.Agency("iom"), false)
	b, err := protojson.Marshal(&exchangev1.WatchReferralsRequest{StartRevision: from})
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.WriteByte(0)
	binary.Write(&body, binary.BigEndian, uint32(len(b)))
	body.Write(b)
	r, err := http.NewRequestWithContext(ctx, "POST", c.base+"/alltogether.exchange.v1.ReferralService/WatchReferrals", &body)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/connect+json")
	resp, err := c.http.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []string
	for len(got) < len(names) {
		var head [5]byte
		if _, err := io.ReadFull(resp.Body, head[:]); err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		msg := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(resp.Body, msg); err != nil {
			t.Fatal(err)
		}
		if head[0]&2 != 0 {
			t.Fatalf("the watch ended after %v: %s", got, msg)
		}
		var ev exchangev1.WatchReferralsResponse
		if err := protojson.Unmarshal(msg, &ev); err != nil {
			t.Fatalf("%v: %s", err, msg)
		}
		if ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
			got = append(got, ev.GetReferral().GetName())
		}
	}
	if !slices.Equal(got, names) {
		t.Fatalf("over Connect %v, want %v", got, names)
	}
}

// A watcher waits for the next commit after a page that is not full, so
// such a page must hold every change committed before it was asked for,
// even when the events the streams share stop short of the store (no
// stream was awake to read the newer changes into them). A page that
// stopped at the shared events' end left the watcher waiting until its
// next heartbeat (30 s by default) for a change already committed: round
// 1 of the benchmark's watch fan-out delivered its last events 31 s late.
func TestSharedWatchEventsBehindTheStoreAreCaughtUp(t *testing.T) {
	x, _, ilo, iom, _ := threeAgencies(t)
	from := listRevisionOf(t, iom)
	refer(t, ilo, "iom")
	s := &referralService{server: x.server, store: x.store, deadlines: DefaultAckDeadlines, now: time.Now}
	s.events = &referralEvents{store: x.store, service: s}
	ctx := context.Background()
	first, err := s.events.after(ctx, from, watchPage)
	if err != nil || len(first) != 1 {
		t.Fatalf("%d events (%v), want 1", len(first), err)
	}
	refer(t, ilo, "iom") // committed while no stream reads the log
	both, err := s.events.after(ctx, from, watchPage)
	if err != nil {
		t.Fatal(err)
	}
	if len(both) != 2 {
		t.Fatalf("after the second referral was committed, a page from revision %d has %d events, want 2: the watcher would wait for its heartbeat", from, len(both))
	}
	if both[0].message != first[0].message {
		t.Fatal("the first event was read again rather than shared")
	}
	// The newer change joined the shared events.
	rest, err := s.events.after(ctx, first[0].revision, watchPage)
	if err != nil || len(rest) != 1 || rest[0].message != both[1].message {
		t.Fatalf("from the first event's revision: %d events (%v), want the second, shared", len(rest), err)
	}
	// A page that is full may stop short of the store: the watcher asks
	// again at once.
	refer(t, ilo, "iom")
	page, err := s.events.after(ctx, from, 2)
	if err != nil || len(page) != 2 || page[1].message != both[1].message {
		t.Fatalf("a page of 2: %d events (%v)", len(page), err)
	}
}

// Many watchers of one agency follow referrals that several writers push
// in batches, as in the benchmark's fan-out, with heartbeats an hour
// apart: every watcher gets every event promptly, none of them at a
// heartbeat after the last commit.
func TestManyWatchersGetEveryEventWithoutWaitingForAHeartbeat(t *testing.T) {
	x, _, _, _, _ := threeAgencies(t)
	x.stop()
	x.serveWith(func(c *Config) { c.WatchHeartbeat = time.Hour })
	ilo, iom := x.asAgency("ilo"), x.asAgency("iom")
	const watchers, writers, batches, batch = 30, 4, 8, 25
	want := writers * batches * batch
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	from := listRevisionOf(t, iom)
	got := make(chan error, watchers)
	for i := range watchers {
		stream := watchReferralsFrom(t, ctx, iom, from)
		go func() {
			for n := 0; n < want; {
				ev, err := stream.Recv()
				if err != nil {
					got <- fmt.Errorf("watcher %d after %d events: %w", i, n, err)
					return
				}
				if ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
					n++
				}
			}
			got <- nil
		}()
	}
	write := make(chan error, writers)
	for range writers {
		go func() {
			for range batches {
				reqs := make([]*exchangev1.CreateReferralRequest, batch)
				for i := range reqs {
					reqs[i] = &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()}
				}
				if _, err := ilo.referrals().BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: reqs}); err != nil {
					write <- err
					return
				}
			}
			write <- nil
		}()
	}
	for range writers {
		if err := <-write; err != nil {
			t.Fatal(err)
		}
	}
	written := time.Now()
	for range watchers {
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("a watcher is still waiting for events committed %v ago", time.Since(written).Round(time.Millisecond))
		}
	}
}
