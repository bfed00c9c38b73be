package main

import (
	"context"
	"fmt"
	"time"

	"github.com/alltogether/exchange/bench/loadgen"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// filteredNiche is the niche of one seeded referral in a hundred
// (seedReferrals): the filtered workload's sparse filter.
const filteredNiche = exchangev1.Niche_NICHE_PREVENTION

// filtered measures, on the seeded database, the latency of a ListReferrals
// page of 100 filtered by a state no referral is in (COMPLETED) and by the
// niche one referral in a hundred asks for, against an unfiltered page:
// one client, 200 calls one after another, each continuing from the page
// before, once to warm the page cache and once measured. A page visits at most its
// scan budget of referrals (store/page.go), so a filtered page may hold
// fewer referrals than asked, even none.
func (b *bench) filtered(ctx context.Context, dir string) error {
	ex, err := b.startExchanged("filtered-exchange", dir, false)
	if err != nil {
		return err
	}
	b.track(ex)
	c, err := b.dial(ex.addr, receiver)
	if err != nil {
		return err
	}
	defer c.Close()
	rc := exchangev1.NewReferralServiceClient(c.Conn())
	workload := fmt.Sprintf("Filtered List page of 100, 1 client, %s referrals", num(float64(b.opt.records)))
	const (
		unfiltered = "exchange, unfiltered page"
		none       = "exchange, state COMPLETED (no referral)"
		sparse     = "exchange, niche PREVENTION (1 in 100)"
	)
	queries := map[string]*exchangev1.ListReferralsRequest{
		unfiltered: {},
		none:       {State: exchangev1.ReferralState_REFERRAL_STATE_COMPLETED},
		sparse:     {Niche: filteredNiche},
	}
	const calls = 200
	measure := func(name string) system {
		return system{name, func(ctx context.Context) error {
			req := queries[name]
			req.Direction, req.PageSize = exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX, 100
			var took []time.Duration
			items := 0
			// The same calls twice: the first time unmeasured, so that
			// every query reads referrals already in the page cache.
			for pass := range 2 {
				req.PageToken = ""
				for range calls {
					start := time.Now()
					resp, err := rc.ListReferrals(ctx, req)
					d := time.Since(start)
					if err != nil {
						return err
					}
					if pass == 1 {
						took = append(took, d)
						items += len(resp.GetReferrals())
					}
					req.PageToken = resp.GetNextPageToken()
				}
			}
			p50 := loadgen.Millis(loadgen.Percentile(took, 50))
			perPage := float64(items) / calls
			fmt.Printf("  %-28s %-40s p50 %.2f ms, %.1f referrals per page\n", "Filtered List", name, p50, perPage)
			b.rep.record(workload, name, "ms p50", p50)
			b.rep.record(workload, name+", referrals per page", "referrals", perPage)
			return nil
		}}
	}
	systems := []system{measure(unfiltered), measure(none), measure(sparse)}
	for round := range b.opt.rounds {
		fmt.Printf(" round %d (filtered lists)\n", round+1)
		if err := b.alternate(ctx, round, systems); err != nil {
			return err
		}
	}
	get := func(system string) *series { return b.rep.get(workload, system, "ms p50") }
	atMost2 := func(v float64) bool { return v <= 2 }
	b.rep.compare("Filtered List page, no match / unfiltered (latency)", get(none), get(unfiltered), "≤ 2×", atMost2)
	b.rep.compare("Filtered List page, 1% match / unfiltered (latency)", get(sparse), get(unfiltered), "≤ 2×", atMost2)
	return nil
}
