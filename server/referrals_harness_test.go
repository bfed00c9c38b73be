package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// marker is planted in identifying details so tests can look for leaks.
const marker = "MARKER-Sokha-7731"

var requestSeq atomic.Int64

func nextRequestID() string { return fmt.Sprintf("req-%d", requestSeq.Add(1)) }

// newReferral builds a valid referral to receiver with consent covering
// it, its identifying details sealed (testBlob, sealed_fixtures_test.go).
func newReferral(receiver string) *exchangev1.Referral {
	return &exchangev1.Referral{
		Receiver:            "agencies/" + receiver,
		Service:             &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: "trauma counselling after return"},
		Urgency:             exchangev1.Urgency_URGENCY_URGENT,
		SenderCaseReference: "CASE-2026-001",
		SubjectReference:    "subj-8f2c",
		Subject: &exchangev1.Subject{
			Sex: exchangev1.Sex_SEX_FEMALE, Nationality: "KH", Languages: []string{"km"},
			CurrentLocation: &exchangev1.LocationRef{Country: "TH", Subdivision: "TH-10"},
		},
		SealedDetails: testBlob(),
		Consent: &exchangev1.Consent{
			GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN, GivenTime: timestamppb.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)),
			ReceivingAgency: "agencies/" + receiver, Services: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		},
		Location: &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"},
	}
}

// referralClient is a ReferralService connection as one identity.
func (c as) referrals() exchangev1.ReferralServiceClient {
	return exchangev1.NewReferralServiceClient(c.conn)
}

// refer sends a referral from c to receiver and returns it.
func refer(t *testing.T, c as, receiver string) *exchangev1.Referral {
	t.Helper()
	resp, err := c.referrals().CreateReferral(context.Background(), &exchangev1.CreateReferralRequest{Referral: newReferral(receiver), RequestId: nextRequestID()})
	if err != nil {
		t.Fatalf("refer to %s: %v", receiver, err)
	}
	return resp.GetReferral()
}

// threeAgencies starts an exchange with ilo, iom and unicef and returns
// their connections and the secretariat's.
func threeAgencies(t *testing.T) (x *exchange, sec, ilo, iom, unicef as) {
	x = startExchange(t)
	sec = x.asSecretariat()
	for _, id := range []string{"ilo", "iom", "unicef"} {
		x.createAgency(sec, id, exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	}
	return x, sec, x.asAgency("ilo"), x.asAgency("iom"), x.asAgency("unicef")
}

// agencyName returns the agency name of the connection's certificate.
func (c as) agencyName() string { return "agencies/" + c.agencyID }
