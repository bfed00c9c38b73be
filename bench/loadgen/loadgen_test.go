package loadgen

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsOnlyCallsInsideTheWindow(t *testing.T) {
	const (
		workers  = 4
		warmup   = 300 * time.Millisecond
		duration = 300 * time.Millisecond
		margin   = 150 * time.Millisecond
	)
	var calls atomic.Int64
	begin := time.Now()
	// A call that starts well inside the warm-up claims 1,000 items: if
	// it were counted, Items would not be Ops.
	r, err := Run(context.Background(), workers, warmup, duration, func(ctx context.Context, worker int, seq int64) (int, error) {
		calls.Add(1)
		early := time.Since(begin) < warmup-margin
		time.Sleep(time.Millisecond)
		if early {
			return 1000, nil
		}
		return 1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops == 0 || r.Items != r.Ops {
		t.Errorf("Ops %d, Items %d: want Items = Ops > 0 (warm-up calls counted?)", r.Ops, r.Items)
	}
	if r.Ops >= calls.Load() {
		t.Errorf("Ops %d of %d calls: the warm-up's calls were counted", r.Ops, calls.Load())
	}
	if r.Seconds < duration.Seconds() || r.Seconds > 3*duration.Seconds() {
		t.Errorf("Seconds = %v, want about %v", r.Seconds, duration.Seconds())
	}
	if r.P50Ms < 1 || r.P99Ms < r.P50Ms {
		t.Errorf("p50 %v ms, p99 %v ms: want p50 ≥ 1 ms (every call sleeps 1 ms) and p99 ≥ p50", r.P50Ms, r.P99Ms)
	}
	if got := r.ItemsPerSec(); got != float64(r.Items)/r.Seconds || r.OpsPerSec() != float64(r.Ops)/r.Seconds {
		t.Errorf("ItemsPerSec %v, OpsPerSec %v do not match the counts", got, r.OpsPerSec())
	}
}

func TestRunStopsAtTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	start := time.Now()
	r, err := Run(context.Background(), 3, 0, 20*time.Second, func(ctx context.Context, worker int, seq int64) (int, error) {
		if worker == 1 && seq == 5 {
			return 0, boom
		}
		time.Sleep(time.Millisecond)
		return 1, nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Run returned %v, want the op's error", err)
	}
	if !strings.Contains(err.Error(), "worker 1, call 5") {
		t.Errorf("error %q does not say which call failed", err)
	}
	if r.Err != err.Error() || r.Errors != 1 {
		t.Errorf("result Err %q, Errors %d: want the error, once", r.Err, r.Errors)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run went on for %s after the error", d)
	}
}

func TestRunFailsWhenNoCallFitsTheWindow(t *testing.T) {
	_, err := Run(context.Background(), 2, 0, 50*time.Millisecond, func(ctx context.Context, worker int, seq int64) (int, error) {
		time.Sleep(200 * time.Millisecond)
		return 1, nil
	})
	if err == nil || !strings.Contains(err.Error(), "no operation completed") {
		t.Fatalf("Run = %v, want an error saying no operation completed", err)
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("Percentile(1..100 ms, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("Percentile sorted its argument in place")
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
	if got := Millis(1500 * time.Microsecond); got != 1.5 {
		t.Errorf("Millis(1.5 ms) = %v", got)
	}
}

func TestResultSurvivesEncodeAndDecode(t *testing.T) {
	want := Result{Ops: 7, Items: 700, Seconds: 1.5, Errors: 1, P50Ms: 2.25, P99Ms: 9.5,
		Extra: map[string]float64{"peak_rss_mib": 12.5}, Err: "worker 0, call 3: boom"}
	got, err := Decode([]byte(want.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Ops != want.Ops || got.Items != want.Items || got.Seconds != want.Seconds || got.Errors != want.Errors ||
		got.P50Ms != want.P50Ms || got.P99Ms != want.P99Ms || got.Err != want.Err || got.Extra["peak_rss_mib"] != 12.5 {
		t.Errorf("Decode(Encode(r)) = %+v, want %+v", got, want)
	}
	if _, err := Decode([]byte("not json")); err == nil {
		t.Error("Decode accepted a line that is not JSON")
	}
}

// hub is an in-memory broadcaster for the fan-out tests: every
// subscriber gets every published batch of events, except the ones a
// subscriber is told to drop.
type hub struct {
	mu   sync.Mutex
	subs []chan int
}

func (h *hub) subscribe() chan int {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(chan int, 1024)
	h.subs = append(h.subs, c)
	return c
}

func (h *hub) publish(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.subs {
		c <- n
	}
}

// fanOut runs FanOut over a hub; watcher lossy (if ≥ 0) passes on one
// event fewer than it received, and watcher quitter (if ≥ 0) ends its
// watch after its first batch.
func fanOut(t *testing.T, watchers, lossy, quitter int) (Result, error) {
	t.Helper()
	h := &hub{}
	return FanOut(context.Background(), watchers, 2, 10, 2*time.Second,
		func(ctx context.Context, i int, ready func(), got func(n int)) error {
			c := h.subscribe()
			ready()
			lost := false
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case n := <-c:
					if i == lossy && !lost {
						n, lost = n-1, true
					}
					got(n)
					if i == quitter {
						return nil
					}
				}
			}
		},
		func(ctx context.Context, writer int, seq int64) (int, error) {
			h.publish(3)
			return 3, nil
		})
}

func TestFanOutCountsEveryEventDeliveredToEveryWatcher(t *testing.T) {
	r, err := fanOut(t, 5, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 30 || r.Items != 150 {
		t.Errorf("Ops %d, Items %d: want 10 writes × 3 events = 30 written, × 5 watchers = 150 delivered", r.Ops, r.Items)
	}
	if r.Seconds <= 0 || r.Extra["write_seconds"] <= 0 || r.Extra["write_seconds"] > r.Seconds {
		t.Errorf("Seconds %v, write_seconds %v: want 0 < write time ≤ total", r.Seconds, r.Extra["write_seconds"])
	}
}

func TestFanOutFailsWhenAWatcherMissesAnEvent(t *testing.T) {
	r, err := fanOut(t, 5, 3, -1)
	if err == nil || !strings.Contains(err.Error(), "not every watcher got the 30 events") {
		t.Fatalf("FanOut = %v, want an error about the missing event", err)
	}
	if r.Items != 149 {
		t.Errorf("Items = %d, want 149 (one event short)", r.Items)
	}
}

func TestFanOutFailsWhenAWatchEndsEarly(t *testing.T) {
	_, err := fanOut(t, 5, -1, 2)
	if err == nil || !strings.Contains(err.Error(), "watcher 2: watch ended early") {
		t.Fatalf("FanOut = %v, want an error naming the watcher that ended", err)
	}
}
