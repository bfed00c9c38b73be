package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// planService implements PlanService.
type planService struct {
	exchangev1.UnimplementedPlanServiceServer
	server    *Server
	store     *store.Store
	views     *planViews
	heartbeat time.Duration
}

func newPlanService(srv *Server, st *store.Store, heartbeat time.Duration) *planService {
	return &planService{server: srv, store: st, views: &planViews{store: st}, heartbeat: heartbeat}
}

// Reasons recorded on plans that ApplyPlans cancels.
const (
	cancelledInSet = "marked cancelled in the owner's plan set (ApplyPlans)"
	cancelledPrune = "no longer in the owner's plan set (ApplyPlans with prune)"
)

// visiblePlan returns the current plan if the reader may see it, and
// NOT_FOUND, exactly as for a plan that does not exist, otherwise.
func (s *planService) visiblePlan(ctx context.Context, r Reader, name string) (*exchangev1.Plan, error) {
	p, err := s.store.GetPlan(ctx, name)
	if err != nil {
		if store.KindOf(err) == store.KindNotFound {
			return nil, notFound(name)
		}
		return nil, err
	}
	if !r.Sees(p.GetOwner(), p.GetAudience()) {
		return nil, notFound(name)
	}
	return p, nil
}

// seesVersion reports whether the reader may see an earlier version of a
// plan it sees now: the owner always; others only versions whose own
// audience included them, so that sharing a plan today does not reveal
// the drafts made before it was shared.
func seesVersion(r Reader, v *exchangev1.Plan) bool { return r.Sees(v.GetOwner(), v.GetAudience()) }

// ownPlan loads a plan the caller is about to change: NOT_FOUND when it
// may not see it, PERMISSION_DENIED when it sees it but does not own it.
func (s *planService) ownPlan(ctx context.Context, name string) (*exchangev1.Plan, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	p, err := s.visiblePlan(ctx, r, name)
	if err != nil {
		return nil, err
	}
	if p.GetOwner() != r.Caller.AgencyName() {
		return nil, permissionDenied(fmt.Sprintf("only %s, the owner, may change %s", p.GetOwner(), name))
	}
	return p, nil
}

// ownParent checks that a parent names the caller's own agency and
// returns its id. Plans and datasets are created under their owner, and
// only the owner creates them.
func ownParent(ctx context.Context, parent string) (string, error) {
	c := CallerFrom(ctx)
	if parent != c.AgencyName() {
		return "", permissionDenied(fmt.Sprintf("%s may act only on its own plans and datasets, under %s", c.Actor(), c.AgencyName()))
	}
	return c.Identity.AgencyID, nil
}

// GetPlan returns a plan, or an earlier version of it, to a reader in
// its audience.
func (s *planService) GetPlan(ctx context.Context, req *exchangev1.GetPlanRequest) (*exchangev1.GetPlanResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	p, err := s.visiblePlan(ctx, r, req.GetName())
	if err != nil || req.GetVersion() == 0 || req.GetVersion() == p.GetVersion() {
		return &exchangev1.GetPlanResponse{Plan: p}, err
	}
	v, err := s.planVersion(ctx, r, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetPlanResponse{Plan: v}, nil
}

// planVersion returns a version the reader may see, NOT_FOUND otherwise.
func (s *planService) planVersion(ctx context.Context, r Reader, name string, version int32) (*exchangev1.Plan, error) {
	v, err := s.store.GetPlanVersion(ctx, name, version)
	if err != nil {
		return nil, err
	}
	if !seesVersion(r, v) {
		return nil, &store.Error{Kind: store.KindNotFound, Resource: name, Message: fmt.Sprintf("%s has no version %d", name, version)}
	}
	return v, nil
}

// touches reports whether a plan works in the province: there, or in its
// whole country.
func touches(p *exchangev1.Plan, subdivision string) bool {
	for _, l := range p.GetLocations() {
		if l.GetSubdivision() == subdivision || (l.GetSubdivision() == "" && strings.HasPrefix(subdivision, l.GetCountry()+"-")) {
			return true
		}
	}
	return false
}

// ListPlans lists the plans the caller may see.
func (s *planService) ListPlans(ctx context.Context, req *exchangev1.ListPlansRequest) (*exchangev1.ListPlansResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	agencyID := strings.TrimPrefix(req.GetParent(), store.AgencyPrefix)
	if agencyID == "-" {
		agencyID = ""
	}
	if req.GetExternalId() != "" && agencyID == "" {
		return nil, invalidField("external_id", "requires a parent naming one agency")
	}
	if err := checkOptionalPeriod("period", req.GetPeriod()); err != nil {
		return nil, err
	}
	from, to := periodBounds(req.GetPeriod())
	keep := func(p *exchangev1.Plan) bool {
		switch {
		case !r.Sees(p.GetOwner(), p.GetAudience()),
			req.GetNiche() != 0 && !slices.Contains(p.GetNiches(), req.GetNiche()),
			req.GetStage() != 0 && p.GetStage() != req.GetStage(),
			req.GetSubdivision() != "" && !touches(p, req.GetSubdivision()):
			return false
		case req.GetCountry() != "" && !slices.ContainsFunc(p.GetLocations(), func(l *exchangev1.LocationRef) bool { return l.GetCountry() == req.GetCountry() }):
			return false
		case req.GetPeriod() != nil:
			start, end := periodBounds(p.GetPlannedPeriod())
			return start <= to && from <= end
		}
		return true
	}
	fingerprint := fmt.Sprint(req.GetNiche(), req.GetStage(), req.GetCountry(), req.GetSubdivision(), from, to)
	items, next, rev, err := s.store.ListPlans(ctx, store.PlanFilter{
		AgencyID: agencyID, ExternalID: req.GetExternalId(), Keep: keep, Fingerprint: fingerprint,
	}, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListPlansResponse{Plans: items, NextPageToken: next, Revision: rev}, nil
}

// CreatePlan creates a plan owned by the caller.
func (s *planService) CreatePlan(ctx context.Context, req *exchangev1.CreatePlanRequest) (*exchangev1.CreatePlanResponse, error) {
	agencyID, err := ownParent(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	p := normalizePlan(req.GetPlan())
	p.Etag = ""
	if err := refuseCancelled("plan", p); err != nil {
		return nil, err
	}
	if err := newPlanChecker(s.store).check(ctx, "plan", p); err != nil {
		return nil, err
	}
	if req.GetValidateOnly() {
		if other, err := s.store.PlanByExternalID(ctx, agencyID, p.GetExternalId()); err == nil {
			return nil, &store.Error{Kind: store.KindAlreadyExists, Resource: other.GetName(), Field: "plan.external_id",
				Message: fmt.Sprintf("plan.external_id: %s already uses external id %q", other.GetName(), p.GetExternalId())}
		} else if store.KindOf(err) != store.KindNotFound {
			return nil, err
		}
		p.Owner, p.Version = req.GetParent(), 1
		return &exchangev1.CreatePlanResponse{Plan: p}, nil
	}
	created, err := s.store.CreatePlan(ctx, opFor(ctx, req.GetRequestId()), agencyID, p)
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreatePlanResponse{Plan: created}, nil
}

// UpdatePlan changes a plan; owner only.
func (s *planService) UpdatePlan(ctx context.Context, req *exchangev1.UpdatePlanRequest) (*exchangev1.UpdatePlanResponse, error) {
	in := req.GetPlan()
	if in.GetName() == "" {
		return nil, invalidField("plan.name", "required: the name of the plan to update")
	}
	cur, err := s.ownPlan(ctx, in.GetName())
	if err != nil {
		return nil, err
	}
	p := normalizePlan(in)
	if err := refuseCancelled("plan", p); err != nil {
		return nil, err
	}
	if err := newPlanChecker(s.store).check(ctx, "plan", p); err != nil {
		return nil, err
	}
	mutate := func(stored *exchangev1.Plan) error {
		if stored.GetStage() == exchangev1.PlanStage_PLAN_STAGE_CANCELLED {
			return &store.Error{Kind: store.KindFailedPrecondition, Resource: stored.GetName(),
				Message: stored.GetName() + " is cancelled and cannot change"}
		}
		return applyMask(stored, p, req.GetUpdateMask(), store.PlanMutableFields, "plan")
	}
	if req.GetValidateOnly() {
		if in.GetEtag() != "" && in.GetEtag() != cur.GetEtag() {
			return nil, &store.Error{Kind: store.KindEtagMismatch, Resource: cur.GetName(), Field: "etag",
				Message: "etag does not match the current version of " + cur.GetName() + "; read it again and retry"}
		}
		preview := proto.Clone(cur).(*exchangev1.Plan)
		if err := mutate(preview); err != nil {
			return nil, err
		}
		if preview.GetExternalId() != cur.GetExternalId() {
			if other, err := s.store.PlanByExternalID(ctx, CallerFrom(ctx).Identity.AgencyID, preview.GetExternalId()); err == nil {
				return nil, &store.Error{Kind: store.KindAlreadyExists, Resource: other.GetName(), Field: "plan.external_id",
					Message: fmt.Sprintf("plan.external_id: %s already uses external id %q", other.GetName(), preview.GetExternalId())}
			}
		}
		if !proto.Equal(preview, cur) {
			preview.Version, preview.Etag = cur.GetVersion()+1, ""
		}
		return &exchangev1.UpdatePlanResponse{Plan: preview}, nil
	}
	updated, err := s.store.UpdatePlan(ctx, opFor(ctx, ""), in.GetName(), in.GetEtag(), mutate)
	if err != nil {
		return nil, err
	}
	return &exchangev1.UpdatePlanResponse{Plan: updated}, nil
}

// CancelPlan abandons a plan; owner only.
func (s *planService) CancelPlan(ctx context.Context, req *exchangev1.CancelPlanRequest) (*exchangev1.CancelPlanResponse, error) {
	if _, err := s.ownPlan(ctx, req.GetName()); err != nil {
		return nil, err
	}
	p, err := s.store.UpdatePlan(ctx, opFor(ctx, ""), req.GetName(), req.GetEtag(), func(p *exchangev1.Plan) error {
		if p.GetStage() == exchangev1.PlanStage_PLAN_STAGE_CANCELLED {
			return &store.Error{Kind: store.KindFailedPrecondition, Resource: p.GetName(), Message: p.GetName() + " is already cancelled"}
		}
		p.Stage, p.CancelReason = exchangev1.PlanStage_PLAN_STAGE_CANCELLED, req.GetReason()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.CancelPlanResponse{Plan: p}, nil
}

// ListPlanVersions lists the versions of a plan the caller may see.
func (s *planService) ListPlanVersions(ctx context.Context, req *exchangev1.ListPlanVersionsRequest) (*exchangev1.ListPlanVersionsResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	if _, err := s.visiblePlan(ctx, r, req.GetName()); err != nil {
		return nil, err
	}
	items, next, err := s.store.ListPlanVersions(ctx, req.GetName(), func(v *exchangev1.Plan) bool { return seesVersion(r, v) },
		store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListPlanVersionsResponse{Plans: items, NextPageToken: next}, nil
}

// DiffPlanVersions compares two versions the caller may see.
func (s *planService) DiffPlanVersions(ctx context.Context, req *exchangev1.DiffPlanVersionsRequest) (*exchangev1.DiffPlanVersionsResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	cur, err := s.visiblePlan(ctx, r, req.GetName())
	if err != nil {
		return nil, err
	}
	to := req.GetToVersion()
	if to == 0 {
		to = cur.GetVersion()
	}
	if req.GetFromVersion() > to {
		return nil, invalidField("from_version", fmt.Sprintf("must not be after to_version (%d)", to))
	}
	from, err := s.planVersion(ctx, r, req.GetName(), req.GetFromVersion())
	if err != nil {
		return nil, err
	}
	after := cur
	if to != cur.GetVersion() {
		if after, err = s.planVersion(ctx, r, req.GetName(), to); err != nil {
			return nil, err
		}
	}
	return &exchangev1.DiffPlanVersionsResponse{FromVersion: from.GetVersion(), ToVersion: after.GetVersion(), Changes: diffPlans(from, after)}, nil
}

// ApplyPlans makes the caller's plans match the set it sends.
func (s *planService) ApplyPlans(ctx context.Context, req *exchangev1.ApplyPlansRequest) (*exchangev1.ApplyPlansResponse, error) {
	agencyID, err := ownParent(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	checker := newPlanChecker(s.store)
	desired := make([]*exchangev1.Plan, len(req.GetPlans()))
	first := map[string]int{}
	for i, in := range req.GetPlans() {
		field := fmt.Sprintf("plans[%d]", i)
		if j, dup := first[in.GetExternalId()]; dup {
			return nil, invalidField(field+".external_id", fmt.Sprintf("repeats the external id of plans[%d]", j))
		}
		first[in.GetExternalId()] = i
		p := normalizePlan(in)
		if err := checker.check(ctx, field, p); err != nil {
			return nil, err
		}
		desired[i] = p
	}
	results, err := s.store.ApplyPlans(ctx, opFor(ctx, ""), agencyID, desired, store.ApplyOptions{
		Prune: req.GetPrune(), ValidateOnly: req.GetValidateOnly(), CancelReason: cancelledInSet, PruneReason: cancelledPrune,
	})
	if err != nil {
		return nil, err
	}
	safe, err := s.store.SafeRevision(ctx)
	if err != nil {
		return nil, err
	}
	resp := &exchangev1.ApplyPlansResponse{Revision: safe}
	for _, res := range results {
		out := applyResult(res, req.GetValidateOnly())
		resp.Changed = resp.Changed || changes(out.GetAction())
		resp.Results = append(resp.Results, out)
	}
	return resp, nil
}

// changes reports whether an action writes.
func changes(a exchangev1.PlanApplyAction) bool {
	switch a {
	case exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CREATE, exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UPDATE, exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL:
		return true
	}
	return false
}

// applyResult turns a store result into the wire form.
func applyResult(res store.ApplyResult, validateOnly bool) *exchangev1.PlanApplyResult {
	out := &exchangev1.PlanApplyResult{ExternalId: res.ExternalID, Action: res.Action, Message: res.Message}
	shown := res.After
	if shown == nil {
		shown = res.Before
	}
	if shown != nil {
		out.Plan, out.Version = shown.GetName(), shown.GetVersion()
		if !validateOnly || res.After == nil {
			out.Etag = shown.GetEtag()
		}
	}
	if res.Before != nil && res.After != nil && changes(res.Action) {
		out.ChangedFields = changedFields(res.Before, res.After)
	}
	return out
}

// ImportIatiActivities applies an IATI activity file as the caller's
// plans.
func (s *planService) ImportIatiActivities(ctx context.Context, req *exchangev1.ImportIatiActivitiesRequest) (*exchangev1.ImportIatiActivitiesResponse, error) {
	agencyID, err := ownParent(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	if a := req.GetAudience(); a != nil {
		if err := newPlanChecker(s.store).check(ctx, "audience", &exchangev1.Plan{Audience: a}); err != nil {
			return nil, err
		}
	}
	return s.importIati(ctx, agencyID, req)
}

// skipReason is the message of a refusal, with the fields at fault.
func (s *planService) skipReason(ctx context.Context, err error) string {
	st, _ := status.FromError(toStatus(ctx, s.server.log, "ImportIatiActivities", err))
	msg := st.Message()
	var fields []string
	for _, v := range fieldViolations(st) {
		fields = append(fields, v.GetField()+": "+v.GetDescription())
	}
	if len(fields) > 0 && !strings.Contains(msg, fields[0]) {
		msg += " (" + strings.Join(fields, "; ") + ")"
	}
	return "the activity does not make a valid plan: " + msg
}
