package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
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
	// Which pages opening reads (the meta and freelist pages, bucket
	// roots, the last audit entry's) depends on where bbolt placed them,
	// which differs from run to run. Four pages are cleared at 60% of the
	// file; if exchanged finds that damage already while opening, the
	// original file is put back and the next place tried, so that the
	// test always ends up with damage only the check after listening can
	// find. Every place refused before listening is logged.
	var damaged *server
	for _, tenths := range []int{6, 5, 7, 4, 8, 3} {
		from := int(status.Size) * tenths / 10 / page * page
		bad := slices.Clone(raw)
		clear(bad[from : from+4*page])
		if err := os.WriteFile(dbPath(dir), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		// Only the last audit entry is verified before listening, so that
		// the start reads little of the file, as on a large one.
		p, addrs := launchBinary(t, bin("exchanged"), dir, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--audit-verify-recent", "1")
		select {
		case <-addrs:
			damaged = p
		case <-p.exited:
			if !strings.Contains(p.stderr.String(), "damaged") {
				t.Fatalf("exchanged exited before it listened, not for the damage: %v\nstderr:\n%s", p.waitErr, p.stderr)
			}
			t.Logf("pages at %d0%% of the file are read while opening: trying another place\n%s", tenths, p.stderr)
			continue
		case <-time.After(startTimeout):
			t.Fatalf("exchanged did not listen\nstderr:\n%s", p.stderr)
		}
		break
	}
	if damaged == nil {
		t.Fatal("every place tried was read while opening: the damage must be found after listening, or the test proves nothing")
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
