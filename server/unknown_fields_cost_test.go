package server

import (
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestUnknownFieldCheckOfAValidReferralAllocatesNothing checks that
// looking for unknown fields in a referral that carries none, as the
// batched push does for each item, builds no path: paths are built only
// for the message found (issue #22). The path of a found one is checked by
// TestUnknownFieldsAreFoundInListsAndMaps and here once.
func TestUnknownFieldCheckOfAValidReferralAllocatesNothing(t *testing.T) {
	r := newReferral("iom")
	r.Consent.Services = []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING}
	allocs := testing.AllocsPerRun(200, func() {
		if err := checkNoUnknownFields("referral", r.ProtoReflect()); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("checking a valid referral allocates %.0f times, want none", allocs)
	}
	withUnknownText(r.Subject.CurrentLocation, 15, marker)
	err := checkNoUnknownFields("referral", r.ProtoReflect())
	if err == nil || !strings.Contains(err.Error(), "referral.subject.current_location: carries fields this exchange does not know") {
		t.Errorf("a location with an unknown field: %v", err)
	}
}
