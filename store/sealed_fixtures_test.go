package store

import (
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal/sealtest"
)

// The store keeps a referral's sealed_details opaque: it neither opens
// nor checks the binding. Its tests therefore seal every referral's
// details to one key ring with one binding, sealtest.Binding, and open them
// with the same (detailsOf) where a test reads details back.

// sealTestDetails seals d to sealtest.Ring, as a client seals a referral's
// identifying details.
func sealTestDetails(d *exchangev1.ReferralDetails) []byte { return sealtest.Seal(d) }

// detailsOf opens r's sealed details with sealtest.Ring.
func detailsOf(t testing.TB, r *exchangev1.Referral) *exchangev1.ReferralDetails {
	t.Helper()
	var d exchangev1.ReferralDetails
	if err := sealtest.Open(r.GetSealedDetails(), &d); err != nil {
		t.Fatalf("open the details of %s: %v", r.GetName(), err)
	}
	return &d
}
