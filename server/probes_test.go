package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestProbesFollowTheHealthService serves ProbeHandler over plain HTTP on
// loopback for a running exchange and checks /readyz: 200 while serving,
// 503 while the store cannot be reached (as on etcd without quorum), 200
// again once it can, and 503 once shutdown has begun; /livez answers 200
// throughout, and neither answers a POST.
func TestProbesFollowTheHealthService(t *testing.T) {
	s := startExchange(t).server
	s.log = slog.New(slog.DiscardHandler)
	web := httptest.NewServer(s.ProbeHandler())
	defer web.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(web.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	waitReady := func(wantCode int, wantBody string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			code, body := get("/readyz")
			if code == wantCode && body == wantBody {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz answers %d %q, want %d %q", code, body, wantCode, wantBody)
			}
		}
	}
	waitReady(http.StatusOK, "SERVING")
	if code, body := get("/livez"); code != http.StatusOK || body != "ok" {
		t.Errorf("/livez answers %d %q", code, body)
	}
	if resp, err := http.Post(web.URL+"/readyz", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	var down atomic.Bool
	go s.followStoreHealth(func(context.Context) error {
		if down.Load() {
			return errors.New("no quorum")
		}
		return nil
	}, 5*time.Millisecond, time.Second)
	down.Store(true)
	waitReady(http.StatusServiceUnavailable, "NOT_SERVING")
	down.Store(false)
	waitReady(http.StatusOK, "SERVING")

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	s.Shutdown(ctx)
	waitReady(http.StatusServiceUnavailable, "NOT_SERVING")
	if code, _ := get("/livez"); code != http.StatusOK {
		t.Errorf("/livez answers %d during shutdown", code)
	}
}
