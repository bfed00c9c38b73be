package server

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// agencyMutableByAgency are the fields an agency may change in its own
// record; the secretariat may also change agencySecretariatFields.
var (
	agencyMutableByAgency   = []string{"display_name", "short_name", "countries", "niches", "coverage", "website", "public_keys"}
	agencySecretariatFields = []string{"kind", "parent"}
)

// GetAgency returns one agency; the directory is visible to every member.
func (d *directoryService) GetAgency(ctx context.Context, req *exchangev1.GetAgencyRequest) (*exchangev1.GetAgencyResponse, error) {
	a, err := d.store.GetAgency(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetAgencyResponse{Agency: a}, nil
}

// ListAgencies lists agencies matching the request's filters.
func (d *directoryService) ListAgencies(ctx context.Context, req *exchangev1.ListAgenciesRequest) (*exchangev1.ListAgenciesResponse, error) {
	items, next, err := d.store.ListAgencies(ctx, store.AgencyFilter{
		Country: req.GetCountry(), Niche: req.GetNiche(), Subdivision: req.GetSubdivision(), State: req.GetState(),
	}, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListAgenciesResponse{Agencies: items, NextPageToken: next}, nil
}

// CreateAgency adds an agency (secretariat only, by access rule).
func (d *directoryService) CreateAgency(ctx context.Context, req *exchangev1.CreateAgencyRequest) (*exchangev1.CreateAgencyResponse, error) {
	a := req.GetAgency()
	if err := d.checkAgencyReferences(ctx, "agency", a); err != nil {
		return nil, err
	}
	if req.GetValidateOnly() {
		if _, err := d.store.GetAgency(ctx, store.AgencyPrefix+req.GetAgencyId()); err == nil {
			return nil, &store.Error{Kind: store.KindAlreadyExists, Resource: store.AgencyPrefix + req.GetAgencyId(),
				Message: store.AgencyPrefix + req.GetAgencyId() + " already exists"}
		}
		preview := proto.Clone(a).(*exchangev1.Agency)
		preview.Name = store.AgencyPrefix + req.GetAgencyId()
		preview.State = exchangev1.AgencyState_AGENCY_STATE_ACTIVE
		preview.EncryptionKey, preview.PreviousEncryptionKeys = nil, nil
		return &exchangev1.CreateAgencyResponse{Agency: preview}, nil
	}
	created, err := d.store.CreateAgency(ctx, opFor(ctx, req.GetRequestId()), req.GetAgencyId(), a)
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreateAgencyResponse{Agency: created}, nil
}

// UpdateAgency changes an agency: the secretariat any field, an agency its
// own record except kind and parent.
func (d *directoryService) UpdateAgency(ctx context.Context, req *exchangev1.UpdateAgencyRequest) (*exchangev1.UpdateAgencyResponse, error) {
	in := req.GetAgency()
	if in.GetName() == "" {
		return nil, invalidField("agency.name", "required: the name of the agency to update")
	}
	caller := CallerFrom(ctx)
	mutable := agencyMutableByAgency
	if caller.IsSecretariat() {
		mutable = slices.Concat(agencyMutableByAgency, agencySecretariatFields)
	} else {
		if caller.AgencyName() != in.GetName() {
			return nil, permissionDenied(fmt.Sprintf("%s may not update %s; only the secretariat and the agency itself may", caller.Actor(), in.GetName()))
		}
		for _, p := range req.GetUpdateMask().GetPaths() {
			if slices.Contains(agencySecretariatFields, p) {
				return nil, permissionDenied("only the secretariat may change an agency's " + p)
			}
		}
	}
	if err := d.checkAgencyReferences(ctx, "agency", in); err != nil {
		return nil, err
	}
	updated, err := d.store.UpdateAgency(ctx, opFor(ctx, ""), in.GetName(), in.GetEtag(), func(a *exchangev1.Agency) error {
		return applyMask(a, in, req.GetUpdateMask(), mutable, "agency")
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.UpdateAgencyResponse{Agency: updated}, nil
}

// SuspendAgency refuses an agency at every call from now on.
func (d *directoryService) SuspendAgency(ctx context.Context, req *exchangev1.SuspendAgencyRequest) (*exchangev1.SuspendAgencyResponse, error) {
	a, err := d.store.UpdateAgency(ctx, opFor(ctx, ""), req.GetName(), req.GetEtag(), func(a *exchangev1.Agency) error {
		if a.GetState() == exchangev1.AgencyState_AGENCY_STATE_SUSPENDED {
			return &store.Error{Kind: store.KindFailedPrecondition, Resource: req.GetName(), Message: req.GetName() + " is already suspended"}
		}
		a.State = exchangev1.AgencyState_AGENCY_STATE_SUSPENDED
		a.SuspendReason = req.GetReason()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.SuspendAgencyResponse{Agency: a}, nil
}

// ReactivateAgency lets a suspended agency call again.
func (d *directoryService) ReactivateAgency(ctx context.Context, req *exchangev1.ReactivateAgencyRequest) (*exchangev1.ReactivateAgencyResponse, error) {
	a, err := d.store.UpdateAgency(ctx, opFor(ctx, ""), req.GetName(), req.GetEtag(), func(a *exchangev1.Agency) error {
		if a.GetState() == exchangev1.AgencyState_AGENCY_STATE_ACTIVE {
			return &store.Error{Kind: store.KindFailedPrecondition, Resource: req.GetName(), Message: req.GetName() + " is already active"}
		}
		a.State = exchangev1.AgencyState_AGENCY_STATE_ACTIVE
		a.SuspendReason = ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ReactivateAgencyResponse{Agency: a}, nil
}

// checkAgencyReferences checks what protovalidate cannot: known countries
// and provinces, and an existing parent agency.
func (d *directoryService) checkAgencyReferences(ctx context.Context, field string, a *exchangev1.Agency) error {
	for i, c := range a.GetCountries() {
		if err := checkCountry(fmt.Sprintf("%s.countries[%d]", field, i), c); err != nil {
			return err
		}
	}
	for i, ref := range a.GetCoverage() {
		if err := checkLocationRef(fmt.Sprintf("%s.coverage[%d]", field, i), ref); err != nil {
			return err
		}
	}
	if p := a.GetParent(); p != "" {
		if p == a.GetName() {
			return invalidField(field+".parent", "an agency cannot be its own parent")
		}
		if _, err := d.store.GetAgency(ctx, p); err != nil {
			if store.KindOf(err) == store.KindNotFound {
				return invalidField(field+".parent", p+" is not in the directory")
			}
			return err
		}
	}
	return nil
}
