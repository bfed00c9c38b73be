package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/pki"
	"github.com/alltogether/exchange/store"
)

// signedFile signs a client certificate for id with ca and writes it into
// dir; it returns the file and the serial.
func signedFile(t *testing.T, ca *pki.CA, id pki.Identity, dir, name string) (string, string) {
	t.Helper()
	certPEM, _, err := ca.IssueClient(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, pki.SerialString(cert.SerialNumber)
}

// lookup opens the data directory's store and says whether serial is
// recorded, and how many audit entries the chain holds.
func lookup(t *testing.T, dataDir, serial string) (recorded bool, auditEntries uint64) {
	t.Helper()
	st, err := store.Open(filepath.Join(dataDir, "exchange.db"), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.LookupCaller(context.Background(), serial, "")
	if err != nil {
		t.Fatal(err)
	}
	seq, _, err := st.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.CertificateRecorded, seq
}

func TestCertsRecordRecordsOnlyClientCertificatesOfTheClientCA(t *testing.T) {
	dataDir := t.TempDir()
	dev, _, err := pki.EnsureDev(filepath.Join(dataDir, "pki"), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(dev.CACert, dev.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	ilo, iloSerial := signedFile(t, ca, pki.Agency("ilo"), files, "ilo.crt")
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := newRootCommand(&stdout, &stderr).run(append([]string{"certs", "record", "--data-dir", dataDir}, args...))
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := run(ilo)
	if code != 0 || !strings.Contains(out, "recorded certificates/"+iloSerial+" for agencies/ilo") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	recorded, entries := lookup(t, dataDir, iloSerial)
	if !recorded {
		t.Fatal("the certificate is not recorded")
	}
	if code, _, errOut := run(ilo); code != 0 {
		t.Fatalf("recording again: exit %d: %s", code, errOut)
	}
	if _, again := lookup(t, dataDir, iloSerial); again != entries {
		t.Errorf("recording again appended %d audit entries", again-entries)
	}

	rogue, err := pki.NewCA("rogue CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, otherSerial := signedFile(t, rogue, pki.Agency("ilo"), files, "other.crt")
	for name, c := range map[string]struct{ file, serial, says string }{
		"a certificate of another CA":       {other, otherSerial, "is not a client certificate of the client CA"},
		"the exchange's server certificate": {dev.ServerCert, "", "is not a client certificate of the client CA"},
	} {
		code, _, errOut := run(c.file)
		if code == 0 || !strings.Contains(errOut, c.file+" "+c.says) {
			t.Errorf("%s: exit %d, stderr %q; want a refusal that names the file and says %q", name, code, errOut, c.says)
		}
		if c.serial != "" {
			if recorded, _ := lookup(t, dataDir, c.serial); recorded {
				t.Errorf("%s was recorded", name)
			}
		}
	}
}

// TestTheSecretariatCertificateIsRecordedAtEveryStart checks the start-up
// step on a data directory whose secretariat certificate is not recorded
// (made before certificates had to be) and that it is idempotent.
func TestTheSecretariatCertificateIsRecordedAtEveryStart(t *testing.T) {
	dataDir := t.TempDir()
	dev, _, err := pki.EnsureDev(filepath.Join(dataDir, "pki"), []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(must(os.ReadFile(dev.SecretariatCert)))
	if err != nil {
		t.Fatal(err)
	}
	serial := pki.SerialString(cert.SerialNumber)
	ctx := context.Background()
	for range 2 {
		st, err := store.Open(filepath.Join(dataDir, "exchange.db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := recordSecretariatCertificate(ctx, st, dev.SecretariatCert); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	recorded, entries := lookup(t, dataDir, serial)
	if !recorded || entries != 1 {
		t.Fatalf("after two starts: recorded %v with %d audit entries, want recorded once", recorded, entries)
	}
	st, err := store.Open(filepath.Join(dataDir, "exchange.db"), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.GetCertificate(ctx, "certificates/"+serial)
	if err != nil || got.GetSubject() != "secretariat" {
		t.Fatalf("recorded %v, %v; want the secretariat's", got, err)
	}
	audit, err := st.AuditEntries(ctx, 0, 10)
	if err != nil || len(audit) != 1 || audit[0].GetActor() != "exchange" {
		t.Fatalf("audit %v, %v; want one entry by the exchange", audit, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
