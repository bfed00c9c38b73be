package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/pki"
)

// handshakeResult is what each side of a test connection observed.
type handshakeResult struct {
	serverErr error
	clientErr error
	peer      *x509.Certificate // client certificate seen by the server
	version   uint16
}

// handshake runs a TLS server with serverCfg on a loopback listener, connects
// with clientCfg, and exchanges one byte each way so that failures the
// server reports only after the client's side of the handshake (TLS 1.3
// client authentication) surface on both ends.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) handshakeResult {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type serverSide struct {
		err     error
		peer    *x509.Certificate
		version uint16
	}
	done := make(chan serverSide, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverSide{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			done <- serverSide{err: err}
			return
		}
		buf := make([]byte, 1)
		if _, err := io.ReadFull(tc, buf); err != nil {
			done <- serverSide{err: err}
			return
		}
		if _, err := tc.Write(buf); err != nil {
			done <- serverSide{err: err}
			return
		}
		st := tc.ConnectionState()
		s := serverSide{version: st.Version}
		if len(st.PeerCertificates) > 0 {
			s.peer = st.PeerCertificates[0]
		}
		done <- s
	}()

	var res handshakeResult
	raw, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	client := tls.Client(raw, clientCfg)
	res.clientErr = client.Handshake()
	if res.clientErr == nil {
		if _, err := client.Write([]byte{'x'}); err != nil {
			res.clientErr = err
		} else {
			buf := make([]byte, 1)
			if _, err := io.ReadFull(client, buf); err != nil {
				res.clientErr = err
			} else if buf[0] != 'x' {
				t.Fatalf("echo returned %q", buf)
			}
		}
	}
	client.Close()
	s := <-done
	res.serverErr, res.peer, res.version = s.err, s.peer, s.version
	return res
}

// tlsFixture is a development PKI plus extra client credentials.
type tlsFixture struct {
	files pki.DevFiles
	dir   string
	ca    *pki.CA
}

func newTLSFixture(t *testing.T) tlsFixture {
	t.Helper()
	dir := t.TempDir()
	files, _, err := pki.EnsureDev(filepath.Join(dir, "pki"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(files.CACert, files.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	return tlsFixture{files: files, dir: dir, ca: ca}
}

// clientFiles writes a freshly issued certificate and key under name and
// returns their paths; err is the issuing error.
func (f tlsFixture) clientFiles(t *testing.T, name string) func(certPEM, keyPEM []byte, err error) (string, string) {
	return func(certPEM, keyPEM []byte, err error) (string, string) {
		t.Helper()
		if err != nil {
			t.Fatalf("issuing %s: %v", name, err)
		}
		return writeFile(t, f.dir, name+".crt", certPEM), writeFile(t, f.dir, name+".key", keyPEM)
	}
}

// noIdentityClient returns a certificate signed by the fixture's CA, valid
// for client authentication, that carries no URI SAN.
func (f tlsFixture) noIdentityClient(t *testing.T) (certPEM, keyPEM []byte, err error) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "secretariat"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca.Cert, key.Public(), f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemEncode("CERTIFICATE", der), pemEncode("PRIVATE KEY", keyDER), nil
}

func TestTLSHandshake(t *testing.T) {
	fx := newTLSFixture(t)
	files := fx.files

	serverCfg := func(t *testing.T) *tls.Config {
		cfg, err := pki.ServerTLSConfig(files.ServerCert, files.ServerKey, files.CACert)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	clientCfg := func(t *testing.T, certFile, keyFile, caFile, serverName string) *tls.Config {
		cfg, err := pki.ClientTLSConfig(certFile, keyFile, caFile, serverName)
		if errors.Is(err, pki.ErrClientCertificateNotFromCA) {
			// ClientTLSConfig refuses such a certificate up front; build the
			// configuration by hand to prove the server refuses it too.
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			caPEM, err := os.ReadFile(caFile)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(caPEM)
			return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: serverName}
		}
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	// An agency certificate issued later by the loaded dev CA.
	agencyCert, agencyKey := fx.clientFiles(t, "ilo")(fx.ca.IssueClient(pki.Agency("ilo"), time.Hour))
	// A secretariat certificate from an unrelated CA.
	otherCA := newTestCA(t)
	otherCert, otherKey := fx.clientFiles(t, "other")(otherCA.IssueClient(pki.Secretariat(), time.Hour))
	otherCAFile := writeFile(t, fx.dir, "other-ca.crt", otherCA.CertPEM)
	// A secretariat certificate from an impostor CA with the same name as the
	// real one, so that the client does send it and the server must reject
	// it on its signature.
	impostorCA, err := pki.NewCA(fx.ca.Cert.Subject.CommonName, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	impostorCert, impostorKey := fx.clientFiles(t, "impostor")(impostorCA.IssueClient(pki.Secretariat(), time.Hour))
	// A certificate from the right CA without an identity.
	noIDCert, noIDKey := fx.clientFiles(t, "noid")(fx.noIdentityClient(t))

	tests := []struct {
		name         string
		server       func(t *testing.T) *tls.Config
		client       func(t *testing.T) *tls.Config
		wantIdentity *pki.Identity // nil: the connection must fail
		wantServer   string        // substring of the server's error
		wantClient   string        // substring of the client's error
	}{
		{
			name:   "secretariat succeeds",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				return clientCfg(t, files.SecretariatCert, files.SecretariatKey, files.CACert, "localhost")
			},
			wantIdentity: &pki.Identity{Role: pki.RoleSecretariat},
		},
		{
			name:   "agency succeeds with IP server name",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				return clientCfg(t, agencyCert, agencyKey, files.CACert, "127.0.0.1")
			},
			wantIdentity: &pki.Identity{Role: pki.RoleAgency, AgencyID: "ilo"},
		},
		{
			name:   "client certificate from another CA with the same name",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				return clientCfg(t, impostorCert, impostorKey, files.CACert, "localhost")
			},
			wantServer: "unknown authority",
		},
		{
			// The client finds no certificate from an acceptable CA and
			// sends none.
			name:   "client certificate from another CA",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				return clientCfg(t, otherCert, otherKey, files.CACert, "localhost")
			},
			wantServer: "didn't provide a certificate",
		},
		{
			name:   "no client certificate",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				cfg := clientCfg(t, files.SecretariatCert, files.SecretariatKey, files.CACert, "localhost")
				cfg.Certificates = nil
				return cfg
			},
			wantServer: "didn't provide a certificate",
		},
		{
			name:   "client capped at TLS 1.2",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				cfg := clientCfg(t, files.SecretariatCert, files.SecretariatKey, files.CACert, "localhost")
				// Lower MinVersion too so that it is the server that refuses.
				cfg.MinVersion = tls.VersionTLS12
				cfg.MaxVersion = tls.VersionTLS12
				return cfg
			},
			wantServer: "unsupported versions",
		},
		{
			name: "server capped at TLS 1.2",
			server: func(t *testing.T) *tls.Config {
				cfg := serverCfg(t)
				cfg.MinVersion = tls.VersionTLS12
				cfg.MaxVersion = tls.VersionTLS12
				return cfg
			},
			client: func(t *testing.T) *tls.Config {
				return clientCfg(t, files.SecretariatCert, files.SecretariatKey, files.CACert, "localhost")
			},
			wantClient: "protocol version not supported",
		},
		{
			name:   "client certificate without identity",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				return clientCfg(t, noIDCert, noIDKey, files.CACert, "localhost")
			},
			wantServer: "no URI SAN",
		},
		{
			name:   "server certificate used as client certificate",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				return clientCfg(t, files.ServerCert, files.ServerKey, files.CACert, "localhost")
			},
			wantServer: "incompatible key usage",
		},
		{
			name:   "wrong server name",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				return clientCfg(t, files.SecretariatCert, files.SecretariatKey, files.CACert, "exchange.example")
			},
			wantClient: "exchange.example",
		},
		{
			name:   "client trusts another CA",
			server: serverCfg,
			client: func(t *testing.T) *tls.Config {
				return clientCfg(t, files.SecretariatCert, files.SecretariatKey, otherCAFile, "localhost")
			},
			wantClient: "unknown authority",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := handshake(t, tt.server(t), tt.client(t))
			if tt.wantIdentity != nil {
				if res.serverErr != nil || res.clientErr != nil {
					t.Fatalf("connection failed: server %v, client %v", res.serverErr, res.clientErr)
				}
				if res.version != tls.VersionTLS13 {
					t.Errorf("negotiated version %x, want TLS 1.3", res.version)
				}
				id, err := pki.IdentityFromCert(res.peer)
				if err != nil || id != *tt.wantIdentity {
					t.Errorf("server saw identity %+v, %v; want %+v", id, err, *tt.wantIdentity)
				}
				return
			}
			if res.serverErr == nil || res.clientErr == nil {
				t.Fatalf("connection was not refused on both ends: server %v, client %v", res.serverErr, res.clientErr)
			}
			if tt.wantServer != "" {
				wantErrContaining(t, res.serverErr, tt.wantServer)
			}
			if tt.wantClient != "" {
				wantErrContaining(t, res.clientErr, tt.wantClient)
			}
			t.Logf("server: %v; client: %v", res.serverErr, res.clientErr)
		})
	}
}

func TestTLSConfigFields(t *testing.T) {
	fx := newTLSFixture(t)
	f := fx.files
	srv, err := pki.ServerTLSConfig(f.ServerCert, f.ServerKey, f.CACert)
	if err != nil {
		t.Fatal(err)
	}
	if srv.MinVersion != tls.VersionTLS13 {
		t.Errorf("server MinVersion = %x, want TLS 1.3", srv.MinVersion)
	}
	if srv.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("server ClientAuth = %v, want RequireAndVerifyClientCert", srv.ClientAuth)
	}
	if srv.ClientCAs == nil || len(srv.Certificates) != 1 {
		t.Errorf("server ClientCAs=%v, %d certificates", srv.ClientCAs, len(srv.Certificates))
	}
	if srv.InsecureSkipVerify {
		t.Error("server InsecureSkipVerify is set")
	}
	for _, name := range []string{"", "localhost"} {
		cli, err := pki.ClientTLSConfig(f.SecretariatCert, f.SecretariatKey, f.CACert, name)
		if err != nil {
			t.Fatal(err)
		}
		if cli.MinVersion != tls.VersionTLS13 {
			t.Errorf("client MinVersion = %x, want TLS 1.3", cli.MinVersion)
		}
		if cli.ServerName != name {
			t.Errorf("client ServerName = %q, want %q", cli.ServerName, name)
		}
		if cli.RootCAs == nil || len(cli.Certificates) != 1 || cli.InsecureSkipVerify {
			t.Errorf("client RootCAs=%v, %d certificates, InsecureSkipVerify=%v", cli.RootCAs, len(cli.Certificates), cli.InsecureSkipVerify)
		}
	}
}

func TestTLSConfigErrors(t *testing.T) {
	fx := newTLSFixture(t)
	f := fx.files
	missing := filepath.Join(fx.dir, "missing.pem")
	garbage := writeFile(t, fx.dir, "garbage.pem", []byte("garbage\n"))
	tests := []struct {
		name          string
		cert, key, ca string
		wantErr       []string
	}{
		{"missing cert", missing, f.ServerKey, f.CACert, []string{missing}},
		{"missing key", f.ServerCert, missing, f.CACert, []string{missing}},
		{"missing CA", f.ServerCert, f.ServerKey, missing, []string{missing}},
		{"garbage cert", garbage, f.ServerKey, f.CACert, []string{garbage, "certificate file"}},
		{"garbage key", f.ServerCert, garbage, f.CACert, []string{garbage, "key file"}},
		{"garbage CA", f.ServerCert, f.ServerKey, garbage, []string{garbage, "CA file"}},
		{"key as CA", f.ServerCert, f.ServerKey, f.CAKey, []string{f.CAKey, "CA file", `"PRIVATE KEY"`}},
		{"key in cert file", f.ServerKey, f.ServerKey, f.CACert, []string{f.ServerKey, "certificate file"}},
		{"mismatched pair", f.ServerCert, f.SecretariatKey, f.CACert, []string{f.ServerCert, f.SecretariatKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := pki.ServerTLSConfig(tt.cert, tt.key, tt.ca)
			wantErrContaining(t, err, tt.wantErr...)
			if cfg != nil {
				t.Error("ServerTLSConfig returned a config with an error")
			}
			cfg, err = pki.ClientTLSConfig(tt.cert, tt.key, tt.ca, "localhost")
			wantErrContaining(t, err, tt.wantErr...)
			if cfg != nil {
				t.Error("ClientTLSConfig returned a config with an error")
			}
		})
	}
}

// TestClientTLSConfigRefusesCertificatesFromAnotherCA checks the up-front
// refusal that spares users a reset connection.
func TestClientTLSConfigRefusesCertificatesFromAnotherCA(t *testing.T) {
	fx := newTLSFixture(t)
	otherCert, otherKey := fx.clientFiles(t, "other")(newTestCA(t).IssueClient(pki.Agency("ilo"), time.Hour))
	_, err := pki.ClientTLSConfig(otherCert, otherKey, fx.files.CACert, "localhost")
	if !errors.Is(err, pki.ErrClientCertificateNotFromCA) || !strings.Contains(err.Error(), otherCert) {
		t.Fatalf("another CA's certificate: %v", err)
	}
	_, err = pki.ClientTLSConfig(fx.files.ServerCert, fx.files.ServerKey, fx.files.CACert, "localhost")
	if !errors.Is(err, pki.ErrClientCertificateNotFromCA) {
		t.Fatalf("a server certificate as client certificate: %v", err)
	}
	if _, err := pki.ClientTLSConfig(fx.files.SecretariatCert, fx.files.SecretariatKey, fx.files.CACert, "localhost"); err != nil {
		t.Fatalf("the exchange's own certificate: %v", err)
	}
}
