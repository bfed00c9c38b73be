package server

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// exchange is a running server on a loopback listener with real mutual
// TLS and a real store in a temporary directory.
type exchange struct {
	t        testing.TB
	register func(*Server)
	dir      string
	addr     string
	dev      pki.DevFiles
	ca       *pki.CA
	store    *store.Store
	server   *Server
}

func startExchange(t testing.TB) *exchange {
	t.Helper()
	return startExchangeWith(t, nil)
}

// startExchangeWith lets the test register extra services before serving.
func startExchangeWith(t testing.TB, register func(*Server)) *exchange {
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
	x := &exchange{t: t, dir: dir, dev: dev, ca: ca}
	x.serve(register)
	t.Cleanup(x.stop)
	return x
}

// dialWith connects with the given client TLS configuration.
func (x *exchange) dialWith(cfg *tls.Config) *grpc.ClientConn {
	x.t.Helper()
	conn, err := grpc.NewClient(x.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { conn.Close() })
	return conn
}

// clientConfig builds a client TLS config from PEM files.
func (x *exchange) clientConfig(certFile, keyFile string) *tls.Config {
	x.t.Helper()
	cfg, err := pki.ClientTLSConfig(certFile, keyFile, x.dev.CACert, "localhost")
	if err != nil {
		x.t.Fatal(err)
	}
	return cfg
}

// certFor issues a client certificate for id with the CA, records it in
// the store as exchanged records the certificates it makes itself (the
// server accepts only recorded certificates), and writes it to files; it
// returns the certificate and key paths and the serial.
func (x *exchange) certFor(id pki.Identity) (certFile, keyFile, serial string) {
	x.t.Helper()
	certFile, keyFile, serial = x.unrecordedCertFor(id)
	x.record(certFile)
	return certFile, keyFile, serial
}

// unrecordedCertFor signs a client certificate for id with the CA offline,
// as someone holding the CA key could, without recording it.
func (x *exchange) unrecordedCertFor(id pki.Identity) (certFile, keyFile, serial string) {
	x.t.Helper()
	certPEM, keyPEM, err := x.ca.IssueClient(id, 24*time.Hour)
	if err != nil {
		x.t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		x.t.Fatal(err)
	}
	dir := x.t.TempDir()
	certFile, keyFile = filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	writeFile(x.t, certFile, certPEM)
	writeFile(x.t, keyFile, keyPEM)
	return certFile, keyFile, pki.SerialString(cert.SerialNumber)
}

// record records the certificate in certFile in the store, idempotently,
// as exchanged does at start for the secretariat's certificate, and
// returns its serial.
func (x *exchange) record(certFile string) string {
	x.t.Helper()
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		x.t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		x.t.Fatal(err)
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil {
		x.t.Fatal(err)
	}
	serial := pki.SerialString(cert.SerialNumber)
	subject := Caller{Identity: id}.Actor() // agencies/{id} or secretariat
	_, err = x.store.RecordSignedCertificate(context.Background(), store.Op{Actor: "exchange", Method: "test/record"},
		serial, &exchangev1.Certificate{
			Subject: subject, NotBefore: timestamppb.New(cert.NotBefore), NotAfter: timestamppb.New(cert.NotAfter),
			CertificatePem: string(certPEM), Issuer: "exchange",
		})
	if err != nil {
		x.t.Fatalf("recording %s: %v", certFile, err)
	}
	return serial
}

// as is a connection authenticated as one identity.
type as struct {
	conn     *grpc.ClientConn
	dir      exchangev1.DirectoryServiceClient
	certs    exchangev1.CertificateServiceClient
	serial   string
	agencyID string
}

func (x *exchange) asSecretariat() as {
	serial := x.record(x.dev.SecretariatCert)
	conn := x.dialWith(x.clientConfig(x.dev.SecretariatCert, x.dev.SecretariatKey))
	return as{conn: conn, dir: exchangev1.NewDirectoryServiceClient(conn), certs: exchangev1.NewCertificateServiceClient(conn), serial: serial}
}

func (x *exchange) asAgency(id string) as {
	certFile, keyFile, serial := x.certFor(pki.Agency(id))
	conn := x.dialWith(x.clientConfig(certFile, keyFile))
	return as{conn: conn, dir: exchangev1.NewDirectoryServiceClient(conn), certs: exchangev1.NewCertificateServiceClient(conn), serial: serial, agencyID: id}
}

// createAgency creates an agency through the API as the secretariat.
func (x *exchange) createAgency(sec as, id string, niches ...exchangev1.Niche) *exchangev1.Agency {
	x.t.Helper()
	resp, err := sec.dir.CreateAgency(context.Background(), &exchangev1.CreateAgencyRequest{
		AgencyId: id,
		Agency: &exchangev1.Agency{
			DisplayName: "Agency " + id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
			Countries: []string{"KH"}, Niches: niches,
			Coverage: []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-12"}},
		},
	})
	if err != nil {
		x.t.Fatalf("create agency %s: %v", id, err)
	}
	return resp.GetAgency()
}

// newCSR makes a key and CSR for id and returns the CSR.
func newCSR(t testing.TB, id pki.Identity) []byte {
	t.Helper()
	_, csr, err := pki.NewKeyAndCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// asIssuedAgency obtains a certificate for the agency through
// IssueCertificate, as exchangectl does, and connects with it.
func (x *exchange) asIssuedAgency(sec as, id string) as {
	x.t.Helper()
	keyPEM, csr, err := pki.NewKeyAndCSR(pki.Agency(id))
	if err != nil {
		x.t.Fatal(err)
	}
	resp, err := sec.certs.IssueCertificate(context.Background(), &exchangev1.IssueCertificateRequest{Subject: "agencies/" + id, CsrDer: csr})
	if err != nil {
		x.t.Fatal(err)
	}
	dir := x.t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	writeFile(x.t, certFile, []byte(resp.GetCertificate().GetCertificatePem()))
	writeFile(x.t, keyFile, keyPEM)
	conn := x.dialWith(x.clientConfig(certFile, keyFile))
	serial := resp.GetCertificate().GetName()[len("certificates/"):]
	return as{conn: conn, dir: exchangev1.NewDirectoryServiceClient(conn), certs: exchangev1.NewCertificateServiceClient(conn), serial: serial}
}

// serve opens the store and starts a server on a new loopback port.
func (x *exchange) serve(register func(*Server)) {
	x.register = register
	x.serveWith(nil)
}

// serveWith starts the server with a configuration the test adjusts.
func (x *exchange) serveWith(adjust func(*Config)) {
	x.serveOn(store.Options{}, adjust)
}

// serveWithStore starts the server on a store opened with opt.
func (x *exchange) serveWithStore(opt store.Options) {
	x.serveOn(opt, nil)
}

func (x *exchange) serveOn(opt store.Options, adjust func(*Config)) {
	t := x.t
	t.Helper()
	tlsConfig, err := pki.ServerTLSConfig(x.dev.ServerCert, x.dev.ServerKey, x.dev.CACert)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(x.dir, "exchange.db"), opt)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, TLS: tlsConfig, CA: x.ca, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), WatchHeartbeat: 200 * time.Millisecond,
		Limits: Limits{CallsPerSecond: -1}} // tests that check limits set their own
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if x.register != nil {
		x.register(srv)
	}
	go srv.Serve(lis)
	x.addr, x.store, x.server = lis.Addr().String(), st, srv
}

// stop shuts the server down and closes the store.
func (x *exchange) stop() {
	if x.server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	x.server.Shutdown(ctx)
	x.store.Close()
	x.server = nil
}

// restart stops the server and starts a new one on the same database, as
// after a process restart. Connections made before must be made again.
func (x *exchange) restart() {
	x.stop()
	x.serve(x.register)
}
