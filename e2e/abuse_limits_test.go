package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Figures of the watch flood, from the issue: one agency opened 2,000
// watches over 17 connections.
const (
	floodWatches     = 2000
	floodConnections = 17
	// createSamples is how many CreateReferral calls measure another
	// agency's latency, before and during the flood.
	createSamples = 300
)

// floodResult is what one flood did to a running exchanged.
type floodResult struct {
	held, refused int
	refusals      []string // the refusals' messages
	// bytes, from before the flood to while it holds: resident memory,
	// live Go objects, goroutine stacks
	rssGrowth, heapGrowth, stackGrowth int64
	before, during                     latencies
	handledResourceExhausted           int64 // WatchReferrals answered RESOURCE_EXHAUSTED, from /metrics
	attackerWatchesAfterClose          int   // watches the attacker could open again after closing all
}

// latencies are CreateReferral latencies in order.
type latencies []time.Duration

func (l latencies) at(q float64) time.Duration { return l[int(q*float64(len(l)-1))] }

func (l latencies) String() string {
	return fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", float64(l.at(0.5))/1e6, float64(l.at(0.99))/1e6)
}

// TestAWatchFloodIsHeldToTheAgencysLimit has one agency attempt 2,000
// watches over 17 connections against the built exchanged, as in the
// attack: it holds its limit (the default, 32), every other attempt is
// refused with a message naming the limit, another agency's referrals go
// on, and once the attacker closes its watches it may open as many again.
// The same flood against an exchanged without the limit gives the
// figures to compare with.
func TestAWatchFloodIsHeldToTheAgencysLimit(t *testing.T) {
	setup(t)
	// The two floods hit two exchanged processes, each measured on its
	// own (its memory from its own /metrics and pprof, its latencies only
	// logged), so they run side by side: one after the other they took a
	// minute of the suite, mostly waiting on CreateReferral's fsyncs.
	var limited, unlimited floodResult
	t.Run("floods", func(t *testing.T) {
		t.Run("limited", func(t *testing.T) {
			t.Parallel()
			// The call rate (200/s, bursts of 400) alone would refuse most
			// of a burst of 2,000; it is lifted so that the watch limit is
			// what holds.
			limited = flood(t, floodWatches, "--rate", "-1")
		})
		t.Run("unlimited", func(t *testing.T) {
			t.Parallel()
			unlimited = flood(t, floodWatches, "--rate", "-1", "--max-watches-per-agency", "-1", "--max-streams-per-agency", "-1")
		})
	})
	if t.Failed() {
		return
	}
	t.Logf("with the default limit: %d watches held, %d refused; server RSS +%.1f MiB, live Go heap +%.1f MiB, stacks +%.1f MiB; another agency's CreateReferral before: %v, during: %v",
		limited.held, limited.refused, mib(limited.rssGrowth), mib(limited.heapGrowth), mib(limited.stackGrowth), limited.before, limited.during)
	t.Logf("without the limit: %d watches held, %d refused; server RSS +%.1f MiB, live Go heap +%.1f MiB, stacks +%.1f MiB; another agency's CreateReferral before: %v, during: %v",
		unlimited.held, unlimited.refused, mib(unlimited.rssGrowth), mib(unlimited.heapGrowth), mib(unlimited.stackGrowth), unlimited.before, unlimited.during)

	if limited.held != 32 || limited.refused != floodWatches-32 {
		t.Errorf("with the default limit, %d watches held and %d refused; want 32 and %d", limited.held, limited.refused, floodWatches-32)
	}
	want := "agencies/attacker has 32 watches open, the limit is 32 (--max-watches-per-agency); close one or wait"
	for _, msg := range limited.refusals {
		if msg != want {
			t.Errorf("refusal %q, want %q", msg, want)
			break
		}
	}
	if limited.handledResourceExhausted != int64(limited.refused) {
		t.Errorf("/metrics counts %d WatchReferrals refused with RESOURCE_EXHAUSTED, want %d", limited.handledResourceExhausted, limited.refused)
	}
	if limited.attackerWatchesAfterClose != 32 {
		t.Errorf("after closing its watches the attacker could open %d again, want 32: places were not given back", limited.attackerWatchesAfterClose)
	}
	if unlimited.held != floodWatches {
		t.Errorf("without the limit %d of %d watches were held: the comparison measures nothing", unlimited.held, floodWatches)
	}
	// A generous bound: the limit must keep the server's memory far below
	// what 2,000 watches take.
	if l, u := limited.heapGrowth+limited.stackGrowth, unlimited.heapGrowth+unlimited.stackGrowth; l > u/2 {
		t.Errorf("with the attacker at its limit the server's live heap and stacks grew by %.1f MiB, without the limit by %.1f MiB", mib(l), mib(u))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// flood starts an exchanged with extra flags, lets the agency "attacker"
// attempt n watches over floodConnections connections and measures the
// server and the agency "sender"'s CreateReferral latency.
func flood(t *testing.T, n int, extra ...string) floodResult {
	t.Helper()
	dir := t.TempDir()
	srv := startBinary(t, bin("exchanged"), dir, append([]string{"--pprof"}, extra...)...)
	defer srv.stop(t)
	w := newWorld(t, dir, srv.addr, []string{"sender"}, []string{"receiver", "attacker"})
	ctx := context.Background()
	sender := dial(t, srv.addr, w.ids["sender"])
	defer sender.Close()
	var res floodResult
	res.before = createLatencies(t, sender, "before")

	// The attacker's connections are made (a call on each) before the
	// baseline, so that the growth measured is the watches'.
	var conns []*client.Client
	for range floodConnections {
		c := dial(t, srv.addr, w.ids["attacker"])
		defer c.Close()
		if _, err := c.Directory.GetAgency(ctx, client.AgencyName("attacker")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	rss0, heap0, stacks0 := serverMemory(t, srv)
	held, refused, cancel := openWatches(t, ctx, conns, n)
	res.held, res.refused, res.refusals = held, len(refused), refused
	// Let the heap settle, then measure while the attacker holds them.
	time.Sleep(500 * time.Millisecond)
	rss1, heap1, stacks1 := serverMemory(t, srv)
	res.rssGrowth, res.heapGrowth, res.stackGrowth = rss1-rss0, heap1-heap0, stacks1-stacks0
	res.during = createLatencies(t, sender, "during")

	// Another agency still watches.
	other, _, cancelOther := openWatches(t, ctx, []*client.Client{sender}, 1)
	cancelOther()
	if other != 1 {
		t.Errorf("another agency's watch was refused while the attacker held its watches")
	}
	res.handledResourceExhausted = handledCount(t, srv, "ResourceExhausted", "WatchReferrals")

	cancel()
	if held < n {
		// Places come back once the server has seen the streams end.
		deadline := time.Now().Add(10 * time.Second)
		for {
			again, _, cancelAgain := openWatches(t, ctx, conns, held)
			cancelAgain()
			res.attackerWatchesAfterClose = again
			if again == held || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return res
}

// openWatches opens n referral watches over conns, round robin, and
// returns how many the server holds, the refusals' messages, and a
// function that closes them all. A watch sends nothing until its first
// heartbeat (30 s), so one is held when it has not failed within a second
// of the last one opened.
func openWatches(t *testing.T, ctx context.Context, conns []*client.Client, n int) (int, []string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	errs := make(chan error, n)
	for i := range n {
		s, err := exchangev1.NewReferralServiceClient(conns[i%len(conns)].Conn()).WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{})
		if err != nil {
			errs <- err
			continue
		}
		go func() {
			for {
				if _, err := s.Recv(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var refused []string
	settle := time.NewTimer(time.Second)
	defer settle.Stop()
	for len(refused) < n {
		select {
		case err := <-errs:
			if status.Code(err) != codes.ResourceExhausted {
				cancel()
				t.Fatalf("a watch ended with %v, want it held or refused with RESOURCE_EXHAUSTED", err)
			}
			refused = append(refused, status.Convert(err).Message())
			settle.Reset(time.Second)
			continue
		case <-settle.C:
		}
		break
	}
	return n - len(refused), refused, cancel
}

// createLatencies times createSamples CreateReferral calls of c, one after
// another, and returns them sorted.
func createLatencies(t *testing.T, c *client.Client, label string) latencies {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out latencies
	for i := range createSamples {
		id := fmt.Sprintf("flood-%s-%d", label, i)
		start := time.Now()
		if _, err := c.Referrals.Create(ctx, worldReferral(id, "receiver"), client.WithRequestID(id)); err != nil {
			t.Fatalf("CreateReferral %s: %v", id, err)
		}
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out
}

var metricsAddress = regexp.MustCompile(`metrics on (http://\S+/metrics)`)

// metricsURL waits until exchanged says where its metrics are, for up to
// 5s, and returns the address.
func metricsURL(t *testing.T, srv *server) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := metricsAddress.FindStringSubmatch(srv.stdout.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("exchanged does not say where its metrics are:\n%s", srv.stdout)
		}
	}
}

// scrape returns exchanged's /metrics page.
func scrape(t *testing.T, srv *server) string {
	t.Helper()
	resp, err := http.Get(metricsURL(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// metricValue reads the value of the first sample whose line starts with
// prefix (a name, with labels if any); -1 when there is none.
func metricValue(page, prefix string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// handledCount reads grpc_server_handled_total for a code and method.
func handledCount(t *testing.T, srv *server, code, method string) int64 {
	t.Helper()
	page := scrape(t, srv)
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "grpc_server_handled_total{") && strings.Contains(line, `grpc_code="`+code+`"`) &&
			strings.Contains(line, `grpc_method="`+method+`"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return int64(v)
		}
	}
	return 0
}

// serverMemory reads exchanged's resident memory (from /proc) and the
// memory its live Go objects and its goroutine stacks hold (from
// /metrics, once the profiler's heap endpoint has run the collector;
// exchanged runs with --pprof), in bytes.
func serverMemory(t *testing.T, srv *server) (rss, heap, stacks int64) {
	t.Helper()
	// Twice: objects in sync.Pools survive one collection.
	for range 2 {
		resp, err := http.Get(strings.TrimSuffix(metricsURL(t, srv), "/metrics") + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			rss = kb << 10
		}
	}
	page := scrape(t, srv)
	h, st := metricValue(page, "go_memstats_heap_alloc_bytes"), metricValue(page, "go_memstats_stack_inuse_bytes")
	if h < 0 || st < 0 {
		t.Fatal("/metrics lacks go_memstats_heap_alloc_bytes or go_memstats_stack_inuse_bytes")
	}
	return rss, int64(h), int64(st)
}
