package server

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestReferralPageTokenIsBoundToEveryFilter takes a ListReferrals page
// token under one set of filters and replays it with each filter changed
// in turn: every replay must be refused with INVALID_ARGUMENT naming
// page_token, and the same filters must still accept it.
func TestReferralPageTokenIsBoundToEveryFilter(t *testing.T) {
	_, _, ilo, _, _ := threeAgencies(t)
	ctx := context.Background()
	since := time.Now().Add(-time.Hour)
	for range 3 {
		refer(t, ilo, "iom")
	}
	base := &exchangev1.ListReferralsRequest{
		PageSize:     1,
		State:        exchangev1.ReferralState_REFERRAL_STATE_REQUESTED,
		Niche:        exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING,
		Counterparty: "agencies/iom",
		UpdatedSince: timestamppb.New(since),
	}
	first, err := ilo.referrals().ListReferrals(ctx, base)
	if err != nil || len(first.GetReferrals()) != 1 || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", first, err)
	}
	token := first.GetNextPageToken()

	replay := func(change func(*exchangev1.ListReferralsRequest)) (*exchangev1.ListReferralsResponse, error) {
		req := proto.Clone(base).(*exchangev1.ListReferralsRequest)
		change(req)
		req.PageToken = token
		return ilo.referrals().ListReferrals(ctx, req)
	}
	// The same filters (another page size is no other list) go on.
	if next, err := replay(func(r *exchangev1.ListReferralsRequest) { r.PageSize = 2 }); err != nil || len(next.GetReferrals()) != 2 {
		t.Fatalf("the same filters refused their own token: %v, %v", next, err)
	}
	changes := []struct {
		filter string
		change func(*exchangev1.ListReferralsRequest)
	}{
		{"direction", func(r *exchangev1.ListReferralsRequest) {
			r.Direction = exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX
		}},
		{"state", func(r *exchangev1.ListReferralsRequest) { r.State = exchangev1.ReferralState_REFERRAL_STATE_RECEIVED }},
		{"state unset", func(r *exchangev1.ListReferralsRequest) { r.State = 0 }},
		{"niche", func(r *exchangev1.ListReferralsRequest) { r.Niche = exchangev1.Niche_NICHE_SHELTER }},
		{"counterparty", func(r *exchangev1.ListReferralsRequest) { r.Counterparty = "agencies/unicef" }},
		{"counterparty unset", func(r *exchangev1.ListReferralsRequest) { r.Counterparty = "" }},
		{"updated_since a nanosecond later", func(r *exchangev1.ListReferralsRequest) {
			r.UpdatedSince = timestamppb.New(since.Add(time.Nanosecond))
		}},
		{"updated_since unset", func(r *exchangev1.ListReferralsRequest) { r.UpdatedSince = nil }},
		{"overdue_only", func(r *exchangev1.ListReferralsRequest) { r.OverdueOnly = true }},
	}
	for _, c := range changes {
		t.Run(c.filter, func(t *testing.T) {
			resp, err := replay(c.change)
			if err == nil {
				t.Fatalf("a token replayed with another %s was accepted (%d referrals)", c.filter, len(resp.GetReferrals()))
			}
			st := wantCode(t, err, codes.InvalidArgument)
			if !slices.Contains(violatedFields(st), "page_token") {
				t.Errorf("violations %v do not name page_token", violatedFields(st))
			}
		})
	}
	// Unset and the epoch are two filters, not one.
	epoch := proto.Clone(base).(*exchangev1.ListReferralsRequest)
	epoch.UpdatedSince = nil
	unsetFirst, err := ilo.referrals().ListReferrals(ctx, epoch)
	if err != nil || unsetFirst.GetNextPageToken() == "" {
		t.Fatalf("first page without updated_since: %v, %v", unsetFirst, err)
	}
	epoch.UpdatedSince, epoch.PageToken = timestamppb.New(time.Unix(0, 0)), unsetFirst.GetNextPageToken()
	_, err = ilo.referrals().ListReferrals(ctx, epoch)
	wantCode(t, err, codes.InvalidArgument)
}
