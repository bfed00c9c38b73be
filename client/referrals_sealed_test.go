package client_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client"
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

// TestCreateDoesNotHaveTheSentBlobEchoed checks that Create asks the
// exchange not to send back the sealed details it sent, and still returns
// the whole referral: with a key ring, the details in clear; without one,
// the blob it sent; for a request_id first used with another blob, that
// first blob, which the exchange then sends.
func TestCreateDoesNotHaveTheSentBlobEchoed(t *testing.T) {
	s, ilo, _ := referralExchange(t)
	ctx := context.Background()
	sent := newReferral("iom", "counselling")
	created, err := ilo.Referrals.Create(ctx, sent)
	if err != nil {
		t.Fatal(err)
	}
	calls := s.Calls(createReferral)
	req := calls[len(calls)-1].Request.(*exchangev1.CreateReferralRequest)
	if !req.GetOmitSentSealedDetails() {
		t.Fatal("Create asked for its own blob back")
	}
	if created.GetSubject().GetName() != "Sokha" || len(created.GetSealedDetails()) != 0 {
		t.Fatalf("a sealing client's Create returned %v", created)
	}

	// A client without a key ring sends a blob sealed elsewhere.
	plain := s.Dial(t, "agency/ilo")
	blob := req.GetReferral().GetSealedDetails()
	presealed := proto.CloneOf(req.GetReferral())
	first, err := plain.Referrals.Create(ctx, presealed, client.WithRequestID("case-91"))
	if err != nil || !bytes.Equal(first.GetSealedDetails(), blob) || first.GetName() == "" {
		t.Fatalf("a plain client's Create returned %d bytes of sealed details (%v), want the %d it sent", len(first.GetSealedDetails()), err, len(blob))
	}
	if &first.GetSealedDetails()[0] == &presealed.GetSealedDetails()[0] {
		t.Error("the returned referral shares the caller's blob")
	}
	other := proto.CloneOf(presealed)
	other.SealedDetails = append(bytes.Clone(blob[:len(blob)-1]), blob[len(blob)-1]^1)
	dup, err := plain.Referrals.Create(ctx, other, client.WithRequestID("case-91"))
	if err != nil || dup.GetName() != first.GetName() || !bytes.Equal(dup.GetSealedDetails(), blob) {
		t.Fatalf("request_id reused with another blob: %q with %d bytes (%v), want %q with the first blob", dup.GetName(), len(dup.GetSealedDetails()), err, first.GetName())
	}
}
