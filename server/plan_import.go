package server

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/iati"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// cancelledInIati is recorded on plans cancelled by an IATI import.
const cancelledInIati = "cancelled in the owner's IATI file (activity-status 5)"

// importIati maps the file's activities to plans, checks each like a
// plan sent to ApplyPlans (an activity that fails is skipped with the
// reason), and applies the rest without prune.
func (s *planService) importIati(ctx context.Context, agencyID string, req *exchangev1.ImportIatiActivitiesRequest) (*exchangev1.ImportIatiActivitiesResponse, error) {
	f, err := iati.Parse(req.GetIatiXml())
	if err != nil {
		return nil, invalidField("iati_xml", err.Error())
	}
	resp := &exchangev1.ImportIatiActivitiesResponse{IatiVersion: f.Version, Unmapped: unmappedOut(f.Unmapped)}
	checker := newPlanChecker(s.store)
	results := make([]*exchangev1.IatiActivityResult, len(f.Activities))
	var desired []*exchangev1.Plan
	var positions []int
	seen := map[string]int{}
	for i, a := range f.Activities {
		res := &exchangev1.IatiActivityResult{Index: int32(i), IatiIdentifier: a.Identifier, Unmapped: unmappedOut(a.Unmapped)}
		results[i] = res
		skip := func(msg string) {
			res.Result = &exchangev1.PlanApplyResult{ExternalId: a.Identifier, Action: exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_SKIP, Message: msg}
		}
		if len(a.Problems) > 0 {
			skip("the activity cannot become a plan: " + strings.Join(a.Problems, "; "))
			continue
		}
		if j, dup := seen[a.Identifier]; dup {
			skip(fmt.Sprintf("repeats the iati-identifier of activity %d; only the first is imported", j))
			continue
		}
		p := proto.Clone(a.Plan).(*exchangev1.Plan)
		if req.GetAudience() != nil {
			p.Audience = proto.Clone(req.GetAudience()).(*exchangev1.Audience)
		}
		p = normalizePlan(p)
		if err := s.server.validate(p); err != nil {
			skip(s.skipReason(ctx, err))
			continue
		}
		if err := checker.check(ctx, "plan", p); err != nil {
			skip(s.skipReason(ctx, err))
			continue
		}
		// IATI's pipeline status covers concept, draft and agreement: a
		// plan the owner has moved on to draft or agreed stays there.
		if p.GetStage() == exchangev1.PlanStage_PLAN_STAGE_CONCEPT {
			stored, err := s.store.PlanByExternalID(ctx, agencyID, p.GetExternalId())
			if err != nil && store.KindOf(err) != store.KindNotFound {
				return nil, err
			}
			if st := stored.GetStage(); st == exchangev1.PlanStage_PLAN_STAGE_DRAFT || st == exchangev1.PlanStage_PLAN_STAGE_AGREED {
				p.Stage = st
			}
		}
		seen[a.Identifier] = i
		desired = append(desired, p)
		positions = append(positions, i)
	}
	applied, err := s.store.ApplyPlans(ctx, opFor(ctx, ""), agencyID, desired, store.ApplyOptions{
		ValidateOnly: req.GetValidateOnly(), CancelReason: cancelledInIati, KeepStoredAudience: req.GetAudience() == nil,
	})
	if err != nil {
		return nil, err
	}
	for j, res := range applied {
		out := applyResult(res, req.GetValidateOnly())
		results[positions[j]].Result = out
		resp.Changed = resp.Changed || changes(out.GetAction())
	}
	resp.Activities = results
	if resp.Revision, err = s.store.SafeRevision(ctx); err != nil {
		return nil, err
	}
	return resp, nil
}

func unmappedOut(in []iati.Unmapped) []*exchangev1.IatiUnmappedElement {
	out := make([]*exchangev1.IatiUnmappedElement, len(in))
	for i, u := range in {
		out[i] = &exchangev1.IatiUnmappedElement{Path: u.Path, Value: u.Value, Reason: u.Reason}
	}
	return out
}
