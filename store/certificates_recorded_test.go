package store

import (
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestLookupCallerTellsRecordedCertificates checks that LookupCaller says
// whether the store holds a serial, and that recording a certificate
// retires a remembered "not recorded" answer at once.
func TestLookupCallerTellsRecordedCertificates(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "iom", nil)
	lookup := func(serial, agency string) Caller {
		t.Helper()
		c, err := s.LookupCaller(ctx, serial, agency)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	if c := lookup("0a", "iom"); c.CertificateRecorded || c.CertificateRevoked || c.Agency.GetName() != "agencies/iom" {
		t.Fatalf("an unknown serial = %+v, want not recorded, not revoked, the agency", c)
	}
	// Asked twice: the second answer comes from the cache.
	if c := lookup("0a", "iom"); c.CertificateRecorded {
		t.Fatal("an unknown serial is recorded on the second lookup")
	}
	if _, err := s.RecordCertificate(ctx, secretariat("IssueCertificate"), "0a", &exchangev1.Certificate{Subject: "agencies/iom"}); err != nil {
		t.Fatal(err)
	}
	if c := lookup("0a", "iom"); !c.CertificateRecorded || c.CertificateRevoked {
		t.Fatalf("after RecordCertificate, LookupCaller = %+v: the cached answer was not retired", c)
	}

	op := Op{Actor: "exchange", Method: "exchanged/certs-record"}
	in := &exchangev1.Certificate{Subject: "secretariat", CertificatePem: "PEM of 0b", Issuer: "exchange"}
	if c := lookup("0b", ""); c.CertificateRecorded {
		t.Fatal("0b is recorded before it was")
	}
	first, err := s.RecordSignedCertificate(ctx, op, "0b", in)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetName() != "certificates/0b" || first.GetState() != exchangev1.CertificateState_CERTIFICATE_STATE_ACTIVE {
		t.Fatalf("recorded %v", first)
	}
	if c := lookup("0b", ""); !c.CertificateRecorded {
		t.Fatal("after RecordSignedCertificate, LookupCaller says 0b is not recorded")
	}
}

// TestRecordSignedCertificateIsIdempotentBySerial checks that recording the
// same certificate again changes nothing (not even a revocation), that
// another certificate under a recorded serial is refused, and that an
// agency subject need not be in the directory yet.
func TestRecordSignedCertificateIsIdempotentBySerial(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	op := Op{Actor: "exchange", Method: "exchanged/certs-record"}
	in := &exchangev1.Certificate{Subject: "agencies/later", CertificatePem: "PEM of 0c", Issuer: "exchange"}
	first, err := s.RecordSignedCertificate(ctx, op, "0c", in)
	if err != nil {
		t.Fatalf("an agency not yet in the directory: %v", err)
	}
	if c, err := s.LookupCaller(ctx, "0c", "later"); err != nil || !c.CertificateRecorded || c.Agency != nil {
		t.Fatalf("LookupCaller = %+v, %v; want recorded, no agency", c, err)
	}

	before := countsOf(t, s)
	again, err := s.RecordSignedCertificate(ctx, op, "0c", in)
	if err != nil || !proto.Equal(again, first) {
		t.Fatalf("recording again = %v, %v; want %v", again, err, first)
	}
	if after := countsOf(t, s); after != before {
		t.Errorf("recording the same certificate again changed the counts from %v to %v", before, after)
	}

	revoked, err := s.RevokeCertificate(ctx, secretariat("RevokeCertificate"), "certificates/0c", "key lost")
	if err != nil {
		t.Fatal(err)
	}
	again, err = s.RecordSignedCertificate(ctx, op, "0c", in)
	if err != nil || !proto.Equal(again, revoked) {
		t.Fatalf("recording a revoked certificate again = %v, %v; want it still revoked: %v", again, err, revoked)
	}
	if c, _ := s.LookupCaller(ctx, "0c", "later"); !c.CertificateRevoked {
		t.Fatal("recording a revoked certificate again made it usable")
	}

	before = countsOf(t, s)
	other := proto.Clone(in).(*exchangev1.Certificate)
	other.CertificatePem = "another PEM"
	_, err = s.RecordSignedCertificate(ctx, op, "0c", other)
	if e := wantKind(t, err, KindAlreadyExists); e.Resource != "certificates/0c" {
		t.Errorf("resource %q", e.Resource)
	}
	if after := countsOf(t, s); after != before {
		t.Errorf("a refused record changed the counts from %v to %v", before, after)
	}
	checkIndexes(t, s)
}
