package clienttest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/alltogether/exchange/geo"
	"github.com/alltogether/exchange/iati"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// planMutable are the Plan fields the owner sets, as UpdatePlan with an
// empty mask and ApplyPlans change them.
var planMutable = []string{
	"external_id", "title", "description", "stage", "niches", "locations",
	"planned_period", "actual_period", "budget", "partners", "target_groups",
	"audience", "tags",
}

// planBookkeeping are the fields a diff leaves out.
var planBookkeeping = map[string]bool{"name": true, "owner": true, "version": true, "createTime": true, "updateTime": true, "etag": true}

var planNamePattern = regexp.MustCompile(`^agencies/[a-z][a-z0-9-]{1,38}[a-z0-9]/plans/[0-9a-z]{26}$`)

// Reasons recorded on plans that ApplyPlans and imports cancel, as on the
// real server.
const (
	planCancelledInSet = "marked cancelled in the owner's plan set (ApplyPlans)"
	planCancelledPrune = "no longer in the owner's plan set (ApplyPlans with prune)"
	planCancelledIati  = "cancelled in the owner's IATI file (activity-status 5)"
)

// planState is the fake's plan store, guarded by state.mu. Its maps are
// made on first use.
type planState struct {
	// current maps a plan's name to its current version.
	current map[string]*exchangev1.Plan
	// versions maps a plan's name to all its versions, oldest first.
	versions map[string][]*exchangev1.Plan
	// changes is the plan change log, oldest first.
	changes []planChange
	// changed is closed and replaced at each plan change.
	changed chan struct{}
}

// planChange is one entry of the plan change log.
type planChange struct {
	revision int64
	created  bool
	plan     *exchangev1.Plan
	// prev is the version before, nil for a new plan.
	prev *exchangev1.Plan
}

// init makes the maps. The caller holds mu.
func (ps *planState) init() {
	if ps.current == nil {
		ps.current = map[string]*exchangev1.Plan{}
		ps.versions = map[string][]*exchangev1.Plan{}
		ps.changed = make(chan struct{})
	}
}

// planService is the fake PlanService. It keeps owners, external ids,
// request ids, etags, versions, visibility by audience (all members, named
// agencies, working groups by their members), the ApplyPlans diff with
// conflicts and prune, IATI import through package iati, brute-force
// coordination views over the provinces of package geo, and a change log
// for watches, which BreakWatch and SetWatchHeartbeat shape as they do
// referral watches. It checks only the plan fields the client and
// exchangectl tests rely on.
type planService struct {
	exchangev1.UnimplementedPlanServiceServer
	server *Server
	state  *state
}

// PutPlan stores a copy of p as is (p.Name and p.Owner must be set; the
// stage defaults to CONCEPT), as a new version of any plan of that name,
// records a change for watches, and returns the stored copy with its
// version and a fresh etag.
func (s *Server) PutPlan(p *exchangev1.Plan) *exchangev1.Plan {
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	p = proto.CloneOf(p)
	if p.Stage == exchangev1.PlanStage_PLAN_STAGE_UNSPECIFIED {
		p.Stage = exchangev1.PlanStage_PLAN_STAGE_CONCEPT
	}
	return st.recordPlan(p)
}

// Plans returns copies of the current versions of every stored plan, in
// name order.
func (s *Server) Plans() []*exchangev1.Plan {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	s.state.plans.init()
	return sortedValues(s.state.plans.current, func(a, b *exchangev1.Plan) int { return cmp.Compare(a.Name, b.Name) })
}

// recordPlan stores p as the next version of its name at a new revision
// and appends the change. The caller holds mu.
func (st *state) recordPlan(p *exchangev1.Plan) *exchangev1.Plan {
	ps := &st.plans
	ps.init()
	rev := st.nextRevision()
	prev := ps.current[p.Name]
	p.Version = prev.GetVersion() + 1
	p.Etag = fmt.Sprintf("p%d", rev)
	p.UpdateTime = now()
	if prev == nil {
		p.CreateTime = p.UpdateTime
	} else {
		p.CreateTime = prev.CreateTime
	}
	ps.current[p.Name] = proto.CloneOf(p)
	ps.versions[p.Name] = append(ps.versions[p.Name], proto.CloneOf(p))
	ps.changes = append(ps.changes, planChange{revision: rev, created: prev == nil, plan: proto.CloneOf(p), prev: proto.CloneOf(prev)})
	close(ps.changed)
	ps.changed = make(chan struct{})
	return proto.CloneOf(p)
}

// seesPlan reports whether agency ("" for the secretariat) may see a
// plan version: its owner, or one in its audience. The caller holds mu.
func (st *state) seesPlan(agency string, p *exchangev1.Plan) bool {
	a := p.GetAudience()
	switch {
	case a.GetAllMembers():
		return true
	case agency == "":
		return false
	case p.GetOwner() == agency, slices.Contains(a.GetAgencies(), agency):
		return true
	}
	for _, g := range a.GetWorkingGroups() {
		if wg, ok := st.workingGroups[g]; ok && slices.ContainsFunc(wg.Members, func(m *exchangev1.Membership) bool { return m.Agency == agency }) {
			return true
		}
	}
	return false
}

// visiblePlan returns the current plan name if agency may see it, or
// NOT_FOUND. The caller holds mu.
func (st *state) visiblePlan(agency, name string) (*exchangev1.Plan, error) {
	st.plans.init()
	p, ok := st.plans.current[name]
	if !ok || !st.seesPlan(agency, p) {
		return nil, notFound(name)
	}
	return p, nil
}

// ownPlan returns the plan agency is about to change. The caller holds
// mu.
func (st *state) ownPlan(agency, name string) (*exchangev1.Plan, error) {
	if !planNamePattern.MatchString(name) {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "name", "value does not match regex pattern `^agencies/[a-z][a-z0-9-]{1,38}[a-z0-9]/plans/[0-9a-z]{26}$`")
	}
	p, err := st.visiblePlan(agency, name)
	if err != nil {
		return nil, err
	}
	if p.Owner != agency {
		return nil, statusError(codes.PermissionDenied, "PERMISSION_DENIED", fmt.Sprintf("only %s, the owner, may change %s", p.Owner, name))
	}
	return p, nil
}

// ownParent fails unless parent is the caller's own agency, under which
// its plans and datasets are created.
func ownParent(agency, parent string) error {
	if agency == "" || parent != agency {
		return statusError(codes.PermissionDenied, "PERMISSION_DENIED", fmt.Sprintf("the caller may act only on its own plans and datasets, not under %q", parent))
	}
	return nil
}

// planByExternalID returns owner's plan with the external id, or nil. The
// caller holds mu.
func (st *state) planByExternalID(owner, externalID string) *exchangev1.Plan {
	st.plans.init()
	for _, p := range st.plans.current {
		if p.Owner == owner && p.ExternalId == externalID {
			return p
		}
	}
	return nil
}

// normalizePlan drops output-only fields and an empty audience and writes
// amounts in their shortest form, as the real server does.
func normalizePlan(p *exchangev1.Plan) *exchangev1.Plan {
	p = proto.CloneOf(p)
	p.Name, p.Owner, p.Version, p.CancelReason, p.CreateTime, p.UpdateTime = "", "", 0, "", nil, nil
	if a := p.GetAudience(); a != nil && !a.AllMembers && len(a.Agencies) == 0 && len(a.WorkingGroups) == 0 {
		p.Audience = nil
	}
	if b := p.GetBudget(); b != nil {
		b.TotalAmount = shortDecimal(b.TotalAmount)
		for _, l := range b.Lines {
			l.Amount = shortDecimal(l.Amount)
		}
	}
	return p
}

// shortDecimal drops trailing zeros of a decimal's fraction.
func shortDecimal(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

// planViolations checks the plan fields the tests rely on; field prefixes
// the paths ("plan", "plans[2]").
func (st *state) planViolations(field string, p *exchangev1.Plan) []*errdetails.BadRequest_FieldViolation {
	var v []*errdetails.BadRequest_FieldViolation
	add := func(f, d string) { v = append(v, violation(field+"."+f, d)) }
	if p == nil {
		return []*errdetails.BadRequest_FieldViolation{violation(field, "value is required")}
	}
	if p.ExternalId == "" || strings.TrimSpace(p.ExternalId) != p.ExternalId {
		add("external_id", "value does not match regex pattern `^[!-~](?:[ -~]{0,126}[!-~])?$`")
	}
	if p.Title == "" {
		add("title", "value length must be at least 1 characters")
	}
	if p.Stage == exchangev1.PlanStage_PLAN_STAGE_UNSPECIFIED {
		add("stage", "value must not be in list [0]")
	}
	if len(p.Niches) == 0 {
		add("niches", "value must contain at least 1 item(s)")
	}
	if len(p.Locations) == 0 {
		add("locations", "value must contain at least 1 item(s)")
	}
	for i, l := range p.Locations {
		if l.Subdivision != "" {
			if _, ok := geo.Lookup(l.Subdivision); !ok || !strings.HasPrefix(l.Subdivision, l.Country+"-") {
				add(fmt.Sprintf("locations[%d].subdivision", i), l.Subdivision+" is not a province the exchange knows")
			}
		}
	}
	if p.PlannedPeriod.GetStart() == nil {
		add("planned_period", "value is required")
	}
	for i, a := range p.GetAudience().GetAgencies() {
		if _, ok := st.agencies[a]; !ok && len(st.agencies) > 0 {
			add(fmt.Sprintf("audience.agencies[%d]", i), a+" is not in the directory")
		}
	}
	return v
}

// invalidPlan is the INVALID_ARGUMENT error for violations, or nil.
func invalidPlan(v []*errdetails.BadRequest_FieldViolation) error {
	if len(v) == 0 {
		return nil
	}
	msg := "invalid request: " + v[0].Field + ": " + v[0].Description
	if len(v) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(v)-1)
	}
	return invalid(msg, v...)
}

// refuseCancelled fails for a plan that Create or Update would cancel.
func refuseCancelled(field string, p *exchangev1.Plan) error {
	if p.GetStage() == exchangev1.PlanStage_PLAN_STAGE_CANCELLED {
		return fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", field+".stage", "a plan is cancelled only through CancelPlan or ApplyPlans")
	}
	return nil
}

func (f *planService) CreatePlan(ctx context.Context, req *exchangev1.CreatePlanRequest) (*exchangev1.CreatePlanResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	st.plans.init()
	agency := callerAgency(ctx)
	if err := ownParent(agency, req.Parent); err != nil {
		return nil, err
	}
	if !req.ValidateOnly {
		if resp, ok := st.replay("CreatePlan", agency+"\x00"+req.RequestId); ok {
			return &exchangev1.CreatePlanResponse{Plan: proto.CloneOf(st.plans.current[resp.(*exchangev1.Plan).Name])}, nil
		}
	}
	if req.RequestId != "" && !requestIDPattern.MatchString(req.RequestId) {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "request_id", "value does not match regex pattern `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`")
	}
	if err := invalidPlan(st.planViolations("plan", req.Plan)); err != nil {
		return nil, err
	}
	p := normalizePlan(req.Plan)
	p.Etag = ""
	if err := refuseCancelled("plan", p); err != nil {
		return nil, err
	}
	if other := st.planByExternalID(agency, p.ExternalId); other != nil {
		return nil, statusError(codes.AlreadyExists, "ALREADY_EXISTS", fmt.Sprintf("plan.external_id: %s already uses external id %q", other.Name, p.ExternalId))
	}
	p.Owner = agency
	if req.ValidateOnly {
		p.Version = 1
		return &exchangev1.CreatePlanResponse{Plan: p}, nil
	}
	p.Name = fmt.Sprintf("%s/plans/01j%023d", agency, st.revision+1)
	created := st.recordPlan(p)
	st.remember("CreatePlan", agency+"\x00"+req.RequestId, &exchangev1.Plan{Name: created.Name})
	return &exchangev1.CreatePlanResponse{Plan: created}, nil
}

func (f *planService) GetPlan(ctx context.Context, req *exchangev1.GetPlanRequest) (*exchangev1.GetPlanResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	p, err := st.visiblePlan(agency, req.Name)
	if err != nil {
		return nil, err
	}
	if req.Version == 0 || req.Version == p.Version {
		return &exchangev1.GetPlanResponse{Plan: proto.CloneOf(p)}, nil
	}
	versions := st.plans.versions[req.Name]
	if req.Version < 0 || int(req.Version) > len(versions) || !st.seesPlan(agency, versions[req.Version-1]) {
		return nil, statusError(codes.NotFound, "NOT_FOUND", fmt.Sprintf("%s has no version %d", req.Name, req.Version))
	}
	return &exchangev1.GetPlanResponse{Plan: proto.CloneOf(versions[req.Version-1])}, nil
}

// periodBounds returns a period's first and last day as yyyymmdd; nil is
// all time and an unset end is open.
func periodBounds(p *exchangev1.DatePeriod) (int32, int32) {
	if p == nil {
		return 0, 1 << 30
	}
	end := int32(1 << 30)
	if e := p.GetEnd(); e != nil {
		end = e.Year*10000 + e.Month*100 + e.Day
	}
	s := p.GetStart()
	return s.GetYear()*10000 + s.GetMonth()*100 + s.GetDay(), end
}

// dateOf turns yyyymmdd back into a date; nil for an open end.
func dateOf(n int32) *exchangev1.CalendarDate {
	if n == 1<<30 {
		return nil
	}
	return &exchangev1.CalendarDate{Year: n / 10000, Month: n / 100 % 100, Day: n % 100}
}

// meets reports whether two periods share a day.
func meets(a, b *exchangev1.DatePeriod) bool {
	as, ae := periodBounds(a)
	bs, be := periodBounds(b)
	return as <= be && bs <= ae
}

// touches reports whether a plan works in the province: there, or in its
// whole country.
func touches(p *exchangev1.Plan, subdivision string) bool {
	return slices.ContainsFunc(p.Locations, func(l *exchangev1.LocationRef) bool {
		return l.Subdivision == subdivision || (l.Subdivision == "" && strings.HasPrefix(subdivision, l.Country+"-"))
	})
}

// sortedPlans returns the current plans by owner, then name. The caller
// holds mu.
func (st *state) sortedPlans() []*exchangev1.Plan {
	st.plans.init()
	return sortedValues(st.plans.current, func(a, b *exchangev1.Plan) int {
		return cmp.Or(cmp.Compare(a.Owner, b.Owner), cmp.Compare(a.Name, b.Name))
	})
}

func (f *planService) ListPlans(ctx context.Context, req *exchangev1.ListPlansRequest) (*exchangev1.ListPlansResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	if req.Parent != "agencies/-" && !agencyNamePattern.MatchString(req.Parent) {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "parent", "value does not match regex pattern `^agencies/([a-z][a-z0-9-]{1,38}[a-z0-9]|-)$`")
	}
	var match []*exchangev1.Plan
	for _, p := range st.sortedPlans() {
		switch {
		case !st.seesPlan(agency, p),
			req.Parent != "agencies/-" && p.Owner != req.Parent,
			req.Niche != 0 && !slices.Contains(p.Niches, req.Niche),
			req.Stage != 0 && p.Stage != req.Stage,
			req.Country != "" && !slices.ContainsFunc(p.Locations, func(l *exchangev1.LocationRef) bool { return l.Country == req.Country }),
			req.Subdivision != "" && !touches(p, req.Subdivision),
			req.Period != nil && !meets(p.PlannedPeriod, req.Period),
			req.ExternalId != "" && p.ExternalId != req.ExternalId:
			continue
		}
		match = append(match, p)
	}
	items, next, err := page(st, match, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListPlansResponse{Plans: items, NextPageToken: next, Revision: int64(st.revision)}, nil
}

// copyPlanFields copies the named fields from src to dst.
func copyPlanFields(dst, src *exchangev1.Plan, fields []string) {
	d, s := dst.ProtoReflect(), proto.CloneOf(src).ProtoReflect()
	for _, name := range fields {
		fd := d.Descriptor().Fields().ByName(protoreflect.Name(name))
		if s.Has(fd) {
			d.Set(fd, s.Get(fd))
		} else {
			d.Clear(fd)
		}
	}
}

func (f *planService) UpdatePlan(ctx context.Context, req *exchangev1.UpdatePlanRequest) (*exchangev1.UpdatePlanResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	cur, err := st.ownPlan(agency, req.Plan.GetName())
	if err != nil {
		return nil, err
	}
	if err := invalidPlan(st.planViolations("plan", req.Plan)); err != nil {
		return nil, err
	}
	p := normalizePlan(req.Plan)
	if err := refuseCancelled("plan", p); err != nil {
		return nil, err
	}
	if err := checkEtag(cur.Name, req.Plan.GetEtag(), cur.Etag); err != nil {
		return nil, err
	}
	if cur.Stage == exchangev1.PlanStage_PLAN_STAGE_CANCELLED {
		return nil, statusError(codes.FailedPrecondition, "FAILED_PRECONDITION", cur.Name+" is cancelled and cannot change")
	}
	next := proto.CloneOf(cur)
	if err := applyMask(next, p, req.UpdateMask, planMutable); err != nil {
		return nil, err
	}
	if req.ValidateOnly || proto.Equal(next, cur) {
		return &exchangev1.UpdatePlanResponse{Plan: next}, nil
	}
	return &exchangev1.UpdatePlanResponse{Plan: st.recordPlan(next)}, nil
}

func (f *planService) CancelPlan(ctx context.Context, req *exchangev1.CancelPlanRequest) (*exchangev1.CancelPlanResponse, error) {
	if strings.TrimSpace(req.Reason) == "" {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "reason", "value length must be at least 1 characters")
	}
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	cur, err := st.ownPlan(callerAgency(ctx), req.Name)
	if err != nil {
		return nil, err
	}
	if err := checkEtag(cur.Name, req.Etag, cur.Etag); err != nil {
		return nil, err
	}
	if cur.Stage == exchangev1.PlanStage_PLAN_STAGE_CANCELLED {
		return nil, statusError(codes.FailedPrecondition, "FAILED_PRECONDITION", cur.Name+" is already cancelled")
	}
	p := proto.CloneOf(cur)
	p.Stage, p.CancelReason = exchangev1.PlanStage_PLAN_STAGE_CANCELLED, req.Reason
	return &exchangev1.CancelPlanResponse{Plan: st.recordPlan(p)}, nil
}

func (f *planService) ListPlanVersions(ctx context.Context, req *exchangev1.ListPlanVersionsRequest) (*exchangev1.ListPlanVersionsResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	if _, err := st.visiblePlan(agency, req.Name); err != nil {
		return nil, err
	}
	var seen []*exchangev1.Plan
	for _, v := range st.plans.versions[req.Name] {
		if st.seesPlan(agency, v) {
			seen = append(seen, proto.CloneOf(v))
		}
	}
	items, next, err := page(st, seen, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListPlanVersionsResponse{Plans: items, NextPageToken: next}, nil
}

func (f *planService) DiffPlanVersions(ctx context.Context, req *exchangev1.DiffPlanVersionsRequest) (*exchangev1.DiffPlanVersionsResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	cur, err := st.visiblePlan(agency, req.Name)
	if err != nil {
		return nil, err
	}
	to := cmp.Or(req.ToVersion, cur.Version)
	if req.FromVersion < 1 || req.FromVersion > to {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "from_version", fmt.Sprintf("must be 1 to to_version (%d)", to))
	}
	versions := st.plans.versions[req.Name]
	get := func(v int32) (*exchangev1.Plan, error) {
		if int(v) > len(versions) || !st.seesPlan(agency, versions[v-1]) {
			return nil, statusError(codes.NotFound, "NOT_FOUND", fmt.Sprintf("%s has no version %d", req.Name, v))
		}
		return versions[v-1], nil
	}
	a, err := get(req.FromVersion)
	if err != nil {
		return nil, err
	}
	b, err := get(to)
	if err != nil {
		return nil, err
	}
	return &exchangev1.DiffPlanVersionsResponse{FromVersion: a.Version, ToVersion: b.Version, Changes: diffPlans(a, b)}, nil
}

// planJSON is a plan's protobuf JSON form as a map, with proto field
// names.
func planJSON(p *exchangev1.Plan) map[string]any {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(p)
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

// diffPlans lists the top-level fields that differ from a to b, in field
// order (the real server also goes one level into messages).
func diffPlans(a, b *exchangev1.Plan) []*exchangev1.PlanFieldChange {
	am, bm := planJSON(a), planJSON(b)
	var out []*exchangev1.PlanFieldChange
	fields := a.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		name := string(fields.Get(i).Name())
		if planBookkeeping[fields.Get(i).JSONName()] || reflect.DeepEqual(am[name], bm[name]) {
			continue
		}
		c := &exchangev1.PlanFieldChange{Field: name, Before: jsonValue(am[name]), After: jsonValue(bm[name])}
		before, _ := am[name].([]any)
		after, _ := bm[name].([]any)
		for _, x := range after {
			if !slices.ContainsFunc(before, func(y any) bool { return reflect.DeepEqual(x, y) }) {
				c.Added = append(c.Added, jsonValue(x))
			}
		}
		for _, x := range before {
			if !slices.ContainsFunc(after, func(y any) bool { return reflect.DeepEqual(x, y) }) {
				c.Removed = append(c.Removed, jsonValue(x))
			}
		}
		out = append(out, c)
	}
	return out
}

// jsonValue is v as a structpb value; null for nil.
func jsonValue(v any) *structpb.Value {
	out, err := structpb.NewValue(v)
	if err != nil {
		panic(err)
	}
	return out
}

// changedFields names the fields that differ from a to b.
func changedFields(a, b *exchangev1.Plan) []string {
	var out []string
	for _, c := range diffPlans(a, b) {
		out = append(out, c.Field)
	}
	return out
}

// applyOptions adjust applyPlans.
type applyOptions struct {
	prune, validateOnly, keepStoredAudience bool
	cancelReason                            string
}

// applyPlans makes owner's plans match desired (normalized, checked) and
// returns a result per plan, then per pruned plan, as ApplyPlans does.
// The caller holds mu.
func (st *state) applyPlans(owner string, desired []*exchangev1.Plan, opt applyOptions) []*exchangev1.PlanApplyResult {
	cancelled := exchangev1.PlanStage_PLAN_STAGE_CANCELLED
	var results []*exchangev1.PlanApplyResult
	wanted := map[string]bool{}
	// write stores p unless this is a dry run, and fills res from the
	// plan as stored (or as it would be).
	write := func(res *exchangev1.PlanApplyResult, p, before *exchangev1.Plan) {
		if before != nil {
			res.ChangedFields = changedFields(before, p)
		}
		if opt.validateOnly {
			res.Plan, res.Version = p.Name, before.GetVersion()+1
			return
		}
		stored := st.recordPlan(p)
		res.Plan, res.Version, res.Etag = stored.Name, stored.Version, stored.Etag
	}
	for _, d := range desired {
		wanted[d.ExternalId] = true
		res := &exchangev1.PlanApplyResult{ExternalId: d.ExternalId}
		results = append(results, res)
		cur := st.planByExternalID(owner, d.ExternalId)
		if cur == nil {
			if d.Stage == cancelled {
				res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_SKIP
				res.Message = "the plan is marked cancelled and no plan with this external id is stored; nothing to cancel"
				continue
			}
			res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CREATE
			p := proto.CloneOf(d)
			p.Owner, p.Etag = owner, ""
			if !opt.validateOnly {
				p.Name = fmt.Sprintf("%s/plans/01j%023d", owner, st.revision+1)
			}
			write(res, p, nil)
			continue
		}
		want := proto.CloneOf(cur)
		fields := planMutable
		if opt.keepStoredAudience && d.Audience == nil {
			fields = slices.DeleteFunc(slices.Clone(fields), func(f string) bool { return f == "audience" })
		}
		copyPlanFields(want, d, fields)
		if d.Stage == cancelled && cur.Stage != cancelled {
			want.CancelReason = opt.cancelReason
		}
		res.Plan, res.Version, res.Etag = cur.Name, cur.Version, cur.Etag
		switch {
		case proto.Equal(want, cur):
			res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UNCHANGED
		case cur.Stage == cancelled:
			res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CONFLICT
			res.Message = cur.Name + " is cancelled and cannot change; give a new plan a new external id"
		case d.Etag != "" && d.Etag != cur.Etag:
			res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CONFLICT
			res.Message = fmt.Sprintf("%s changed since the etag sent (it is now at version %d); read it again and reconcile", cur.Name, cur.Version)
		default:
			res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UPDATE
			if want.Stage == cancelled {
				res.Action = exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL
			}
			res.Etag = ""
			write(res, want, cur)
		}
	}
	if opt.prune {
		for _, cur := range st.sortedPlans() {
			if cur.Owner != owner || cur.Stage == cancelled || wanted[cur.ExternalId] {
				continue
			}
			want := proto.CloneOf(cur)
			want.Stage, want.CancelReason = cancelled, planCancelledPrune
			res := &exchangev1.PlanApplyResult{ExternalId: cur.ExternalId, Action: exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL}
			results = append(results, res)
			write(res, want, cur)
		}
	}
	return results
}

// changes reports whether an action writes.
func changes(a exchangev1.PlanApplyAction) bool {
	switch a {
	case exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CREATE, exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UPDATE, exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL:
		return true
	}
	return false
}

func (f *planService) ApplyPlans(ctx context.Context, req *exchangev1.ApplyPlansRequest) (*exchangev1.ApplyPlansResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	if err := ownParent(agency, req.Parent); err != nil {
		return nil, err
	}
	desired := make([]*exchangev1.Plan, len(req.Plans))
	first := map[string]int{}
	for i, in := range req.Plans {
		field := fmt.Sprintf("plans[%d]", i)
		if err := invalidPlan(st.planViolations(field, in)); err != nil {
			return nil, err
		}
		if j, dup := first[in.ExternalId]; dup {
			return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", field+".external_id", fmt.Sprintf("repeats the external id of plans[%d]", j))
		}
		first[in.ExternalId] = i
		desired[i] = normalizePlan(in)
	}
	results := st.applyPlans(agency, desired, applyOptions{prune: req.Prune, validateOnly: req.ValidateOnly, cancelReason: planCancelledInSet})
	resp := &exchangev1.ApplyPlansResponse{Results: results, Revision: int64(st.revision)}
	for _, r := range results {
		resp.Changed = resp.Changed || changes(r.Action)
	}
	return resp, nil
}

func (f *planService) ImportIatiActivities(ctx context.Context, req *exchangev1.ImportIatiActivitiesRequest) (*exchangev1.ImportIatiActivitiesResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	if err := ownParent(agency, req.Parent); err != nil {
		return nil, err
	}
	file, err := iati.Parse(req.IatiXml)
	if err != nil {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "iati_xml", err.Error())
	}
	resp := &exchangev1.ImportIatiActivitiesResponse{IatiVersion: file.Version, Unmapped: unmappedOut(file.Unmapped)}
	var desired []*exchangev1.Plan
	var positions []int
	seen := map[string]int{}
	for i, a := range file.Activities {
		res := &exchangev1.IatiActivityResult{Index: int32(i), IatiIdentifier: a.Identifier, Unmapped: unmappedOut(a.Unmapped)}
		resp.Activities = append(resp.Activities, res)
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
		p := proto.CloneOf(a.Plan)
		if req.Audience != nil {
			p.Audience = proto.CloneOf(req.Audience)
		}
		if v := st.planViolations("plan", p); len(v) > 0 {
			skip("the activity does not make a valid plan: " + v[0].Field + ": " + v[0].Description)
			continue
		}
		seen[a.Identifier] = i
		desired = append(desired, normalizePlan(p))
		positions = append(positions, i)
	}
	results := st.applyPlans(agency, desired, applyOptions{validateOnly: req.ValidateOnly, keepStoredAudience: req.Audience == nil, cancelReason: planCancelledIati})
	for j, r := range results {
		resp.Activities[positions[j]].Result = r
		resp.Changed = resp.Changed || changes(r.Action)
	}
	resp.Revision = int64(st.revision)
	return resp, nil
}

// unmappedOut converts the iati package's reports.
func unmappedOut(in []iati.Unmapped) []*exchangev1.IatiUnmappedElement {
	var out []*exchangev1.IatiUnmappedElement
	for _, u := range in {
		out = append(out, &exchangev1.IatiUnmappedElement{Path: u.Path, Value: u.Value, Reason: u.Reason})
	}
	return out
}

// activePlans returns the non-cancelled plans agency may see, in name
// order. The caller holds mu.
func (st *state) activePlans(agency string) []*exchangev1.Plan {
	st.plans.init()
	var out []*exchangev1.Plan
	for _, p := range sortedValues(st.plans.current, func(a, b *exchangev1.Plan) int { return cmp.Compare(a.Name, b.Name) }) {
		if p.Stage != exchangev1.PlanStage_PLAN_STAGE_CANCELLED && st.seesPlan(agency, p) {
			out = append(out, p)
		}
	}
	return out
}

// sharedLocations lists the places both plans work in, each the more
// precise of the two.
func sharedLocations(a, b *exchangev1.Plan) []*exchangev1.LocationRef {
	var out []*exchangev1.LocationRef
	for _, x := range a.Locations {
		for _, y := range b.Locations {
			var l *exchangev1.LocationRef
			switch {
			case x.Country != y.Country:
			case x.Subdivision == "":
				l = y
			case y.Subdivision == "":
				l = x
			case x.Subdivision != y.Subdivision:
			case x.Area == "":
				l = y
			case y.Area == "" || x.Area == y.Area:
				l = x
			}
			if l != nil && !slices.ContainsFunc(out, func(o *exchangev1.LocationRef) bool { return proto.Equal(o, l) }) {
				out = append(out, proto.CloneOf(l))
			}
		}
	}
	return out
}

// planRef is a plan as views show it.
func planRef(p *exchangev1.Plan) *exchangev1.PlanRef {
	return &exchangev1.PlanRef{Name: p.Name, Owner: p.Owner, ExternalId: p.ExternalId, Title: p.Title, Stage: p.Stage}
}

func (f *planService) FindOverlaps(ctx context.Context, req *exchangev1.FindOverlapsRequest) (*exchangev1.FindOverlapsResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	plans := st.activePlans(callerAgency(ctx))
	from, to := periodBounds(req.Period)
	var all []*exchangev1.PlanOverlap
	for i, a := range plans {
		for _, b := range plans[i+1:] {
			if a.Owner == b.Owner || (req.Agency != "" && a.Owner != req.Agency && b.Owner != req.Agency) {
				continue
			}
			as, ae := periodBounds(a.PlannedPeriod)
			bs, be := periodBounds(b.PlannedPeriod)
			os, oe := max(as, bs), min(ae, be)
			if os > oe || os > to || from > oe {
				continue
			}
			var niches []exchangev1.Niche
			for _, n := range a.Niches {
				if slices.Contains(b.Niches, n) && (req.Niche == 0 || n == req.Niche) {
					niches = append(niches, n)
				}
			}
			slices.Sort(niches)
			locs := sharedLocations(a, b)
			if len(niches) == 0 || len(locs) == 0 ||
				(req.Country != "" && !slices.ContainsFunc(locs, func(l *exchangev1.LocationRef) bool { return l.Country == req.Country })) {
				continue
			}
			all = append(all, &exchangev1.PlanOverlap{
				First: planRef(a), Second: planRef(b), Niches: niches, Locations: locs,
				Period: &exchangev1.DatePeriod{Start: dateOf(os), End: dateOf(oe)},
			})
		}
	}
	items, next, err := page(st, all, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.FindOverlapsResponse{Overlaps: items, NextPageToken: next, Revision: int64(st.revision)}, nil
}

// nicheList returns the niches asked for, in order, or every niche.
func nicheList(in []exchangev1.Niche) []exchangev1.Niche {
	if len(in) > 0 {
		return slices.Sorted(slices.Values(in))
	}
	var out []exchangev1.Niche
	values := exchangev1.Niche(0).Descriptor().Values()
	for i := range values.Len() {
		if n := values.Get(i).Number(); n != 0 {
			out = append(out, exchangev1.Niche(n))
		}
	}
	return out
}

func (f *planService) FindGaps(ctx context.Context, req *exchangev1.FindGapsRequest) (*exchangev1.FindGapsResponse, error) {
	provinces := geo.InCountry(req.Country)
	if len(provinces) == 0 {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "country", req.Country+" is not a country whose provinces the exchange knows (see ListLocations)")
	}
	if req.Period == nil {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "period", "value is required")
	}
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	var active []*exchangev1.Plan
	for _, p := range st.activePlans(callerAgency(ctx)) {
		if meets(p.PlannedPeriod, req.Period) {
			active = append(active, p)
		}
	}
	resp := &exchangev1.FindGapsResponse{Revision: int64(st.revision)}
	for _, prov := range provinces {
		for _, n := range nicheList(req.Niches) {
			if !slices.ContainsFunc(active, func(p *exchangev1.Plan) bool { return slices.Contains(p.Niches, n) && touches(p, prov.Code) }) {
				resp.Gaps = append(resp.Gaps, &exchangev1.PlanGap{Subdivision: prov.Code, DisplayName: prov.Name, Niche: n})
			}
		}
	}
	return resp, nil
}

func (f *planService) GetCoverage(ctx context.Context, req *exchangev1.GetCoverageRequest) (*exchangev1.GetCoverageResponse, error) {
	if !geo.KnownCountry(req.Country) {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "country", "value does not match regex pattern `^[A-Z]{2}$`")
	}
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	type key struct {
		sub   string
		niche exchangev1.Niche
	}
	cells := map[key]*exchangev1.PlanCoverageCell{}
	niches := nicheList(req.Niches)
	for _, p := range st.activePlans(callerAgency(ctx)) {
		if req.Period != nil && !meets(p.PlannedPeriod, req.Period) {
			continue
		}
		var places []string
		for _, l := range p.Locations {
			if l.Country == req.Country && !slices.Contains(places, l.Subdivision) {
				places = append(places, l.Subdivision)
			}
		}
		for _, n := range p.Niches {
			if !slices.Contains(niches, n) {
				continue
			}
			for _, place := range places {
				c := cells[key{place, n}]
				if c == nil {
					c = &exchangev1.PlanCoverageCell{Subdivision: place, Niche: n}
					if prov, ok := geo.Lookup(place); ok {
						c.DisplayName = prov.Name
					}
					cells[key{place, n}] = c
				}
				if !slices.Contains(c.Agencies, p.Owner) {
					c.Agencies = append(c.Agencies, p.Owner)
					slices.Sort(c.Agencies)
				}
				c.PlanCount++
			}
		}
	}
	resp := &exchangev1.GetCoverageResponse{Revision: int64(st.revision)}
	for _, c := range cells {
		resp.Cells = append(resp.Cells, c)
	}
	slices.SortFunc(resp.Cells, func(a, b *exchangev1.PlanCoverageCell) int {
		return cmp.Or(cmp.Compare(a.Subdivision, b.Subdivision), cmp.Compare(a.Niche, b.Niche))
	})
	return resp, nil
}

// planWatchMatches reports whether a plan passes a watch's filters.
func planWatchMatches(req *exchangev1.WatchPlansRequest, p *exchangev1.Plan) bool {
	if len(req.Niches) > 0 && !slices.ContainsFunc(p.Niches, func(n exchangev1.Niche) bool { return slices.Contains(req.Niches, n) }) {
		return false
	}
	return len(req.Subdivisions) == 0 || slices.ContainsFunc(req.Subdivisions, func(s string) bool { return touches(p, s) })
}

// planEvent is what a watcher is told of a change; nil for nothing. The
// caller holds mu.
func (st *state) planEvent(agency string, req *exchangev1.WatchPlansRequest, c planChange) *exchangev1.WatchPlansResponse {
	p := c.plan
	if st.seesPlan(agency, p) && planWatchMatches(req, p) {
		kind := exchangev1.PlanEventKind_PLAN_EVENT_KIND_UPDATED
		switch {
		case c.created:
			kind = exchangev1.PlanEventKind_PLAN_EVENT_KIND_CREATED
		case p.Stage == exchangev1.PlanStage_PLAN_STAGE_CANCELLED:
			kind = exchangev1.PlanEventKind_PLAN_EVENT_KIND_CANCELLED
		}
		return &exchangev1.WatchPlansResponse{Revision: c.revision, Kind: kind, Plan: proto.CloneOf(p)}
	}
	if c.prev != nil && st.seesPlan(agency, c.prev) && planWatchMatches(req, c.prev) {
		return &exchangev1.WatchPlansResponse{Revision: c.revision, Kind: exchangev1.PlanEventKind_PLAN_EVENT_KIND_REMOVED,
			Plan: &exchangev1.Plan{Name: p.Name, Owner: p.Owner}}
	}
	return nil
}

func (f *planService) WatchPlans(req *exchangev1.WatchPlansRequest, stream exchangev1.PlanService_WatchPlansServer) error {
	ctx := stream.Context()
	agency := callerAgency(ctx)
	breakAfter, heartbeat := f.server.nextWatch()
	st := f.state
	st.mu.Lock()
	st.plans.init()
	rev := req.StartRevision
	if rev == 0 {
		rev = int64(st.revision)
	}
	if rev < st.compacted {
		st.mu.Unlock()
		return statusError(codes.OutOfRange, "REVISION_COMPACTED", fmt.Sprintf(
			"revision %d has been compacted (the change log starts after %d): list again and watch from the list's revision", rev, st.compacted))
	}
	st.mu.Unlock()
	if breakAfter == 0 {
		return status.Error(codes.Unavailable, "clienttest: watch stream dropped")
	}
	sent := 0
	idle := time.NewTimer(heartbeat)
	defer idle.Stop()
	for {
		st.mu.Lock()
		changed := st.plans.changed
		var events []*exchangev1.WatchPlansResponse
		for _, c := range st.plans.changes {
			if c.revision <= rev {
				continue
			}
			rev = c.revision
			if ev := st.planEvent(agency, req, c); ev != nil {
				events = append(events, ev)
			}
		}
		// Referral and directory changes move the revision too.
		rev = max(rev, int64(st.revision))
		st.mu.Unlock()
		for _, ev := range events {
			if err := stream.Send(ev); err != nil {
				return err
			}
			sent++
			if sent == breakAfter {
				return status.Error(codes.Unavailable, "clienttest: watch stream dropped")
			}
			idle.Reset(heartbeat)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-idle.C:
			if err := stream.Send(&exchangev1.WatchPlansResponse{Revision: rev, Kind: exchangev1.PlanEventKind_PLAN_EVENT_KIND_HEARTBEAT}); err != nil {
				return err
			}
			idle.Reset(heartbeat)
		}
	}
}
