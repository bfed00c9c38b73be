package client_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestReferralDetailsTravelSealedThroughTheFake checks that clienttest
// keeps referrals as the exchange does: a client with a key ring sends a
// blob and no identifying field in clear, the fake stores and returns the
// blob, the receiver's client opens it back into the subject and case
// notes, a client without a key ring reads only the blob, and a referral
// in clear from such a client is refused naming referral.sealed_details.
func TestReferralDetailsTravelSealedThroughTheFake(t *testing.T) {
	s, ilo, iom := referralExchange(t)
	ctx := context.Background()
	sent := newReferral("iom", "counselling")
	sent.CaseNotes = "notes about Sokha"
	created, err := ilo.Referrals.Create(ctx, sent)
	if err != nil {
		t.Fatal(err)
	}
	calls := s.Calls(createReferral)
	onWire := calls[len(calls)-1].Request.(*exchangev1.CreateReferralRequest).GetReferral()
	if onWire.GetSubject().GetName() != "" || onWire.GetCaseNotes() != "" || !strings.HasPrefix(string(onWire.GetSealedDetails()), "age-encryption.org/v1\n") {
		t.Fatalf("sent on the wire: %v", onWire)
	}
	got, err := iom.Referrals.Get(ctx, created.GetName())
	if err != nil || got.GetSubject().GetName() != "Sokha" || got.GetCaseNotes() != "notes about Sokha" || len(got.GetSealedDetails()) != 0 {
		t.Fatalf("iom reads %v %v", got, err)
	}
	plain := s.Dial(t, "agency/iom")
	stored, err := plain.Referrals.Get(ctx, created.GetName())
	if err != nil || stored.GetSubject().GetName() != "" || len(stored.GetSealedDetails()) == 0 {
		t.Fatalf("read without a key ring: %v %v", stored, err)
	}
	_, err = s.Dial(t, "agency/ilo").Referrals.Create(ctx, newReferral("iom", "in clear"))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "referral.sealed_details") {
		t.Fatalf("a referral in clear: %v", err)
	}
}
