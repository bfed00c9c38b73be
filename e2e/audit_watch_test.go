package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditWatchShowsAnAgencyItsCertificatesAndKeyChanges: with the
// binaries, ilo and unicef run `exchangectl audit watch`; the secretariat
// issues a certificate for ilo and ilo makes its key; ilo's watch prints
// both entries (with the serial of the certificate that made each) and
// unicef's prints neither.
func TestAuditWatchShowsAnAgencyItsCertificatesAndKeyChanges(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	for _, id := range []string{"ilo", "unicef"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
	}
	iloDir := filepath.Join(dir, "certs-ilo")
	ilo := agencySession(t, srv.addr, iloDir, "ilo")
	unicef := agencySession(t, srv.addr, filepath.Join(dir, "certs-unicef"), "unicef")
	iloSerial := certSerial(t, filepath.Join(iloDir, "ilo.crt"))

	iloWatch, unicefWatch := make(chan result, 1), make(chan result, 1)
	go func() { iloWatch <- ilo.ctl(t, "--timeout", "5s", "audit", "watch") }()
	go func() { unicefWatch <- unicef.ctl(t, "--timeout", "5s", "audit", "watch") }()
	time.Sleep(time.Second) // both watches have started

	sec.ok(t, "certs", "issue", "--agency", "ilo", "--out-dir", "certs-ilo-2")
	newSerial := certSerial(t, filepath.Join(dir, "certs-ilo-2", "ilo.crt"))
	ilo.ok(t, "keys", "create")

	want := []string{
		fmt.Sprintf("IssueCertificate certificates/%s", newSerial),
		fmt.Sprintf("agencies/ilo [%s] SetAgencyEncryptionKey agencies/ilo", iloSerial),
	}
	got, other := <-iloWatch, <-unicefWatch
	if got.code != 0 || other.code != 0 {
		t.Fatalf("the watches failed:\n%s\n%s", got, other)
	}
	for _, w := range want {
		if !strings.Contains(got.stdout, w) {
			t.Errorf("ilo's audit watch lacks %q:\n%s", w, got.stdout)
		}
		if strings.Contains(other.stdout, w) {
			t.Errorf("unicef's audit watch shows ilo's %q", w)
		}
	}
	if strings.TrimSpace(other.stdout) != "" {
		t.Errorf("unicef's audit watch printed entries about others:\n%s", other.stdout)
	}
}
