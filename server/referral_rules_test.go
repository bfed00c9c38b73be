package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestSuspendedReceiverCannotAcceptAReferral: the rule that a suspended
// agency does nothing lives in the server (checkCredentials refuses every
// call of a suspended agency, from what the store's LookupCaller reports),
// so it is tested here, at the lowest layer that owns it. A receiver
// suspended after acknowledging a referral cannot accept it: the call is
// refused with PERMISSION_DENIED (AGENCY_SUSPENDED) and the referral does
// not move.
func TestSuspendedReceiverCannotAcceptAReferral(t *testing.T) {
	_, sec, ilo, iom, _ := threeAgencies(t)
	ctx := context.Background()
	r := refer(t, ilo, "iom")
	ack, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: r.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sec.dir.SuspendAgency(ctx, &exchangev1.SuspendAgencyRequest{Name: "agencies/iom", Reason: "audit"}); err != nil {
		t.Fatal(err)
	}
	_, err = iom.referrals().AcceptReferral(ctx, &exchangev1.AcceptReferralRequest{Name: r.GetName(), Etag: ack.GetReferral().GetEtag()})
	if st := wantCode(t, err, codes.PermissionDenied); reason(st) != "AGENCY_SUSPENDED" {
		t.Errorf("reason %q", reason(st))
	}
	got, err := ilo.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	if err != nil || got.GetReferral().GetState() != exchangev1.ReferralState_REFERRAL_STATE_RECEIVED {
		t.Errorf("after the refused accept the referral is %v (%v)", got.GetReferral().GetState(), err)
	}
}
