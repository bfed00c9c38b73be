package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Keep ILO's plans on the exchange in step with its own planning system:
// send the complete set as a dry run, show the diff, then apply it. Plans
// are matched by their external ids; with Prune, plans dropped from the
// set are cancelled.
func ExamplePlanClient_Apply() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Address: "127.0.0.1:7443", CertFile: "ilo.crt", KeyFile: "ilo.key", CAFile: "ca.crt"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	set := &exchangev1.ApplyPlansRequest{
		Parent: client.AgencyName("ilo"),
		Plans: []*exchangev1.Plan{{
			ExternalId: "XM-DAC-41302-LA-2026-01",
			Title:      "Safe migration and village prevention networks in Savannakhet",
			Stage:      exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
			Niches:     []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION},
			Locations:  []*exchangev1.LocationRef{{Country: "LA", Subdivision: "LA-SV"}},
			PlannedPeriod: &exchangev1.DatePeriod{
				Start: &exchangev1.CalendarDate{Year: 2026, Month: 7, Day: 1},
				End:   &exchangev1.CalendarDate{Year: 2028, Month: 6, Day: 30},
			},
			Audience: &exchangev1.Audience{AllMembers: true},
		}},
		Prune:        true,
		ValidateOnly: true,
	}
	preview, err := c.Plans.Apply(ctx, set)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range preview.GetResults() {
		fmt.Println(r.GetAction(), r.GetExternalId(), r.GetChangedFields())
	}
	if !preview.GetChanged() {
		return
	}
	set.ValidateOnly = false
	applied, err := c.Plans.Apply(ctx, set)
	if err != nil {
		// UNAVAILABLE: the apply may or may not have taken effect.
		// Applying the same set again is safe.
		log.Fatal(err)
	}
	fmt.Println("applied at revision", applied.GetRevision())
}

// Print who plans to work where in Cambodia in 2026: the coverage matrix
// as province, niche and agencies.
func ExamplePlanClient_Coverage() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Address: "127.0.0.1:7443", CertFile: "unicef.crt", KeyFile: "unicef.key", CAFile: "ca.crt"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	cov, err := c.Plans.Coverage(ctx, &exchangev1.GetCoverageRequest{
		Country: "KH",
		Period: &exchangev1.DatePeriod{
			Start: &exchangev1.CalendarDate{Year: 2026, Month: 1, Day: 1},
			End:   &exchangev1.CalendarDate{Year: 2026, Month: 12, Day: 31},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, cell := range cov.GetCells() {
		fmt.Println(cell.GetSubdivision(), cell.GetNiche(), cell.GetAgencies())
	}
}
