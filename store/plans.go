package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// planCollection is the collection id in plan names,
// "agencies/{agency}/plans/{plan}".
const planCollection = "/plans/"

// planIDLen is the length of a plan id (see newID).
const planIDLen = 26

// PlanMutableFields are the Plan fields its owner sets; every other field
// is output only and stamped by the store (name, owner, version,
// cancel_reason, times, etag).
var PlanMutableFields = []string{
	"external_id", "title", "description", "stage", "niches", "locations",
	"planned_period", "actual_period", "budget", "partners", "target_groups",
	"audience", "tags",
}

var plans = table[*exchangev1.Plan]{
	bucket:  bucketPlans,
	newT:    func() *exchangev1.Plan { return new(exchangev1.Plan) },
	indexes: planIndexes,
}

func planIndexes(p *exchangev1.Plan) []indexEntry {
	agencyID, id, _ := SplitPlanName(p.GetName())
	return []indexEntry{{bucketPlanByExternalID, joinKey(agencyID, p.GetExternalId(), id)}}
}

// PlanName returns "agencies/{agencyID}/plans/{id}".
func PlanName(agencyID, id string) string { return AgencyPrefix + agencyID + planCollection + id }

// SplitPlanName returns the agency id and plan id of
// "agencies/{agency}/plans/{plan}"; ok is false for anything else.
func SplitPlanName(name string) (agencyID, id string, ok bool) {
	rest, found := strings.CutPrefix(name, AgencyPrefix)
	if !found {
		return "", "", false
	}
	agencyID, id, ok = strings.Cut(rest, planCollection)
	return agencyID, id, ok && agencyID != "" && len(id) == planIDLen
}

func planKey(name string) []byte {
	agencyID, id, _ := SplitPlanName(name)
	return joinKey(agencyID, id)
}

// planVersionKey is plan id u32(version).
func planVersionKey(id string, version int32) []byte {
	return append([]byte(id), u32(uint32(version))...)
}

// planByExternalID finds the agency's plan with the external id.
func planByExternalID(tx kv.Tx, agencyID, externalID string) (*exchangev1.Plan, bool, error) {
	prefix := joinKey(agencyID, externalID, "")
	k, _ := tx.Bucket(bucketPlanByExternalID).Cursor().Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, false, nil
	}
	p, ok, err := plans.get(tx, joinKey(agencyID, string(k[len(prefix):])))
	if err == nil && !ok {
		err = internal("external id index refers to a missing plan", nil)
	}
	return p, ok, err
}

// externalIDTaken fails with KindAlreadyExists when another plan of the
// agency than self uses the external id.
func externalIDTaken(tx kv.Tx, agencyID, externalID, self, field string) error {
	other, ok, err := planByExternalID(tx, agencyID, externalID)
	if err != nil || !ok || other.GetName() == self {
		return err
	}
	return &Error{Kind: KindAlreadyExists, Resource: other.GetName(), Field: field,
		Message: fmt.Sprintf("%s: %s already uses external id %q", field, other.GetName(), externalID)}
}

// writePlanVersion keeps a copy of the plan at its version.
func writePlanVersion(w *writeTx, p *exchangev1.Plan) error {
	_, id, _ := SplitPlanName(p.GetName())
	b, err := marshal(p)
	if err != nil {
		return err
	}
	if err := w.tx.Bucket(bucketPlanVersions).Put(planVersionKey(id, p.GetVersion()), b); err != nil {
		return internal("cannot write plan version", err)
	}
	return nil
}

// createPlan stores a new plan of the agency at version 1.
func createPlan(w *writeTx, agencyID string, p *exchangev1.Plan) (*exchangev1.Plan, error) {
	if err := externalIDTaken(w.tx, agencyID, p.GetExternalId(), "", "plan.external_id"); err != nil {
		return nil, err
	}
	p = proto.Clone(p).(*exchangev1.Plan)
	p.Owner = AgencyPrefix + agencyID
	p.Version = 1
	p.CancelReason = ""
	id := newID(w.now)
	created, err := plans.create(w, joinKey(agencyID, id), PlanName(agencyID, id), p)
	if err != nil {
		return nil, err
	}
	return created, writePlanVersion(w, created)
}

// modifyPlan applies mutate to the stored plan; when that changes
// anything the plan takes the next version, which is kept. mutate cannot
// change the owner, the version or the bookkeeping fields.
func modifyPlan(w *writeTx, name, etag string, mutate func(*exchangev1.Plan) error) (*exchangev1.Plan, error) {
	agencyID, _, _ := SplitPlanName(name)
	var prior int32
	next, err := plans.modify(w, planKey(name), name, etag, func(p *exchangev1.Plan) error {
		orig := proto.Clone(p).(*exchangev1.Plan)
		prior = orig.GetVersion()
		if err := mutate(p); err != nil {
			return err
		}
		for _, f := range []string{"name", "owner", "version", "create_time", "update_time", "etag"} {
			copyField(p, orig, f)
		}
		if p.GetExternalId() != orig.GetExternalId() {
			if err := externalIDTaken(w.tx, agencyID, p.GetExternalId(), name, "plan.external_id"); err != nil {
				return err
			}
		}
		if !proto.Equal(orig, p) {
			p.Version = orig.GetVersion() + 1
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if next.GetVersion() != prior {
		return next, writePlanVersion(w, next)
	}
	return next, nil
}

// CreatePlan stores a new plan owned by "agencies/{agencyID}" at version
// 1; the owner, version and bookkeeping fields are set here. An external
// id the agency already uses fails with KindAlreadyExists. A retry with
// the same Op.RequestID returns the plan the first call created.
func (s *Store) CreatePlan(ctx context.Context, op Op, agencyID string, p *exchangev1.Plan) (*exchangev1.Plan, error) {
	var out *exchangev1.Plan
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := plans.get(w.tx, planKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing plan", err)
			}
			out = got
			return nil
		}
		created, err := createPlan(w, agencyID, p)
		out = created
		return err
	})
	return out, err
}

// GetPlan returns the current version of the plan.
func (s *Store) GetPlan(ctx context.Context, name string) (*exchangev1.Plan, error) {
	var out *exchangev1.Plan
	err := s.view(ctx, func(tx kv.Tx) error {
		p, ok, err := plans.get(tx, planKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		out = p
		return nil
	})
	return out, err
}

// GetPlanVersion returns the plan as it was at version; KindNotFound when
// the plan or the version does not exist.
func (s *Store) GetPlanVersion(ctx context.Context, name string, version int32) (*exchangev1.Plan, error) {
	_, id, _ := SplitPlanName(name)
	var out *exchangev1.Plan
	err := s.view(ctx, func(tx kv.Tx) error {
		v := tx.Bucket(bucketPlanVersions).Get(planVersionKey(id, version))
		if v == nil {
			return &Error{Kind: KindNotFound, Resource: name, Message: fmt.Sprintf("%s has no version %d", name, version)}
		}
		p := new(exchangev1.Plan)
		if err := unmarshal(v, p); err != nil {
			return err
		}
		if p.GetName() != name {
			return notFound(name)
		}
		out = p
		return nil
	})
	return out, err
}

// PlanByExternalID returns the agency's plan with the external id.
func (s *Store) PlanByExternalID(ctx context.Context, agencyID, externalID string) (*exchangev1.Plan, error) {
	var out *exchangev1.Plan
	err := s.view(ctx, func(tx kv.Tx) error {
		p, ok, err := planByExternalID(tx, agencyID, externalID)
		if err != nil {
			return err
		}
		if !ok {
			return &Error{Kind: KindNotFound, Message: fmt.Sprintf("agencies/%s has no plan with external id %q", agencyID, externalID)}
		}
		out = p
		return nil
	})
	return out, err
}

// UpdatePlan applies mutate to the stored plan; see UpdateAgency for etag
// and mutate. A change makes the next version, which is kept; mutate
// cannot change the owner, the version or the bookkeeping fields. A new
// external id the agency already uses fails with KindAlreadyExists.
func (s *Store) UpdatePlan(ctx context.Context, op Op, name, etag string, mutate func(*exchangev1.Plan) error) (*exchangev1.Plan, error) {
	var out *exchangev1.Plan
	err := s.update(ctx, op, func(w *writeTx) error {
		p, err := modifyPlan(w, name, etag, mutate)
		out = p
		return err
	})
	return out, err
}

// PlanFilter selects plans in ListPlans.
type PlanFilter struct {
	// AgencyID limits the list to one owner; empty means every owner.
	AgencyID string
	// ExternalID, with AgencyID, selects the plan with that external id.
	ExternalID string
	// Keep, when set, decides on each plan (visibility and the filters
	// the store does not index).
	Keep func(*exchangev1.Plan) bool
	// Fingerprint identifies the query's other filters, for page tokens.
	Fingerprint string
}

// ListPlans returns one page of plans ordered by owner id, then creation,
// and a safe revision (SafeRevision) the page includes every change up
// to: a watch from it misses nothing, though it may repeat a change the
// page already shows.
func (s *Store) ListPlans(ctx context.Context, f PlanFilter, p Page) ([]*exchangev1.Plan, string, int64, error) {
	fp := query("plans", f.AgencyID, f.ExternalID, f.Fingerprint)
	bucket, prefix := bucketPlans, []byte(nil)
	if f.AgencyID != "" {
		prefix = joinKey(f.AgencyID, "")
		if f.ExternalID != "" {
			bucket, prefix = bucketPlanByExternalID, joinKey(f.AgencyID, f.ExternalID, "")
		}
	}
	var items []*exchangev1.Plan
	var token string
	rev, err := s.SafeRevision(ctx) // before the read: it sees every change up to rev
	if err != nil {
		return nil, "", 0, err
	}
	err = s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucket, prefix, p, fp, func(k, v []byte) (*exchangev1.Plan, bool, error) {
			var pl *exchangev1.Plan
			if bytes.Equal(bucket, bucketPlans) {
				pl = new(exchangev1.Plan)
				if err := unmarshal(v, pl); err != nil {
					return nil, false, err
				}
			} else {
				got, ok, err := plans.get(tx, joinKey(f.AgencyID, string(k[len(prefix):])))
				if err != nil || !ok {
					return nil, false, err
				}
				pl = got
			}
			return pl, f.Keep == nil || f.Keep(pl), nil
		})
		return err
	})
	return items, token, rev, err
}

// ListPlanVersions returns one page of the plan's versions, oldest first;
// keep, when set, decides on each. KindNotFound when the plan does not
// exist.
func (s *Store) ListPlanVersions(ctx context.Context, name string, keep func(*exchangev1.Plan) bool, p Page) ([]*exchangev1.Plan, string, error) {
	_, id, _ := SplitPlanName(name)
	var items []*exchangev1.Plan
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		if _, ok, err := plans.get(tx, planKey(name)); err != nil {
			return err
		} else if !ok {
			return notFound(name)
		}
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucketPlanVersions, []byte(id), p, query("plan_versions", name), func(_, v []byte) (*exchangev1.Plan, bool, error) {
			pl := new(exchangev1.Plan)
			if err := unmarshal(v, pl); err != nil {
				return nil, false, err
			}
			return pl, keep == nil || keep(pl), nil
		})
		return err
	})
	return items, token, err
}

// PlanSnapshot returns every plan (current versions), all read in one
// transaction, and the revision they were read at. The plans are decoded
// before the transaction ends, so the caller can compute views over them
// and send the results without holding the database.
func (s *Store) PlanSnapshot(ctx context.Context) ([]*exchangev1.Plan, int64, error) {
	var out []*exchangev1.Plan
	var rev int64
	err := s.view(ctx, func(tx kv.Tx) error {
		rev = readRevision(tx)
		b := tx.Bucket(bucketPlans)
		out = nil
		return b.ForEach(func(_, v []byte) error {
			p := new(exchangev1.Plan)
			if err := unmarshal(v, p); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	return out, rev, err
}

// ApplyOptions tune ApplyPlans.
type ApplyOptions struct {
	// Prune cancels the agency's plans whose external ids are not in the
	// set.
	Prune bool
	// ValidateOnly decides and reports without writing.
	ValidateOnly bool
	// CancelReason is recorded on plans cancelled because the desired plan
	// is marked cancelled.
	CancelReason string
	// PruneReason is recorded on plans cancelled by Prune.
	PruneReason string
	// KeepStoredAudience keeps the audience of stored plans when the
	// desired plan has none (for imports from formats without audiences).
	KeepStoredAudience bool
}

// ApplyResult is what ApplyPlans did (or would do) with one plan.
type ApplyResult struct {
	// ExternalID is the plan's external id.
	ExternalID string
	// Action is what was done.
	Action exchangev1.PlanApplyAction
	// Before is the stored plan before, nil when there was none.
	Before *exchangev1.Plan
	// After is the plan as stored after (for ValidateOnly, as it would
	// be); nil for conflicts and skips.
	After *exchangev1.Plan
	// Message explains a conflict or a skip.
	Message string
}

// ApplyPlans makes the plans of "agencies/{agencyID}" match desired,
// matched by external id, in one transaction, each change at its own
// revision: new external ids are created, differing plans updated (or
// cancelled, when the desired stage is CANCELLED), equal ones left alone
// without writing anything, and with opt.Prune the agency's other
// non-cancelled plans are cancelled. A desired plan with an etag that no
// longer matches the stored plan, or one that would change a cancelled
// plan, is not applied and reported as a conflict; the others still apply.
// Desired plans must be valid and their external ids unique; the caller
// checks. Results follow desired, then the pruned plans in key order.
func (s *Store) ApplyPlans(ctx context.Context, op Op, agencyID string, desired []*exchangev1.Plan, opt ApplyOptions) ([]ApplyResult, error) {
	var results []ApplyResult
	run := func(tx kv.Tx, w *writeTx) error {
		var err error
		results, err = applyPlans(tx, w, agencyID, desired, opt)
		return err
	}
	if opt.ValidateOnly {
		err := s.view(ctx, func(tx kv.Tx) error { return run(tx, nil) })
		return results, err
	}
	err := s.update(ctx, op, func(w *writeTx) error { return run(w.tx, w) })
	return results, err
}

// applyPlans decides each action in tx and, when w is not nil, carries it
// out in w.
func applyPlans(tx kv.Tx, w *writeTx, agencyID string, desired []*exchangev1.Plan, opt ApplyOptions) ([]ApplyResult, error) {
	cancelled := exchangev1.PlanStage_PLAN_STAGE_CANCELLED
	results := make([]ApplyResult, 0, len(desired))
	wanted := make(map[string]bool, len(desired))
	for _, d := range desired {
		wanted[d.GetExternalId()] = true
		res := ApplyResult{ExternalID: d.GetExternalId()}
		cur, found, err := planByExternalID(tx, agencyID, d.GetExternalId())
		if err != nil {
			return nil, err
		}
		if !found {
			if d.GetStage() == cancelled {
				res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_SKIP
				res.Message = "the plan is marked cancelled and no plan with this external id is stored; nothing to cancel"
				results = append(results, res)
				continue
			}
			res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CREATE
			if w == nil {
				preview := proto.Clone(d).(*exchangev1.Plan)
				preview.Name, preview.Owner, preview.Version, preview.Etag = "", AgencyPrefix+agencyID, 1, ""
				res.After = preview
			} else {
				if res.After, err = createPlan(w, agencyID, d); err != nil {
					return nil, err
				}
			}
			results = append(results, res)
			continue
		}
		res.Before = cur
		want := proto.Clone(cur).(*exchangev1.Plan)
		for _, f := range PlanMutableFields {
			if f == "audience" && opt.KeepStoredAudience && d.GetAudience() == nil {
				continue
			}
			copyField(want, d, f)
		}
		if d.GetStage() == cancelled && cur.GetStage() != cancelled {
			want.CancelReason = opt.CancelReason
		}
		switch {
		case proto.Equal(want, cur):
			res.Action, res.After = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UNCHANGED, cur
		case cur.GetStage() == cancelled:
			res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CONFLICT
			res.Message = cur.GetName() + " is cancelled and cannot change; give a new plan a new external id"
		case d.GetEtag() != "" && d.GetEtag() != cur.GetEtag():
			res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CONFLICT
			res.Message = fmt.Sprintf("%s changed since the etag sent (it is now at version %d); read it again and reconcile", cur.GetName(), cur.GetVersion())
		default:
			res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UPDATE
			if want.GetStage() == cancelled {
				res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL
			}
			if res.After, err = applyChange(w, cur, want); err != nil {
				return nil, err
			}
		}
		results = append(results, res)
	}
	if !opt.Prune {
		return results, nil
	}
	prefix := joinKey(agencyID, "")
	c := tx.Bucket(bucketPlans).Cursor()
	var stale []*exchangev1.Plan
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		p := new(exchangev1.Plan)
		if err := unmarshal(v, p); err != nil {
			return nil, err
		}
		if p.GetStage() != cancelled && !wanted[p.GetExternalId()] {
			stale = append(stale, p)
		}
	}
	// Writing while a cursor walks a bucket is unsafe in bbolt, so the
	// stale plans are collected first.
	for _, cur := range stale {
		want := proto.Clone(cur).(*exchangev1.Plan)
		want.Stage, want.CancelReason = cancelled, opt.PruneReason
		after, err := applyChange(w, cur, want)
		if err != nil {
			return nil, err
		}
		results = append(results, ApplyResult{ExternalID: cur.GetExternalId(), Action: exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL, Before: cur, After: after})
	}
	return results, nil
}

// applyChange stores want over cur (when w is not nil) and returns the
// result; without w it returns the preview.
func applyChange(w *writeTx, cur, want *exchangev1.Plan) (*exchangev1.Plan, error) {
	if w == nil {
		preview := proto.Clone(want).(*exchangev1.Plan)
		preview.Version, preview.Etag = cur.GetVersion()+1, ""
		return preview, nil
	}
	return modifyPlan(w, cur.GetName(), cur.GetEtag(), func(p *exchangev1.Plan) error {
		for _, f := range PlanMutableFields {
			copyField(p, want, f)
		}
		p.CancelReason = want.GetCancelReason()
		return nil
	})
}
