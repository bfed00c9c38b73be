package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/alltogether/exchange/bench/loadgen"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// overlaps times FindOverlaps over --plans plans of 20 agencies, as one of
// them sees them: the first page of 1,000 overlaps across the sub-region,
// one client, calls one after another. "Warm" calls reuse the plan index;
// "after a change" calls follow an update of one plan, so they include
// rebuilding the index from every plan. The reference is the transport
// ceiling returning the same response.
func (b *bench) overlaps(ctx context.Context) error {
	o := b.opt
	dir, err := b.newDataDir("overlaps-exchange")
	if err != nil {
		return err
	}
	fmt.Printf(" seeding %d plans through the store (set-up, not measured)\n", o.plans)
	took, err := timed(func() error { return seedPlans(ctx, dir, o.plans) })
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	fmt.Printf(" seeded in %s\n", took.Round(time.Second))
	ex, err := b.startExchanged("overlaps-exchange", dir, false)
	if err != nil {
		return err
	}
	b.track(ex)
	viewer := planAgencyID(0)
	exClient, err := b.dial(ex.addr, viewer)
	if err != nil {
		return err
	}
	defer exClient.Close()
	req := &exchangev1.FindOverlapsRequest{PageSize: 1000}
	rpc := exchangev1.NewPlanServiceClient(exClient.Conn())
	resp, err := rpc.FindOverlaps(ctx, req)
	if err != nil {
		return err
	}
	responses := filepath.Join(b.work, "responses-overlaps")
	if err := saveResponse(responses, "FindOverlaps", resp); err != nil {
		return err
	}
	noop, err := b.startNoop("overlaps-noop", responses)
	if err != nil {
		return err
	}
	b.track(noop)
	noopClient, err := b.dial(noop.addr, viewer)
	if err != nil {
		return err
	}
	defer noopClient.Close()
	noopRPC := exchangev1.NewPlanServiceClient(noopClient.Conn())
	b.rep.note("FindOverlaps: %s plans; the first page holds %d overlaps.", num(float64(o.plans)), len(resp.GetOverlaps()))

	// A plan of the viewer's, changed before each "after a change" call.
	list, err := rpc.ListPlans(ctx, &exchangev1.ListPlansRequest{Parent: "agencies/" + viewer, PageSize: 1})
	if err != nil {
		return err
	}
	if len(list.GetPlans()) == 0 {
		return fmt.Errorf("%s has no plan", viewer)
	}
	plan := list.GetPlans()[0]

	workload := fmt.Sprintf("FindOverlaps, %s plans, page of 1,000", num(float64(o.plans)))
	const warm, changed = "exchange, warm index", "exchange, first call after a plan changed"
	call := func(ctx context.Context, c exchangev1.PlanServiceClient) (time.Duration, error) {
		start := time.Now()
		r, err := c.FindOverlaps(ctx, req)
		d := time.Since(start)
		if err == nil && len(r.GetOverlaps()) != len(resp.GetOverlaps()) {
			err = fmt.Errorf("%d overlaps, want %d", len(r.GetOverlaps()), len(resp.GetOverlaps()))
		}
		return d, err
	}
	timeCalls := func(ctx context.Context, system string, n int, c exchangev1.PlanServiceClient, before func(int) error) error {
		var ds []time.Duration
		for i := range n {
			if before != nil {
				if err := before(i); err != nil {
					return err
				}
			}
			d, err := call(ctx, c)
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		ms := loadgen.Millis(loadgen.Percentile(ds, 50))
		fmt.Printf("  %-28s %-34s %10.2f ms p50 (%d calls)\n", workload, system, ms, n)
		b.rep.record(workload, system, "ms p50", ms)
		return nil
	}
	systems := []system{
		{warm, func(ctx context.Context) error {
			if _, err := call(ctx, rpc); err != nil { // the index is current
				return err
			}
			return timeCalls(ctx, warm, 20, rpc, nil)
		}},
		{changed, func(ctx context.Context) error {
			return timeCalls(ctx, changed, 5, rpc, func(i int) error {
				p := proto.CloneOf(plan)
				p.Title = fmt.Sprintf("Plan, revised %d", time.Now().UnixNano())
				updated, err := rpc.UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: p, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"title"}}})
				if err != nil {
					return fmt.Errorf("changing a plan: %w", err)
				}
				plan = updated.GetPlan()
				return nil
			})
		}},
		{sysTransport, func(ctx context.Context) error { return timeCalls(ctx, sysTransport, 20, noopRPC, nil) }},
	}
	for round := range o.rounds {
		fmt.Printf(" round %d\n", round+1)
		if err := b.alternate(ctx, round, systems); err != nil {
			return err
		}
	}
	get := func(system string) *series { return b.rep.get(workload, system, "ms p50") }
	b.rep.compare("FindOverlaps, warm index", get(warm), nil, "< 100 ms", below(100))
	b.rep.compare("FindOverlaps, first call after a plan changed", get(changed), nil, "< 100 ms", below(100))
	b.rep.compare("FindOverlaps warm: exchange / transport ceiling (latency)", get(warm), get(sysTransport), "", nil)
	return nil
}
