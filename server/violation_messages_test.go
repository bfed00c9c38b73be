package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestViolationMessagesSayWhatIsMissing makes calls over real gRPC that
// leave out a required string, enum or idempotency key, or give a
// malformed one, and checks what the refusal says: "is required" and the
// choices for an unset enum rather than "must not be in list [0]", "is
// required" rather than "must be at least 1 characters" or a regular
// expression an empty value does not match, the format in words for a
// malformed request_id (and no error for an optional one left empty), and
// that nothing refused was created.
func TestViolationMessagesSayWhatIsMissing(t *testing.T) {
	_, sec, ilo, _, _ := threeAgencies(t)
	ctx := context.Background()
	// describe returns the description of field in the refusal err.
	describe := func(t *testing.T, err error, field string) string {
		t.Helper()
		st, _ := status.FromError(err)
		if st.Code() != codes.InvalidArgument {
			t.Fatalf("got %v, want INVALID_ARGUMENT", err)
		}
		var got []string
		for _, v := range fieldViolations(st) {
			if v.GetField() == field {
				got = append(got, v.GetDescription())
			}
		}
		if len(got) != 1 {
			t.Fatalf("field %s described %d times: %q (status: %s)", field, len(got), got, st.Message())
		}
		return got[0]
	}
	refuse := func(t *testing.T, err error, field, want string) {
		t.Helper()
		if got := describe(t, err, field); got != want {
			t.Errorf("field %s described as %q, want %q", field, got, want)
		}
	}

	t.Run("an unset enum", func(t *testing.T) {
		a := baseAgency()
		a.Kind = exchangev1.AgencyKind_AGENCY_KIND_UNSPECIFIED
		_, err := sec.dir.CreateAgency(ctx, &exchangev1.CreateAgencyRequest{AgencyId: "escap", Agency: a})
		got := describe(t, err, "agency.kind")
		if !strings.HasPrefix(got, "is required: choose one of AGENCY_KIND_UN_AGENCY, AGENCY_KIND_INTERNATIONAL_NGO, AGENCY_KIND_NATIONAL_NGO, AGENCY_KIND_GOVERNMENT, AGENCY_KIND_DONOR") ||
			strings.Contains(got, "UNSPECIFIED") {
			t.Errorf("agency.kind described as %q", got)
		}
	})
	t.Run("an unset enum with many values", func(t *testing.T) {
		r := newReferral("iom")
		r.Service.Niche = exchangev1.Niche_NICHE_UNSPECIFIED
		_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: nextRequestID()})
		got := describe(t, err, "referral.service.niche")
		if !strings.HasPrefix(got, "is required: choose one of NICHE_") || strings.Contains(got, "UNSPECIFIED") || len(got) > maxViolationTextBytes {
			t.Errorf("referral.service.niche described as %q", got)
		}
	})
	t.Run("a list item left unset", func(t *testing.T) {
		r := newReferral("iom")
		r.Consent.Services = append(r.Consent.Services, exchangev1.Niche_NICHE_UNSPECIFIED)
		_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: nextRequestID()})
		field := fmt.Sprintf("referral.consent.services[%d]", len(r.Consent.Services)-1)
		got := describe(t, err, field)
		if !strings.HasPrefix(got, "must be one of NICHE_PREVENTION, ") || !strings.HasSuffix(got, " (0, unspecified, is not a choice)") || strings.Contains(got, "UNSPECIFIED") {
			t.Errorf("%s described as %q", field, got)
		}
	})
	t.Run("an empty string", func(t *testing.T) {
		a := baseAgency()
		a.DisplayName = ""
		_, err := sec.dir.CreateAgency(ctx, &exchangev1.CreateAgencyRequest{AgencyId: "escap", Agency: a})
		refuse(t, err, "agency.display_name", "is required")
	})
	t.Run("a missing request_id", func(t *testing.T) {
		_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: newReferral("iom")})
		refuse(t, err, "request_id", "is required: "+requestIDFormat)
	})
	t.Run("a malformed request_id", func(t *testing.T) {
		_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: "-no spaces-"})
		refuse(t, err, "request_id", "must be "+requestIDFormat)
	})
	t.Run("an optional request_id left empty", func(t *testing.T) {
		// Where a retry is matched by request_id only if one is given, an
		// empty one is no error; CreateReferral requires one because the
		// sealed details are bound to it.
		if _, err := sec.dir.CreateAgency(ctx, &exchangev1.CreateAgencyRequest{AgencyId: "unodc", Agency: baseAgency()}); err != nil {
			t.Errorf("a create without request_id: %v", err)
		}
	})
	t.Run("a malformed name keeps its pattern", func(t *testing.T) {
		_, err := ilo.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: "referrals/x"})
		refuse(t, err, "name", "does not match regex pattern `^referrals/[0-9a-z]{26}$`")
	})
	if _, err := sec.dir.GetAgency(ctx, &exchangev1.GetAgencyRequest{Name: "agencies/escap"}); status.Code(err) != codes.NotFound {
		t.Errorf("a refused create made an agency: %v", err)
	}
	list, err := ilo.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{})
	if err != nil || len(list.GetReferrals()) != 0 {
		t.Errorf("a refused create made a referral: %v %v", list.GetReferrals(), err)
	}
}
