package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// TestBackupVerifyChecksTheChainAndARecordedHead makes a backup of three
// changes and checks `exchanged backup verify`: it counts the entries,
// finds a head recorded earlier, refuses a head the chain does not hold, a
// tampered file and a malformed --head, and leaves the file unchanged.
func TestBackupVerifyChecksTheChainAndARecordedHead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "live.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ilo", "iom", "unicef"} {
		if _, err := st.CreateAgency(ctx, store.Op{Actor: "secretariat", Method: "test"}, id, &exchangev1.Agency{DisplayName: id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}); err != nil {
			t.Fatal(err)
		}
	}
	second, err := st.AuditEntries(ctx, 1, 1)
	if err != nil || len(second) != 1 {
		t.Fatalf("entry 2: %v %v", second, err)
	}
	head := fmt.Sprintf("2:%x", second[0].GetHash())
	backup := filepath.Join(dir, "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Backup(ctx, f, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st.Close()
	before, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := newRootCommand(&out, &out).cmd
		cmd.SetArgs(append([]string{"backup", "verify"}, args...))
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	out, err := run(backup, "--head", head)
	if err != nil || !strings.Contains(out, "3 entries, every hash and link intact, recorded head 2 found unchanged") {
		t.Errorf("verifying a good backup: %q %v", out, err)
	}
	if after, _ := os.ReadFile(backup); !bytes.Equal(before, after) {
		t.Error("verify changed the backup file")
	}
	if _, err := run(backup, "--head", fmt.Sprintf("2:%064x", 7)); err == nil || !strings.Contains(err.Error(), "recorded head 2:") {
		t.Errorf("a head the chain does not hold: %v", err)
	}
	if _, err := run(backup, "--head", "two"); err == nil || !strings.Contains(err.Error(), "want SEQUENCE:HASH") {
		t.Errorf("a malformed head: %v", err)
	}
	tampered := filepath.Join(dir, "tampered.db")
	os.WriteFile(tampered, bytes.ReplaceAll(before, []byte("unicef"), []byte("unicex")), 0o600)
	if _, err := run(tampered); err == nil || !strings.Contains(err.Error(), "audit chain broken") {
		t.Errorf("a tampered backup: %v", err)
	}
	if _, err := run(filepath.Join(dir, "missing.db")); err == nil || !strings.Contains(err.Error(), "not a usable backup") {
		t.Errorf("a missing file: %v", err)
	}
}
