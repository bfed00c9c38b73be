package client

import (
	"context"
	"iter"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// CertificateClient issues, reads and revokes the client certificates
// through which agencies and the secretariat identify themselves to the
// exchange.
type CertificateClient struct {
	rpc exchangev1.CertificateServiceClient
}

// Issue makes a fresh private key and certificate signing request locally
// and asks the exchange to sign it for subject ("agencies/ilo" or
// SecretariatSubject), valid for validityDays (0 for the server's default,
// 365). The private key never leaves the caller. It returns the certificate
// and key in PEM, the exchange CA's certificate in PEM (to verify the server
// with), and the certificate resource. The call carries a request id and is
// retried on UNAVAILABLE, so it never issues twice. Secretariat only.
func (c *CertificateClient) Issue(ctx context.Context, subject string, validityDays int32, opts ...CreateOption) (certPEM, keyPEM, caPEM []byte, cert *exchangev1.Certificate, err error) {
	id, err := SubjectIdentity(subject)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	s, err := newCreateSettings("IssueCertificate", false, opts)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	keyPEM, csrDER, err := pki.NewKeyAndCSR(id)
	if err != nil {
		return nil, nil, nil, nil, status.Errorf(codes.Internal, "client: making key and certificate request: %v", err)
	}
	resp, err := c.rpc.IssueCertificate(ctx, &exchangev1.IssueCertificateRequest{
		Subject:      subject,
		CsrDer:       csrDER,
		ValidityDays: validityDays,
		RequestId:    s.requestID,
	})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cert = resp.GetCertificate()
	return []byte(cert.GetCertificatePem()), keyPEM, []byte(resp.GetCaCertificatePem()), cert, nil
}

// Get returns the certificate with the given name, "certificates/{serial}"
// (CertificateName builds it). The secretariat sees every certificate; an
// agency its own.
func (c *CertificateClient) Get(ctx context.Context, name string) (*exchangev1.Certificate, error) {
	resp, err := c.rpc.GetCertificate(ctx, &exchangev1.GetCertificateRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetCertificate(), nil
}

// Certificates iterates over the certificates of subject ("agencies/ilo" or
// SecretariatSubject), or over all the caller may see when subject is "", in
// name order. On error the iterator yields the error once and stops.
func (c *CertificateClient) Certificates(ctx context.Context, subject string) iter.Seq2[*exchangev1.Certificate, error] {
	req := &exchangev1.ListCertificatesRequest{Subject: subject}
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Certificate, string, error) {
		req.PageToken = token
		resp, err := c.rpc.ListCertificates(ctx, req)
		return resp.GetCertificates(), resp.GetNextPageToken(), err
	})
}

// Revoke revokes the certificate with the given name for reason (for example
// "key compromised" or "rotated") and returns it as stored. The exchange
// refuses it from the next call on. The secretariat may revoke any
// certificate, an agency its own. Not retried.
func (c *CertificateClient) Revoke(ctx context.Context, name, reason string) (*exchangev1.Certificate, error) {
	resp, err := c.rpc.RevokeCertificate(ctx, &exchangev1.RevokeCertificateRequest{Name: name, Reason: reason})
	if err != nil {
		return nil, err
	}
	return resp.GetCertificate(), nil
}

// SubjectIdentity returns the identity a certificate subject names:
// "agencies/{id}" an agency, SecretariatSubject the secretariat. Anything
// else is an INVALID_ARGUMENT status error.
func SubjectIdentity(subject string) (pki.Identity, error) {
	if subject == SecretariatSubject {
		return pki.Secretariat(), nil
	}
	if id, ok := strings.CutPrefix(subject, "agencies/"); ok && pki.ValidAgencyID(id) {
		return pki.Agency(id), nil
	}
	return pki.Identity{}, status.Errorf(codes.InvalidArgument,
		"client: certificate subject %q: want agencies/{agency id} or %s", subject, SecretariatSubject)
}
