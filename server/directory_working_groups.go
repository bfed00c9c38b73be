package server

import (
	"context"
	"fmt"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// workingGroupMutable are the fields UpdateWorkingGroup may change.
var workingGroupMutable = []string{"display_name", "description", "kind", "members"}

// GetWorkingGroup returns one working group.
func (d *directoryService) GetWorkingGroup(ctx context.Context, req *exchangev1.GetWorkingGroupRequest) (*exchangev1.GetWorkingGroupResponse, error) {
	g, err := d.store.GetWorkingGroup(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetWorkingGroupResponse{WorkingGroup: g}, nil
}

// ListWorkingGroups lists working groups, optionally of one member.
func (d *directoryService) ListWorkingGroups(ctx context.Context, req *exchangev1.ListWorkingGroupsRequest) (*exchangev1.ListWorkingGroupsResponse, error) {
	member := ""
	if req.GetMember() != "" {
		member = req.GetMember()[len(store.AgencyPrefix):]
	}
	items, next, err := d.store.ListWorkingGroups(ctx, member, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListWorkingGroupsResponse{WorkingGroups: items, NextPageToken: next}, nil
}

// CreateWorkingGroup creates a working group (secretariat only, by access
// rule).
func (d *directoryService) CreateWorkingGroup(ctx context.Context, req *exchangev1.CreateWorkingGroupRequest) (*exchangev1.CreateWorkingGroupResponse, error) {
	g, err := d.store.CreateWorkingGroup(ctx, opFor(ctx, req.GetRequestId()), req.GetWorkingGroupId(), req.GetWorkingGroup())
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreateWorkingGroupResponse{WorkingGroup: g}, nil
}

// UpdateWorkingGroup changes a group: the secretariat, or an agency that
// is the group's own secretariat.
func (d *directoryService) UpdateWorkingGroup(ctx context.Context, req *exchangev1.UpdateWorkingGroupRequest) (*exchangev1.UpdateWorkingGroupResponse, error) {
	in := req.GetWorkingGroup()
	if in.GetName() == "" {
		return nil, invalidField("working_group.name", "required: the name of the working group to update")
	}
	caller := CallerFrom(ctx)
	g, err := d.store.UpdateWorkingGroup(ctx, opFor(ctx, ""), in.GetName(), in.GetEtag(), func(g *exchangev1.WorkingGroup) error {
		if !caller.IsSecretariat() && !isGroupSecretariat(g, caller.AgencyName()) {
			return permissionDenied(fmt.Sprintf("%s may not update %s; only the secretariat and the group's own secretariat may", caller.Actor(), in.GetName()))
		}
		return applyMask(g, in, req.GetUpdateMask(), workingGroupMutable, "working_group")
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.UpdateWorkingGroupResponse{WorkingGroup: g}, nil
}

// DeleteWorkingGroup removes a group (secretariat only, by access rule).
func (d *directoryService) DeleteWorkingGroup(ctx context.Context, req *exchangev1.DeleteWorkingGroupRequest) (*exchangev1.DeleteWorkingGroupResponse, error) {
	if err := d.store.DeleteWorkingGroup(ctx, opFor(ctx, ""), req.GetName(), req.GetEtag()); err != nil {
		return nil, err
	}
	return &exchangev1.DeleteWorkingGroupResponse{}, nil
}

func isGroupSecretariat(g *exchangev1.WorkingGroup, agency string) bool {
	for _, m := range g.GetMembers() {
		if m.GetAgency() == agency && m.GetRole() == exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT {
			return true
		}
	}
	return false
}
