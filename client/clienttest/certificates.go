package clienttest

import (
	"cmp"
	"context"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// subjectPattern is the syntax of a certificate subject.
var subjectPattern = regexp.MustCompile(`^(agencies/[a-z][a-z0-9-]{1,38}[a-z0-9]|secretariat)$`)

// certificateService is the fake CertificateService. It signs with the
// test PKI, so the certificates it issues work against the fake server.
type certificateService struct {
	exchangev1.UnimplementedCertificateServiceServer
	state *state
}

func (c *certificateService) IssueCertificate(_ context.Context, req *exchangev1.IssueCertificateRequest) (*exchangev1.IssueCertificateResponse, error) {
	st := c.state
	st.mu.Lock()
	defer st.mu.Unlock()
	const method = "IssueCertificate"
	if resp, ok := st.replay(method, req.RequestId); ok {
		return resp.(*exchangev1.IssueCertificateResponse), nil
	}
	if !subjectPattern.MatchString(req.Subject) {
		return nil, invalid("invalid IssueCertificateRequest", violation("subject", "value does not match regex pattern"))
	}
	if req.Subject != "secretariat" {
		if _, ok := st.agencies[req.Subject]; !ok {
			return nil, notFound(req.Subject)
		}
	}
	days := cmp.Or(req.ValidityDays, 365)
	identity := req.Subject
	if id, ok := strings.CutPrefix(req.Subject, "agencies/"); ok {
		identity = "agency/" + id
	}
	certPEM, cert, err := st.pki.SignCSR(req.CsrDer, identity, time.Duration(days)*24*time.Hour)
	if err != nil {
		return nil, invalid("invalid IssueCertificateRequest", violation("csr_der", err.Error()))
	}
	created := &exchangev1.Certificate{
		Name:           "certificates/" + cert.SerialNumber.Text(16),
		Subject:        req.Subject,
		NotBefore:      timestamppb.New(cert.NotBefore),
		NotAfter:       timestamppb.New(cert.NotAfter),
		State:          exchangev1.CertificateState_CERTIFICATE_STATE_ACTIVE,
		CertificatePem: string(certPEM),
		Issuer:         "secretariat",
		CreateTime:     now(),
	}
	st.certificates[created.Name] = proto.CloneOf(created)
	resp := &exchangev1.IssueCertificateResponse{Certificate: created, CaCertificatePem: string(st.pki.CAPEM())}
	st.remember(method, req.RequestId, resp)
	return resp, nil
}

func (c *certificateService) GetCertificate(_ context.Context, req *exchangev1.GetCertificateRequest) (*exchangev1.GetCertificateResponse, error) {
	st := c.state
	st.mu.Lock()
	defer st.mu.Unlock()
	cert, ok := st.certificates[req.Name]
	if !ok {
		return nil, notFound(req.Name)
	}
	return &exchangev1.GetCertificateResponse{Certificate: proto.CloneOf(cert)}, nil
}

func (c *certificateService) ListCertificates(_ context.Context, req *exchangev1.ListCertificatesRequest) (*exchangev1.ListCertificatesResponse, error) {
	st := c.state
	st.mu.Lock()
	defer st.mu.Unlock()
	var match []*exchangev1.Certificate
	for _, cert := range sortedValues(st.certificates, func(a, b *exchangev1.Certificate) int { return cmp.Compare(a.Name, b.Name) }) {
		if req.Subject != "" && cert.Subject != req.Subject {
			continue
		}
		match = append(match, cert)
	}
	items, next, err := page(st, match, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListCertificatesResponse{Certificates: items, NextPageToken: next}, nil
}

func (c *certificateService) RevokeCertificate(_ context.Context, req *exchangev1.RevokeCertificateRequest) (*exchangev1.RevokeCertificateResponse, error) {
	st := c.state
	st.mu.Lock()
	defer st.mu.Unlock()
	cert, ok := st.certificates[req.Name]
	if !ok {
		return nil, notFound(req.Name)
	}
	if req.Reason == "" {
		return nil, invalid("invalid RevokeCertificateRequest", violation("reason", "value length must be at least 1 characters"))
	}
	if cert.State == exchangev1.CertificateState_CERTIFICATE_STATE_REVOKED {
		return nil, statusError(codes.FailedPrecondition, "ALREADY_REVOKED", req.Name+" is already revoked")
	}
	cert.State = exchangev1.CertificateState_CERTIFICATE_STATE_REVOKED
	cert.RevokeTime = now()
	cert.RevokeReason = req.Reason
	return &exchangev1.RevokeCertificateResponse{Certificate: proto.CloneOf(cert)}, nil
}

// timeOf returns midnight UTC of d.
func timeOf(d *exchangev1.CalendarDate) time.Time {
	return time.Date(int(d.GetYear()), time.Month(d.GetMonth()), int(d.GetDay()), 0, 0, 0, 0, time.UTC)
}
