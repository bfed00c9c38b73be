package fieldfile_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/fieldfile"
	"github.com/alltogether/exchange/internal/faultproxy"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
	"github.com/alltogether/exchange/server"
	"github.com/alltogether/exchange/store"
)

// Cursors and PathCursors are what client.ResumeFrom takes.
var (
	_ client.CursorStore = (*fieldfile.Cursors)(nil)
	_ client.CursorStore = (*fieldfile.PathCursors)(nil)
)

// exchange is a real exchange (server.New on a bbolt store in a
// temporary directory, mutual TLS with the development PKI) with agencies
// ilo and iom, each with a certificate and a key ring whose public key is
// registered, and a fault proxy in front of it for field offices to
// connect through.
type exchange struct {
	t     *testing.T
	dir   string
	addr  string
	proxy *faultproxy.Proxy
	dev   pki.DevFiles
	// certs holds each agency's certificate, key, key ring and pins.
	certs map[string]agencyFiles
}

// agencyFiles are the files an agency connects and seals with.
type agencyFiles struct {
	cert, key, ring, pins string
}

// startExchange starts the exchange and its proxy, and sets up ilo, iom
// and unicef; unicef registers a key too, but no field office fetches
// it.
func startExchange(t *testing.T) *exchange {
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
	// The secretariat's development certificate is recorded as
	// exchanged records it on first start.
	certPEM, err := os.ReadFile(dev.SecretariatCert)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordSignedCertificate(context.Background(), store.Op{Actor: "exchange", Method: "test/record"},
		pki.SerialString(cert.SerialNumber), &exchangev1.Certificate{
			Subject: "secretariat", NotBefore: timestamppb.New(cert.NotBefore), NotAfter: timestamppb.New(cert.NotAfter),
			CertificatePem: string(certPEM), Issuer: "exchange",
		}); err != nil {
		t.Fatal(err)
	}
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
	proxy, err := faultproxy.New(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proxy.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		srv.Shutdown(ctx)
		st.Close()
	})
	x := &exchange{t: t, dir: dir, addr: lis.Addr().String(), proxy: proxy, dev: dev, certs: map[string]agencyFiles{}}
	sec := x.dial(client.Config{CertFile: dev.SecretariatCert, KeyFile: dev.SecretariatKey})
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom", "unicef"} {
		if _, err := sec.Directory.CreateAgency(ctx, id, &exchangev1.Agency{
			DisplayName: "Agency " + id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
			Countries: []string{"KH"}, Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
			Coverage: []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-12"}},
		}); err != nil {
			t.Fatalf("create agency %s: %v", id, err)
		}
		certPEM, keyPEM, _, _, err := sec.Certificates.Issue(ctx, client.AgencyName(id), 0)
		if err != nil {
			t.Fatal(err)
		}
		f := agencyFiles{cert: filepath.Join(dir, id+".crt"), key: filepath.Join(dir, id+".key"),
			ring: filepath.Join(dir, id+".age-keys"), pins: filepath.Join(dir, id+".age-pins")}
		for path, data := range map[string][]byte{f.cert: certPEM, f.key: keyPEM} {
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ring, err := seal.CreateKeyRing(f.ring)
		if err != nil {
			t.Fatal(err)
		}
		x.certs[id] = f
		if _, err := x.direct(id).Directory.SetEncryptionKey(ctx, id, ring.Current().Recipient()); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// dial connects with cfg (its address and CA filled in) to the exchange
// itself, or through the proxy when cfg.Address is "proxy".
func (x *exchange) dial(cfg client.Config) *client.Client {
	x.t.Helper()
	if cfg.Address == "proxy" {
		cfg.Address = x.proxy.Addr()
	} else {
		cfg.Address = x.addr
	}
	cfg.CAFile, cfg.ServerName = x.dev.CACert, "localhost"
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { c.Close() })
	return c
}

// direct connects as agency id straight to the exchange, sealing with its
// key ring, without an outbox: the exchange as the office sees it when
// the line is good.
func (x *exchange) direct(id string) *client.Client {
	f := x.certs[id]
	cfg := client.Config{CertFile: f.cert, KeyFile: f.key}
	if _, err := os.Stat(f.ring); err == nil {
		cfg.KeyRingFile, cfg.PinsFile = f.ring, f.pins
	}
	return x.dial(cfg)
}

// fieldOffice connects as agency id through the proxy, sealing with its
// key ring, with an outbox in a field file beside its certificate. It
// returns the client and the field file's path.
func (x *exchange) fieldOffice(id string) (*client.Client, string) {
	f := x.certs[id]
	path := fieldfile.PathBeside(filepath.Join(x.t.TempDir(), id+".crt"))
	c := x.dial(client.Config{Address: "proxy", CertFile: f.cert, KeyFile: f.key,
		KeyRingFile: f.ring, PinsFile: f.pins, FieldFile: path, Timeout: 10 * time.Second})
	return c, path
}

// newReferral is a referral from the caller to receiver for counselling,
// with the subject's name and case notes given.
func newReferral(receiver, name, notes string) *exchangev1.Referral {
	return &exchangev1.Referral{
		Receiver:         client.AgencyName(receiver),
		Service:          &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: "counselling"},
		Urgency:          exchangev1.Urgency_URGENCY_URGENT,
		SubjectReference: "subj-8f2c",
		Subject:          &exchangev1.Subject{Name: name, Sex: exchangev1.Sex_SEX_FEMALE},
		CaseNotes:        notes,
		Consent: &exchangev1.Consent{
			GivenBy:         exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN,
			GivenTime:       timestamppb.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)),
			ReceivingAgency: client.AgencyName(receiver),
			Services:        []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		},
		Location: &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"},
	}
}

// entries returns the outbox's entries, failing t on error.
func entries(t *testing.T, c *client.Client) []fieldfile.Entry {
	t.Helper()
	es, err := c.Outbox.Entries()
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// waitFor polls cond every 5ms until it holds, failing t after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConnected waits until c's connection is ready again after the line
// came back (the channel retries with backoff), failing t after 10s.
func waitConnected(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := c.Conn()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("the connection did not come back: %v", s)
		}
		conn.Connect()
	}
}
