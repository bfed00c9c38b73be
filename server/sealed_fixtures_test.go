package server

import (
	"sync"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal/sealtest"
)

// The exchange keeps a referral's sealed_details opaque: it neither opens
// the blob nor checks its binding (the agencies' clients do). Most tests
// of this package therefore send one blob, testBlob, sealed once to
// sealtest.Ring with sealtest.Binding, and open it with the same (testDetailsOf)
// where they check that an agency is served the details. Tests of
// sealing itself (referral_sealed_test.go) seal with real bindings.

// testDetails are the identifying details every test referral carries,
// sealed; marker is planted in each field.
func testDetails() *exchangev1.ReferralDetails {
	return &exchangev1.ReferralDetails{Name: marker, GuardianContact: marker + " mother", BirthYear: 2010, CaseNotes: "notes about " + marker}
}

// sealTest seals d to sealtest.Ring with sealtest.Binding.
func sealTest(d *exchangev1.ReferralDetails) []byte { return sealtest.Seal(d) }

// testBlob is testDetails sealed, once per test binary.
var testBlob = sync.OnceValue(func() []byte { return sealTest(testDetails()) })

// testDetailsOf opens r's sealed details with sealtest.Ring: the details an
// agency reading r would see.
func testDetailsOf(t testing.TB, r *exchangev1.Referral) *exchangev1.ReferralDetails {
	t.Helper()
	var d exchangev1.ReferralDetails
	if err := sealtest.Open(r.GetSealedDetails(), &d); err != nil {
		t.Fatalf("open the details of %s: %v", r.GetName(), err)
	}
	return &d
}
