package server

import (
	"testing"
)

// TestCheckNewReferralAllocatesNothingForAValidReferral holds the checks
// that protovalidate cannot make to building no field path and no error
// for a referral that passes them: they run for every referral of every
// batch, and a path made eagerly is an allocation each.
func TestCheckNewReferralAllocatesNothingForAValidReferral(t *testing.T) {
	r := newReferral("iom")
	if err := checkNewReferral("agencies/ilo", "referral", r); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := checkNewReferral("agencies/ilo", "referral", r); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("checkNewReferral made %.0f allocations for a valid referral, want 0", n)
	}
}
