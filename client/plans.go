package client

import (
	"context"
	"iter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// AllPlanOwners is the parent that lists the plans of every agency the
// caller may see.
const AllPlanOwners = "agencies/-"

// PlanClient shares the caller's plans from their inception stage and
// shows who plans to do what, where and when: overlaps between agencies'
// plans, provinces and niches no plan covers, and the coverage matrix.
//
// A plan is named under its owner ("agencies/ilo/plans/01jd…"; PlanName
// builds it) and only the owner changes it. Everything else reads only the
// plans whose audience includes the caller: a plan the caller may not see
// answers NOT_FOUND exactly as if it did not exist, and the coordination
// views never reveal it, not even as the other side of an overlap. Every
// change makes a new version; earlier versions stay readable (Get with a
// version, Versions) and comparable (Diff).
//
// Scripted clients keep their plans in sync with Apply, which takes the
// caller's complete set of plans and creates, updates and (when asked to
// prune) cancels to match; ImportIati does the same from an IATI activity
// file.
type PlanClient struct {
	rpc exchangev1.PlanServiceClient
	// link is the connection the calls go over; follow resets its
	// connect backoff when a stream that delivered breaks.
	link backoffResetter
}

// Create creates the plan p under parent, the caller's own agency
// ("agencies/ilo"), and returns it as stored, with its name, version 1 and
// etag. Output-only fields of p are ignored; p.Stage may be any stage but
// CANCELLED. An external id the caller already uses fails with
// ALREADY_EXISTS. The call carries a request id (random unless
// WithRequestID is given) and is retried on UNAVAILABLE, so it never
// creates twice. With ValidateOnly the exchange checks the plan and returns
// it as it would be stored, without a name, and stores nothing. Agencies
// only.
func (c *PlanClient) Create(ctx context.Context, parent string, p *exchangev1.Plan, opts ...CreateOption) (*exchangev1.Plan, error) {
	s, err := newCreateSettings("CreatePlan", true, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.CreatePlan(ctx, &exchangev1.CreatePlanRequest{
		Parent:       parent,
		Plan:         p,
		RequestId:    s.requestID,
		ValidateOnly: s.validateOnly,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetPlan(), nil
}

// Get returns the plan with the given name: its current version when
// version is 0, else that earlier version. A reader other than the owner
// sees only the versions whose own audience included it; any other
// version answers NOT_FOUND.
func (c *PlanClient) Get(ctx context.Context, name string, version int32) (*exchangev1.Plan, error) {
	resp, err := c.rpc.GetPlan(ctx, &exchangev1.GetPlanRequest{Name: name, Version: version})
	if err != nil {
		return nil, err
	}
	return resp.GetPlan(), nil
}

// Plans iterates over the plans the caller may see that match req's
// filters (owner as parent, niche, country, province, stage, period,
// external id), by owner id and then oldest first. A nil req, or an empty
// parent, lists the plans of every agency (AllPlanOwners). req's
// page_token is ignored and req is not changed. On error the iterator
// yields the error once and stops.
func (c *PlanClient) Plans(ctx context.Context, req *exchangev1.ListPlansRequest) iter.Seq2[*exchangev1.Plan, error] {
	seq, _ := c.plans(ctx, req)
	return seq
}

// Snapshot returns every plan Plans would yield for req and the revision
// to watch from to follow changes after them: the revision the first page
// was read at. A change made while later pages are read may show both in
// the list and as a watch event; none is missed. This is the re-list that
// Watch's OUT_OF_RANGE error asks for.
func (c *PlanClient) Snapshot(ctx context.Context, req *exchangev1.ListPlansRequest) (plans []*exchangev1.Plan, revision int64, err error) {
	seq, rev := c.plans(ctx, req)
	plans, err = Collect(seq)
	if err != nil {
		return nil, 0, err
	}
	return plans, *rev, nil
}

// plans is Plans, with a pointer to the revision of the first page read,
// set once that page is fetched.
func (c *PlanClient) plans(ctx context.Context, req *exchangev1.ListPlansRequest) (iter.Seq2[*exchangev1.Plan, error], *int64) {
	if req == nil {
		req = &exchangev1.ListPlansRequest{}
	}
	req = proto.CloneOf(req)
	if req.Parent == "" {
		req.Parent = AllPlanOwners
	}
	rev := new(int64)
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Plan, string, error) {
		req.PageToken = token
		resp, err := c.rpc.ListPlans(ctx, req)
		if err == nil && token == "" {
			*rev = resp.GetRevision()
		}
		return resp.GetPlans(), resp.GetNextPageToken(), err
	}), rev
}

// Update changes the plan p.Name to the values in p and returns it as
// stored, with its next version. p must carry the etag as last read; if
// the plan changed since, the call fails with ABORTED (reason
// ETAG_MISMATCH): read it again and reapply. paths names the fields to
// change ("title", "locations", "budget", ...); none means every field the
// owner may change, so send the whole plan. Every field of p must be
// valid, whether paths names it or not. A cancelled plan cannot change
// (FAILED_PRECONDITION), and Update cannot cancel (use Cancel). Owner
// only; not retried (read the plan again after an UNAVAILABLE error to see
// whether the update took effect).
func (c *PlanClient) Update(ctx context.Context, p *exchangev1.Plan, paths ...string) (*exchangev1.Plan, error) {
	resp, err := c.rpc.UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: p, UpdateMask: updateMask(paths)})
	if err != nil {
		return nil, err
	}
	return resp.GetPlan(), nil
}

// Cancel abandons the plan with the given name, for reason, which the
// agencies that coordinated around it will read: any stage → CANCELLED,
// which is final. The plan and its versions stay readable. etag is the
// plan's etag as last read, or "" to skip the check. Owner only; not
// retried.
func (c *PlanClient) Cancel(ctx context.Context, name, reason, etag string) (*exchangev1.Plan, error) {
	resp, err := c.rpc.CancelPlan(ctx, &exchangev1.CancelPlanRequest{Name: name, Reason: reason, Etag: etag})
	if err != nil {
		return nil, err
	}
	return resp.GetPlan(), nil
}

// Versions iterates over the versions of the plan with the given name,
// oldest first, each the whole plan as it was. A reader other than the
// owner sees only the versions whose own audience included it, so that
// sharing a plan today does not reveal the drafts made before. On error
// the iterator yields the error once and stops.
func (c *PlanClient) Versions(ctx context.Context, name string) iter.Seq2[*exchangev1.Plan, error] {
	req := &exchangev1.ListPlanVersionsRequest{Name: name}
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Plan, string, error) {
		req.PageToken = token
		resp, err := c.rpc.ListPlanVersions(ctx, req)
		return resp.GetPlans(), resp.GetNextPageToken(), err
	})
}

// Diff lists the fields that differ between versions from and to of the
// plan with the given name (to 0 for the current version), for example
// what changed from inception to agreement: each with its value before
// and after in JSON form and, for lists, the elements added and removed.
// Bookkeeping fields (version, times, etag) are left out.
func (c *PlanClient) Diff(ctx context.Context, name string, from, to int32) (*exchangev1.DiffPlanVersionsResponse, error) {
	return c.rpc.DiffPlanVersions(ctx, &exchangev1.DiffPlanVersionsRequest{Name: name, FromVersion: from, ToVersion: to})
}

// Apply makes the caller's stored plans match req.Plans, the complete set
// of plans of req.Parent (the caller's own agency), matched by external
// id: it creates the new ones, updates those that differ, leaves equal
// ones unchanged and, only with req.Prune, cancels the caller's plans
// missing from the set. A plan marked CANCELLED in the set cancels the
// stored one.
//
// The response has one result per plan of the set, in order, then one per
// plan cancelled by prune; Changed says whether anything changed. A plan
// whose etag is set and stale (someone changed the stored plan since it
// was read) is not overwritten but reported as a CONFLICT, and so is a
// change to a cancelled plan; the others still apply. An invalid plan
// fails the whole call with INVALID_ARGUMENT naming plans[i], and nothing
// changes, so a partly wrong set never prunes. With req.ValidateOnly the
// response says what would happen and nothing changes.
//
// Applying the same set twice changes nothing the second time. Even so,
// Apply is retried on UNAVAILABLE only with req.ValidateOnly: after a lost
// answer, a repeat would report as unchanged what the lost call changed.
// On UNAVAILABLE the apply may or may not have taken effect; apply again
// (it is safe) and expect such plans to show as unchanged. Agencies only.
func (c *PlanClient) Apply(ctx context.Context, req *exchangev1.ApplyPlansRequest) (*exchangev1.ApplyPlansResponse, error) {
	return c.rpc.ApplyPlans(ctx, req)
}

// ImportIati reads req.IatiXml, an IATI activity file (iati-activities,
// version 2.01 to 2.03, at most 4,000,000 bytes), and applies its
// activities as plans of req.Parent (the caller's own agency) as Apply
// does without prune, matched by iati-identifier. req.Audience, when set,
// says who sees the plans (IATI has none); unset gives new plans the owner
// alone and keeps the audience of stored ones.
//
// The response reports each activity on its own, with every element and
// attribute the import could not map (and, separately, those of the file
// outside any activity): nothing is dropped silently. An activity that
// cannot become a valid plan is skipped with the reason, and the others
// still apply. Retried on UNAVAILABLE only with req.ValidateOnly, as
// Apply. Agencies only.
func (c *PlanClient) ImportIati(ctx context.Context, req *exchangev1.ImportIatiActivitiesRequest) (*exchangev1.ImportIatiActivitiesResponse, error) {
	return c.rpc.ImportIatiActivities(ctx, req)
}

// Overlaps iterates over the pairs of non-cancelled plans of different
// agencies, among those the caller may see, that share a niche and at
// least one location and whose planned periods overlap, ordered by the
// names of their first, then second plan. req filters by country, niche,
// period and agency; nil finds all. Each overlap names both plans and
// what they share. The iterator fetches a page at a time as the loop
// needs it; req's page_token is ignored and req is not changed. On error
// it yields the error once and stops.
func (c *PlanClient) Overlaps(ctx context.Context, req *exchangev1.FindOverlapsRequest) iter.Seq2[*exchangev1.PlanOverlap, error] {
	if req == nil {
		req = &exchangev1.FindOverlapsRequest{}
	}
	req = proto.CloneOf(req)
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.PlanOverlap, string, error) {
		req.PageToken = token
		resp, err := c.rpc.FindOverlaps(ctx, req)
		return resp.GetOverlaps(), resp.GetNextPageToken(), err
	})
}

// Gaps lists, for req.Country and req.Period (both required), the
// provinces and niches (req.Niches, or all) in which no non-cancelled plan
// the caller may see is planned to be active, by province code, then
// niche. A plan for a whole country covers each of its provinces.
func (c *PlanClient) Gaps(ctx context.Context, req *exchangev1.FindGapsRequest) (*exchangev1.FindGapsResponse, error) {
	return c.rpc.FindGaps(ctx, req)
}

// Coverage returns the who-does-what-where matrix of req.Country: for each
// province and niche (req.Niches, or all) with at least one non-cancelled
// plan the caller may see and whose planned period meets req.Period (when
// set), the agencies with plans there and how many plans. Plans for the
// whole country are counted once, in cells with an empty subdivision,
// rather than in every province.
func (c *PlanClient) Coverage(ctx context.Context, req *exchangev1.GetCoverageRequest) (*exchangev1.GetCoverageResponse, error) {
	return c.rpc.GetCoverage(ctx, req)
}

// Watch follows changes to the plans the caller may see that match req's
// filters (provinces, niches; a nil req follows all) after fromRevision,
// then live, and calls fn with each event, in order, on the caller's
// goroutine: a plan created, updated or cancelled (with the whole plan),
// or REMOVED (name and owner only) when a plan the caller saw no longer
// concerns it. fn also receives heartbeats (kind
// PLAN_EVENT_KIND_HEARTBEAT, no plan), whose revision says how far the
// watch has got. req's start_revision is ignored and req is not changed.
//
// fromRevision 0 means from now: Watch first reads the current revision
// (one ListPlans call for one plan) so that a reconnection before the
// first event misses nothing. To follow a list, pass the list's revision
// (Snapshot, Apply and the coordination views return it).
//
// Watch resumes as ReferralClient.Watch does: when the stream breaks it
// reconnects with backoff, for as long as ctx allows, and resumes after
// the last revision it delivered completely, so that no event is lost and
// none is delivered twice (OnReconnect tells of each reconnection). It
// returns when ctx is done (a CANCELED or DEADLINE_EXCEEDED status
// error), when fn returns an error (that error, unchanged), or on any
// other error from the exchange, unchanged. OUT_OF_RANGE means the
// revision is older than the change log keeps: list again with Snapshot
// and watch from its revision. Config.Timeout does not bound Watch; ctx
// does. ResumeFrom keeps its position across restarts, as for
// ReferralClient.Watch (name the cursor after req's filters).
func (c *PlanClient) Watch(ctx context.Context, req *exchangev1.WatchPlansRequest, fromRevision int64, fn func(*exchangev1.WatchPlansResponse) error, opts ...WatchOption) error {
	if fromRevision < 0 {
		return status.Errorf(codes.InvalidArgument, "client: watch plans from revision %d: want 0 (from now) or a revision", fromRevision)
	}
	if req == nil {
		req = &exchangev1.WatchPlansRequest{}
	}
	req = proto.CloneOf(req)
	cur := &watchCursor{done: fromRevision}
	s := newWatchSettings(opts)
	keeper := newCursorKeeper(s, positionWatch, s.cursorName)
	if err := cur.restore(keeper); err != nil {
		return err
	}
	cur.keeper = keeper
	fn = savingAfter(keeper, fn, cur.position)
	return follow(ctx, opts, 0, c.link, func() (bool, error) { return c.watchOnce(ctx, req, cur, fn) }, func() int64 { return cur.done })
}

// watchOnce runs one stream of req from the cursor until it fails, and
// reports whether it delivered anything (an event or a heartbeat).
func (c *PlanClient) watchOnce(ctx context.Context, req *exchangev1.WatchPlansRequest, cur *watchCursor, fn func(*exchangev1.WatchPlansResponse) error) (bool, error) {
	cur.reconnect()
	if cur.done == 0 && cur.partial == 0 {
		// From now: pin "now" to a revision, as ReferralClient.Watch does.
		resp, err := c.rpc.ListPlans(ctx, &exchangev1.ListPlansRequest{Parent: AllPlanOwners, PageSize: 1})
		if err != nil {
			return false, err
		}
		cur.done = resp.GetRevision()
		if err := cur.keeper.save(cur.position()); err != nil {
			return false, callbackError{err}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req.StartRevision = cur.done
	stream, err := c.rpc.WatchPlans(ctx, req)
	if err != nil {
		return false, err
	}
	return deliver(cur, stream.Recv, func(ev *exchangev1.WatchPlansResponse) bool {
		return ev.GetKind() == exchangev1.PlanEventKind_PLAN_EVENT_KIND_HEARTBEAT
	}, fn)
}
