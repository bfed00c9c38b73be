package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestProbesAnswerOnTheMetricsAddress asks a running exchanged for
// /readyz and /livez over plain HTTP on its metrics address, without a
// client certificate, as a process manager or Kubernetes would.
func TestProbesAnswerOnTheMetricsAddress(t *testing.T) {
	setup(t)
	srv := startServer(t, t.TempDir())
	base := strings.TrimSuffix(metricsURL(t, srv), "/metrics")
	for path, want := range map[string]string{"/readyz": "SERVING", "/livez": "ok"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != want {
			t.Errorf("%s answers %d %q, want 200 %q", path, resp.StatusCode, body, want)
		}
	}
}
