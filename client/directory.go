package client

import (
	"context"
	"fmt"
	"iter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// DirectoryClient reads and administers the exchange's directory: agencies,
// their focal points, working groups and locations. Every member may read
// it; most writes are for the secretariat (see DirectoryService in
// directory_service.proto for who may call what).
//
// Names are full resource names ("agencies/ilo"); AgencyName and the other
// name helpers build them from ids.
type DirectoryClient struct {
	rpc exchangev1.DirectoryServiceClient
}

// GetAgency returns the agency with the given name, for example
// "agencies/ilo".
func (d *DirectoryClient) GetAgency(ctx context.Context, name string) (*exchangev1.Agency, error) {
	resp, err := d.rpc.GetAgency(ctx, &exchangev1.GetAgencyRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetAgency(), nil
}

// Agencies iterates over the agencies that match req's filters, in name
// order, fetching pages as needed; req's page_token is ignored and req is
// not changed. A nil req lists all agencies. On error the iterator yields
// the error once and stops.
func (d *DirectoryClient) Agencies(ctx context.Context, req *exchangev1.ListAgenciesRequest) iter.Seq2[*exchangev1.Agency, error] {
	if req == nil {
		req = &exchangev1.ListAgenciesRequest{}
	}
	req = proto.CloneOf(req)
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Agency, string, error) {
		req.PageToken = token
		resp, err := d.rpc.ListAgencies(ctx, req)
		return resp.GetAgencies(), resp.GetNextPageToken(), err
	})
}

// CreateAgency adds the agency a under the given id (which becomes its name,
// "agencies/{id}", and its certificate identity) and returns it as stored.
// Output-only fields of a are ignored. The call carries a request id (random
// unless WithRequestID is given) and is retried on UNAVAILABLE, so it never
// creates twice. Secretariat only.
func (d *DirectoryClient) CreateAgency(ctx context.Context, id string, a *exchangev1.Agency, opts ...CreateOption) (*exchangev1.Agency, error) {
	s, err := newCreateSettings("CreateAgency", true, opts)
	if err != nil {
		return nil, err
	}
	resp, err := d.rpc.CreateAgency(ctx, &exchangev1.CreateAgencyRequest{
		AgencyId:     id,
		Agency:       a,
		RequestId:    s.requestID,
		ValidateOnly: s.validateOnly,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetAgency(), nil
}

// UpdateAgency changes the agency a.Name to the values in a and returns it
// as stored. a must carry the etag as last read; if the agency changed since,
// the call fails with ABORTED (reason ETAG_MISMATCH): read it again and
// reapply. paths names the fields to change ("display_name", "countries",
// ...); none means every field the caller may change. Not retried.
func (d *DirectoryClient) UpdateAgency(ctx context.Context, a *exchangev1.Agency, paths ...string) (*exchangev1.Agency, error) {
	resp, err := d.rpc.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: a, UpdateMask: updateMask(paths)})
	if err != nil {
		return nil, err
	}
	return resp.GetAgency(), nil
}

// SuspendAgency refuses the agency with the given name at every call until
// it is reactivated, recording reason, and returns it as stored. etag is the
// agency's etag as last read, or "" to skip the check. Secretariat only; not
// retried.
func (d *DirectoryClient) SuspendAgency(ctx context.Context, name, reason, etag string) (*exchangev1.Agency, error) {
	resp, err := d.rpc.SuspendAgency(ctx, &exchangev1.SuspendAgencyRequest{Name: name, Reason: reason, Etag: etag})
	if err != nil {
		return nil, err
	}
	return resp.GetAgency(), nil
}

// ReactivateAgency lets a suspended agency call again and returns it as
// stored. etag is the agency's etag as last read, or "" to skip the check.
// Secretariat only; not retried.
func (d *DirectoryClient) ReactivateAgency(ctx context.Context, name, etag string) (*exchangev1.Agency, error) {
	resp, err := d.rpc.ReactivateAgency(ctx, &exchangev1.ReactivateAgencyRequest{Name: name, Etag: etag})
	if err != nil {
		return nil, err
	}
	return resp.GetAgency(), nil
}

// GetFocalPoint returns the focal point with the given name,
// "agencies/{agency}/focalPoints/{id}".
func (d *DirectoryClient) GetFocalPoint(ctx context.Context, name string) (*exchangev1.FocalPoint, error) {
	resp, err := d.rpc.GetFocalPoint(ctx, &exchangev1.GetFocalPointRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetFocalPoint(), nil
}

// FocalPoints iterates over the focal points that match req: of one agency
// (parent "agencies/ilo") or of all (AllAgencies, also used when parent is
// empty), optionally of one topic and in office on a date. req's page_token
// is ignored and req is not changed. On error the iterator yields the error
// once and stops.
func (d *DirectoryClient) FocalPoints(ctx context.Context, req *exchangev1.ListFocalPointsRequest) iter.Seq2[*exchangev1.FocalPoint, error] {
	if req == nil {
		req = &exchangev1.ListFocalPointsRequest{}
	}
	req = proto.CloneOf(req)
	if req.Parent == "" {
		req.Parent = AllAgencies
	}
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.FocalPoint, string, error) {
		req.PageToken = token
		resp, err := d.rpc.ListFocalPoints(ctx, req)
		return resp.GetFocalPoints(), resp.GetNextPageToken(), err
	})
}

// FocalPointOn returns the focal point of agency ("agencies/ilo") for topic
// whose tenure includes date. If tenures overlap, the one that began last
// wins. If there is none, it returns a NOT_FOUND status error (IsNotFound
// reports true).
func (d *DirectoryClient) FocalPointOn(ctx context.Context, agency, topic string, date *exchangev1.CalendarDate) (*exchangev1.FocalPoint, error) {
	var current *exchangev1.FocalPoint
	req := &exchangev1.ListFocalPointsRequest{Parent: agency, Topic: topic, ActiveOn: date}
	for fp, err := range d.FocalPoints(ctx, req) {
		if err != nil {
			return nil, err
		}
		if current == nil || dateKey(fp.GetTenure().GetStart()) > dateKey(current.GetTenure().GetStart()) {
			current = fp
		}
	}
	if current == nil {
		return nil, newStatusError(codes.NotFound, "NOT_FOUND", fmt.Sprintf(
			"no focal point of %s for topic %q on %04d-%02d-%02d",
			agency, topic, date.GetYear(), date.GetMonth(), date.GetDay()))
	}
	return current, nil
}

// CurrentFocalPoint returns the focal point of agency ("agencies/ilo") for
// topic whose tenure includes today (in the local time zone): the answer to
// "whom do I contact at this agency about this today". If there is none, it
// returns a NOT_FOUND status error.
func (d *DirectoryClient) CurrentFocalPoint(ctx context.Context, agency, topic string) (*exchangev1.FocalPoint, error) {
	return d.FocalPointOn(ctx, agency, topic, CalendarDate(time.Now()))
}

// CreateFocalPoint names fp as the focal point of agency ("agencies/ilo")
// for fp's topic and returns it as stored, with the name the exchange
// assigned. An earlier open tenure for the same topic ends the day before
// fp's starts. The call carries a request id and is retried on UNAVAILABLE,
// so it never creates twice.
func (d *DirectoryClient) CreateFocalPoint(ctx context.Context, agency string, fp *exchangev1.FocalPoint, opts ...CreateOption) (*exchangev1.FocalPoint, error) {
	s, err := newCreateSettings("CreateFocalPoint", false, opts)
	if err != nil {
		return nil, err
	}
	resp, err := d.rpc.CreateFocalPoint(ctx, &exchangev1.CreateFocalPointRequest{
		Parent:     agency,
		FocalPoint: fp,
		RequestId:  s.requestID,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetFocalPoint(), nil
}

// UpdateFocalPoint changes the focal point fp.Name to the values in fp and
// returns it as stored. fp must carry the etag as last read. paths names the
// fields to change; none means every mutable field. Not retried.
func (d *DirectoryClient) UpdateFocalPoint(ctx context.Context, fp *exchangev1.FocalPoint, paths ...string) (*exchangev1.FocalPoint, error) {
	resp, err := d.rpc.UpdateFocalPoint(ctx, &exchangev1.UpdateFocalPointRequest{FocalPoint: fp, UpdateMask: updateMask(paths)})
	if err != nil {
		return nil, err
	}
	return resp.GetFocalPoint(), nil
}

// EndFocalPoint ends the tenure of the focal point with the given name on
// lastDay (inclusive), the way to record that someone left: it reads the
// focal point and updates its tenure with the etag it read. Not retried; on
// ABORTED, call it again.
func (d *DirectoryClient) EndFocalPoint(ctx context.Context, name string, lastDay *exchangev1.CalendarDate) (*exchangev1.FocalPoint, error) {
	fp, err := d.GetFocalPoint(ctx, name)
	if err != nil {
		return nil, err
	}
	tenure := proto.CloneOf(fp.GetTenure())
	if tenure == nil {
		tenure = &exchangev1.DatePeriod{}
	}
	tenure.End = lastDay
	fp.Tenure = tenure
	return d.UpdateFocalPoint(ctx, fp, "tenure")
}

// DeleteFocalPoint removes a focal point entered by mistake; to record that
// someone left, use EndFocalPoint instead. etag is the etag as last read, or
// "" to skip the check. Not retried.
func (d *DirectoryClient) DeleteFocalPoint(ctx context.Context, name, etag string) error {
	_, err := d.rpc.DeleteFocalPoint(ctx, &exchangev1.DeleteFocalPointRequest{Name: name, Etag: etag})
	return err
}

// GetWorkingGroup returns the working group with the given name, for example
// "workingGroups/un-wg".
func (d *DirectoryClient) GetWorkingGroup(ctx context.Context, name string) (*exchangev1.WorkingGroup, error) {
	resp, err := d.rpc.GetWorkingGroup(ctx, &exchangev1.GetWorkingGroupRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetWorkingGroup(), nil
}

// WorkingGroups iterates over the working groups that match req (for
// example those an agency belongs to), in name order. A nil req lists all.
// req's page_token is ignored and req is not changed. On error the iterator
// yields the error once and stops.
func (d *DirectoryClient) WorkingGroups(ctx context.Context, req *exchangev1.ListWorkingGroupsRequest) iter.Seq2[*exchangev1.WorkingGroup, error] {
	if req == nil {
		req = &exchangev1.ListWorkingGroupsRequest{}
	}
	req = proto.CloneOf(req)
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.WorkingGroup, string, error) {
		req.PageToken = token
		resp, err := d.rpc.ListWorkingGroups(ctx, req)
		return resp.GetWorkingGroups(), resp.GetNextPageToken(), err
	})
}

// CreateWorkingGroup creates the working group wg under the given id (its
// name becomes "workingGroups/{id}") and returns it as stored. The call
// carries a request id and is retried on UNAVAILABLE, so it never creates
// twice. Secretariat only.
func (d *DirectoryClient) CreateWorkingGroup(ctx context.Context, id string, wg *exchangev1.WorkingGroup, opts ...CreateOption) (*exchangev1.WorkingGroup, error) {
	s, err := newCreateSettings("CreateWorkingGroup", false, opts)
	if err != nil {
		return nil, err
	}
	resp, err := d.rpc.CreateWorkingGroup(ctx, &exchangev1.CreateWorkingGroupRequest{
		WorkingGroupId: id,
		WorkingGroup:   wg,
		RequestId:      s.requestID,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetWorkingGroup(), nil
}

// UpdateWorkingGroup changes the working group wg.Name to the values in wg
// and returns it as stored. wg must carry the etag as last read. paths names
// the fields to change ("members" replaces the whole membership); none means
// every mutable field. Not retried.
func (d *DirectoryClient) UpdateWorkingGroup(ctx context.Context, wg *exchangev1.WorkingGroup, paths ...string) (*exchangev1.WorkingGroup, error) {
	resp, err := d.rpc.UpdateWorkingGroup(ctx, &exchangev1.UpdateWorkingGroupRequest{WorkingGroup: wg, UpdateMask: updateMask(paths)})
	if err != nil {
		return nil, err
	}
	return resp.GetWorkingGroup(), nil
}

// DeleteWorkingGroup removes the working group with the given name. etag is
// the etag as last read, or "" to skip the check. Secretariat only; not
// retried.
func (d *DirectoryClient) DeleteWorkingGroup(ctx context.Context, name, etag string) error {
	_, err := d.rpc.DeleteWorkingGroup(ctx, &exchangev1.DeleteWorkingGroupRequest{Name: name, Etag: etag})
	return err
}

// GetLocation returns the location with the given name, for example
// "locations/KH-12".
func (d *DirectoryClient) GetLocation(ctx context.Context, name string) (*exchangev1.Location, error) {
	resp, err := d.rpc.GetLocation(ctx, &exchangev1.GetLocationRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetLocation(), nil
}

// Locations iterates over the provinces the exchange knows, optionally of
// one country (req.Country), in code order. A nil req lists all. req's
// page_token is ignored and req is not changed. On error the iterator yields
// the error once and stops.
func (d *DirectoryClient) Locations(ctx context.Context, req *exchangev1.ListLocationsRequest) iter.Seq2[*exchangev1.Location, error] {
	if req == nil {
		req = &exchangev1.ListLocationsRequest{}
	}
	req = proto.CloneOf(req)
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Location, string, error) {
		req.PageToken = token
		resp, err := d.rpc.ListLocations(ctx, req)
		return resp.GetLocations(), resp.GetNextPageToken(), err
	})
}

// updateMask returns a field mask of paths, or nil (meaning every mutable
// field) when there are none.
func updateMask(paths []string) *fieldmaskpb.FieldMask {
	if len(paths) == 0 {
		return nil
	}
	return &fieldmaskpb.FieldMask{Paths: paths}
}

// dateKey orders calendar dates: yyyymmdd as an integer, 0 for nil.
func dateKey(d *exchangev1.CalendarDate) int32 {
	return d.GetYear()*10000 + d.GetMonth()*100 + d.GetDay()
}
