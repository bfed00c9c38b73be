package server

import (
	"context"
	"fmt"
	"strings"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// focalPointMutable are the fields UpdateFocalPoint may change.
var focalPointMutable = []string{"display_name", "topic", "role", "email", "phone", "tenure"}

// parentAgency returns "agencies/{id}" for a focal point name.
func parentAgency(focalPointName string) string {
	parent, _, _ := strings.Cut(focalPointName, "/focalPoints/")
	return parent
}

// mayEditFocalPoints reports whether the caller may change the focal points
// of the agency: the agency itself or the secretariat.
func mayEditFocalPoints(c Caller, agency string) error {
	if c.IsSecretariat() || c.AgencyName() == agency {
		return nil
	}
	return permissionDenied(fmt.Sprintf("%s may not change the focal points of %s; only the secretariat and the agency itself may", c.Actor(), agency))
}

// GetFocalPoint returns one focal point.
func (d *directoryService) GetFocalPoint(ctx context.Context, req *exchangev1.GetFocalPointRequest) (*exchangev1.GetFocalPointResponse, error) {
	fp, err := d.store.GetFocalPoint(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetFocalPointResponse{FocalPoint: fp}, nil
}

// ListFocalPoints lists focal points of one or all agencies.
func (d *directoryService) ListFocalPoints(ctx context.Context, req *exchangev1.ListFocalPointsRequest) (*exchangev1.ListFocalPointsResponse, error) {
	if err := checkDate("active_on", req.GetActiveOn()); err != nil {
		return nil, err
	}
	agencyID := strings.TrimPrefix(req.GetParent(), store.AgencyPrefix)
	if agencyID == "-" {
		agencyID = ""
	}
	items, next, err := d.store.ListFocalPoints(ctx, store.FocalPointFilter{
		AgencyID: agencyID, Topic: req.GetTopic(), ActiveOn: req.GetActiveOn(),
	}, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListFocalPointsResponse{FocalPoints: items, NextPageToken: next}, nil
}

// CreateFocalPoint names a focal point; the previous holder of the topic
// steps down the day before.
func (d *directoryService) CreateFocalPoint(ctx context.Context, req *exchangev1.CreateFocalPointRequest) (*exchangev1.CreateFocalPointResponse, error) {
	if err := mayEditFocalPoints(CallerFrom(ctx), req.GetParent()); err != nil {
		return nil, err
	}
	if err := checkPeriod("focal_point.tenure", req.GetFocalPoint().GetTenure()); err != nil {
		return nil, err
	}
	fp, err := d.store.CreateFocalPoint(ctx, opFor(ctx, req.GetRequestId()), strings.TrimPrefix(req.GetParent(), store.AgencyPrefix), req.GetFocalPoint())
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreateFocalPointResponse{FocalPoint: fp}, nil
}

// UpdateFocalPoint changes a focal point, for example to end a tenure.
func (d *directoryService) UpdateFocalPoint(ctx context.Context, req *exchangev1.UpdateFocalPointRequest) (*exchangev1.UpdateFocalPointResponse, error) {
	in := req.GetFocalPoint()
	if in.GetName() == "" {
		return nil, invalidField("focal_point.name", "required: the name of the focal point to update")
	}
	if err := mayEditFocalPoints(CallerFrom(ctx), parentAgency(in.GetName())); err != nil {
		return nil, err
	}
	if err := checkPeriod("focal_point.tenure", in.GetTenure()); err != nil {
		return nil, err
	}
	fp, err := d.store.UpdateFocalPoint(ctx, opFor(ctx, ""), in.GetName(), in.GetEtag(), func(fp *exchangev1.FocalPoint) error {
		return applyMask(fp, in, req.GetUpdateMask(), focalPointMutable, "focal_point")
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.UpdateFocalPointResponse{FocalPoint: fp}, nil
}

// DeleteFocalPoint removes a focal point entered by mistake.
func (d *directoryService) DeleteFocalPoint(ctx context.Context, req *exchangev1.DeleteFocalPointRequest) (*exchangev1.DeleteFocalPointResponse, error) {
	if err := mayEditFocalPoints(CallerFrom(ctx), parentAgency(req.GetName())); err != nil {
		return nil, err
	}
	if err := d.store.DeleteFocalPoint(ctx, opFor(ctx, ""), req.GetName(), req.GetEtag()); err != nil {
		return nil, err
	}
	return &exchangev1.DeleteFocalPointResponse{}, nil
}
