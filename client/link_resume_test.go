package client_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/internal/faultproxy"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// How quickly a stream resumes (issue #21): a pull through a link that
// breaks while it delivers resumes at once, and a link that stays down is
// tried again with growing delays, never in a tight loop.

func TestLinkCutWhileDeliveringResumesAtOnce(t *testing.T) {
	t.Parallel()
	l := newLinked(t)
	ctx := context.Background()
	l.writeLinkMonths(t, 0, 19) // 2,000 rows
	req := &exchangev1.PullDatasetRowsRequest{Dataset: linkDataset, PageSize: 50}
	want, err := pullKeys(t, ctx, l.iom, req)
	if err != nil {
		t.Fatal(err)
	}
	before := l.proxy.FromServer()
	if _, err := pullKeys(t, ctx, l.ilo, req); err != nil {
		t.Fatal(err)
	}
	perPull := l.proxy.FromServer() - before

	// Each connection is cut after a quarter of a pull, and the first
	// message of each stream takes fn 150ms to handle, longer than the
	// first backoff (100ms ± 20%): every stream that breaks has delivered
	// and lasted long enough to resume at once.
	// A new client, so that its connection starts counting at the cut
	// (the one that pulled before has carried more than a quarter).
	l.proxy.CutAfter(perPull / 4)
	office := dialConfig(t, l.iloConfig)
	var waits []time.Duration
	fresh := true
	var got []string
	bounded, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = office.Datasets.Pull(bounded, req, func(m *exchangev1.PullDatasetRowsResponse) error {
		if fresh {
			time.Sleep(150 * time.Millisecond)
			fresh = false
		}
		for _, r := range m.GetRows() {
			got = append(got, linkRowKey(r))
		}
		return nil
	}, client.OnReconnect(func(err error, wait time.Duration, _ int64) {
		if status.Code(err) != codes.Unavailable {
			t.Errorf("pull reconnects after %v, want UNAVAILABLE", err)
		}
		waits = append(waits, wait)
		fresh = true
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a pull through a link cut every %d bytes reconnected %d times, waiting %v", perPull/4, len(waits), waits)
	if len(waits) < 3 {
		t.Errorf("%d reconnections: the link was not cut as meant", len(waits))
	}
	for i, w := range waits {
		if w != 0 {
			t.Errorf("reconnection %d after a stream that delivered for 150ms or more waited %v, want 0", i+1, w)
		}
	}
	if !slices.Equal(got, want) {
		exactlyOnce(t, "pull through cuts, resumed at once", got, want)
		t.Errorf("pull through cuts delivered the rows out of order")
	}
}

func TestLinkRefusedIsRetriedWithGrowingDelays(t *testing.T) {
	t.Parallel()
	l := newLinked(t)
	from := l.writeLinkMonths(t, 0, 0)
	l.proxy.SetMode(faultproxy.Refuse)
	accepted := l.proxy.Accepted()

	// A watch over a link that stays down: each attempt delivers nothing,
	// so each waits longer than the one before (100ms doubling, ± 20%).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	const want = 5
	err := l.ilo.Datasets.WatchRows(ctx, linkDataset, from, func(*exchangev1.WatchDatasetRowsResponse) error {
		t.Error("a watch over a refused link delivered a message")
		return nil
	}, client.OnReconnect(func(err error, wait time.Duration, _ int64) {
		if status.Code(err) != codes.Unavailable {
			t.Errorf("watch reconnects after %v, want UNAVAILABLE", err)
		}
		if waits = append(waits, wait); len(waits) == want {
			cancel()
		}
	}))
	if status.Code(err) != codes.Canceled {
		t.Errorf("WatchRows = %v after cancel, want CANCELED", err)
	}
	attempts := l.proxy.Accepted() - accepted
	t.Logf("a watch over a refused link waited %v; the proxy refused %d connections", waits, attempts)
	if len(waits) != want {
		t.Fatalf("%d reconnections, want %d", len(waits), want)
	}
	if waits[0] < 80*time.Millisecond {
		t.Errorf("the first retry over a refused link waited %v, want 80ms or more", waits[0])
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] <= waits[i-1] {
			t.Errorf("retry %d over a refused link waited %v, no longer than the one before (%v): want growing delays", i+1, waits[i], waits[i-1])
		}
	}
	// The connection itself is not retried faster than the watch: gRPC
	// connects at most once per attempt (the first, and its own backoff
	// of 1s and more, lets later attempts fail without connecting).
	if attempts > int64(want)+1 {
		t.Errorf("%d connections for %d attempts over a refused link: the client hammers it", attempts, want+1)
	}
}

func TestLinkCutSoonAfterDeliveringIsNotHammered(t *testing.T) {
	t.Parallel()
	l := newLinked(t)
	ctx := context.Background()
	l.writeLinkMonths(t, 0, 19) // 2,000 rows
	req := &exchangev1.PullDatasetRowsRequest{Dataset: linkDataset, PageSize: 20}
	before := l.proxy.FromServer()
	if _, err := pullKeys(t, ctx, l.ilo, req); err != nil {
		t.Fatal(err)
	}
	perPull := l.proxy.FromServer() - before
	// What a new connection costs before it carries rows: the TLS
	// handshake (a full one, certificates both ways) and HTTP/2's set-up,
	// measured with one small call.
	before = l.proxy.FromServer()
	if _, err := dialConfig(t, l.iloConfig).Datasets.Get(ctx, linkDataset); err != nil {
		t.Fatal(err)
	}
	setUp := l.proxy.FromServer() - before

	// Each connection carries its set-up and a twentieth of the pull, a
	// few messages of 20 rows, and breaks within milliseconds of its
	// start: each stream delivers, yet the next must not start sooner
	// than 80ms (100ms - 20%) after the start of the one before. (A
	// budget of a twentieth alone, with messages of 50 rows, left room
	// for less than one message after some handshakes, so that a stream
	// delivered nothing now and then, and three in a row made Pull give
	// up, as it should over such a link: one run in seven failed.)
	l.proxy.CutAfter(setUp + perPull/20)
	office := dialConfig(t, l.iloConfig)
	var starts []time.Time
	bounded, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	starts = append(starts, time.Now())
	_, err := pullKeys(t, bounded, office, req, client.OnReconnect(func(_ error, wait time.Duration, _ int64) {
		starts = append(starts, time.Now().Add(wait)) // no sooner than this
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) < 10 {
		t.Fatalf("%d streams: the link was not cut as meant", len(starts))
	}
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 80*time.Millisecond {
			t.Errorf("stream %d started %v after the one before, want 80ms or more", i+1, gap)
		}
	}
}
