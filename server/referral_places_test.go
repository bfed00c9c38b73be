package server

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestUnknownPlacesInAReferralAreRefusedByName: a referral naming a
// province or a country the exchange does not know is refused, alone and
// in a batch, naming the field and the code, and stores nothing. These
// checks build their field paths only when they fail
// (checkNewReferral), so the paths are checked here.
func TestUnknownPlacesInAReferralAreRefusedByName(t *testing.T) {
	x, _, ilo, _, _ := threeAgencies(t)
	ctx := context.Background()
	cases := map[string]struct {
		mutate      func(*exchangev1.Referral)
		field, text string
	}{
		"unknown province": {func(r *exchangev1.Referral) { r.Location.Subdivision = "KH-99" },
			"referral.location.subdivision", "KH-99 is not a known province of KH"},
		"unknown country": {func(r *exchangev1.Referral) { r.Location = &exchangev1.LocationRef{Country: "XX"} },
			"referral.location.country", "XX is not an ISO 3166-1 alpha-2 country code"},
		"unknown province where the person is": {func(r *exchangev1.Referral) { r.Subject.CurrentLocation.Subdivision = "TH-99" },
			"referral.subject.current_location.subdivision", "TH-99 is not a known province of TH"},
		"unknown nationality": {func(r *exchangev1.Referral) { r.Subject.Nationality = "XX" },
			"referral.subject.nationality", "XX is not an ISO 3166-1 alpha-2 country code"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := newReferral("iom")
			c.mutate(r)
			before := x.store.Revision()
			_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: nextRequestID()})
			st := wantCode(t, err, codes.InvalidArgument)
			if f := violatedFields(st); !slices.Equal(f, []string{c.field}) {
				t.Errorf("violations %v, want [%s]", f, c.field)
			}
			if !strings.Contains(st.Message(), c.text) {
				t.Errorf("message %q does not say %q", st.Message(), c.text)
			}
			if after := x.store.Revision(); after != before {
				t.Errorf("the refused referral changed the store (revision %d → %d)", before, after)
			}
			batch, err := ilo.referrals().BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: []*exchangev1.CreateReferralRequest{
				{Referral: newReferral("iom"), RequestId: nextRequestID()}, {Referral: r, RequestId: nextRequestID()},
			}})
			if err != nil {
				t.Fatal(err)
			}
			res := batch.GetResults()
			if len(res) != 2 || res[0].GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED {
				t.Fatalf("the valid referral of the batch: %v", res)
			}
			if got := res[1]; got.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED || got.GetCode() != "INVALID_ARGUMENT" ||
				len(got.GetViolations()) != 1 || got.GetViolations()[0].GetField() != c.field || !strings.Contains(got.GetMessage(), c.text) {
				t.Errorf("in a batch: %v, want INVALID_ARGUMENT on %s saying %q", got, c.field, c.text)
			}
		})
	}
}
