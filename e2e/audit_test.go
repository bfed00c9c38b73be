package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBackupAndAuditVerification takes an online backup with the CLI,
// verifies the audit chain online and, with exchanged, in the backup
// (against a head recorded before), tampers with the backup, restores the good one with
// exchanged restore, and serves it.
func TestBackupAndAuditVerification(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	for _, id := range []string{"ilo", "iom", "unicef"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency")
	}
	head := strings.TrimSpace(sec.ok(t, "audit", "head"))
	// Four entries: the secretariat's certificate recorded at first start,
	// then three agencies.
	if !regexp.MustCompile(`^4:[0-9a-f]{64}$`).MatchString(head) {
		t.Fatalf("audit head %q", head)
	}
	sec.ok(t, "agencies", "create", "escap", "--name", "ESCAP", "--kind", "un-agency")
	if out := sec.ok(t, "audit", "verify", "--head", head); !strings.Contains(out, "5 entries") || !strings.Contains(out, "recorded head 4 found unchanged") {
		t.Errorf("online verify: %s", out)
	}
	// Revisions are commit times: the backup names the last change's.
	out := sec.ok(t, "admin", "backup", "-o", "backup.db")
	m := regexp.MustCompile(`backup of revision ([0-9]+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("backup: %s", out)
	}
	backupRevision := m[1]
	backup := filepath.Join(dir, "backup.db")
	if got := fileMode(t, backup); got != 0o600 {
		t.Errorf("the backup has mode %v", got)
	}
	// Offline verification is exchanged's, the binary that owns the files.
	if r := sec.exec(t, "exchanged", "backup", "verify", "backup.db", "--head", head); r.code != 0 || !strings.Contains(r.stdout, "5 entries") || !strings.Contains(r.stdout, "recorded head 4 found unchanged") {
		t.Errorf("offline verify:\n%s", r)
	}
	// exchangectl opens no database file and says where that went.
	sec.fails(t, 2, []string{"exchanged backup verify backup.db"}, "audit", "verify", "--backup", "backup.db")

	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.ReplaceAll(raw, []byte("DirectoryService/CreateAgency"), []byte("DirectoryService/CreateAgencx"))
	if bytes.Equal(tampered, raw) {
		t.Fatal("nothing to tamper with")
	}
	writeFile(t, dir, "tampered.db", tampered)
	if r := sec.exec(t, "exchanged", "backup", "verify", "tampered.db"); r.code != 1 || !strings.Contains(r.stderr, "audit chain broken") {
		t.Errorf("a tampered backup verified:\n%s", r)
	}

	// An agency cannot take backups.
	sec.ok(t, "certs", "issue", "--agency", "ilo", "--out-dir", "certs-ilo")
	ilo := agencySession(t, srv.addr, filepath.Join(dir, "certs-ilo"), "ilo")
	ilo.fails(t, 4, nil, "admin", "backup", "-o", filepath.Join(ilo.dir, "stolen.db"))

	// Restore the backup into a new data directory and serve it.
	restoreDir := t.TempDir()
	r := newSession(restoreDir).exec(t, "exchanged", "restore", "--from", backup, "--data-dir", filepath.Join(restoreDir, "exchange-data"))
	if r.code != 0 || !strings.Contains(r.stdout, "revision "+backupRevision+",") {
		t.Fatalf("restore\n%s", r)
	}
	// The restored server needs the same CA to accept the secretariat.
	if err := os.CopyFS(filepath.Join(restoreDir, "exchange-data", "pki"), os.DirFS(pkiDir(dir))); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	restored := startServer(t, restoreDir)
	sec2 := newSession(restoreDir, "EXCHANGE_SERVER="+restored.addr)
	if out := sec2.ok(t, "agencies", "get", "escap"); !strings.Contains(out, "ESCAP") {
		t.Errorf("the restored server lacks escap:\n%s", out)
	}
}
