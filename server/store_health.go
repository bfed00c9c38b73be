package server

import (
	"context"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// storeProbeEvery and storeProbeTimeout pace followStoreHealth on etcd.
const (
	storeProbeEvery   = 2 * time.Second
	storeProbeTimeout = time.Second
)

// followStoreHealth reports NOT_SERVING on the health service while probe
// fails (an etcd cluster without quorum, or a replica cut off from it),
// and SERVING again once it succeeds, so that a load balancer that checks
// health sends calls to a replica that can answer them. It returns when
// the server stops; Shutdown's NOT_SERVING is final.
func (s *Server) followStoreHealth(probe func(context.Context) error, every, timeout time.Duration) {
	serving := true
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := probe(ctx)
		cancel()
		if (err == nil) == serving {
			continue
		}
		serving = err == nil
		status := healthpb.HealthCheckResponse_SERVING
		if !serving {
			status = healthpb.HealthCheckResponse_NOT_SERVING
			s.log.Error("the store cannot be reached: health reports NOT_SERVING", "error", err)
		} else {
			s.log.Info("the store answers again: health reports SERVING")
		}
		for name := range s.grpc.GetServiceInfo() {
			s.health.SetServingStatus(name, status)
		}
		s.health.SetServingStatus("", status)
	}
}
