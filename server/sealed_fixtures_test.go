package server

import (
	"os"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// The exchange keeps a referral's sealed_details opaque: it neither opens
// the blob nor checks its binding (the agencies' clients do). Most tests
// of this package therefore send one blob, testBlob, sealed once to
// testRing with testBinding, and open it with the same (testDetailsOf)
// where they check that an agency is served the details. Tests of
// sealing itself (referral_sealed_test.go) seal with real bindings.

// testDetails are the identifying details every test referral carries,
// sealed; marker is planted in each field.
func testDetails() *exchangev1.ReferralDetails {
	return &exchangev1.ReferralDetails{Name: marker, GuardianContact: marker + " mother", BirthYear: 2010, CaseNotes: "notes about " + marker}
}

// testRing is the key ring this package's tests seal to, made once per
// test binary; its file is removed at once (the keys stay in memory).
var testRing = sync.OnceValue(func() *seal.KeyRing {
	dir, err := os.MkdirTemp("", "server-test-ring-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ring, err := seal.CreateKeyRing(dir + "/keys")
	if err != nil {
		panic(err)
	}
	return ring
})

// testBinding is the binding of testBlob and of the blobs sealTest makes.
var testBinding = seal.Binding{RequestID: "server-test", Sender: "agencies/ilo", Receiver: "agencies/any"}

// sealTest seals d to testRing with testBinding.
func sealTest(d *exchangev1.ReferralDetails) []byte {
	plain, err := proto.Marshal(d)
	if err != nil {
		panic(err)
	}
	blob, err := seal.Seal(plain, testBinding, testRing().Current().Recipient())
	if err != nil {
		panic(err)
	}
	return blob
}

// testBlob is testDetails sealed, once per test binary.
var testBlob = sync.OnceValue(func() []byte { return sealTest(testDetails()) })

// testDetailsOf opens r's sealed details with testRing: the details an
// agency reading r would see.
func testDetailsOf(t testing.TB, r *exchangev1.Referral) *exchangev1.ReferralDetails {
	t.Helper()
	plain, err := seal.Open(r.GetSealedDetails(), testBinding, testRing())
	if err != nil {
		t.Fatalf("open the details of %s: %v", r.GetName(), err)
	}
	var d exchangev1.ReferralDetails
	if err := proto.Unmarshal(plain, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}
