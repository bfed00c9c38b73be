package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// ServerTLSConfig returns a TLS configuration for the exchange server. It
// presents the certificate and key from certFile and keyFile, accepts only
// TLS 1.3, and requires every client to present a certificate that chains to
// a CA in clientCAFile and carries a valid exchange identity (see
// IdentityFromCert); handshakes with any other client fail.
func ServerTLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	pool, err := loadCertPool(clientCAFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pki: client presented no certificate")
			}
			_, err := IdentityFromCert(cs.PeerCertificates[0])
			return err
		},
	}, nil
}

// ClientTLSConfig returns a TLS configuration for a client of the exchange.
// It presents the certificate and key from certFile and keyFile, accepts only
// TLS 1.3, and trusts only the CA certificates in caFile. serverName, if not
// empty, is the name the server certificate is verified against; if empty,
// ServerName is left empty so that the dialer (crypto/tls or gRPC) fills it in
// from the address it dials.
func ClientTLSConfig(certFile, keyFile, caFile, serverName string) (*tls.Config, error) {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	pool, err := loadCertPool(caFile)
	if err != nil {
		return nil, err
	}
	// The exchange's CA signs the server's certificate and every client
	// certificate, so a client certificate that does not chain to the CA
	// file would be refused by the server. Say so now, clearly, instead of
	// letting TLS 1.3 report it later as a reset connection.
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("pki: certificate file %s: %w", certFile, err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%w: %s does not chain to the CA in %s (%v); the exchange would refuse it",
			ErrClientCertificateNotFromCA, certFile, caFile, err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}

// ErrClientCertificateNotFromCA is returned by ClientTLSConfig when the
// client certificate was not issued by the CA the client trusts: another
// exchange's, expired, or not a client certificate.
var ErrClientCertificateNotFromCA = errors.New("pki: client certificate not issued by the exchange's CA")

// loadKeyPair reads a PEM certificate and private key and checks that they
// belong together, naming the offending file on error.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: reading certificate: %w", err)
	}
	if _, err := parseCertChainPEM(certPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: certificate file %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: reading key: %w", err)
	}
	if _, err := parsePrivateKeyPEM(keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: key file %s: %w", keyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: certificate file %s and key file %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// loadCertPool reads a file of one or more PEM certificates into a pool.
func loadCertPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("pki: reading CA certificates: %w", err)
	}
	certs, err := parseCertChainPEM(data)
	if err != nil {
		return nil, fmt.Errorf("pki: CA file %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parseCertChainPEM parses one or more PEM "CERTIFICATE" blocks; any other
// block type, or none at all, is an error.
func parseCertChainPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			break
		}
		data = rest
		if block.Type != pemTypeCertificate {
			return nil, fmt.Errorf("PEM block %d is %q, want %q", len(certs)+1, block.Type, pemTypeCertificate)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: parsing certificate: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}
