package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestSecondServerOnSameDataDirFailsFast starts a second exchanged on a data
// directory in use: it must give up quickly with a message that says why,
// and leave the first one serving.
func TestSecondServerOnSameDataDirFailsFast(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	first := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+first.addr)
	sec.ok(t, "agencies", "create", "ilo", "--name", "International Labour Organization", "--kind", "un-agency")

	start := time.Now()
	second, _ := launchServer(t, dir, "--listen", "127.0.0.1:0")
	select {
	case <-second.exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("a second exchanged on the same data directory still runs after 5s\nstdout:\n%s\nstderr:\n%s", second.stdout, second.stderr)
	}
	t.Logf("second exchanged exited after %v: %v", time.Since(start).Round(time.Millisecond), second.waitErr)
	if second.waitErr == nil {
		t.Errorf("a second exchanged on the same data directory exited 0\nstdout:\n%s\nstderr:\n%s", second.stdout, second.stderr)
	}
	stderr := strings.ToLower(second.stderr.String())
	if !strings.Contains(stderr, "lock") && !strings.Contains(stderr, "another") {
		t.Errorf("the second exchanged does not say the database is locked by another process\nstderr:\n%s", second.stderr)
	}
	if strings.Contains(second.stdout.String(), "exchanged listening on") {
		t.Errorf("the second exchanged claimed to listen\nstdout:\n%s", second.stdout)
	}

	// The first one is unharmed.
	if out := sec.ok(t, "agencies", "get", "ilo"); !strings.Contains(out, "International Labour Organization") {
		t.Errorf("the first exchanged lost agencies/ilo:\n%s", out)
	}
}
