package server

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// auditLine is what the tests compare of an entry: who, with which
// certificate, which method, about what.
func auditLine(e *exchangev1.AuditEntry) string {
	return fmt.Sprintf("%s [%s] %s %s", e.GetActor(), e.GetActorCertificate(), shortMethod(e.GetMethod()), e.GetResourceName())
}

// auditLines lists c's audit view, in chain order.
func auditLines(t *testing.T, c as) []string {
	t.Helper()
	var out []string
	for _, e := range allAuditEntries(t, c, 1000) {
		out = append(out, auditLine(e))
	}
	return out
}

// TestCertificatesAndKeyChangesShowInTheAgencysOwnAuditView: a
// certificate the secretariat issues for ilo, one recorded for ilo as
// `exchanged certs record` and start-up record them (actor "exchange"), a
// revocation of ilo's certificate and ilo's key change each appear in
// ilo's own audit view in the next call, with the serial of the
// certificate that made the change (none for the exchange's own), and in
// no other agency's view.
func TestCertificatesAndKeyChangesShowInTheAgencysOwnAuditView(t *testing.T) {
	x, sec, ilo, _, unicef := threeAgencies(t)
	ctx := context.Background()

	issued, err := sec.certs.IssueCertificate(ctx, &exchangev1.IssueCertificateRequest{Subject: "agencies/ilo", CsrDer: newCSR(t, pki.Agency("ilo"))})
	if err != nil {
		t.Fatal(err)
	}
	issuedLine := fmt.Sprintf("secretariat [%s] CertificateService/IssueCertificate %s", sec.serial, issued.GetCertificate().GetName())
	if got := auditLines(t, ilo); !slices.Contains(got, issuedLine) {
		t.Fatalf("ilo's audit view lacks the certificate issued for it:\nwant %s\nin %q", issuedLine, got)
	}

	certFile, _, offline := x.unrecordedCertFor(pki.Agency("ilo"))
	x.record(certFile) // as `exchanged certs record` records a certificate signed offline
	recordedLine := fmt.Sprintf("exchange [] test/record certificates/%s", offline)

	if _, err := sec.certs.RevokeCertificate(ctx, &exchangev1.RevokeCertificateRequest{Name: "certificates/" + offline, Reason: "not ours"}); err != nil {
		t.Fatal(err)
	}
	revokedLine := fmt.Sprintf("secretariat [%s] CertificateService/RevokeCertificate certificates/%s", sec.serial, offline)

	if _, err := setKey(ilo, newRecipient(t).String()); err != nil {
		t.Fatal(err)
	}
	keyLine := fmt.Sprintf("agencies/ilo [%s] DirectoryService/SetAgencyEncryptionKey agencies/ilo", ilo.serial)

	// The certificate ilo connects with was recorded by the harness as the
	// exchange records certificates, so its entry is there too.
	ownLine := fmt.Sprintf("exchange [] test/record certificates/%s", ilo.serial)
	got := auditLines(t, ilo)
	for _, want := range []string{ownLine, issuedLine, recordedLine, revokedLine, keyLine} {
		if !slices.Contains(got, want) {
			t.Errorf("ilo's audit view lacks\n%s\nin %q", want, got)
		}
	}
	for _, line := range auditLines(t, unicef) {
		for _, mine := range []string{ownLine, issuedLine, recordedLine, revokedLine, keyLine} {
			if line == mine {
				t.Errorf("unicef sees ilo's entry %s", line)
			}
		}
	}
	// The secretariat sees them all, with the chain positions.
	all := auditLines(t, sec)
	for _, want := range []string{issuedLine, recordedLine, revokedLine, keyLine} {
		if !slices.Contains(all, want) {
			t.Errorf("the secretariat's view lacks %s", want)
		}
	}
}

// TestEveryCallsAuditEntryNamesItsCertificate: entries of calls carry the
// serial of the certificate the call presented, which tells apart two
// certificates of the same agency; entries the exchange makes itself carry
// none.
func TestEveryCallsAuditEntryNamesItsCertificate(t *testing.T) {
	x, sec, ilo, _, _ := threeAgencies(t)
	second := x.asIssuedAgency(sec, "ilo")
	second.agencyID = "ilo"
	if _, err := setKey(ilo, newRecipient(t).String()); err != nil {
		t.Fatal(err)
	}
	if _, err := setKey(second, newRecipient(t).String()); err != nil {
		t.Fatal(err)
	}
	serials := map[string]string{"secretariat": sec.serial}
	var keyChanges []string
	for _, e := range allAuditEntries(t, sec, 1000) {
		switch {
		case e.GetActor() == "exchange":
			if e.GetActorCertificate() != "" {
				t.Errorf("an entry of the exchange names certificate %s: %s", e.GetActorCertificate(), auditLine(e))
			}
		case e.GetActor() == "secretariat":
			if e.GetActorCertificate() != serials["secretariat"] {
				t.Errorf("a secretariat entry names certificate %q, want %s: %s", e.GetActorCertificate(), sec.serial, auditLine(e))
			}
		default:
			keyChanges = append(keyChanges, e.GetActorCertificate())
		}
	}
	if want := []string{ilo.serial, second.serial}; !slices.Equal(keyChanges, want) || ilo.serial == second.serial {
		t.Errorf("the key changes name certificates %v, want %v", keyChanges, want)
	}
}
