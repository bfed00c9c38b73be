package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/internal/faultproxy"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/server"
	"github.com/alltogether/exchange/store"
)

// These tests put a real exchange (server.New on a store in a temporary
// directory, as replicas_test.go starts it) behind a fault-injecting
// proxy and check the client through the link conditions of a field
// office: connection refused, a server that accepts and never answers,
// a connection cut in the middle of a stream, and high latency.

// linkDataset is the dataset of the link tests, owned by ilo and written
// by iom: one row per month, province, sex and age group.
const linkDataset = "agencies/ilo/datasets/returns"

// linked is a real exchange with ilo and iom, the dataset, a proxy in
// front of the exchange, and a client for each agency: iom's connects
// directly, ilo's through the proxy.
type linked struct {
	proxy    *faultproxy.Proxy
	ilo, iom *client.Client
	// iloConfig connects as ilo through the proxy.
	iloConfig client.Config
}

// startIssuingExchange starts a real exchange server on a store in a
// temporary directory, with the development PKI and its CA key (so that
// it issues certificates), and returns its address and a configuration
// that connects to it as the secretariat.
func startIssuingExchange(t *testing.T) (string, client.Config) {
	t.Helper()
	dir := t.TempDir()
	dev, _, err := pki.EnsureDev(filepath.Join(dir, "pki"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(dev.CACert, dev.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "exchange.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	recordCertificate(t, st, dev.SecretariatCert, "secretariat")
	tlsConfig, err := pki.ServerTLSConfig(dev.ServerCert, dev.ServerKey, dev.CACert)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, TLS: tlsConfig, CA: ca,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Limits: server.Limits{CallsPerSecond: -1}})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		srv.Shutdown(ctx)
	})
	addr := lis.Addr().String()
	return addr, client.Config{Address: addr, CertFile: dev.SecretariatCert, KeyFile: dev.SecretariatKey, CAFile: dev.CACert}
}

func newLinked(t *testing.T) *linked {
	t.Helper()
	addr, secCfg := startIssuingExchange(t)
	ctx := context.Background()
	sec, err := client.Dial(ctx, secCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sec.Close() })
	dir := t.TempDir()
	configs := map[string]client.Config{}
	for _, id := range []string{"ilo", "iom"} {
		if _, err := sec.Directory.CreateAgency(ctx, id, &exchangev1.Agency{
			DisplayName: id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY, Countries: []string{"KH"},
		}); err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, caPEM, _, err := sec.Certificates.Issue(ctx, client.AgencyName(id), 0)
		if err != nil {
			t.Fatal(err)
		}
		cfg := client.Config{Address: addr,
			CertFile: filepath.Join(dir, id+".crt"), KeyFile: filepath.Join(dir, id+".key"), CAFile: filepath.Join(dir, "ca.crt")}
		for path, data := range map[string][]byte{cfg.CertFile: certPEM, cfg.KeyFile: keyPEM, cfg.CAFile: caPEM} {
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		configs[id] = cfg
	}
	p, err := faultproxy.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	l := &linked{proxy: p, iloConfig: configs["ilo"]}
	l.iloConfig.Address = p.Addr()
	l.ilo = dialConfig(t, l.iloConfig)
	l.iom = dialConfig(t, configs["iom"])
	d := returnsDataset()
	d.Contributors = []string{"agencies/iom"}
	if _, err := l.ilo.Datasets.Create(ctx, "agencies/ilo", "returns", d); err != nil {
		t.Fatal(err)
	}
	return l
}

// dialConfig dials cfg and closes the client at cleanup.
func dialConfig(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeLinkMonths writes, as iom, 100 rows for each month from first to
// last (25 provinces × 2 sexes × 2 age groups), one call per month, and
// returns the revision of the last call.
func (l *linked) writeLinkMonths(t *testing.T, first, last int) int64 {
	t.Helper()
	var rev int64
	for m := first; m <= last; m++ {
		var rows []*exchangev1.Row
		for p := 1; p <= 25; p++ {
			for _, sex := range []string{"female", "male"} {
				for _, age := range []string{"0-17", "18+"} {
					r := returnsRow(fmt.Sprintf("%04d-%02d", 2000+m/12, 1+m%12), fmt.Sprintf("KH-%d", p), sex, int64(m*100+p))
					r.Categories["age_group"] = age
					rows = append(rows, r)
				}
			}
		}
		resp, err := l.iom.Datasets.Write(context.Background(), linkDataset, upserts(rows...))
		if err != nil || resp.GetAccepted() != int32(len(rows)) {
			t.Fatalf("write month %d: %v %v", m, resp, err)
		}
		rev = resp.GetRevision()
	}
	return rev
}

// revision is the exchange's current revision, as a pull reports it.
func (l *linked) revision(t *testing.T) int64 {
	t.Helper()
	var rev int64
	err := l.iom.Datasets.Pull(context.Background(), &exchangev1.PullDatasetRowsRequest{Dataset: linkDataset, SinceRevision: math.MaxInt64, PageSize: 1},
		func(m *exchangev1.PullDatasetRowsResponse) error { rev = m.GetRevision(); return nil })
	if err != nil || rev == 0 {
		t.Fatalf("current revision: %d, %v", rev, err)
	}
	return rev
}

// linkRowKey identifies a row by its key and value.
func linkRowKey(r *exchangev1.Row) string {
	return fmt.Sprintf("%s %s %s %s %d", r.GetPeriod(), r.GetLocation(), r.GetCategories()["sex"], r.GetCategories()["age_group"], r.GetValues()["returned"].GetIntValue())
}

// pullKeys pulls req with c and returns the rows' keys in the order they
// came.
func pullKeys(t *testing.T, ctx context.Context, c *client.Client, req *exchangev1.PullDatasetRowsRequest, opts ...client.WatchOption) ([]string, error) {
	t.Helper()
	var keys []string
	err := c.Datasets.Pull(ctx, req, func(m *exchangev1.PullDatasetRowsResponse) error {
		for _, r := range m.GetRows() {
			keys = append(keys, linkRowKey(r))
		}
		return nil
	}, opts...)
	return keys, err
}

// rowWatch collects a WatchRows running in the background.
type rowWatch struct {
	mu         sync.Mutex
	keys       []string
	reconnects []time.Time
	changed    chan struct{}
	stop       func() error
}

func (l *linked) watchRows(t *testing.T, from int64) *rowWatch {
	t.Helper()
	w := &rowWatch{changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.ilo.Datasets.WatchRows(ctx, linkDataset, from, func(m *exchangev1.WatchDatasetRowsResponse) error {
			w.mu.Lock()
			for _, r := range m.GetRows() {
				w.keys = append(w.keys, linkRowKey(r))
			}
			w.mu.Unlock()
			w.poke()
			return nil
		}, client.OnReconnect(func(err error, _ time.Duration, _ int64) {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("watch reconnects after %v, want UNAVAILABLE", err)
			}
			w.mu.Lock()
			w.reconnects = append(w.reconnects, time.Now())
			w.mu.Unlock()
			w.poke()
		}))
	}()
	w.stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("WatchRows did not return after its context was cancelled")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })
	return w
}

func (w *rowWatch) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// waitUntil waits up to limit for cond (called with the watch locked).
func (w *rowWatch) waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(limit)
	for {
		w.mu.Lock()
		ok := cond()
		n, r := len(w.keys), len(w.reconnects)
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-w.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("after %v, %s has not happened (%d rows, %d reconnections)", limit, what, n, r)
		}
	}
}

// exactlyOnce fails t unless got holds each of want once, in any order.
func exactlyOnce(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s: %d rows, want each of %d once", what, len(got), len(want))
		for i, k := range got {
			if i > 0 && got[i-1] == k {
				t.Errorf("%s: %s twice", what, k)
				break
			}
		}
	}
}

func TestLinkRefusedFailsPullsFastAndWatchesCatchUp(t *testing.T) {
	t.Parallel()
	l := newLinked(t)
	ctx := context.Background()
	from := l.writeLinkMonths(t, 0, 0)
	want, err := pullKeys(t, ctx, l.ilo, &exchangev1.PullDatasetRowsRequest{Dataset: linkDataset})
	if err != nil {
		t.Fatal(err)
	}

	l.proxy.SetMode(faultproxy.Refuse)
	start := time.Now()
	bounded, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = pullKeys(t, bounded, l.ilo, &exchangev1.PullDatasetRowsRequest{Dataset: linkDataset})
	took := time.Since(start)
	t.Logf("a pull over a refused link gave up after %v: %v", took, err)
	if status.Code(err) != codes.Unavailable || took > 15*time.Second {
		t.Errorf("pull over a refused link = %v after %v, want UNAVAILABLE within 15s", err, took)
	}

	// A watch started while refused keeps trying; rows written meanwhile
	// arrive once the link is back.
	w := l.watchRows(t, from)
	w.waitUntil(t, 20*time.Second, "two reconnections", func() bool { return len(w.reconnects) >= 2 })
	l.writeLinkMonths(t, 1, 2)
	l.proxy.SetMode(faultproxy.Pass)
	back := time.Now()
	w.waitUntil(t, client.ReconnectBackoffMax+15*time.Second, "the 200 rows", func() bool { return len(w.keys) >= 200 })
	t.Logf("the watch delivered the rows %v after the link came back", time.Since(back))
	time.Sleep(200 * time.Millisecond) // room for a wrong repeat
	if err := w.stop(); status.Code(err) != codes.Canceled {
		t.Errorf("WatchRows = %v after cancel, want CANCELED", err)
	}
	all, err := pullKeys(t, ctx, l.iom, &exchangev1.PullDatasetRowsRequest{Dataset: linkDataset, SinceRevision: from})
	if err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, "watch across a refused link", w.keys, all)
	if len(want) != 100 {
		t.Errorf("the first pull got %d rows, want 100", len(want))
	}
}

func TestLinkBlackholeIsNoticedAndLeftBehind(t *testing.T) {
	t.Parallel()
	l := newLinked(t)
	ctx := context.Background()
	from := l.revision(t)
	l.writeLinkMonths(t, 0, 0)

	// A watch whose link goes silent in the middle: the client notices
	// within KeepaliveTime + KeepaliveTimeout and reconnects.
	w := l.watchRows(t, from)
	w.waitUntil(t, 10*time.Second, "the first 100 rows", func() bool { return len(w.keys) == 100 })
	l.proxy.SetMode(faultproxy.Blackhole)
	silent := time.Now()
	l.writeLinkMonths(t, 1, 1)
	limit := client.KeepaliveTime + client.KeepaliveTimeout
	w.waitUntil(t, limit+5*time.Second, "a reconnection", func() bool { return len(w.reconnects) > 0 })
	t.Logf("a silent link was noticed after %v (limit %v)", time.Since(silent), limit)
	l.proxy.SetMode(faultproxy.Pass)
	w.waitUntil(t, client.ConnectTimeout+client.ReconnectBackoffMax+10*time.Second, "the next 100 rows", func() bool { return len(w.keys) >= 200 })
	time.Sleep(200 * time.Millisecond)
	if err := w.stop(); status.Code(err) != codes.Canceled {
		t.Errorf("WatchRows = %v after cancel, want CANCELED", err)
	}
	all, err := pullKeys(t, ctx, l.iom, &exchangev1.PullDatasetRowsRequest{Dataset: linkDataset})
	if err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, "watch across a silent link", w.keys, all)
}

func TestLinkBlackholeFailsANewConnectionInBoundedTime(t *testing.T) {
	t.Parallel()
	l := newLinked(t)
	l.writeLinkMonths(t, 0, 0)
	// A client that has never connected, to a server that accepts and
	// never answers.
	l.proxy.SetMode(faultproxy.Blackhole)
	fresh := dialConfig(t, l.iloConfig)
	start := time.Now()
	_, err := pullKeys(t, context.Background(), fresh, &exchangev1.PullDatasetRowsRequest{Dataset: linkDataset})
	took := time.Since(start)
	t.Logf("a pull from a server that never answers gave up after %v: %v", took, err)
	if status.Code(err) != codes.Unavailable || took > client.ConnectTimeout+15*time.Second {
		t.Errorf("pull from a silent server = %v after %v, want UNAVAILABLE within ConnectTimeout + 15s", err, took)
	}
}

func TestLinkCutMidStreamPullsEachRowOnce(t *testing.T) {
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
	whole, err := pullKeys(t, ctx, l.ilo, req)
	if err != nil {
		t.Fatal(err)
	}
	perPull := l.proxy.FromServer() - before
	t.Logf("an unbroken pull of %d rows carried %d bytes from the server, %.0f bytes per row", len(whole), perPull, float64(perPull)/float64(len(whole)))

	// Cut each connection after a third of a pull: every pull needs
	// three connections at least.
	l.proxy.CutAfter(perPull / 3)
	cuts := l.proxy.Cuts()
	reconnects := 0
	bounded, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got, err := pullKeys(t, bounded, l.ilo, req, client.OnReconnect(func(error, time.Duration, int64) { reconnects++ }))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a pull through a link cut every %d bytes: %d cuts, %d reconnections", perPull/3, l.proxy.Cuts()-cuts, reconnects)
	if reconnects < 3 {
		t.Errorf("%d reconnections: the link was not cut as meant", reconnects)
	}
	if !slices.Equal(got, want) {
		exactlyOnce(t, "pull through cuts", got, want)
		t.Errorf("pull through cuts delivered the rows out of order")
	}
}

func TestLinkHighLatencyStillWorks(t *testing.T) {
	t.Parallel()
	l := newLinked(t)
	ctx := context.Background()
	from := l.writeLinkMonths(t, 0, 4)
	l.proxy.SetLatency(200 * time.Millisecond)
	w := l.watchRows(t, from)

	// A client that connects (TCP, TLS, HTTP/2) through the slow link.
	start := time.Now()
	fresh := dialConfig(t, l.iloConfig)
	req := &exchangev1.PullDatasetRowsRequest{Dataset: linkDataset, PageSize: 100}
	got, err := pullKeys(t, ctx, fresh, req)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pullKeys(t, ctx, l.iom, req)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("pull at 200ms latency: %d rows, want %d in order", len(got), len(want))
	}
	t.Logf("connecting and pulling %d rows in messages of 100 took %v at 200ms each way", len(got), time.Since(start))
	// A change through the slow link, and rows the watch sees through it.
	locked, err := l.ilo.Datasets.Lock(ctx, linkDataset, "2030-01")
	if err != nil || len(locked.GetLocks()) != 1 {
		t.Fatalf("lock at 200ms latency: %v %v", locked, err)
	}
	l.writeLinkMonths(t, 5, 5)
	w.waitUntil(t, 20*time.Second, "the 100 rows written", func() bool { return len(w.keys) >= 100 })
	time.Sleep(500 * time.Millisecond)
	if err := w.stop(); status.Code(err) != codes.Canceled {
		t.Errorf("WatchRows = %v after cancel, want CANCELED", err)
	}
	if len(w.keys) != 100 {
		t.Errorf("the watch at 200ms latency delivered %d rows, want 100", len(w.keys))
	}
}
