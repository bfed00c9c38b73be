package store

import (
	"os"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// The store keeps a referral's sealed_details opaque: it neither opens
// nor checks the binding. Its tests therefore seal every referral's
// details to one key ring with one binding, testBinding, and open them
// with the same (detailsOf) where a test reads details back.

// testRing is the key ring the store's tests seal to, made once per test
// binary; its file is removed at once (the keys stay in memory).
var testRing = sync.OnceValue(func() *seal.KeyRing {
	dir, err := os.MkdirTemp("", "store-test-ring-")
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

// testBinding is the binding of every blob the store's tests seal.
var testBinding = seal.Binding{RequestID: "store-test", Sender: "agencies/ilo", Receiver: "agencies/any"}

// sealTestDetails seals d to testRing, as a client seals a referral's
// identifying details.
func sealTestDetails(d *exchangev1.ReferralDetails) []byte {
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

// detailsOf opens r's sealed details with testRing.
func detailsOf(t testing.TB, r *exchangev1.Referral) *exchangev1.ReferralDetails {
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
