package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/store"
)

// TestDamagedDatabaseIsRefusedAtStartup damages the database of a stopped
// exchanged as a failing disk would (a range of pages in the middle of the
// used part of the file reads back as zeros, the meta pages intact):
// exchanged must stop, exit non-zero promptly, and say what to do. (A second exchanged on a data directory in use is
// TestSecondServerOnSameDataDirFailsFast, in lock_test.go.)
func TestDamagedDatabaseIsRefusedAtStartup(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startBinary(t, bin("exchanged"), dir)
	w := newWorld(t, dir, srv.addr, crashSenders[:1], crashReceivers[:1])
	c := dial(t, srv.addr, w.ids[w.senders[0]])
	lw := &loadWorker{l: newLedger(), w: w, c: c, sender: w.senders[0], location: worldProvinces[0], rng: rand.New(rand.NewPCG(1, 2))}
	if !lw.writeKeys(context.Background(), seq(0, rowKeys)) || !lw.createBatch(context.Background(), 200) {
		t.Fatalf("writing data: %v", lw.l.tally.problems)
	}
	c.Close()
	srv.stop(t)

	chk, err := checkOffline(t, dir)
	if err != nil {
		t.Fatalf("the database is damaged before the test damages it: %v", err)
	}
	raw, err := os.ReadFile(dbPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	used := int(chk.size)
	from, to := used/3/page*page, 2*used/3/page*page
	if to <= from || to > len(raw) {
		t.Fatalf("database of %d bytes (%d used) is too small to damage its middle", len(raw), used)
	}
	clear(raw[from:to])
	if err := os.WriteFile(dbPath(dir), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("zeroed bytes %d to %d of %d used (%d pages)", from, to, used, (to-from)/page)

	start := time.Now()
	damaged, _ := launchBinary(t, bin("exchanged"), dir, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0")
	select {
	case <-damaged.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("exchanged on a damaged database still runs after 10s\nstdout:\n%s\nstderr:\n%s", damaged.stdout, damaged.stderr)
	}
	took := time.Since(start)
	t.Logf("exchanged exited after %v: %v\nstderr: %s", took.Round(time.Millisecond), damaged.waitErr, strings.TrimSpace(damaged.stderr.String()))
	if damaged.waitErr == nil {
		t.Errorf("exchanged on a damaged database exited 0\nstdout:\n%s\nstderr:\n%s", damaged.stdout, damaged.stderr)
	}
	if took > 5*time.Second {
		t.Errorf("exchanged took %v to refuse a damaged database of %d bytes", took, len(raw))
	}
	for _, want := range []string{"damaged", "exchanged restore"} {
		if !strings.Contains(damaged.stderr.String(), want) {
			t.Errorf("exchanged's refusal does not mention %q\nstderr:\n%s", want, damaged.stderr)
		}
	}
	// exchanged listens before it checks every page (the check runs
	// once it listens, while writes wait): it may have listened, but then
	// the check after start-up is what stopped it.
	if strings.Contains(damaged.stdout.String(), "exchanged listening on") && !strings.Contains(damaged.stderr.String(), "page check after start-up") {
		t.Errorf("exchanged listened on a damaged database and did not stop for its page check\nstdout:\n%s\nstderr:\n%s", damaged.stdout, damaged.stderr)
	}
	// The offline check agrees.
	if _, err := store.Open(dbPath(dir), store.Options{ReadOnly: true, CheckOnOpen: true}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("store.Open with CheckOnOpen on the damaged file: %v, want a refusal that says it is damaged", err)
	}
}
