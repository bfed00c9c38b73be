package server

import (
	"context"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// defaultCertificateDays is the validity of a certificate when the request
// gives none.
const defaultCertificateDays = 365

// certificateService implements CertificateService.
type certificateService struct {
	exchangev1.UnimplementedCertificateServiceServer
	store *store.Store
	ca    *pki.CA
}

// identityOfSubject turns "agencies/{id}" or "secretariat" into an
// identity.
func identityOfSubject(subject string) pki.Identity {
	if subject == "secretariat" {
		return pki.Secretariat()
	}
	return pki.Agency(strings.TrimPrefix(subject, store.AgencyPrefix))
}

// IssueCertificate signs a CSR for the subject named in the request,
// ignoring every name in the CSR. A retry with the same request_id returns
// the first certificate without signing again.
func (c *certificateService) IssueCertificate(ctx context.Context, req *exchangev1.IssueCertificateRequest) (*exchangev1.IssueCertificateResponse, error) {
	if c.ca == nil {
		return nil, &store.Error{Kind: store.KindFailedPrecondition, Message: "this exchanged runs without its CA key, so it cannot issue certificates"}
	}
	op := opFor(ctx, req.GetRequestId())
	if name, ok, err := c.store.Replayed(ctx, op); err != nil {
		return nil, err
	} else if ok {
		cert, err := c.store.GetCertificate(ctx, name)
		if err != nil {
			return nil, err
		}
		return &exchangev1.IssueCertificateResponse{Certificate: cert, CaCertificatePem: string(c.ca.CertPEM)}, nil
	}
	if strings.HasPrefix(req.GetSubject(), store.AgencyPrefix) {
		if _, err := c.store.GetAgency(ctx, req.GetSubject()); err != nil {
			if store.KindOf(err) == store.KindNotFound {
				return nil, invalidField("subject", req.GetSubject()+" is not in the directory; create the agency first")
			}
			return nil, err
		}
	}
	days := req.GetValidityDays()
	if days == 0 {
		days = defaultCertificateDays
	}
	cert, certPEM, err := c.ca.SignCSR(req.GetCsrDer(), identityOfSubject(req.GetSubject()), time.Duration(days)*24*time.Hour)
	if err != nil {
		return nil, invalidField("csr_der", err.Error())
	}
	serial := pki.SerialString(cert.SerialNumber)
	recorded, err := c.store.RecordCertificate(ctx, op, serial, &exchangev1.Certificate{
		Subject:        req.GetSubject(),
		NotBefore:      timestamppb.New(cert.NotBefore),
		NotAfter:       timestamppb.New(cert.NotAfter),
		CertificatePem: string(certPEM),
		Issuer:         CallerFrom(ctx).Actor(),
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.IssueCertificateResponse{Certificate: recorded, CaCertificatePem: string(c.ca.CertPEM)}, nil
}

// visible reports whether the caller may see a certificate: the
// secretariat sees all, an agency its own.
func visibleCertificate(caller Caller, cert *exchangev1.Certificate) bool {
	return caller.IsSecretariat() || cert.GetSubject() == caller.AgencyName()
}

// withState reports EXPIRED for an active certificate past its end.
func withState(cert *exchangev1.Certificate, now time.Time) *exchangev1.Certificate {
	if cert.GetState() == exchangev1.CertificateState_CERTIFICATE_STATE_ACTIVE && cert.GetNotAfter().AsTime().Before(now) {
		cert.State = exchangev1.CertificateState_CERTIFICATE_STATE_EXPIRED
	}
	return cert
}

// GetCertificate returns one certificate the caller may see; others are
// NOT_FOUND, exactly like missing ones.
func (c *certificateService) GetCertificate(ctx context.Context, req *exchangev1.GetCertificateRequest) (*exchangev1.GetCertificateResponse, error) {
	cert, err := c.store.GetCertificate(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	if !visibleCertificate(CallerFrom(ctx), cert) {
		return nil, notFound(req.GetName())
	}
	return &exchangev1.GetCertificateResponse{Certificate: withState(cert, time.Now())}, nil
}

// ListCertificates lists the certificates the caller may see.
func (c *certificateService) ListCertificates(ctx context.Context, req *exchangev1.ListCertificatesRequest) (*exchangev1.ListCertificatesResponse, error) {
	caller := CallerFrom(ctx)
	subject := req.GetSubject()
	if !caller.IsSecretariat() {
		if subject != "" && subject != caller.AgencyName() {
			return &exchangev1.ListCertificatesResponse{}, nil
		}
		subject = caller.AgencyName()
	}
	items, next, err := c.store.ListCertificates(ctx, subject, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, cert := range items {
		withState(cert, now)
	}
	return &exchangev1.ListCertificatesResponse{Certificates: items, NextPageToken: next}, nil
}

// RevokeCertificate revokes a certificate: the secretariat any, an agency
// its own. The revocation takes effect at the certificate's next call.
func (c *certificateService) RevokeCertificate(ctx context.Context, req *exchangev1.RevokeCertificateRequest) (*exchangev1.RevokeCertificateResponse, error) {
	cert, err := c.store.GetCertificate(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	if !visibleCertificate(CallerFrom(ctx), cert) {
		return nil, notFound(req.GetName())
	}
	revoked, err := c.store.RevokeCertificate(ctx, opFor(ctx, ""), req.GetName(), req.GetReason())
	if err != nil {
		return nil, err
	}
	return &exchangev1.RevokeCertificateResponse{Certificate: revoked}, nil
}
