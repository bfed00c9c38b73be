package clienttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority for tests, made with crypto/x509
// alone: a CA, a server certificate for 127.0.0.1, ::1 and localhost, and
// client certificates on demand, all written as PEM files into a temporary
// directory.
type PKI struct {
	// Dir is the directory that holds the files.
	Dir string
	// CAFile is the CA certificate, Dir/ca.crt.
	CAFile string
	// ServerCertFile is the server certificate, Dir/server.crt.
	ServerCertFile string
	// ServerKeyFile is the server private key, Dir/server.key.
	ServerKeyFile string

	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
}

// NewPKI makes a CA and a server certificate in a new temporary directory of
// t. It fails t on any error.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "clienttest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{
		Dir:            dir,
		CAFile:         filepath.Join(dir, "ca.crt"),
		ServerCertFile: filepath.Join(dir, "server.crt"),
		ServerKeyFile:  filepath.Join(dir, "server.key"),
		caCert:         caCert,
		caKey:          key,
		caPEM:          pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
	writeFile(t, p.CAFile, p.caPEM, 0o644)

	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serverPEM, err := p.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "clienttest server"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &serverKey.PublicKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p.ServerCertFile, serverPEM, 0o644)
	writeFile(t, p.ServerKeyFile, keyPEM(t, serverKey), 0o600)
	return p
}

// CAPEM returns the CA certificate in PEM.
func (p *PKI) CAPEM() []byte { return p.caPEM }

// ClientFiles makes a client key and certificate for identity, written to
// Dir/<name>.crt and Dir/<name>.key, and returns their paths. identity is
// the path of the certificate's URI SAN after spiffe://alltogether/, for
// example "secretariat" or "agency/ilo".
func (p *PKI) ClientFiles(t testing.TB, identity string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := p.SignCSR(csrDER, identity, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.ReplaceAll(identity, "/", "-")
	certFile = filepath.Join(p.Dir, base+".crt")
	keyFile = filepath.Join(p.Dir, base+".key")
	writeFile(t, certFile, certPEM, 0o644)
	writeFile(t, keyFile, keyPEM(t, key), 0o600)
	return certFile, keyFile
}

// SignCSR checks a DER certificate request and signs a client certificate
// for identity (see ClientFiles) with the request's public key, ignoring
// every name in the request.
func (p *PKI) SignCSR(csrDER []byte, identity string, validity time.Duration) (certPEM []byte, cert *x509.Certificate, err error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("certificate request signature: %w", err)
	}
	uri, err := url.Parse("spiffe://alltogether/" + identity)
	if err != nil {
		return nil, nil, err
	}
	certPEM, err = p.sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: identity},
		URIs:        []*url.URL{uri},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, csr.PublicKey, validity)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(certPEM)
	cert, err = x509.ParseCertificate(block.Bytes)
	return certPEM, cert, err
}

// sign completes tmpl (serial, validity, key usage) and signs it with the CA.
func (p *PKI) sign(tmpl *x509.Certificate, pub any, validity time.Duration) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	if serial.Sign() == 0 {
		return nil, errors.New("zero serial")
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	tmpl.NotAfter = time.Now().Add(validity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, pub, p.caKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// keyPEM encodes key as PEM PKCS #8.
func keyPEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// writeFile writes data to path or fails t.
func writeFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
}
