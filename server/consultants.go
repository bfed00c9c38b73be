package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// consultantService implements ConsultantService.
//
// Who sees what: every member agency sees a listed consultant (consent
// recorded, not erased); the agency that added a consultant also sees it
// unlisted or erased, and alone changes or erases it; an agency that
// booked a consultant since erased still reads the record, which holds
// nothing personal. An engagement is seen by the agency that booked it and
// by the agency that added the consultant; other agencies learn of it only
// when a booking of theirs overlaps it, and then the refusal names it (its
// resource name, agency and dates) so that the two agencies can settle the
// days between them.
type consultantService struct {
	exchangev1.UnimplementedConsultantServiceServer
	store *store.Store
}

// listsConsultant reports whether ListConsultants shows the consultant to
// the caller: the adding agency's own, and the listed ones.
func listsConsultant(c Caller, k *exchangev1.Consultant) bool {
	return k.GetOwner() == c.AgencyName() || store.IsListed(k)
}

// seesEngagement reports whether the caller may see an engagement of a
// consultant added by owner: the booking agency and the adding agency.
func seesEngagement(c Caller, owner string, e *exchangev1.Engagement) bool {
	return e.GetAgency() == c.AgencyName() || owner == c.AgencyName()
}

// visibleConsultant returns the consultant if the caller may see it and
// NOT_FOUND, exactly as for one that does not exist, otherwise. The
// caller sees the consultants ListConsultants shows it and, once one is
// erased, an erased consultant it booked: the record then holds nothing
// personal and remains so that the booker can still read its engagements,
// while an agency that never booked it learns nothing, not even that an
// unlisted consultant existed.
func (s *consultantService) visibleConsultant(ctx context.Context, name string) (*exchangev1.Consultant, error) {
	k, err := s.store.GetConsultant(ctx, name)
	if err != nil {
		if store.KindOf(err) == store.KindNotFound {
			return nil, notFound(name)
		}
		return nil, err
	}
	c := CallerFrom(ctx)
	if listsConsultant(c, k) {
		return k, nil
	}
	if k.GetErased() {
		// A page may come back empty before the list ends (it visits at
		// most its scan budget of engagements): only an empty token
		// says there is no booking of the caller's.
		page := store.Page{Size: 1}
		for {
			booked, next, err := s.store.ListEngagements(ctx, name, func(e *exchangev1.Engagement) bool {
				return e.GetAgency() == c.AgencyName()
			}, page)
			if err != nil {
				return nil, err
			}
			if len(booked) > 0 {
				return k, nil
			}
			if next == "" {
				break
			}
			page.Token = next
		}
	}
	return nil, notFound(name)
}

// ownConsultant loads a consultant the caller is about to change:
// NOT_FOUND when it may not see it, PERMISSION_DENIED when it sees it but
// did not add it.
func (s *consultantService) ownConsultant(ctx context.Context, name string) (*exchangev1.Consultant, error) {
	k, err := s.visibleConsultant(ctx, name)
	if err != nil {
		return nil, err
	}
	if owner := CallerFrom(ctx).AgencyName(); k.GetOwner() != owner {
		return nil, permissionDenied(fmt.Sprintf("only %s, which added %s, may change or erase it", k.GetOwner(), name))
	}
	return k, nil
}

// checkConsultantProfile checks what protovalidate cannot: a profile
// needs a display name, and every availability window real dates.
func checkConsultantProfile(field string, k *exchangev1.Consultant) error {
	if strings.TrimSpace(k.GetDisplayName()) == "" {
		return invalidField(field+".display_name", "required")
	}
	for i, p := range k.GetAvailability() {
		if err := checkPeriod(fmt.Sprintf("%s.availability[%d]", field, i), p); err != nil {
			return err
		}
	}
	return checkDate(field+".consent.given_on", k.GetConsent().GetGivenOn())
}

// consultantProfile copies the fields a caller sets from k.
func consultantProfile(k *exchangev1.Consultant) *exchangev1.Consultant {
	return &exchangev1.Consultant{
		DisplayName: k.GetDisplayName(), ContactEmail: k.GetContactEmail(), Languages: k.GetLanguages(),
		Niches: k.GetNiches(), Provinces: k.GetProvinces(), Availability: k.GetAvailability(), Consent: k.GetConsent(),
	}
}

// GetConsultant returns a consultant the caller may see.
func (s *consultantService) GetConsultant(ctx context.Context, req *exchangev1.GetConsultantRequest) (*exchangev1.GetConsultantResponse, error) {
	k, err := s.visibleConsultant(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetConsultantResponse{Consultant: k}, nil
}

// ListConsultants lists the consultants the caller may see.
func (s *consultantService) ListConsultants(ctx context.Context, req *exchangev1.ListConsultantsRequest) (*exchangev1.ListConsultantsResponse, error) {
	c := CallerFrom(ctx)
	agencyID := strings.TrimPrefix(req.GetParent(), store.AgencyPrefix)
	if agencyID == "-" {
		agencyID = ""
	}
	keep := func(k *exchangev1.Consultant) bool {
		return listsConsultant(c, k) &&
			(req.GetNiche() == 0 || slices.Contains(k.GetNiches(), req.GetNiche())) &&
			(req.GetLanguage() == "" || slices.Contains(k.GetLanguages(), req.GetLanguage())) &&
			(req.GetProvince() == "" || slices.Contains(k.GetProvinces(), req.GetProvince()))
	}
	items, next, err := s.store.ListConsultants(ctx, store.ConsultantFilter{
		AgencyID: agencyID, Keep: keep, Fingerprint: fmt.Sprint(req.GetNiche(), req.GetLanguage(), req.GetProvince()),
	}, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListConsultantsResponse{Consultants: items, NextPageToken: next}, nil
}

// CreateConsultant adds a consultant under the caller's agency.
func (s *consultantService) CreateConsultant(ctx context.Context, req *exchangev1.CreateConsultantRequest) (*exchangev1.CreateConsultantResponse, error) {
	c := CallerFrom(ctx)
	if req.GetParent() != c.AgencyName() {
		return nil, permissionDenied(fmt.Sprintf("%s may add consultants only under %s", c.Actor(), c.AgencyName()))
	}
	k := consultantProfile(req.GetConsultant())
	if err := checkConsultantProfile("consultant", k); err != nil {
		return nil, err
	}
	created, err := s.store.CreateConsultant(ctx, opFor(ctx, req.GetRequestId()), c.Identity.AgencyID, k)
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreateConsultantResponse{Consultant: created}, nil
}

// UpdateConsultant replaces a consultant's profile; adding agency only.
func (s *consultantService) UpdateConsultant(ctx context.Context, req *exchangev1.UpdateConsultantRequest) (*exchangev1.UpdateConsultantResponse, error) {
	in := req.GetConsultant()
	if in.GetName() == "" {
		return nil, invalidField("consultant.name", "required: the name of the consultant to update")
	}
	if _, err := s.ownConsultant(ctx, in.GetName()); err != nil {
		return nil, err
	}
	k := consultantProfile(in)
	if err := checkConsultantProfile("consultant", k); err != nil {
		return nil, err
	}
	updated, err := s.store.UpdateConsultant(ctx, opFor(ctx, ""), in.GetName(), in.GetEtag(), func(stored *exchangev1.Consultant) error {
		stored.DisplayName, stored.ContactEmail, stored.Languages = k.GetDisplayName(), k.GetContactEmail(), k.GetLanguages()
		stored.Niches, stored.Provinces, stored.Availability, stored.Consent = k.GetNiches(), k.GetProvinces(), k.GetAvailability(), k.GetConsent()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.UpdateConsultantResponse{Consultant: updated}, nil
}

// EraseConsultant erases a consultant's personal data; adding agency
// only. The audit chain records the reason "person-request".
func (s *consultantService) EraseConsultant(ctx context.Context, req *exchangev1.EraseConsultantRequest) (*exchangev1.EraseConsultantResponse, error) {
	if _, err := s.ownConsultant(ctx, req.GetName()); err != nil {
		return nil, err
	}
	op := opFor(ctx, "")
	op.Reason = "person-request"
	k, err := s.store.EraseConsultant(ctx, op, req.GetName(), func(*exchangev1.Consultant) error { return nil })
	if err != nil {
		return nil, err
	}
	return &exchangev1.EraseConsultantResponse{Consultant: k}, nil
}

// CreateEngagement books a consultant for the caller's agency.
func (s *consultantService) CreateEngagement(ctx context.Context, req *exchangev1.CreateEngagementRequest) (*exchangev1.CreateEngagementResponse, error) {
	c := CallerFrom(ctx)
	if _, err := s.visibleConsultant(ctx, req.GetParent()); err != nil {
		return nil, err
	}
	in := req.GetEngagement()
	if err := checkPeriod("engagement.period", in.GetPeriod()); err != nil {
		return nil, err
	}
	if in.GetPeriod().GetEnd() == nil {
		return nil, invalidField("engagement.period.end", "required: an engagement books whole weeks with an end")
	}
	e := &exchangev1.Engagement{Period: in.GetPeriod(), Niche: in.GetNiche(), Purpose: in.GetPurpose()}
	created, err := s.store.CreateEngagement(ctx, opFor(ctx, req.GetRequestId()), req.GetParent(), c.Identity.AgencyID, e,
		func(k *exchangev1.Consultant) error {
			switch {
			case !listsConsultant(c, k) && !k.GetErased():
				return notFound(req.GetParent())
			case k.GetErased():
				return &store.Error{Kind: store.KindFailedPrecondition, Resource: k.GetName(), Message: k.GetName() + " is erased and cannot be engaged"}
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreateEngagementResponse{Engagement: created}, nil
}

// ListEngagements lists the engagements of a consultant the caller may
// see.
func (s *consultantService) ListEngagements(ctx context.Context, req *exchangev1.ListEngagementsRequest) (*exchangev1.ListEngagementsResponse, error) {
	c := CallerFrom(ctx)
	k, err := s.visibleConsultant(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	items, next, err := s.store.ListEngagements(ctx, req.GetParent(), func(e *exchangev1.Engagement) bool {
		return seesEngagement(c, k.GetOwner(), e)
	}, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListEngagementsResponse{Engagements: items, NextPageToken: next}, nil
}

// GetEngagement returns an engagement the caller may see, and NOT_FOUND,
// exactly as for one that does not exist, otherwise.
func (s *consultantService) GetEngagement(ctx context.Context, req *exchangev1.GetEngagementRequest) (*exchangev1.GetEngagementResponse, error) {
	e, err := s.visibleEngagement(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetEngagementResponse{Engagement: e}, nil
}

// CancelEngagement cancels an engagement the caller's agency booked.
func (s *consultantService) CancelEngagement(ctx context.Context, req *exchangev1.CancelEngagementRequest) (*exchangev1.CancelEngagementResponse, error) {
	c := CallerFrom(ctx)
	if _, err := s.visibleEngagement(ctx, req.GetName()); err != nil {
		return nil, err
	}
	e, err := s.store.CancelEngagement(ctx, opFor(ctx, ""), req.GetName(), req.GetEtag(), req.GetReason(), func(e *exchangev1.Engagement) error {
		if e.GetAgency() != c.AgencyName() {
			return permissionDenied(fmt.Sprintf("only %s, which booked %s, may cancel it", e.GetAgency(), req.GetName()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.CancelEngagementResponse{Engagement: e}, nil
}

// visibleEngagement returns the engagement if the caller may see it (its
// consultant visible, and the caller the booking or the adding agency)
// and NOT_FOUND otherwise.
func (s *consultantService) visibleEngagement(ctx context.Context, name string) (*exchangev1.Engagement, error) {
	consultant, _, ok := store.SplitEngagementName(name)
	if !ok {
		return nil, notFound(name)
	}
	k, err := s.visibleConsultant(ctx, consultant)
	if err != nil {
		return nil, notFound(name)
	}
	e, err := s.store.GetEngagement(ctx, name)
	if err != nil {
		if store.KindOf(err) == store.KindNotFound {
			return nil, notFound(name)
		}
		return nil, err
	}
	if !seesEngagement(CallerFrom(ctx), k.GetOwner(), e) {
		return nil, notFound(name)
	}
	return e, nil
}
