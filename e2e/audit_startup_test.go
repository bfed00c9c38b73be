package e2e

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/store"
)

// flipAuditEntry changes one byte of the audit entry about resource in the
// database file of a stopped exchanged in dir, as a hex editor or a failing
// disk would, and returns the entry's sequence number. It finds the entry's
// bytes by their encoding (the store keeps each entry as its deterministic
// protobuf encoding) and changes every copy, freed pages included, in the
// middle of the entry's method name: the file stays readable and every
// page sound, only the entry's content no longer matches its hash.
func flipAuditEntry(t *testing.T, dir, resource string) uint64 {
	t.Helper()
	st, err := store.Open(dbPath(dir), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := st.AuditEntries(context.Background(), 0, 1000)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.GetResourceName() != resource {
			continue
		}
		enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(enc, []byte(e.GetMethod())) + len(e.GetMethod())/2
		raw, err := os.ReadFile(dbPath(dir))
		if err != nil {
			t.Fatal(err)
		}
		copies := 0
		for i := bytes.Index(raw, enc); i >= 0; {
			raw[i+at] ^= 0x20 // a letter's case
			copies++
			next := bytes.Index(raw[i+1:], enc)
			if next < 0 {
				break
			}
			i += 1 + next
		}
		if copies == 0 {
			t.Fatalf("the audit entry about %s is not in the file as its encoding", resource)
		}
		if err := os.WriteFile(dbPath(dir), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("flipped a byte of audit entry %d (%s, %s) in %d place(s) of the file", e.GetSequence(), e.GetMethod(), resource, copies)
		return e.GetSequence()
	}
	t.Fatalf("no audit entry about %s", resource)
	return 0
}

// waitMetric scrapes exchanged's metrics until the named gauge has the
// value, for up to 10s.
func waitMetric(t *testing.T, srv *server, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := metricValue(scrape(t, srv), name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", name, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestABrokenAuditChainStopsExchanged flips one byte of an audit entry of
// a stopped exchanged: the next start refuses to serve, exits non-zero and
// says which entry and what to do. A start whose recent check does not
// reach that entry serves, and the full verification it runs in the
// background reports the broken chain in its metrics.
func TestABrokenAuditChainStopsExchanged(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	for _, id := range []string{"marker", "second", "third"} {
		sec.ok(t, "agencies", "create", id, "--name", "Agency "+id, "--kind", "national-ngo")
	}
	waitMetric(t, srv, "exchange_audit_chain_ok", 1)
	srv.stop(t)

	seq := flipAuditEntry(t, dir, "agencies/marker")

	start := time.Now()
	refused, _ := launchServer(t, dir, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0")
	select {
	case <-refused.exited:
	case <-time.After(startTimeout):
		t.Fatalf("exchanged with a broken audit chain still runs after %v\nstdout:\n%s\nstderr:\n%s", startTimeout, refused.stdout, refused.stderr)
	}
	t.Logf("exchanged exited after %v: %v\nstderr: %s", time.Since(start).Round(time.Millisecond), refused.waitErr, strings.TrimSpace(refused.stderr.String()))
	if refused.waitErr == nil {
		t.Errorf("exchanged with a broken audit chain exited 0")
	}
	for _, want := range []string{"audit chain", "is broken", "broken at entry " + strconv.FormatUint(seq, 10), "hash does not match", "exchanged restore"} {
		if !strings.Contains(refused.stderr.String(), want) {
			t.Errorf("the refusal does not say %q\nstderr:\n%s", want, refused.stderr)
		}
	}
	if strings.Contains(refused.stdout.String(), "exchanged listening on") {
		t.Errorf("exchanged served a database with a broken audit chain\nstdout:\n%s", refused.stdout)
	}

	// Entry 2 of 4 is older than the last two: the recent check passes,
	// the background walk does not.
	srv = startServer(t, dir, "--audit-verify-recent", "2")
	waitMetric(t, srv, "exchange_audit_chain_ok", 0)
	if got := metricValue(scrape(t, srv), "exchange_audit_chain_verified_timestamp_seconds"); got < float64(start.Unix()) {
		t.Errorf("exchange_audit_chain_verified_timestamp_seconds %v, before the test started", got)
	}
	if !strings.Contains(srv.stderr.String(), "the audit chain is broken") {
		t.Errorf("the background verification did not log the broken chain\nstderr:\n%s", srv.stderr)
	}
}
