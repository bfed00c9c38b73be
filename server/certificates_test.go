package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestCertificatesAreIssuedForTheSubjectAndSeenOnlyByTheirHolder(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")

	// A CSR that claims to be the secretariat yields an ilo certificate.
	resp, err := sec.certs.IssueCertificate(ctx, &exchangev1.IssueCertificateRequest{Subject: "agencies/ilo", CsrDer: newCSR(t, pki.Secretariat()), RequestId: "issue-1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM([]byte(resp.GetCertificate().GetCertificatePem()))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := pki.IdentityFromCert(cert); err != nil || id != pki.Agency("ilo") {
		t.Fatalf("issued identity %v %v", id, err)
	}
	if resp.GetCaCertificatePem() == "" {
		t.Error("no CA certificate returned")
	}
	again, err := sec.certs.IssueCertificate(ctx, &exchangev1.IssueCertificateRequest{Subject: "agencies/ilo", CsrDer: newCSR(t, pki.Agency("ilo")), RequestId: "issue-1"})
	if err != nil || again.GetCertificate().GetName() != resp.GetCertificate().GetName() {
		t.Fatalf("retry issued another certificate: %v %v", again.GetCertificate().GetName(), err)
	}

	_, err = sec.certs.IssueCertificate(ctx, &exchangev1.IssueCertificateRequest{Subject: "agencies/ghost", CsrDer: newCSR(t, pki.Agency("ghost"))})
	st := wantCode(t, err, codes.InvalidArgument)
	if f := violatedFields(st); len(f) != 1 || f[0] != "subject" {
		t.Errorf("violations %v", f)
	}
	_, err = sec.certs.IssueCertificate(ctx, &exchangev1.IssueCertificateRequest{Subject: "agencies/ilo", CsrDer: []byte("not a csr")})
	st = wantCode(t, err, codes.InvalidArgument)
	if f := violatedFields(st); len(f) != 1 || f[0] != "csr_der" {
		t.Errorf("violations %v", f)
	}

	iom := x.asIssuedAgency(sec, "iom")
	_, err = iom.certs.GetCertificate(ctx, &exchangev1.GetCertificateRequest{Name: resp.GetCertificate().GetName()})
	st = wantCode(t, err, codes.NotFound)
	_, missing := iom.certs.GetCertificate(ctx, &exchangev1.GetCertificateRequest{Name: "certificates/abc"})
	hidden := strings.ReplaceAll(err.Error(), resp.GetCertificate().GetName(), "certificates/abc")
	if hidden != missing.Error() || reason(st) != reason(wantCode(t, missing, codes.NotFound)) {
		t.Errorf("another agency's certificate answers unlike a missing one: %q vs %q", hidden, missing)
	}
	_, err = iom.certs.RevokeCertificate(ctx, &exchangev1.RevokeCertificateRequest{Name: resp.GetCertificate().GetName(), Reason: "mischief"})
	wantCode(t, err, codes.NotFound)

	list, err := iom.certs.ListCertificates(ctx, &exchangev1.ListCertificatesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.GetCertificates() {
		if c.GetSubject() != "agencies/iom" {
			t.Fatalf("iom sees %s's certificate", c.GetSubject())
		}
	}
	if len(list.GetCertificates()) != 1 {
		t.Fatalf("iom sees %d certificates, want 1", len(list.GetCertificates()))
	}
	all, err := sec.certs.ListCertificates(ctx, &exchangev1.ListCertificatesRequest{})
	if err != nil || len(all.GetCertificates()) != 3 { // the two agencies' and its own
		t.Fatalf("secretariat sees %d certificates (%v), want 3", len(all.GetCertificates()), err)
	}

	// An agency may revoke its own certificate; twice is refused.
	if _, err := iom.certs.RevokeCertificate(ctx, &exchangev1.RevokeCertificateRequest{Name: "certificates/" + iom.serial, Reason: "rotated"}); err != nil {
		t.Fatal(err)
	}
	_, err = sec.certs.RevokeCertificate(ctx, &exchangev1.RevokeCertificateRequest{Name: "certificates/" + iom.serial, Reason: "again"})
	wantCode(t, err, codes.FailedPrecondition)
}
