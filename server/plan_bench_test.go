package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// benchPlans stores n plans of 20 agencies straight into the store (the
// API is not what is measured here), spread like a sub-region's plans:
// six countries, one to four provinces each, one to three niches, periods
// of half a year to three years between 2024 and 2030; most shared with
// all members, some with a working group, some kept to the owner. It
// returns a connection as one of the agencies.
func benchPlans(b *testing.B, n int) (*exchange, as) {
	b.Helper()
	x := startExchange(b)
	sec := x.asSecretariat()
	agencies := make([]string, 20)
	for i := range agencies {
		agencies[i] = fmt.Sprintf("agency-%02d", i)
		x.createAgency(sec, agencies[i], exchangev1.Niche_NICHE_PREVENTION)
	}
	createWorkingGroup(b, sec, "un-wg", map[string]exchangev1.MembershipRole{
		agencies[0]: exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER, agencies[1]: exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER,
	})
	rng := rand.New(rand.NewPCG(10000, 1))
	countries := geo.Countries()
	niches := allNiches()
	ctx := context.Background()
	for ai, agency := range agencies {
		var set []*exchangev1.Plan
		for i := range n / len(agencies) {
			c := countries[rng.IntN(len(countries))].Code
			provinces := geo.InCountry(c)
			p := &exchangev1.Plan{
				ExternalId: fmt.Sprintf("%s-%05d", agency, i), Title: "Plan", Stage: exchangev1.PlanStage(1 + rng.IntN(4)),
			}
			for _, k := range rng.Perm(len(niches))[:1+rng.IntN(3)] {
				p.Niches = append(p.Niches, niches[k])
			}
			if rng.IntN(10) == 0 {
				p.Locations = []*exchangev1.LocationRef{{Country: c}}
			} else {
				for _, k := range rng.Perm(len(provinces))[:1+rng.IntN(min(4, len(provinces)))] {
					p.Locations = append(p.Locations, &exchangev1.LocationRef{Country: c, Subdivision: provinces[k].Code})
				}
			}
			start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(6*365))
			p.PlannedPeriod = &exchangev1.DatePeriod{Start: calendarDate(start), End: calendarDate(start.AddDate(0, 0, 180+rng.IntN(900)))}
			switch r := rng.IntN(10); {
			case r < 6:
				p.Audience = &exchangev1.Audience{AllMembers: true}
			case r < 8:
				p.Audience = &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}}
			}
			set = append(set, p)
		}
		if _, err := x.store.ApplyPlans(ctx, store.Op{Actor: "agencies/" + agency, Method: "bench"}, agency, set, store.ApplyOptions{}); err != nil {
			b.Fatalf("agency %d: %v", ai, err)
		}
	}
	return x, x.asAgency(agencies[0])
}

// BenchmarkFindOverlaps10000 times FindOverlaps over 10,000 plans through
// the real server over mutual TLS, as one agency sees them: the first
// page of 1000 overlaps across the sub-region, and a typical interactive
// question (one country, one niche, one year). The index is built at the
// first call after a plan changes: "index-rebuild" times that part alone
// (reading every plan in one transaction and indexing them).
func BenchmarkFindOverlaps10000(b *testing.B) {
	x, c := benchPlans(b, 10000)
	ctx := context.Background()
	for _, q := range []struct {
		name string
		req  *exchangev1.FindOverlapsRequest
	}{
		{"page=1000", &exchangev1.FindOverlapsRequest{PageSize: 1000}},
		{"country=KH,niche=prevention,year=2026", &exchangev1.FindOverlapsRequest{
			Country: "KH", Niche: exchangev1.Niche_NICHE_PREVENTION, PageSize: 1000,
			Period: &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)},
		}},
	} {
		b.Run(q.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				resp, err := c.plans().FindOverlaps(ctx, q.req)
				if err != nil {
					b.Fatal(err)
				}
				n = len(resp.GetOverlaps())
			}
			b.ReportMetric(float64(n), "overlaps/op")
		})
	}
	b.Run("index-rebuild", func(b *testing.B) {
		for b.Loop() {
			all, rev, err := x.store.PlanSnapshot(ctx)
			if err != nil {
				b.Fatal(err)
			}
			buildPlanIndex(all, rev)
		}
	})
}

// BenchmarkPlanViews10000 times FindGaps and GetCoverage over 10,000
// plans through the real server.
func BenchmarkPlanViews10000(b *testing.B) {
	_, c := benchPlans(b, 10000)
	ctx := context.Background()
	year := &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)}
	b.Run("FindGaps/TH", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.plans().FindGaps(ctx, &exchangev1.FindGapsRequest{Country: "TH", Period: year}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetCoverage/TH", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.plans().GetCoverage(ctx, &exchangev1.GetCoverageRequest{Country: "TH", Period: year}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
