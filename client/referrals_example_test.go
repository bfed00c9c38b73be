package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Send a referral from ILO to IOM, keyed by ILO's own case id so that
// sending it again (after a crash, say) returns the first referral instead
// of a second one.
func ExampleReferralClient_Create() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Address: "127.0.0.1:7443", CertFile: "ilo.crt", KeyFile: "ilo.key", CAFile: "ca.crt"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	r, err := c.Referrals.Create(ctx, &exchangev1.Referral{
		Receiver: client.AgencyName("iom"),
		Service: &exchangev1.RequestedService{
			Niche: exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION,
			Need:  "return to Svay Rieng and family reunification",
		},
		Urgency:          exchangev1.Urgency_URGENCY_URGENT,
		SubjectReference: "ilo-subj-8f2c",
		Subject:          &exchangev1.Subject{Name: "Sokha", Sex: exchangev1.Sex_SEX_FEMALE, Languages: []string{"km"}},
		Consent: &exchangev1.Consent{
			GivenBy:         exchangev1.ConsentGiver_CONSENT_GIVER_PERSON,
			GivenTime:       timestamppb.New(time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)),
			ReceivingAgency: client.AgencyName("iom"),
			Services:        []exchangev1.Niche{exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION},
		},
		Location: &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-20"},
	}, client.WithRequestID("ilo-case-2026-0412"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent", r.GetName())
}

// Keep a local copy of the inbox up to date: list it, then follow changes
// from the list's revision; when the exchange no longer keeps changes that
// old (OUT_OF_RANGE), list again. Watch itself rides out broken
// connections.
func ExampleReferralClient_Watch() {
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Address: "127.0.0.1:7443", CertFile: "iom.crt", KeyFile: "iom.key", CAFile: "ca.crt"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	inbox := map[string]*exchangev1.Referral{}
	for {
		list, rev, err := c.Referrals.Snapshot(ctx, &exchangev1.ListReferralsRequest{
			Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX,
		})
		if err != nil {
			log.Fatal(err)
		}
		clear(inbox)
		for _, r := range list {
			inbox[r.GetName()] = r
		}
		err = c.Referrals.Watch(ctx, rev, func(ev *exchangev1.WatchReferralsResponse) error {
			if r := ev.GetReferral(); r.GetReceiver() == client.AgencyName("iom") {
				inbox[r.GetName()] = r
				fmt.Println(ev.GetKind(), r.GetName(), r.GetState())
			}
			return nil
		})
		if status.Code(err) != codes.OutOfRange {
			log.Fatal(err)
		}
	}
}
