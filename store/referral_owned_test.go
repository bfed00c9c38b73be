package store

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A referral the caller keeps is left as it was sent; one handed over
// (Owned) becomes the created referral itself, without a copy, and is
// stored the same.
func TestCreateReferralsCopiesOnlyWhatTheCallerKeeps(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	sent := func(ref string) *exchangev1.Referral {
		return &exchangev1.Referral{
			Receiver: "agencies/iom", SubjectReference: ref,
			Service:       &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
			SealedDetails: sealTestDetails(&exchangev1.ReferralDetails{Name: "Sokha " + ref}),
		}
	}
	kept, owned := sent("kept"), sent("owned")
	asSent := proto.Clone(kept)
	res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, []NewReferral{
		{RequestID: "r1", Referral: kept},
		{RequestID: "r2", Referral: owned, Owned: true},
	})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatal(err, res[0].Err, res[1].Err)
	}
	if !proto.Equal(kept, asSent) {
		t.Fatalf("the store changed a referral its caller kept: %v", kept)
	}
	if res[0].Referral == kept {
		t.Fatal("the store returned the caller's own referral as the created one")
	}
	if res[1].Referral != owned {
		t.Fatal("the store copied a referral handed over to it")
	}
	for i, want := range []string{"kept", "owned"} {
		got, err := s.GetReferral(ctx, res[i].Referral.GetName())
		if err != nil {
			t.Fatal(err)
		}
		if got.GetSubjectReference() != want || got.GetSender() != "agencies/ilo" || got.GetState() != exchangev1.ReferralState_REFERRAL_STATE_REQUESTED ||
			detailsOf(t, got).GetName() != "Sokha "+want {
			t.Fatalf("stored %s: %v", want, got)
		}
		if !proto.Equal(got, res[i].Referral) {
			t.Fatalf("stored %s differs from the created one:\n%v\n%v", want, got, res[i].Referral)
		}
	}
}
