package server

import (
	"net/http"
	"testing"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// BenchmarkCreateReferralOverJSON is BenchmarkCreateReferral through the
// JSON/HTTP face: the same referrals, as JSON over HTTP/1.1 or HTTP/2 on
// the same port, transcoded into the same gRPC server.
func BenchmarkCreateReferralOverJSON(b *testing.B) {
	for _, h2 := range []bool{false, true} {
		b.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(b *testing.B) {
			x, _ := benchExchange(b)
			c := x.jsonClientFor(b, pki.Agency("ilo"), h2)
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					code, _, body, err := c.call("POST", "/v1/referrals", &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()})
					if err != nil || code != http.StatusOK {
						b.Errorf("HTTP %d %s %v", code, body, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "referrals/s")
		})
	}
}
