package server

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestHealthFollowsTheStore: while the store cannot be reached the health
// service says NOT_SERVING, for the whole server and each service, and
// SERVING again once it can; after Shutdown it stays NOT_SERVING.
func TestHealthFollowsTheStore(t *testing.T) {
	s := startExchange(t).server
	s.log = slog.New(slog.DiscardHandler)
	var down atomic.Bool
	go s.followStoreHealth(func(context.Context) error {
		if down.Load() {
			return errors.New("no quorum")
		}
		return nil
	}, 5*time.Millisecond, time.Second)
	status := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := s.health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	wait := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for _, svc := range []string{"", "alltogether.exchange.v1.ReferralService"} {
			for status(svc) != want {
				if time.Now().After(deadline) {
					t.Fatalf("health of %q is %v, want %v", svc, status(svc), want)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	wait(healthpb.HealthCheckResponse_SERVING)
	down.Store(true)
	wait(healthpb.HealthCheckResponse_NOT_SERVING)
	down.Store(false)
	wait(healthpb.HealthCheckResponse_SERVING)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	s.Shutdown(ctx)
	time.Sleep(20 * time.Millisecond)
	if got := status(""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after Shutdown health is %v", got)
	}
}
