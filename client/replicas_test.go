package client_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/server"
	"github.com/alltogether/exchange/store"
)

// replica is one real exchange server of several serving the same store,
// with its own metrics to tell which calls it served.
type replica struct {
	addr    string
	server  *server.Server
	metrics *server.Metrics
}

// startReplicas starts n real exchange servers (server.New) on one store in
// a temporary directory, each on its own loopback port with mutual TLS and
// the development PKI, and returns them with a configuration that connects
// to all of them as the secretariat.
func startReplicas(t *testing.T, n int) ([]*replica, client.Config) {
	t.Helper()
	listen := make([]string, n)
	for i := range listen {
		listen[i] = "127.0.0.1:0"
	}
	return startReplicasOn(t, listen)
}

// startReplicasOn is startReplicas with one replica listening on each
// address of listen. The server certificate is valid for localhost,
// 127.0.0.1 and exchange.test.
func startReplicasOn(t *testing.T, listen []string) ([]*replica, client.Config) {
	t.Helper()
	dir := t.TempDir()
	dev, _, err := pki.EnsureDev(filepath.Join(dir, "pki"), []string{"localhost", "127.0.0.1", "exchange.test"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "exchange.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	recordCertificate(t, st, dev.SecretariatCert, "secretariat")
	cfg := client.Config{CertFile: dev.SecretariatCert, KeyFile: dev.SecretariatKey, CAFile: dev.CACert}
	var replicas []*replica
	for _, addr := range listen {
		tlsConfig, err := pki.ServerTLSConfig(dev.ServerCert, dev.ServerKey, dev.CACert)
		if err != nil {
			t.Fatal(err)
		}
		m := server.NewMetrics()
		srv, err := server.New(server.Config{Store: st, TLS: tlsConfig, Metrics: m,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Limits: server.Limits{CallsPerSecond: -1}})
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(lis)
		r := &replica{addr: lis.Addr().String(), server: srv, metrics: m}
		t.Cleanup(r.kill)
		replicas = append(replicas, r)
		cfg.Addresses = append(cfg.Addresses, r.addr)
	}
	return replicas, cfg
}

// kill stops the replica at once, as a crash would: its connections close
// with calls in flight.
func (r *replica) kill() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.server.Shutdown(ctx)
}

// handled is how many calls of the DirectoryService method the replica
// has answered (grpc_server_handled_total, any code).
func (r *replica) handled(t *testing.T, method string) int {
	t.Helper()
	families, err := r.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if f.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["grpc_service"] == "alltogether.exchange.v1.DirectoryService" && labels["grpc_method"] == method {
				n += int(m.GetCounter().GetValue())
			}
		}
	}
	return n
}

// warmUp makes GetAgency calls until every replica has answered one, and
// returns how many each has answered. Round robin spreads calls only over
// the replicas it is connected to, and right after Dial the first to
// connect takes every call until the others are too; under pick_first no
// second replica ever answers, and warmUp fails t after 10 seconds.
func warmUp(t *testing.T, c *client.Client, replicas []*replica) []int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		counts := make([]int, len(replicas))
		all := true
		for i, r := range replicas {
			counts[i] = r.handled(t, "GetAgency")
			all = all && counts[i] > 0
		}
		if all {
			return counts
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s of calls, the replicas answered %v of them: not every replica gets calls", counts)
		}
		if _, err := c.Directory.GetAgency(context.Background(), "agencies/nobody"); !client.IsNotFound(err) {
			t.Fatalf("warm-up call: %v, want NOT_FOUND from a replica", err)
		}
	}
}

// recordCertificate records the certificate in certFile as subject's, as
// exchanged does at start for the secretariat's: the server accepts only
// certificates its store records.
func recordCertificate(t *testing.T, st *store.Store, certFile, subject string) {
	t.Helper()
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.RecordSignedCertificate(context.Background(), store.Op{Actor: "exchange", Method: "test/record"},
		pki.SerialString(cert.SerialNumber), &exchangev1.Certificate{
			Subject: subject, NotBefore: timestamppb.New(cert.NotBefore), NotAfter: timestamppb.New(cert.NotAfter),
			CertificatePem: string(certPEM), Issuer: "exchange",
		})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDialBalancesReplicasAndRoutesAroundADeadOne dials two real exchange
// servers on one store with both addresses: calls are spread over both,
// and when one dies (with calls in flight) every call goes on succeeding
// through the other, those caught by the death retried there.
func TestDialBalancesReplicasAndRoutesAroundADeadOne(t *testing.T) {
	replicas, cfg := startReplicas(t, 2)
	ctx := context.Background()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Directory.CreateAgency(ctx, "ilo", &exchangev1.Agency{
		DisplayName: "ILO", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY, Countries: []string{"KH"},
	}); err != nil {
		t.Fatal(err)
	}

	base := warmUp(t, c, replicas)
	const calls = 40
	for i := range calls {
		if _, err := c.Directory.GetAgency(ctx, "agencies/ilo"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	a, b := replicas[0].handled(t, "GetAgency")-base[0], replicas[1].handled(t, "GetAgency")-base[1]
	t.Logf("%d calls: %d served by replica 0, %d by replica 1", calls, a, b)
	if a+b != calls || a < calls/4 || b < calls/4 {
		t.Fatalf("replicas served %d and %d of %d calls, want both a fair share (round robin)", a, b, calls)
	}

	// Four callers keep calling while replica 0 dies under them.
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		made     int
	)
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := c.Directory.GetAgency(ctx, "agencies/ilo")
				mu.Lock()
				made++
				if err != nil {
					failures = append(failures, err.Error())
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	replicas[0].kill()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d calls failed around the death of a replica, first: %s", len(failures), made, failures[0])
	}
	t.Logf("%d calls made while replica 0 died, none failed", made)

	// Once it is noticed, every call goes to the survivor.
	before := replicas[1].handled(t, "GetAgency")
	for i := range calls {
		if _, err := c.Directory.GetAgency(ctx, "agencies/ilo"); err != nil {
			t.Fatalf("call %d after the death: %v", i, err)
		}
	}
	if got := replicas[1].handled(t, "GetAgency") - before; got != calls {
		t.Errorf("the surviving replica served %d of %d calls", got, calls)
	}
}

// TestDialRejectsBadAddressInList checks that every address of a list is
// host:port and that the error names the bad one.
func TestDialRejectsBadAddressInList(t *testing.T) {
	_, good := startReplicas(t, 1)
	tests := []struct {
		name  string
		cfg   func(*client.Config)
		wants []string
	}{
		{"no port", func(c *client.Config) { c.Addresses = []string{"127.0.0.1:7443", "b.example.org"} },
			[]string{`"b.example.org"`, "host:port", "number 2 of 2"}},
		{"empty port", func(c *client.Config) { c.Addresses = []string{"a.example.org:", "127.0.0.1:7443"} },
			[]string{`"a.example.org:"`, "missing port", "number 1 of 2"}},
		{"empty entry", func(c *client.Config) { c.Addresses = []string{"127.0.0.1:7443", ""} },
			[]string{"empty server address", "number 2 of 2"}},
		{"listed twice", func(c *client.Config) { c.Addresses = []string{"127.0.0.1:7443", "127.0.0.1:7443"} },
			[]string{`"127.0.0.1:7443" is listed twice`}},
		{"dns name in a list", func(c *client.Config) {
			c.Addresses = []string{"127.0.0.1:7443", "dns:///exchange.example.org:7443"}
		}, []string{`"dns:///exchange.example.org:7443"`, "only address"}},
		{"dns name without port", func(c *client.Config) { c.Address = "dns:///exchange.example.org" },
			[]string{`"exchange.example.org"`, "host:port"}},
		{"both fields", func(c *client.Config) { c.Address = "127.0.0.1:7443"; c.Addresses = []string{"127.0.0.1:7444"} },
			[]string{"Address or Addresses, not both"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.Addresses = nil
			tt.cfg(&cfg)
			c, err := client.Dial(context.Background(), cfg)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

// TestDialDNSName dials "dns:///localhost:PORT": the name is
// resolved by gRPC's DNS resolver and the server certificate is checked
// against the name's host part, localhost, by default.
func TestDialDNSName(t *testing.T) {
	replicas, cfg := startReplicas(t, 1)
	_, port, err := net.SplitHostPort(replicas[0].addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addresses = nil
	cfg.Address = "dns:///localhost:" + port
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		if _, err := c.Directory.GetAgency(context.Background(), "agencies/nobody"); !client.IsNotFound(err) {
			t.Fatalf("call %d through %s: %v, want NOT_FOUND from the server", i, cfg.Address, err)
		}
	}
	if got := replicas[0].handled(t, "GetAgency"); got != 5 {
		t.Errorf("the server answered %d of 5 calls", got)
	}
}

// TestDialReplicasCheckServerName checks that every replica's certificate
// is verified against Config.ServerName.
func TestDialReplicasCheckServerName(t *testing.T) {
	_, cfg := startReplicas(t, 2)
	cfg.ServerName = "exchange.example.org"
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Directory.GetAgency(context.Background(), "agencies/ilo")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "exchange.example.org") {
		t.Errorf("got %v, want UNAVAILABLE naming the server name", err)
	}
}

// TestDialDNSNameBalancesItsAddresses serves a DNS name with two A records,
// one per replica (127.0.0.1 and 127.0.0.2 on one port), from a DNS server
// on loopback, and dials "dns://SERVER/exchange.test:PORT": gRPC resolves
// the name to both and the calls are spread over them.
func TestDialDNSNameBalancesItsAddresses(t *testing.T) {
	port := freePort(t)
	replicas, cfg := startReplicasOn(t, []string{"127.0.0.1:" + port, "127.0.0.2:" + port})
	dnsServer := serveDNS(t, "exchange.test.", [4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 2})
	cfg.Addresses = nil
	cfg.Address = "dns://" + dnsServer + "/exchange.test:" + port
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base := warmUp(t, c, replicas)
	const calls = 20
	for i := range calls {
		if _, err := c.Directory.GetAgency(context.Background(), "agencies/nobody"); !client.IsNotFound(err) {
			t.Fatalf("call %d through %s: %v, want NOT_FOUND from a replica", i, cfg.Address, err)
		}
	}
	a, b := replicas[0].handled(t, "GetAgency")-base[0], replicas[1].handled(t, "GetAgency")-base[1]
	t.Logf("%d calls: %d served by 127.0.0.1, %d by 127.0.0.2", calls, a, b)
	if a+b != calls || a < calls/4 || b < calls/4 {
		t.Errorf("replicas served %d and %d of %d calls, want both a fair share (round robin)", a, b, calls)
	}
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	return port
}

// serveDNS answers DNS queries over UDP on a loopback port until t ends:
// the A records of name are ips, every other question has no answer. It
// returns the server's address.
func serveDNS(t *testing.T, name string, ips ...[4]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), name) {
				for _, ip := range ips {
					_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: ip})
				}
			}
			msg, err := b.Finish()
			if err != nil {
				continue
			}
			_, _ = pc.WriteTo(msg, from)
		}
	}()
	return pc.LocalAddr().String()
}
