package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// TestDamagedPagesFoundAfterListening damages a few leaf pages of a
// stopped exchanged's database, pages that opening the file does not
// read: exchanged listens at once, finds the damage with the page check
// it runs once it listens, and then stops with a non-zero exit and a
// message that names the damage and says what to do. Without the check
// after listening it would go on serving the damaged file.
func TestDamagedPagesFoundAfterListening(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startBinary(t, bin("exchanged"), dir)
	srv.stop(t)
	// 800 agencies, written through the store as set-up.
	st, err := store.Open(dbPath(dir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 800 {
		if _, err := st.CreateAgency(context.Background(), store.Op{Actor: "secretariat", Method: "/alltogether.exchange.v1.DirectoryService/CreateAgency"},
			fmt.Sprintf("agency-%04d", i), &exchangev1.Agency{DisplayName: fmt.Sprintf("Agency %d", i), Kind: exchangev1.AgencyKind_AGENCY_KIND_NATIONAL_NGO}); err != nil {
			t.Fatal(err)
		}
	}
	status, err := st.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(dbPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	from := int(status.Size) * 6 / 10 / page * page
	clear(raw[from : from+4*page])
	if err := os.WriteFile(dbPath(dir), raw, 0o600); err != nil {
		t.Fatal(err)
	}

	// Only the last audit entry is verified before listening, so that the
	// start reads little of the file, as on a large one.
	damaged, addrs := launchBinary(t, bin("exchanged"), dir, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--audit-verify-recent", "1")
	select {
	case <-addrs:
	case <-damaged.exited:
		t.Fatalf("exchanged exited before it listened (the damage must be found after listening, or the test proves nothing): %v\nstderr:\n%s", damaged.waitErr, damaged.stderr)
	case <-time.After(startTimeout):
		t.Fatalf("exchanged did not listen\nstderr:\n%s", damaged.stderr)
	}
	select {
	case <-damaged.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("exchanged on a damaged database still runs 10s after it listened\nstderr:\n%s", damaged.stderr)
	}
	if damaged.waitErr == nil {
		t.Errorf("exchanged on a damaged database exited 0\nstderr:\n%s", damaged.stderr)
	}
	for _, want := range []string{"page check after start-up", "damaged", "page", "exchanged restore"} {
		if !strings.Contains(damaged.stderr.String(), want) {
			t.Errorf("exchanged's refusal does not mention %q\nstderr:\n%s", want, damaged.stderr)
		}
	}
}
