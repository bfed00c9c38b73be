package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/alltogether/exchange/pki"
)

// within reports whether got is within slack of want.
func within(got, want time.Time, slack time.Duration) bool {
	d := got.Sub(want)
	return d >= -slack && d <= slack
}

func TestNewCA(t *testing.T) {
	const validity = 48 * time.Hour
	start := time.Now()
	ca, err := pki.NewCA("exchange CA", validity)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if c.Subject.CommonName != "exchange CA" {
		t.Errorf("CommonName = %q", c.Subject.CommonName)
	}
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("IsCA=%v BasicConstraintsValid=%v, want both true", c.IsCA, c.BasicConstraintsValid)
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("MaxPathLen=%d MaxPathLenZero=%v, want 0 and true", c.MaxPathLen, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; c.KeyUsage != want {
		t.Errorf("KeyUsage = %v, want %v", c.KeyUsage, want)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T is not ECDSA P-256", c.PublicKey)
	}
	if !ca.Key.Public().(*ecdsa.PublicKey).Equal(c.PublicKey) {
		t.Error("Key does not match Cert")
	}
	if !bytes.Equal(mustParseCertPEM(t, ca.CertPEM).Raw, c.Raw) {
		t.Error("CertPEM does not encode Cert")
	}
	if !within(c.NotBefore, start.Add(-time.Minute), 5*time.Second) {
		t.Errorf("NotBefore = %v, want about one minute before %v", c.NotBefore, start)
	}
	if !within(c.NotAfter, start.Add(validity), 5*time.Second) {
		t.Errorf("NotAfter = %v, want about %v", c.NotAfter, start.Add(validity))
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v is not a positive 128-bit number", c.SerialNumber)
	}
}

func TestNewCARejects(t *testing.T) {
	tests := []struct {
		name     string
		cn       string
		validity time.Duration
		wantErr  string
	}{
		{"empty common name", "", time.Hour, "commonName"},
		{"blank common name", "  ", time.Hour, "commonName"},
		{"zero validity", "ca", 0, "validity"},
		{"negative validity", "ca", -time.Hour, "validity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pki.NewCA(tt.cn, tt.validity)
			wantErrContaining(t, err, tt.wantErr)
		})
	}
}

// csrClaiming builds a CSR that claims many names other than the one the CA
// will assign.
func csrClaiming(t *testing.T) (csrDER []byte, pub any) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "secretariat", Organization: []string{"alltogether"}},
		URIs: []*url.URL{
			mustParseURL(t, "spiffe://alltogether/secretariat"),
			mustParseURL(t, "spiffe://alltogether/agency/iom"),
		},
		DNSNames:       []string{"exchange.example", "localhost"},
		EmailAddresses: []string{"boss@example.org"},
		IPAddresses:    []net.IP{net.ParseIP("127.0.0.1")},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key.Public()
}

func TestSignCSRIgnoresNamesInCSR(t *testing.T) {
	ca := newTestCA(t)
	csrDER, pub := csrClaiming(t)
	const validity = 2 * time.Hour
	start := time.Now()
	cert, certPEM, err := ca.SignCSR(csrDER, pki.Agency("ilo"), validity)
	if err != nil {
		t.Fatalf("SignCSR: %v", err)
	}
	if !bytes.Equal(mustParseCertPEM(t, certPEM).Raw, cert.Raw) {
		t.Fatal("certPEM does not encode the returned certificate")
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://alltogether/agency/ilo" {
		t.Errorf("URIs = %v, want exactly [spiffe://alltogether/agency/ilo]", cert.URIs)
	}
	if len(cert.DNSNames) != 0 || len(cert.EmailAddresses) != 0 || len(cert.IPAddresses) != 0 {
		t.Errorf("certificate copied names from the CSR: DNS %v, email %v, IP %v", cert.DNSNames, cert.EmailAddresses, cert.IPAddresses)
	}
	if cert.Subject.CommonName != "agency/ilo" || len(cert.Subject.Organization) != 0 {
		t.Errorf("Subject = %v, want only CN=agency/ilo", cert.Subject)
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil || id != pki.Agency("ilo") {
		t.Errorf("IdentityFromCert = %+v, %v; want agency/ilo", id, err)
	}
	if !pub.(*ecdsa.PublicKey).Equal(cert.PublicKey) {
		t.Error("certificate public key is not the CSR's key")
	}
	if cert.IsCA {
		t.Error("client certificate is a CA")
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage = %v, want [ClientAuth]", cert.ExtKeyUsage)
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v is not a positive 128-bit number", cert.SerialNumber)
	}
	if !within(cert.NotBefore, start.Add(-time.Minute), 5*time.Second) {
		t.Errorf("NotBefore = %v, want about one minute before %v", cert.NotBefore, start)
	}
	if !within(cert.NotAfter, start.Add(validity), 5*time.Second) {
		t.Errorf("NotAfter = %v, want about %v", cert.NotAfter, start.Add(validity))
	}
	opts := x509.VerifyOptions{Roots: poolOf(ca.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := cert.Verify(opts); err != nil {
		t.Errorf("client certificate does not verify for client auth: %v", err)
	}
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if _, err := cert.Verify(opts); err == nil {
		t.Error("client certificate verifies for server auth")
	}
}

func TestSignCSRSerialsAreUnique(t *testing.T) {
	ca := newTestCA(t)
	seen := map[string]bool{}
	for range 20 {
		certPEM, _, err := ca.IssueClient(pki.Agency("ilo"), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s := pki.SerialString(mustParseCertPEM(t, certPEM).SerialNumber)
		if seen[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s] = true
	}
}

// csrWithKey returns a CSR for the given key.
func csrWithKey(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "agency/ilo"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSignCSRRejects(t *testing.T) {
	ca := newTestCA(t)
	_, goodCSR, err := pki.NewKeyAndCSR(pki.Agency("ilo"))
	if err != nil {
		t.Fatal(err)
	}
	// Change one byte of the signed content so that the signature no longer
	// matches while the request still parses.
	tampered := bytes.Clone(goodCSR)
	i := bytes.Index(tampered, []byte("agency/ilo"))
	if i < 0 {
		t.Fatal("CSR does not contain its CommonName")
	}
	tampered[i+len("agency/ilo")-1] = 'p'
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224Key, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		csr      []byte
		validity time.Duration
		wantErr  string
	}{
		{"tampered signature", tampered, time.Hour, "signature"},
		{"garbage", []byte("not a CSR"), time.Hour, "parsing certificate request"},
		{"empty", nil, time.Hour, "parsing certificate request"},
		{"certificate instead of CSR", ca.Cert.Raw, time.Hour, "parsing certificate request"},
		{"RSA 1024", csrWithKey(t, rsaKey), time.Hour, "1024 bits"},
		{"ECDSA P-224", csrWithKey(t, p224Key), time.Hour, "P-224"},
		{"zero validity", goodCSR, 0, "validity"},
		{"negative validity", goodCSR, -time.Hour, "validity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, certPEM, err := ca.SignCSR(tt.csr, pki.Agency("ilo"), tt.validity)
			wantErrContaining(t, err, tt.wantErr)
			if cert != nil || certPEM != nil {
				t.Error("SignCSR returned a certificate with an error")
			}
		})
	}
}

func TestSignCSRAcceptsOtherKeyTypes(t *testing.T) {
	ca := newTestCA(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384Key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]any{"Ed25519": edKey, "P-384": p384Key, "RSA 2048": rsaKey} {
		t.Run(name, func(t *testing.T) {
			cert, _, err := ca.SignCSR(csrWithKey(t, key), pki.Agency("iom"), time.Hour)
			if err != nil {
				t.Fatalf("SignCSR: %v", err)
			}
			if id, err := pki.IdentityFromCert(cert); err != nil || id != pki.Agency("iom") {
				t.Errorf("IdentityFromCert = %+v, %v", id, err)
			}
		})
	}
}

func TestIssueClientKeyMatchesCert(t *testing.T) {
	ca := newTestCA(t)
	certPEM, keyPEM, err := ca.IssueClient(pki.Agency("un-iap"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key is not PEM PKCS#8:\n%s", keyPEM)
	}
	dir := t.TempDir()
	cf := writeFile(t, dir, "c.crt", certPEM)
	kf := writeFile(t, dir, "c.key", keyPEM)
	caf := writeFile(t, dir, "ca.crt", ca.CertPEM)
	if _, err := pki.ClientTLSConfig(cf, kf, caf, ""); err != nil {
		t.Fatalf("issued certificate and key do not form a key pair: %v", err)
	}
}

func TestNewKeyAndCSR(t *testing.T) {
	keyPEM, csrDER, err := pki.NewKeyAndCSR(pki.Secretariat())
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	if pub, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CSR key %T is not ECDSA P-256", csr.PublicKey)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != "spiffe://alltogether/secretariat" {
		t.Errorf("CSR URIs = %v", csr.URIs)
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key is not PEM PKCS#8:\n%s", keyPEM)
	}
}

func TestIssueServer(t *testing.T) {
	ca := newTestCA(t)
	certPEM, keyPEM, err := ca.IssueServer([]string{"localhost", "127.0.0.1", "::1", "Exchange.Example"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParseCertPEM(t, certPEM)
	if !slices.Equal(cert.DNSNames, []string{"localhost", "exchange.example"}) {
		t.Errorf("DNSNames = %v", cert.DNSNames)
	}
	if len(cert.IPAddresses) != 2 || !cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !cert.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IPAddresses = %v", cert.IPAddresses)
	}
	if len(cert.URIs) != 0 {
		t.Errorf("server certificate has URI SANs %v", cert.URIs)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want [ServerAuth]", cert.ExtKeyUsage)
	}
	if cert.IsCA {
		t.Error("server certificate is a CA")
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key is not PEM PKCS#8")
	}
	for _, name := range []string{"localhost", "127.0.0.1", "exchange.example"} {
		opts := x509.VerifyOptions{Roots: poolOf(ca.Cert), DNSName: name}
		if _, err := cert.Verify(opts); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: poolOf(ca.Cert), DNSName: "other.example"}); err == nil {
		t.Error("server certificate verifies for other.example")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: poolOf(ca.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate verifies for client auth")
	}
}

func TestIssueServerRejects(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name     string
		hosts    []string
		validity time.Duration
		wantErr  []string
	}{
		{"no hosts", nil, time.Hour, []string{"no hosts"}},
		{"empty host", []string{"localhost", ""}, time.Hour, []string{"hosts[1]"}},
		{"space", []string{"bad host"}, time.Hour, []string{"hosts[0]", `"bad host"`}},
		{"URL", []string{"https://exchange.example"}, time.Hour, []string{"hosts[0]"}},
		{"host and port", []string{"localhost:8443"}, time.Hour, []string{"hosts[0]"}},
		{"leading hyphen", []string{"-x.example"}, time.Hour, []string{"hosts[0]"}},
		{"zero validity", []string{"localhost"}, 0, []string{"validity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ca.IssueServer(tt.hosts, tt.validity)
			wantErrContaining(t, err, tt.wantErr...)
		})
	}
}

func TestLeafValidityCappedAtCAExpiry(t *testing.T) {
	ca, err := pki.NewCA("short-lived CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clientPEM, _, err := ca.IssueClient(pki.Agency("ilo"), 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serverPEM, _, err := ca.IssueServer([]string{"localhost"}, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string][]byte{"client": clientPEM, "server": serverPEM} {
		if got := mustParseCertPEM(t, p).NotAfter; !got.Equal(ca.Cert.NotAfter) {
			t.Errorf("%s NotAfter = %v, want the CA's %v", name, got, ca.Cert.NotAfter)
		}
	}
}

func TestIssueWithBrokenCA(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name string
		ca   *pki.CA
	}{
		{"nil", nil},
		{"no cert", &pki.CA{Key: ca.Key, CertPEM: ca.CertPEM}},
		{"no key", &pki.CA{Cert: ca.Cert, CertPEM: ca.CertPEM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := tt.ca.IssueClient(pki.Agency("ilo"), time.Hour); err == nil {
				t.Error("IssueClient succeeded")
			}
			if _, _, err := tt.ca.IssueServer([]string{"localhost"}, time.Hour); err == nil {
				t.Error("IssueServer succeeded")
			}
			dir := t.TempDir()
			if err := tt.ca.Save(filepath.Join(dir, "c"), filepath.Join(dir, "k")); err == nil {
				t.Error("Save succeeded")
			}
		})
	}
}

func TestSaveAndLoadCA(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := ca.Save(certFile, keyFile); err != nil {
		t.Fatalf("Save: %v", err)
	}
	for file, want := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600} {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", file, got, want)
		}
	}
	if !bytes.HasPrefix(readFile(t, keyFile), []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Error("key file is not PEM PKCS#8")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("directory holds %d entries after Save, want 2 (no temporary files left)", len(entries))
	}
	loaded, err := pki.LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !bytes.Equal(loaded.Cert.Raw, ca.Cert.Raw) || !bytes.Equal(loaded.CertPEM, ca.CertPEM) {
		t.Error("loaded certificate differs from the saved one")
	}
	// The loaded key must really be the CA key: a certificate it issues
	// verifies against the original CA certificate.
	certPEM, _, err := loaded.IssueClient(pki.Agency("ilo"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opts := x509.VerifyOptions{Roots: poolOf(ca.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := mustParseCertPEM(t, certPEM).Verify(opts); err != nil {
		t.Errorf("certificate issued by loaded CA does not verify: %v", err)
	}
}

func TestSaveRefusesToOverwrite(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name     string
		existing string // "cert" or "key"
	}{
		{"cert exists", "cert"},
		{"key exists", "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
			existing, other := certFile, keyFile
			if tt.existing == "key" {
				existing, other = keyFile, certFile
			}
			old := []byte("precious\n")
			if err := os.WriteFile(existing, old, 0o600); err != nil {
				t.Fatal(err)
			}
			err := ca.Save(certFile, keyFile)
			wantErrContaining(t, err, "refusing to overwrite", existing)
			if got := readFile(t, existing); !bytes.Equal(got, old) {
				t.Errorf("%s was overwritten", existing)
			}
			if _, err := os.Stat(other); !os.IsNotExist(err) {
				t.Errorf("%s was written although Save failed (stat error %v)", other, err)
			}
		})
	}
	t.Run("second save", func(t *testing.T) {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
		if err := ca.Save(certFile, keyFile); err != nil {
			t.Fatal(err)
		}
		other := newTestCA(t)
		wantErrContaining(t, other.Save(certFile, keyFile), "refusing to overwrite")
		if !bytes.Equal(readFile(t, certFile), ca.CertPEM) {
			t.Error("second Save replaced the certificate")
		}
	})
	t.Run("same path", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "ca.pem")
		wantErrContaining(t, ca.Save(p, p), "same path")
	})
}

func TestLoadCAErrors(t *testing.T) {
	ca := newTestCA(t)
	otherCA := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := ca.Save(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey := filepath.Join(dir, "other.crt"), filepath.Join(dir, "other.key")
	if err := otherCA.Save(otherCert, otherKey); err != nil {
		t.Fatal(err)
	}
	leafPEM, leafKeyPEM, err := ca.IssueServer([]string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leafCert := writeFile(t, dir, "leaf.crt", leafPEM)
	leafKey := writeFile(t, dir, "leaf.key", leafKeyPEM)
	garbage := writeFile(t, dir, "garbage.pem", []byte("hello\n"))
	twoCerts := writeFile(t, dir, "two.crt", append(bytes.Clone(ca.CertPEM), otherCA.CertPEM...))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name      string
		cert, key string
		wantErr   []string
	}{
		{"missing cert file", missing, keyFile, []string{missing}},
		{"missing key file", certFile, missing, []string{missing}},
		{"garbage cert file", garbage, keyFile, []string{garbage, "no PEM block"}},
		{"key in cert file", keyFile, keyFile, []string{keyFile, `"PRIVATE KEY"`}},
		{"two certificates", twoCerts, keyFile, []string{twoCerts, "second PEM block"}},
		{"garbage key file", certFile, garbage, []string{garbage, "no PEM block"}},
		{"cert in key file", certFile, certFile, []string{certFile, `"CERTIFICATE"`}},
		{"leaf certificate", leafCert, leafKey, []string{leafCert, "not a CA"}},
		{"key of another CA", certFile, otherKey, []string{otherKey, "does not match", certFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.LoadCA(tt.cert, tt.key)
			wantErrContaining(t, err, tt.wantErr...)
			if got != nil {
				t.Error("LoadCA returned a CA with an error")
			}
		})
	}
}

func TestLoadCAAcceptsSEC1Key(t *testing.T) {
	ca := newTestCA(t)
	der, err := x509.MarshalECPrivateKey(ca.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	loaded, err := pki.LoadCA(writeFile(t, dir, "ca.crt", ca.CertPEM), writeFile(t, dir, "ca.key", pemEncode("EC PRIVATE KEY", der)))
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !bytes.Equal(loaded.Cert.Raw, ca.Cert.Raw) {
		t.Error("wrong certificate loaded")
	}
}

func TestSerialString(t *testing.T) {
	huge, _ := new(big.Int).SetString("00ffeedd0000000000000000000000ab", 16)
	tests := []struct {
		name   string
		serial *big.Int
		want   string
	}{
		{"nil", nil, ""},
		{"one", big.NewInt(1), "1"},
		{"255", big.NewInt(255), "ff"},
		{"4096", big.NewInt(4096), "1000"},
		{"128-bit", huge, "ffeedd0000000000000000000000ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pki.SerialString(tt.serial); got != tt.want {
				t.Errorf("SerialString = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCertPEM(t *testing.T) {
	ca := newTestCA(t)
	keyPEM, _, err := pki.NewKeyAndCSR(pki.Agency("ilo"))
	if err != nil {
		t.Fatal(err)
	}
	withPreamble := append([]byte("Bag Attributes: none\n"), ca.CertPEM...)
	tests := []struct {
		name    string
		in      []byte
		wantErr string // empty: success
	}{
		{"certificate", ca.CertPEM, ""},
		{"text before block", withPreamble, ""},
		{"empty", nil, "no PEM block"},
		{"not PEM", []byte("hello"), "no PEM block"},
		{"private key", keyPEM, `"PRIVATE KEY"`},
		{"two certificates", append(bytes.Clone(ca.CertPEM), ca.CertPEM...), "second PEM block"},
		{"bad DER", pemEncode("CERTIFICATE", []byte("junk")), "parsing certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := pki.ParseCertPEM(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseCertPEM: %v", err)
				}
				if !bytes.Equal(cert.Raw, ca.Cert.Raw) {
					t.Error("parsed the wrong certificate")
				}
				return
			}
			wantErrContaining(t, err, tt.wantErr)
		})
	}
}
