package server

import (
	"context"
	"net/http"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// probeTimeout bounds one readiness check of the health service.
const probeTimeout = time.Second

// ProbeHandler serves the plain-HTTP probes a process manager or
// Kubernetes calls, which need no client certificate (exchanged serves
// them on its metrics address, loopback by default):
//
//   - /livez answers 200 while the process answers HTTP at all;
//   - /readyz answers 200 when the health service reports the whole server
//     SERVING, and 503 otherwise: once shutdown has begun, and on etcd while
//     the cluster cannot be reached (followStoreHealth).
//
// Each answers with the status in one line of text (ok, SERVING or
// NOT_SERVING), to GET and HEAD only.
func (s *Server) ProbeHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
		defer cancel()
		status := healthpb.HealthCheckResponse_NOT_SERVING
		if resp, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
			status = resp.GetStatus()
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if status != healthpb.HealthCheckResponse_SERVING {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write([]byte(status.String() + "\n"))
	})
	return mux
}
