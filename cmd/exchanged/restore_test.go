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

func TestRestoreChecksAndInstallsABackup(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "live.db")
	st, err := store.Open(src, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ilo", "iom", "unicef"} {
		if _, err := st.CreateAgency(ctx, store.Op{Actor: "secretariat", Method: "test"}, id, &exchangev1.Agency{DisplayName: id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Backup(ctx, f, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rev := st.Revision() // the third change's commit time
	st.Close()

	dataDir := t.TempDir()
	var out bytes.Buffer
	if err := restore(ctx, &restoreOptions{from: backup, dataDir: dataDir}, &out); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("revision %d, 3 audit entries verified", rev); !strings.Contains(out.String(), want) {
		t.Errorf("output %q", out.String())
	}
	err = restore(ctx, &restoreOptions{from: backup, dataDir: dataDir}, &out)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("restoring over a database without --force: %v", err)
	}
	if err := restore(ctx, &restoreOptions{from: backup, dataDir: dataDir, force: true}, &out); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(filepath.Join(dataDir, "exchange.db.before-restore-*"))
	if len(aside) != 1 {
		t.Fatalf("previous database not kept aside: %v", aside)
	}
	restored, err := store.Open(filepath.Join(dataDir, "exchange.db"), store.Options{CheckOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restored.GetAgency(ctx, "agencies/unicef"); err != nil {
		t.Fatal(err)
	}
	restored.Close()

	garbage := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600)
	if err := restore(ctx, &restoreOptions{from: garbage, dataDir: t.TempDir()}, &out); err == nil || !strings.Contains(err.Error(), "not a usable backup") {
		t.Fatalf("restoring garbage: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "20GiB": 20 << 30, "512 MiB": 512 << 20, "3KiB": 3072} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "lots", "20GB", "1.5GiB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
