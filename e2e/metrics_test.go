package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMetricsAreServedOnTheirOwnPort scrapes /metrics after a few calls.
func TestMetricsAreServedOnTheirOwnPort(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	sec.ok(t, "agencies", "create", "ilo", "--name", "ILO", "--kind", "un-agency")
	sec.fails(t, 3, nil, "agencies", "get", "nobody")

	var url string
	for deadline := time.Now().Add(5 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := regexp.MustCompile(`metrics on (http://\S+/metrics)`).FindStringSubmatch(srv.stdout.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatalf("exchanged does not say where its metrics are:\n%s", srv.stdout)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="CreateAgency"`,
		`grpc_server_handled_total{grpc_code="NotFound",grpc_method="GetAgency"`,
		"exchange_store_writes_per_commit_count", "exchange_store_size_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The profiler is off unless asked for.
	if code := httpStatus(t, strings.TrimSuffix(url, "/metrics")+"/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ answered %d without --pprof, want 404", code)
	}
}

// TestProfilerOnlyWhenAskedFor starts exchanged with --pprof and fetches
// its profiler's index on the metrics address.
func TestProfilerOnlyWhenAskedFor(t *testing.T) {
	setup(t)
	srv := startServer(t, t.TempDir(), "--pprof")
	var base string
	for deadline := time.Now().Add(5 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := regexp.MustCompile(`metrics on (http://\S+)/metrics`).FindStringSubmatch(srv.stdout.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("exchanged does not say where its metrics are:\n%s", srv.stdout)
	}
	if code := httpStatus(t, base+"/debug/pprof/cmdline"); code != http.StatusOK {
		t.Errorf("/debug/pprof/cmdline answered %d with --pprof, want 200", code)
	}
}

// httpStatus GETs url and returns the status code.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
