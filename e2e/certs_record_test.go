package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestACertificateSignedOfflineIsAcceptedOnlyOnceRecorded signs an
// agency certificate with the CA key offline, as an operator with the key
// (or a thief of it) could: exchanged refuses it and `certs revoke` cannot
// find it; once `exchanged certs record` has recorded it (server stopped),
// it is accepted, listed, and refused again after it is revoked.
func TestACertificateSignedOfflineIsAcceptedOnlyOnceRecorded(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	sec.ok(t, "agencies", "create", "ilo", "--name", "International Labour Organization", "--kind", "un-agency")

	caFile := filepath.Join(pkiDir(dir), "ca.crt")
	ca, err := pki.LoadCA(caFile, filepath.Join(pkiDir(dir), "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueClient(pki.Agency("ilo"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	serial := pki.SerialString(cert.SerialNumber)
	d := t.TempDir()
	certFile := writeFile(t, d, "ilo.crt", certPEM)
	forged := func(addr string) session {
		return newSession(d, "EXCHANGE_SERVER="+addr, "EXCHANGE_CA="+caFile,
			"EXCHANGE_CERT="+certFile, "EXCHANGE_KEY="+writeFile(t, d, "ilo.key", keyPEM))
	}
	forged(srv.addr).fails(t, 4, []string{"UNAUTHENTICATED", "certificate " + serial + " was not issued by this exchange"}, "agencies", "list")
	sec.fails(t, 3, []string{"NOT_FOUND"}, "certs", "revoke", serial, "--reason", "forged")

	// Recording needs the database: it refuses while exchanged runs.
	record := newSession(dir)
	r := record.exec(t, "exchanged", "certs", "record", certFile)
	if r.code == 0 || !strings.Contains(r.stderr, "stop exchanged first") {
		t.Errorf("certs record while exchanged runs: want a refusal that says to stop it\n%s", r)
	}
	srv.stop(t)
	r = record.exec(t, "exchanged", "certs", "record", certFile)
	if r.code != 0 || !strings.Contains(r.stdout, "recorded certificates/"+serial+" for agencies/ilo") {
		t.Fatalf("certs record: want it recorded\n%s", r)
	}

	srv = startServer(t, dir)
	sec = newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	forged(srv.addr).ok(t, "agencies", "list")
	listed := jsonList(t, sec, func() *exchangev1.Certificate { return &exchangev1.Certificate{} }, "certs", "list", "--agency", "ilo")
	if len(listed) != 1 || listed[0].GetName() != "certificates/"+serial {
		t.Errorf("certs list --agency ilo: %v, want the recorded certificate", listed)
	}
	sec.ok(t, "certs", "revoke", serial, "--reason", "signed outside the API")
	forged(srv.addr).fails(t, 4, []string{"revoked"}, "agencies", "list")
}
