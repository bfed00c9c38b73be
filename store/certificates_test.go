package store

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestCertificates(t *testing.T) {
	s, clk := openTest(t)
	ctx := t.Context()
	op := Op{Actor: "secretariat", Method: "/alltogether.exchange.v1.CertificateService/IssueCertificate", RequestID: "req-1"}
	mustCreateAgency(t, s, "iom", nil)
	mustCreateAgency(t, s, "ilo", nil)

	_, err := s.RecordCertificate(ctx, op, "0a", &exchangev1.Certificate{Subject: "agencies/nobody"})
	if e := wantKind(t, err, KindNotFound); e.Field != "subject" || e.Resource != "agencies/nobody" {
		t.Errorf("error field, resource = %q, %q", e.Field, e.Resource)
	}
	if _, ok, _ := s.Replayed(ctx, op); ok {
		t.Error("a refused RecordCertificate recorded its request id")
	}

	in := &exchangev1.Certificate{Subject: "agencies/iom", Issuer: "exchange CA", State: exchangev1.CertificateState_CERTIFICATE_STATE_REVOKED}
	c1, err := s.RecordCertificate(ctx, op, "0a", in)
	if err != nil {
		t.Fatal(err)
	}
	if c1.GetName() != "certificates/0a" || c1.GetState() != exchangev1.CertificateState_CERTIFICATE_STATE_ACTIVE || !c1.GetCreateTime().AsTime().Equal(clk.now()) {
		t.Errorf("recorded certificate = %v", c1)
	}
	if again, err := s.RecordCertificate(ctx, op, "ff", in); err != nil || !proto.Equal(again, c1) {
		t.Errorf("retry of RecordCertificate = %v, %v; want %v", again, err, c1)
	}
	if name, ok, err := s.Replayed(ctx, op); err != nil || !ok || name != "certificates/0a" {
		t.Errorf("Replayed = %q, %v, %v", name, ok, err)
	}
	op.RequestID = ""
	if _, err := s.RecordCertificate(ctx, op, "0a", in); KindOf(err) != KindAlreadyExists {
		t.Errorf("duplicate serial = %v, want already exists", err)
	}
	mustRecord := func(serial, subject string) {
		t.Helper()
		if _, err := s.RecordCertificate(ctx, op, serial, &exchangev1.Certificate{Subject: subject}); err != nil {
			t.Fatal(err)
		}
	}
	mustRecord("0b", "agencies/iom")
	mustRecord("0c", "agencies/ilo")
	mustRecord("01", "secretariat") // not an agency: no directory check

	caller, err := s.LookupCaller(ctx, "0a", "iom")
	if err != nil || caller.CertificateRevoked || caller.Agency.GetName() != "agencies/iom" {
		t.Errorf("LookupCaller before revocation = %+v, %v", caller, err)
	}

	revokedAt := clk.advance(time.Hour)
	rev, err := s.RevokeCertificate(ctx, secretariat("RevokeCertificate"), "certificates/0a", "key compromise")
	if err != nil {
		t.Fatal(err)
	}
	if rev.GetState() != exchangev1.CertificateState_CERTIFICATE_STATE_REVOKED || !rev.GetRevokeTime().AsTime().Equal(revokedAt) || rev.GetRevokeReason() != "key compromise" {
		t.Errorf("revoked certificate = %v", rev)
	}
	if got, _ := s.GetCertificate(ctx, "certificates/0a"); !proto.Equal(got, rev) {
		t.Errorf("GetCertificate = %v, want %v", got, rev)
	}

	clk.advance(time.Hour)
	before := countsOf(t, s)
	_, err = s.RevokeCertificate(ctx, secretariat("RevokeCertificate"), "certificates/0a", "again")
	wantKind(t, err, KindFailedPrecondition)
	if got, _ := s.GetCertificate(ctx, "certificates/0a"); !proto.Equal(got, rev) {
		t.Errorf("a second revocation changed the certificate to %v", got)
	}
	if after := countsOf(t, s); after != before {
		t.Errorf("a refused revocation changed the counts from %v to %v", before, after)
	}
	if _, err := s.RevokeCertificate(ctx, secretariat("RevokeCertificate"), "certificates/99", "x"); KindOf(err) != KindNotFound {
		t.Errorf("revoking an unknown certificate = %v, want not found", err)
	}

	lookups := []struct {
		serial, agency string
		revoked        bool
		wantAgency     string
	}{
		{"0a", "iom", true, "agencies/iom"},
		{"0b", "iom", false, "agencies/iom"},
		{"0c", "ilo", false, "agencies/ilo"},
		{"01", "", false, ""},
		{"99", "nobody", false, ""},
	}
	for _, l := range lookups {
		c, err := s.LookupCaller(ctx, l.serial, l.agency)
		if err != nil || c.CertificateRevoked != l.revoked || c.Agency.GetName() != l.wantAgency {
			t.Errorf("LookupCaller(%q, %q) = {%v, %q}, %v; want {%v, %q}", l.serial, l.agency, c.CertificateRevoked, c.Agency.GetName(), err, l.revoked, l.wantAgency)
		}
	}

	bySubject := map[string][]string{
		"":             {"certificates/01", "certificates/0a", "certificates/0b", "certificates/0c"},
		"agencies/iom": {"certificates/0a", "certificates/0b"},
		"agencies/ilo": {"certificates/0c"},
		"agencies/il":  nil,
		"secretariat":  {"certificates/01"},
	}
	for subject, want := range bySubject {
		got := names(listAll(t, 1, func(p Page) ([]*exchangev1.Certificate, string, error) { return s.ListCertificates(ctx, subject, p) }))
		if !slices.Equal(got, want) {
			t.Errorf("ListCertificates(%q) = %v, want %v", subject, got, want)
		}
	}
	checkIndexes(t, s)
}
