package server

import (
	"context"
	"fmt"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// BenchmarkCreateReferral measures single referral ingest over real mTLS,
// with concurrent clients (b.RunParallel, GOMAXPROCS×parallelism) sharing
// group commits. Each operation is one durable referral.
func BenchmarkCreateReferral(b *testing.B) {
	_, ilo := benchExchange(b)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := ilo.referrals()
		for pb.Next() {
			if _, err := c.CreateReferral(context.Background(), &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "referrals/s")
}

// BenchmarkBatchCreateReferrals measures batched ingest: 100 referrals per
// message. Each operation is one batch.
func BenchmarkBatchCreateReferrals(b *testing.B) {
	_, ilo := benchExchange(b)
	const perBatch = 100
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := ilo.referrals()
		for pb.Next() {
			req := &exchangev1.BatchCreateReferralsRequest{}
			for i := 0; i < perBatch; i++ {
				req.Requests = append(req.Requests, &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()})
			}
			resp, err := c.BatchCreateReferrals(context.Background(), req)
			if err != nil {
				b.Error(err)
				return
			}
			for _, r := range resp.GetResults() {
				if r.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED {
					b.Error(fmt.Sprint(r))
					return
				}
			}
		}
	})
	b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "referrals/s")
}

func benchExchange(b *testing.B) (*exchange, as) {
	b.Helper()
	x := startExchange(b)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	x.createAgency(sec, "iom", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	return x, x.asAgency("ilo")
}
