package server

import (
	"context"
	"slices"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// planWatchFilter is what a watch asks for besides visibility.
type planWatchFilter struct {
	subdivisions []string
	niches       []exchangev1.Niche
}

func (f planWatchFilter) matches(p *exchangev1.Plan) bool {
	if len(f.niches) > 0 && !slices.ContainsFunc(p.GetNiches(), func(n exchangev1.Niche) bool { return slices.Contains(f.niches, n) }) {
		return false
	}
	if len(f.subdivisions) > 0 && !slices.ContainsFunc(f.subdivisions, func(s string) bool { return touches(p, s) }) {
		return false
	}
	return true
}

// WatchPlans replays the change log after the requested revision, then
// follows it live, sending changes to the plans the caller may see that
// match the filters. A plan that leaves the caller's view (its audience
// narrowed, or it moved out of the filters) is announced once as REMOVED,
// by name only. The caller's working groups are read again whenever a
// working group changes, so that joining or leaving one takes effect in
// the stream. No read transaction is held while sending; heartbeats carry
// the revision reached when nothing concerns the caller.
func (s *planService) WatchPlans(req *exchangev1.WatchPlansRequest, stream exchangev1.PlanService_WatchPlansServer) error {
	ctx := stream.Context()
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return err
	}
	f := planWatchFilter{subdivisions: req.GetSubdivisions(), niches: req.GetNiches()}
	rev := req.GetStartRevision()
	current, err := s.store.SafeRevision(ctx)
	if err != nil {
		return err
	}
	if err := checkStartRevision(rev, current); err != nil {
		return err
	}
	if rev == 0 {
		rev = current
	}
	pos, beat := rev, false // as in WatchReferrals
	idle := time.NewTimer(s.heartbeat)
	defer idle.Stop()
	for {
		if err := s.server.stillAdmitted(ctx); err != nil {
			return err
		}
		changed := s.store.Changed()
		var safe int64
		if beat { // the heartbeat carries a safe revision taken before the read below
			var err error
			if safe, err = s.store.SafeRevision(ctx); err != nil {
				return err
			}
		}
		changes, err := s.store.Changes(ctx, rev, watchPage)
		if err != nil {
			return err
		}
		for _, ch := range changes {
			rev = ch.GetRevision()
			if ch.GetResource().MessageIs(&exchangev1.WorkingGroup{}) {
				if r, err = readerFor(ctx, s.store); err != nil {
					return err
				}
				continue
			}
			p := new(exchangev1.Plan)
			if !ch.GetResource().MessageIs(p) {
				continue
			}
			if err := ch.GetResource().UnmarshalTo(p); err != nil {
				return err
			}
			ev, err := s.planEvent(ctx, r, f, ch.GetKind(), p)
			if err != nil {
				return err
			}
			if ev == nil {
				continue
			}
			ev.Revision = rev
			if err := stream.Send(ev); err != nil {
				return err
			}
			pos = rev
			idle.Reset(s.heartbeat)
		}
		if len(changes) >= watchPage {
			continue
		}
		pos = max(pos, safe) // every change up to safe has been read
		if beat {
			if err := stream.Send(&exchangev1.WatchPlansResponse{Revision: pos, Kind: exchangev1.PlanEventKind_PLAN_EVENT_KIND_HEARTBEAT}); err != nil {
				return err
			}
			beat = false
			idle.Reset(s.heartbeat)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.server.stopping:
			return shuttingDown(pos)
		case <-changed:
		case <-idle.C:
			beat = true
		}
	}
}

// planEvent decides what the watcher is told about one change of p; nil
// for nothing.
func (s *planService) planEvent(ctx context.Context, r Reader, f planWatchFilter, kind exchangev1.ChangeKind, p *exchangev1.Plan) (*exchangev1.WatchPlansResponse, error) {
	if r.Sees(p.GetOwner(), p.GetAudience()) && f.matches(p) {
		k := exchangev1.PlanEventKind_PLAN_EVENT_KIND_UPDATED
		switch {
		case kind == exchangev1.ChangeKind_CHANGE_KIND_CREATED:
			k = exchangev1.PlanEventKind_PLAN_EVENT_KIND_CREATED
		case p.GetStage() == exchangev1.PlanStage_PLAN_STAGE_CANCELLED:
			k = exchangev1.PlanEventKind_PLAN_EVENT_KIND_CANCELLED
		}
		return &exchangev1.WatchPlansResponse{Kind: k, Plan: p}, nil
	}
	if kind == exchangev1.ChangeKind_CHANGE_KIND_CREATED || p.GetVersion() <= 1 {
		return nil, nil
	}
	// Did the watcher see the version before this one?
	prev, err := s.store.GetPlanVersion(ctx, p.GetName(), p.GetVersion()-1)
	if err != nil {
		if store.KindOf(err) == store.KindNotFound {
			return nil, nil
		}
		return nil, err
	}
	if r.Sees(prev.GetOwner(), prev.GetAudience()) && f.matches(prev) {
		return &exchangev1.WatchPlansResponse{Kind: exchangev1.PlanEventKind_PLAN_EVENT_KIND_REMOVED,
			Plan: &exchangev1.Plan{Name: p.GetName(), Owner: p.GetOwner()}}, nil
	}
	return nil, nil
}
