package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// TestAnAgencySeesItsKeysAndEveryCertificateMadeForIt follows the README's
// Keys paragraph with the binaries: ilo makes its key ring with
// `exchangectl keys create` (mode 0600, beside its certificate) and its
// public key is in the directory for every member; then every certificate
// made for ilo (issued by the secretariat, or signed offline and recorded
// with `exchanged certs record`) and ilo's key changes are in ilo's own
// `audit list` at once, with the serial of the certificate that made each
// change, and in no other agency's.
func TestAnAgencySeesItsKeysAndEveryCertificateMadeForIt(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	for _, id := range []string{"ilo", "iom"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
	}
	iloDir := filepath.Join(dir, "certs-ilo")
	ilo := agencySession(t, srv.addr, iloDir, "ilo")
	iom := agencySession(t, srv.addr, filepath.Join(dir, "certs-iom"), "iom")
	iloSerial := certSerial(t, filepath.Join(iloDir, "ilo.crt"))
	secCerts := jsonList(t, sec, func() *exchangev1.Certificate { return &exchangev1.Certificate{} }, "certs", "list", "--secretariat")
	if len(secCerts) != 1 {
		t.Fatalf("%d certificates of the secretariat, want the one exchanged made", len(secCerts))
	}
	secSerial := strings.TrimPrefix(secCerts[0].GetName(), "certificates/")

	ilo.ok(t, "keys", "create")
	ringPath := filepath.Join(iloDir, "ilo.age-keys")
	if mode := fileMode(t, ringPath); mode != 0o600 {
		t.Fatalf("key ring mode %04o, want 0600", mode)
	}
	ring, err := seal.OpenKeyRing(ringPath)
	if err != nil {
		t.Fatal(err)
	}
	var seen exchangev1.Agency
	iom.jsonOne(t, &seen, "agencies", "get", "ilo")
	if seen.GetEncryptionKey().GetRecipient() != ring.Current().Recipient().String() ||
		seen.GetEncryptionKey().GetFingerprint() != ring.Current().Recipient().Fingerprint().String() {
		t.Fatalf("iom reads ilo's key as %v, want the ring's current key %s", seen.GetEncryptionKey(), ring.Current().Recipient().Fingerprint())
	}
	ilo.ok(t, "keys", "rotate")

	// A certificate for ilo signed with the CA key offline, then recorded.
	ca, err := pki.LoadCA(filepath.Join(pkiDir(dir), "ca.crt"), filepath.Join(pkiDir(dir), "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.IssueClient(pki.Agency("ilo"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	offline := writeFile(t, t.TempDir(), "offline.crt", certPEM)
	srv.stop(t)
	if r := newSession(dir).exec(t, "exchanged", "certs", "record", offline); r.code != 0 {
		t.Fatalf("certs record:\n%s", r)
	}
	srv = startServer(t, dir)
	ilo = agencySession(t, srv.addr, iloDir, "ilo")
	iom = agencySession(t, srv.addr, filepath.Join(dir, "certs-iom"), "iom")

	lines := func(s session) []string {
		var out []string
		for _, e := range jsonList(t, s, func() *exchangev1.AuditEntry { return &exchangev1.AuditEntry{} }, "audit", "list") {
			method := e.GetMethod()[strings.LastIndex(e.GetMethod(), "/")+1:]
			out = append(out, fmt.Sprintf("%s [%s] %s %s", e.GetActor(), e.GetActorCertificate(), method, e.GetResourceName()))
		}
		return out
	}
	want := []string{
		fmt.Sprintf("secretariat [%s] IssueCertificate certificates/%s", secSerial, iloSerial),
		fmt.Sprintf("agencies/ilo [%s] SetAgencyEncryptionKey agencies/ilo", iloSerial), // create
		fmt.Sprintf("agencies/ilo [%s] SetAgencyEncryptionKey agencies/ilo", iloSerial), // rotate
		fmt.Sprintf("exchange [] certs-record certificates/%s", certSerial(t, offline)),
	}
	got := lines(ilo)
	var mine []string
	for _, l := range got {
		if slices.Contains(want, l) {
			mine = append(mine, l)
		}
	}
	if !slices.Equal(mine, want) {
		t.Errorf("ilo's audit view\n%s\nwant, in this order,\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range lines(iom) {
		if strings.Contains(l, "agencies/ilo") || slices.Contains(want, l) {
			t.Errorf("iom sees ilo's entry %s", l)
		}
	}
}

// certSerial returns the serial of the certificate in a PEM file.
func certSerial(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return pki.SerialString(cert.SerialNumber)
}
