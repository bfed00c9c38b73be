package server

import (
	"cmp"
	"context"
	"slices"
	"strings"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// SuggestRecipients lists active agencies with the niche that cover the
// province, those naming the province first, then those covering the whole
// country; none is reported as a gap.
func (s *referralService) SuggestRecipients(ctx context.Context, req *exchangev1.SuggestRecipientsRequest) (*exchangev1.SuggestRecipientsResponse, error) {
	if err := checkLocationRef("subdivision", &exchangev1.LocationRef{Country: req.GetSubdivision()[:2], Subdivision: req.GetSubdivision()}); err != nil {
		return nil, invalidField("subdivision", req.GetSubdivision()+" is not a known province (see ListLocations)")
	}
	country := req.GetSubdivision()[:2]
	type match struct {
		agency   *exchangev1.Agency
		province bool
	}
	var matches []match
	page := store.Page{Size: store.MaxPageSize}
	for {
		items, next, err := s.store.ListAgencies(ctx, store.AgencyFilter{Niche: req.GetNiche(), State: exchangev1.AgencyState_AGENCY_STATE_ACTIVE}, page)
		if err != nil {
			return nil, err
		}
		for _, a := range items {
			province, whole := false, false
			for _, l := range a.GetCoverage() {
				province = province || l.GetSubdivision() == req.GetSubdivision()
				whole = whole || (l.GetCountry() == country && l.GetSubdivision() == "")
			}
			if province || whole {
				matches = append(matches, match{a, province})
			}
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	slices.SortStableFunc(matches, func(a, b match) int {
		if a.province != b.province {
			if a.province {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.agency.GetName(), b.agency.GetName())
	})
	resp := &exchangev1.SuggestRecipientsResponse{}
	for _, m := range matches {
		resp.Agencies = append(resp.Agencies, m.agency)
	}
	if len(resp.Agencies) == 0 {
		resp.Gap = true
		resp.Note = "no active agency declares " + strings.ToLower(strings.TrimPrefix(req.GetNiche().String(), "NICHE_")) +
			" covering " + req.GetSubdivision() + ": a gap worth raising with the coordination working group"
	}
	return resp, nil
}

// GetReferralStatistics counts referrals: all of them for the secretariat,
// the caller's own for an agency. Only counts, never contents.
func (s *referralService) GetReferralStatistics(ctx context.Context, _ *exchangev1.GetReferralStatisticsRequest) (*exchangev1.GetReferralStatisticsResponse, error) {
	caller := CallerFrom(ctx)
	counts, err := s.store.CountReferrals(ctx, caller.Identity.AgencyID)
	if err != nil {
		return nil, err
	}
	resp := &exchangev1.GetReferralStatisticsResponse{}
	for k, n := range counts {
		resp.Counts = append(resp.Counts, &exchangev1.ReferralCount{State: k.State, Niche: k.Niche, Location: k.Location, Count: n})
	}
	slices.SortFunc(resp.Counts, func(a, b *exchangev1.ReferralCount) int {
		return cmp.Or(cmp.Compare(a.GetLocation(), b.GetLocation()), cmp.Compare(a.GetNiche(), b.GetNiche()), cmp.Compare(a.GetState(), b.GetState()))
	})
	return resp, nil
}
