package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// PEM block types used by this package.
const (
	pemTypeCertificate = "CERTIFICATE"
	pemTypePrivateKey  = "PRIVATE KEY" // PKCS#8
	pemTypeECKey       = "EC PRIVATE KEY"
)

// backdate is how far before "now" every certificate's NotBefore is set, to
// tolerate small clock skew between the exchange and its callers.
const backdate = time.Minute

// minRSABits is the smallest RSA key SignCSR accepts.
const minRSABits = 2048

// CA is the exchange's certificate authority: a self-signed certificate and
// its private key.
type CA struct {
	// Cert is the parsed CA certificate.
	Cert *x509.Certificate
	// Key is the CA private key; its public half matches Cert.
	Key crypto.Signer
	// CertPEM is Cert in PEM encoding, ready to hand to clients as a trust
	// anchor.
	CertPEM []byte
}

// NewCA creates a self-signed CA with a fresh ECDSA P-256 key. The certificate
// has the given CommonName, is valid from one minute ago until validity from
// now, and may sign end-entity certificates and CRLs only (MaxPathLen 0).
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if strings.TrimSpace(commonName) == "" {
		return nil, errors.New("pki: NewCA: commonName is empty")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("pki: NewCA: validity %v is not positive", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: NewCA: generating key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("pki: NewCA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: NewCA: creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: NewCA: parsing new certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCertPEM(der)}, nil
}

// LoadCA reads a CA certificate (PEM "CERTIFICATE") and its private key (PEM
// PKCS#8 "PRIVATE KEY"; SEC 1 "EC PRIVATE KEY" is also accepted) from files.
// It checks that the certificate is a CA certificate allowed to sign
// certificates and that the key matches it.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: reading CA certificate: %w", err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate file %s: %w", certFile, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("pki: CA certificate file %s: certificate %q is not a CA certificate", certFile, cert.Subject.CommonName)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: CA certificate file %s: certificate %q lacks the certificate-signing key usage", certFile, cert.Subject.CommonName)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: reading CA key: %w", err)
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key file %s: %w", keyFile, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("pki: CA key file %s does not match the public key of CA certificate file %s", keyFile, certFile)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCertPEM(cert.Raw)}, nil
}

// Save writes the CA certificate (mode 0644) and private key (PKCS#8, mode
// 0600) to the given files. It refuses to overwrite: if either file already
// exists, it writes nothing and returns an error naming the file. Each file
// appears atomically with its complete contents.
func (ca *CA) Save(certFile, keyFile string) error {
	if err := ca.check(); err != nil {
		return err
	}
	if certFile == keyFile {
		return fmt.Errorf("pki: CA certificate and key file are the same path %s", certFile)
	}
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("pki: refusing to overwrite existing file %s", f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pki: checking %s: %w", f, err)
		}
	}
	keyPEM, err := encodeKeyPEM(ca.Key)
	if err != nil {
		return fmt.Errorf("pki: encoding CA key: %w", err)
	}
	if err := writeFileNoClobber(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileNoClobber(certFile, ca.CertPEM, 0o644); err != nil {
		// Do not leave a key without its certificate behind.
		_ = os.Remove(keyFile)
		return err
	}
	return nil
}

// IssueServer issues a server certificate for the given hosts, each a DNS
// name or an IP address, with a fresh ECDSA P-256 key. The certificate is
// valid for validity from now (but never beyond the CA's own expiry) and may
// be used only for TLS server authentication. The first host becomes the
// CommonName.
func (ca *CA) IssueServer(hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := ca.check(); err != nil {
		return nil, nil, err
	}
	dnsNames, ips, err := splitHosts(hosts)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: IssueServer: generating key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		DNSNames:    dnsNames,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	_, certPEM, err = ca.issue(tmpl, key.Public(), validity)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: IssueServer: %w", err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: IssueServer: encoding key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// SignCSR issues a client certificate for id over the public key of a
// PKCS#10 certificate request (DER). It verifies the request's signature
// (proof of possession of the key) and then ignores everything else in the
// request: the certificate's only name is exactly one URI SAN, id.URI(), its
// CommonName is id.String(), and it may be used only for TLS client
// authentication. The serial is a random positive 128-bit number, NotBefore is
// one minute ago and NotAfter is validity from now, capped at the CA's expiry.
// Accepted request keys are ECDSA P-256, P-384 and P-521, Ed25519, and RSA of
// at least 2048 bits.
func (ca *CA) SignCSR(csrDER []byte, id Identity, validity time.Duration) (*x509.Certificate, []byte, error) {
	if err := ca.check(); err != nil {
		return nil, nil, err
	}
	if err := id.validate(); err != nil {
		return nil, nil, fmt.Errorf("pki: SignCSR: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: SignCSR: parsing certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("pki: SignCSR: certificate request signature is invalid: %w", err)
	}
	if err := checkClientKey(csr.PublicKey); err != nil {
		return nil, nil, fmt.Errorf("pki: SignCSR: certificate request public key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id.String()},
		URIs:        []*url.URL{id.URI()},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cert, certPEM, err := ca.issue(tmpl, csr.PublicKey, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: SignCSR: %w", err)
	}
	return cert, certPEM, nil
}

// IssueClient creates a fresh ECDSA P-256 key and a client certificate for id
// signed by the CA. It is NewKeyAndCSR followed by SignCSR.
func (ca *CA) IssueClient(id Identity, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	keyPEM, csrDER, err := NewKeyAndCSR(id)
	if err != nil {
		return nil, nil, err
	}
	_, certPEM, err = ca.SignCSR(csrDER, id, validity)
	if err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// NewKeyAndCSR creates a fresh ECDSA P-256 key (PEM PKCS#8) and a DER
// certificate request for id signed with it. The request carries id's URI and
// CommonName for the reader's convenience; SignCSR ignores them.
func NewKeyAndCSR(id Identity) (keyPEM, csrDER []byte, err error) {
	if err := id.validate(); err != nil {
		return nil, nil, fmt.Errorf("pki: NewKeyAndCSR: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: NewKeyAndCSR: generating key: %w", err)
	}
	csrDER, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: id.String()},
		URIs:    []*url.URL{id.URI()},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: NewKeyAndCSR: creating certificate request: %w", err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: NewKeyAndCSR: encoding key: %w", err)
	}
	return keyPEM, csrDER, nil
}

// SerialString returns the canonical text form of a certificate serial
// number: lowercase hexadecimal without colons or leading zeros (for example
// "1f3a"). It returns "" for a nil serial.
func SerialString(serial *big.Int) string {
	if serial == nil {
		return ""
	}
	return serial.Text(16)
}

// ParseCertPEM parses a single PEM "CERTIFICATE" block. Text before the block
// is ignored; any further PEM block is an error, so that a chain or a bundled
// key is never silently dropped.
func ParseCertPEM(pemBytes []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if block.Type != pemTypeCertificate {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, pemTypeCertificate)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("unexpected second PEM block %q after the certificate", next.Type)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate: %w", err)
	}
	return cert, nil
}

// check reports whether ca is usable for issuing.
func (ca *CA) check() error {
	switch {
	case ca == nil:
		return errors.New("pki: CA is nil")
	case ca.Cert == nil:
		return errors.New("pki: CA.Cert is nil")
	case ca.Key == nil:
		return errors.New("pki: CA.Key is nil")
	case len(ca.CertPEM) == 0:
		return errors.New("pki: CA.CertPEM is empty")
	}
	return nil
}

// issue signs tmpl for pub, filling in the serial and validity period.
func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, []byte, error) {
	if validity <= 0 {
		return nil, nil, fmt.Errorf("validity %v is not positive", validity)
	}
	now := time.Now()
	if !now.Before(ca.Cert.NotAfter) {
		return nil, nil, fmt.Errorf("CA certificate %q expired at %s", ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing new certificate: %w", err)
	}
	return cert, encodeCertPEM(der), nil
}

// serialLimit is 2^128; serials are drawn uniformly from [1, 2^128).
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// newSerial returns a random positive serial number of at most 128 bits.
func newSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generating serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// splitHosts sorts server hosts into DNS names and IP addresses.
func splitHosts(hosts []string) ([]string, []net.IP, error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("pki: IssueServer: no hosts given")
	}
	var dnsNames []string
	var ips []net.IP
	for i, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if !validDNSName(h) {
			return nil, nil, fmt.Errorf("pki: IssueServer: hosts[%d] %q is neither an IP address nor a valid DNS name", i, h)
		}
		dnsNames = append(dnsNames, strings.ToLower(h))
	}
	return dnsNames, ips, nil
}

// validDNSName reports whether s is a plausible DNS host name: dot-separated
// labels of 1 to 63 letters, digits and hyphens, not starting or ending with a
// hyphen, at most 253 characters, optionally starting with a "*." wildcard.
func validDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
			if !ok {
				return false
			}
		}
	}
	return true
}

// checkClientKey enforces the key types SignCSR accepts.
func checkClientKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key has %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		return nil
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
}

// publicKeysEqual reports whether two public keys are the same key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// encodeCertPEM wraps a DER certificate in a PEM "CERTIFICATE" block.
func encodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeCertificate, Bytes: der})
}

// encodeKeyPEM encodes a private key as a PEM PKCS#8 "PRIVATE KEY" block.
func encodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der}), nil
}

// parsePrivateKeyPEM parses a single PEM private key, PKCS#8 or SEC 1.
func parsePrivateKeyPEM(pemBytes []byte) (crypto.Signer, error) {
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("unexpected second PEM block %q after the key", next.Type)
	}
	var key any
	var err error
	switch block.Type {
	case pemTypePrivateKey:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemTypeECKey:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, pemTypePrivateKey)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", key)
	}
	return signer, nil
}
