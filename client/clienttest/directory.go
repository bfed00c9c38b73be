package clienttest

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// directoryService is the fake DirectoryService.
type directoryService struct {
	exchangev1.UnimplementedDirectoryServiceServer
	state *state
}

// Mutable fields, as UpdateX with an empty mask changes them.
var (
	agencyMutable       = []string{"display_name", "short_name", "kind", "parent", "countries", "niches", "coverage", "website", "public_keys"}
	focalPointMutable   = []string{"display_name", "topic", "role", "email", "phone", "tenure"}
	workingGroupMutable = []string{"display_name", "description", "kind", "members"}
)

func (d *directoryService) GetAgency(_ context.Context, req *exchangev1.GetAgencyRequest) (*exchangev1.GetAgencyResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.agencies[req.GetName()]
	if !ok {
		return nil, notFound(req.GetName())
	}
	return &exchangev1.GetAgencyResponse{Agency: proto.CloneOf(a)}, nil
}

func (d *directoryService) ListAgencies(_ context.Context, req *exchangev1.ListAgenciesRequest) (*exchangev1.ListAgenciesResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	var match []*exchangev1.Agency
	for _, a := range sortedValues(st.agencies, func(a, b *exchangev1.Agency) int { return cmp.Compare(a.Name, b.Name) }) {
		if req.Country != "" && !slices.Contains(a.Countries, req.Country) {
			continue
		}
		if req.Niche != exchangev1.Niche_NICHE_UNSPECIFIED && !slices.Contains(a.Niches, req.Niche) {
			continue
		}
		if req.Subdivision != "" && !slices.ContainsFunc(a.Coverage, func(l *exchangev1.LocationRef) bool { return l.Subdivision == req.Subdivision }) {
			continue
		}
		if req.State != exchangev1.AgencyState_AGENCY_STATE_UNSPECIFIED && a.State != req.State {
			continue
		}
		match = append(match, a)
	}
	items, next, err := page(st, match, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListAgenciesResponse{Agencies: items, NextPageToken: next}, nil
}

func (d *directoryService) CreateAgency(_ context.Context, req *exchangev1.CreateAgencyRequest) (*exchangev1.CreateAgencyResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	const method = "CreateAgency"
	if resp, ok := st.replay(method, req.RequestId); ok {
		return resp.(*exchangev1.CreateAgencyResponse), nil
	}
	var v []*errdetails.BadRequest_FieldViolation
	if !agencyIDPattern.MatchString(req.AgencyId) {
		v = append(v, violation("agency_id", "value does not match regex pattern `^[a-z][a-z0-9-]{1,38}[a-z0-9]$`"))
	}
	if req.Agency == nil {
		v = append(v, violation("agency", "value is required"))
	} else {
		if req.Agency.DisplayName == "" {
			v = append(v, violation("agency.display_name", "value length must be at least 1 characters"))
		}
		if req.Agency.Kind == exchangev1.AgencyKind_AGENCY_KIND_UNSPECIFIED {
			v = append(v, violation("agency.kind", "value must not be in list [0]"))
		}
	}
	if err := invalid("invalid CreateAgencyRequest", v...); err != nil {
		return nil, err
	}
	name := "agencies/" + req.AgencyId
	if _, ok := st.agencies[name]; ok {
		return nil, alreadyExists(name)
	}
	a := proto.CloneOf(req.Agency)
	a.Name = name
	a.State = exchangev1.AgencyState_AGENCY_STATE_ACTIVE
	a.SuspendReason = ""
	a.CreateTime, a.UpdateTime = now(), now()
	a.Etag = st.nextEtag()
	resp := &exchangev1.CreateAgencyResponse{Agency: a}
	if req.ValidateOnly {
		return resp, nil
	}
	st.agencies[name] = proto.CloneOf(a)
	st.remember(method, req.RequestId, resp)
	return resp, nil
}

func (d *directoryService) UpdateAgency(_ context.Context, req *exchangev1.UpdateAgencyRequest) (*exchangev1.UpdateAgencyResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	name := req.GetAgency().GetName()
	a, ok := st.agencies[name]
	if !ok {
		return nil, notFound(name)
	}
	if err := checkEtag(name, req.Agency.Etag, a.Etag); err != nil {
		return nil, err
	}
	updated := proto.CloneOf(a)
	if err := applyMask(updated, req.Agency, req.UpdateMask, agencyMutable); err != nil {
		return nil, err
	}
	if updated.DisplayName == "" {
		return nil, invalid("invalid UpdateAgencyRequest", violation("agency.display_name", "value length must be at least 1 characters"))
	}
	updated.UpdateTime = now()
	updated.Etag = st.nextEtag()
	st.agencies[name] = updated
	return &exchangev1.UpdateAgencyResponse{Agency: proto.CloneOf(updated)}, nil
}

func (d *directoryService) SuspendAgency(_ context.Context, req *exchangev1.SuspendAgencyRequest) (*exchangev1.SuspendAgencyResponse, error) {
	a, err := d.setAgencyState(req.Name, req.Etag, exchangev1.AgencyState_AGENCY_STATE_SUSPENDED, req.Reason)
	if err != nil {
		return nil, err
	}
	return &exchangev1.SuspendAgencyResponse{Agency: a}, nil
}

func (d *directoryService) ReactivateAgency(_ context.Context, req *exchangev1.ReactivateAgencyRequest) (*exchangev1.ReactivateAgencyResponse, error) {
	a, err := d.setAgencyState(req.Name, req.Etag, exchangev1.AgencyState_AGENCY_STATE_ACTIVE, "")
	if err != nil {
		return nil, err
	}
	return &exchangev1.ReactivateAgencyResponse{Agency: a}, nil
}

// setAgencyState moves an agency to a new state.
func (d *directoryService) setAgencyState(name, etag string, to exchangev1.AgencyState, reason string) (*exchangev1.Agency, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.agencies[name]
	if !ok {
		return nil, notFound(name)
	}
	if err := checkEtag(name, etag, a.Etag); err != nil {
		return nil, err
	}
	if to == exchangev1.AgencyState_AGENCY_STATE_SUSPENDED && reason == "" {
		return nil, invalid("invalid SuspendAgencyRequest", violation("reason", "value length must be at least 1 characters"))
	}
	if a.State == to {
		return nil, statusError(codes.FailedPrecondition, "STATE_UNCHANGED", name+" is already "+strings.ToLower(strings.TrimPrefix(to.String(), "AGENCY_STATE_")))
	}
	a.State, a.SuspendReason = to, reason
	a.UpdateTime = now()
	a.Etag = st.nextEtag()
	return proto.CloneOf(a), nil
}

func (d *directoryService) GetFocalPoint(_ context.Context, req *exchangev1.GetFocalPointRequest) (*exchangev1.GetFocalPointResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	fp, ok := st.focalPoints[req.Name]
	if !ok {
		return nil, notFound(req.Name)
	}
	return &exchangev1.GetFocalPointResponse{FocalPoint: proto.CloneOf(fp)}, nil
}

func (d *directoryService) ListFocalPoints(_ context.Context, req *exchangev1.ListFocalPointsRequest) (*exchangev1.ListFocalPointsResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	all := sortedValues(st.focalPoints, func(a, b *exchangev1.FocalPoint) int {
		return cmp.Or(
			cmp.Compare(parentOf(a.Name), parentOf(b.Name)),
			cmp.Compare(a.Topic, b.Topic),
			cmp.Compare(dateKey(a.Tenure.GetStart()), dateKey(b.Tenure.GetStart())),
			cmp.Compare(a.Name, b.Name))
	})
	var match []*exchangev1.FocalPoint
	for _, fp := range all {
		if req.Parent != "agencies/-" && parentOf(fp.Name) != req.Parent {
			continue
		}
		if req.Topic != "" && fp.Topic != req.Topic {
			continue
		}
		if req.ActiveOn != nil && !inTenure(fp.Tenure, req.ActiveOn) {
			continue
		}
		match = append(match, fp)
	}
	items, next, err := page(st, match, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListFocalPointsResponse{FocalPoints: items, NextPageToken: next}, nil
}

func (d *directoryService) CreateFocalPoint(_ context.Context, req *exchangev1.CreateFocalPointRequest) (*exchangev1.CreateFocalPointResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	const method = "CreateFocalPoint"
	if resp, ok := st.replay(method, req.RequestId); ok {
		return resp.(*exchangev1.CreateFocalPointResponse), nil
	}
	fp := req.FocalPoint
	var v []*errdetails.BadRequest_FieldViolation
	if fp == nil {
		v = append(v, violation("focal_point", "value is required"))
	} else {
		if fp.DisplayName == "" {
			v = append(v, violation("focal_point.display_name", "value length must be at least 1 characters"))
		}
		if !topicPattern.MatchString(fp.Topic) {
			v = append(v, violation("focal_point.topic", "value does not match regex pattern `^[a-z][a-z0-9-]{0,62}$`"))
		}
		if fp.Tenure.GetStart() == nil {
			v = append(v, violation("focal_point.tenure.start", "value is required"))
		}
	}
	if err := invalid("invalid CreateFocalPointRequest", v...); err != nil {
		return nil, err
	}
	if _, ok := st.agencies[req.Parent]; !ok {
		return nil, notFound(req.Parent)
	}
	start := dateKey(fp.Tenure.Start)
	for _, other := range st.focalPoints {
		if parentOf(other.Name) == req.Parent && other.Topic == fp.Topic && other.Tenure.GetEnd() == nil && dateKey(other.Tenure.GetStart()) < start {
			other.Tenure.End = dayBefore(fp.Tenure.Start)
			other.Etag = st.nextEtag()
		}
	}
	created := proto.CloneOf(fp)
	created.Name = req.Parent + "/focalPoints/" + st.nextID()
	created.CreateTime, created.UpdateTime = now(), now()
	created.Etag = st.nextEtag()
	st.focalPoints[created.Name] = proto.CloneOf(created)
	resp := &exchangev1.CreateFocalPointResponse{FocalPoint: created}
	st.remember(method, req.RequestId, resp)
	return resp, nil
}

func (d *directoryService) UpdateFocalPoint(_ context.Context, req *exchangev1.UpdateFocalPointRequest) (*exchangev1.UpdateFocalPointResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	name := req.GetFocalPoint().GetName()
	fp, ok := st.focalPoints[name]
	if !ok {
		return nil, notFound(name)
	}
	if err := checkEtag(name, req.FocalPoint.Etag, fp.Etag); err != nil {
		return nil, err
	}
	updated := proto.CloneOf(fp)
	if err := applyMask(updated, req.FocalPoint, req.UpdateMask, focalPointMutable); err != nil {
		return nil, err
	}
	if end := updated.Tenure.GetEnd(); end != nil && dateKey(end) < dateKey(updated.Tenure.GetStart()) {
		return nil, invalid("invalid UpdateFocalPointRequest", violation("focal_point.tenure", "end must not be before start"))
	}
	updated.UpdateTime = now()
	updated.Etag = st.nextEtag()
	st.focalPoints[name] = updated
	return &exchangev1.UpdateFocalPointResponse{FocalPoint: proto.CloneOf(updated)}, nil
}

func (d *directoryService) DeleteFocalPoint(_ context.Context, req *exchangev1.DeleteFocalPointRequest) (*exchangev1.DeleteFocalPointResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	fp, ok := st.focalPoints[req.Name]
	if !ok {
		return nil, notFound(req.Name)
	}
	if err := checkEtag(req.Name, req.Etag, fp.Etag); err != nil {
		return nil, err
	}
	delete(st.focalPoints, req.Name)
	return &exchangev1.DeleteFocalPointResponse{}, nil
}

func (d *directoryService) GetWorkingGroup(_ context.Context, req *exchangev1.GetWorkingGroupRequest) (*exchangev1.GetWorkingGroupResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	wg, ok := st.workingGroups[req.Name]
	if !ok {
		return nil, notFound(req.Name)
	}
	return &exchangev1.GetWorkingGroupResponse{WorkingGroup: proto.CloneOf(wg)}, nil
}

func (d *directoryService) ListWorkingGroups(_ context.Context, req *exchangev1.ListWorkingGroupsRequest) (*exchangev1.ListWorkingGroupsResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	var match []*exchangev1.WorkingGroup
	for _, wg := range sortedValues(st.workingGroups, func(a, b *exchangev1.WorkingGroup) int { return cmp.Compare(a.Name, b.Name) }) {
		if req.Member != "" && !slices.ContainsFunc(wg.Members, func(m *exchangev1.Membership) bool { return m.Agency == req.Member }) {
			continue
		}
		match = append(match, wg)
	}
	items, next, err := page(st, match, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListWorkingGroupsResponse{WorkingGroups: items, NextPageToken: next}, nil
}

func (d *directoryService) CreateWorkingGroup(_ context.Context, req *exchangev1.CreateWorkingGroupRequest) (*exchangev1.CreateWorkingGroupResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	const method = "CreateWorkingGroup"
	if resp, ok := st.replay(method, req.RequestId); ok {
		return resp.(*exchangev1.CreateWorkingGroupResponse), nil
	}
	var v []*errdetails.BadRequest_FieldViolation
	if !workingGroupIDPattern.MatchString(req.WorkingGroupId) {
		v = append(v, violation("working_group_id", "value does not match regex pattern `^[a-z][a-z0-9-]{1,62}[a-z0-9]$`"))
	}
	if req.WorkingGroup == nil {
		v = append(v, violation("working_group", "value is required"))
	} else {
		if req.WorkingGroup.DisplayName == "" {
			v = append(v, violation("working_group.display_name", "value length must be at least 1 characters"))
		}
		if req.WorkingGroup.Kind == exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_UNSPECIFIED {
			v = append(v, violation("working_group.kind", "value must not be in list [0]"))
		}
	}
	if err := invalid("invalid CreateWorkingGroupRequest", v...); err != nil {
		return nil, err
	}
	name := "workingGroups/" + req.WorkingGroupId
	if _, ok := st.workingGroups[name]; ok {
		return nil, alreadyExists(name)
	}
	wg := proto.CloneOf(req.WorkingGroup)
	wg.Name = name
	wg.CreateTime, wg.UpdateTime = now(), now()
	wg.Etag = st.nextEtag()
	st.workingGroups[name] = proto.CloneOf(wg)
	resp := &exchangev1.CreateWorkingGroupResponse{WorkingGroup: wg}
	st.remember(method, req.RequestId, resp)
	return resp, nil
}

func (d *directoryService) UpdateWorkingGroup(_ context.Context, req *exchangev1.UpdateWorkingGroupRequest) (*exchangev1.UpdateWorkingGroupResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	name := req.GetWorkingGroup().GetName()
	wg, ok := st.workingGroups[name]
	if !ok {
		return nil, notFound(name)
	}
	if err := checkEtag(name, req.WorkingGroup.Etag, wg.Etag); err != nil {
		return nil, err
	}
	updated := proto.CloneOf(wg)
	if err := applyMask(updated, req.WorkingGroup, req.UpdateMask, workingGroupMutable); err != nil {
		return nil, err
	}
	updated.UpdateTime = now()
	updated.Etag = st.nextEtag()
	st.workingGroups[name] = updated
	return &exchangev1.UpdateWorkingGroupResponse{WorkingGroup: proto.CloneOf(updated)}, nil
}

func (d *directoryService) DeleteWorkingGroup(_ context.Context, req *exchangev1.DeleteWorkingGroupRequest) (*exchangev1.DeleteWorkingGroupResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	wg, ok := st.workingGroups[req.Name]
	if !ok {
		return nil, notFound(req.Name)
	}
	if err := checkEtag(req.Name, req.Etag, wg.Etag); err != nil {
		return nil, err
	}
	delete(st.workingGroups, req.Name)
	return &exchangev1.DeleteWorkingGroupResponse{}, nil
}

func (d *directoryService) GetLocation(_ context.Context, req *exchangev1.GetLocationRequest) (*exchangev1.GetLocationResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	l, ok := st.locations[req.Name]
	if !ok {
		return nil, notFound(req.Name)
	}
	return &exchangev1.GetLocationResponse{Location: proto.CloneOf(l)}, nil
}

func (d *directoryService) ListLocations(_ context.Context, req *exchangev1.ListLocationsRequest) (*exchangev1.ListLocationsResponse, error) {
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	var match []*exchangev1.Location
	for _, l := range sortedValues(st.locations, func(a, b *exchangev1.Location) int { return cmp.Compare(a.Code, b.Code) }) {
		if req.Country != "" && l.Country != req.Country {
			continue
		}
		match = append(match, l)
	}
	items, next, err := page(st, match, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListLocationsResponse{Locations: items, NextPageToken: next}, nil
}

// parentOf returns "agencies/{agency}" of a focal point name.
func parentOf(name string) string {
	parent, _, _ := strings.Cut(name, "/focalPoints/")
	return parent
}

// dateKey orders calendar dates as yyyymmdd.
func dateKey(d *exchangev1.CalendarDate) int32 {
	return d.GetYear()*10000 + d.GetMonth()*100 + d.GetDay()
}

// inTenure reports whether day lies within the tenure.
func inTenure(tenure *exchangev1.DatePeriod, day *exchangev1.CalendarDate) bool {
	if dateKey(tenure.GetStart()) > dateKey(day) {
		return false
	}
	return tenure.GetEnd() == nil || dateKey(tenure.GetEnd()) >= dateKey(day)
}

// dayBefore returns the calendar day before d.
func dayBefore(d *exchangev1.CalendarDate) *exchangev1.CalendarDate {
	t := timeOf(d).AddDate(0, 0, -1)
	y, m, day := t.Date()
	return &exchangev1.CalendarDate{Year: int32(y), Month: int32(m), Day: int32(day)}
}
