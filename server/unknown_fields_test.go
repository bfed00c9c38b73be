package server

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// withUnknownText appends to m an unknown field, number n, holding text
// as a string: what an old client sends for a field since reserved.
func withUnknownText(m protoreflect.ProtoMessage, n protowire.Number, text string) {
	r := m.ProtoReflect()
	b := protowire.AppendTag(r.GetUnknown(), n, protowire.BytesType)
	r.SetUnknown(protowire.AppendString(b, text))
}

// TestReferralsWithUnknownFieldsAreRefused checks that a referral, alone
// or in a batch, and a forward that carry a field the exchange does not
// know anywhere inside them (the top level, the subject, a list item)
// are refused with INVALID_ARGUMENT naming the path, and that nothing is
// stored: an old client's plaintext name would otherwise be kept as
// unknown bytes.
func TestReferralsWithUnknownFieldsAreRefused(t *testing.T) {
	_, _, ilo, iom, _ := threeAgencies(t)
	ctx := context.Background()
	ring := newRingIn(t)
	cases := map[string]func(*exchangev1.Referral){
		"referral":         func(r *exchangev1.Referral) { withUnknownText(r, 99, marker) },
		"referral.subject": func(r *exchangev1.Referral) { withUnknownText(r.Subject, 15, marker) },
		"referral.subject.current_location": func(r *exchangev1.Referral) {
			withUnknownText(r.Subject.CurrentLocation, 15, marker)
		},
	}
	var batch []*exchangev1.CreateReferralRequest
	for field, spoil := range cases {
		req := nextRequestID()
		r := sealedReferral(t, "iom", req, ring)
		spoil(r)
		_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: req})
		st := wantCode(t, err, codes.InvalidArgument)
		if !slices.Contains(violatedFields(st), field) || !strings.Contains(st.Message(), "docs/sealing.md") {
			t.Errorf("%s: %v", field, st)
		}
		batch = append(batch, &exchangev1.CreateReferralRequest{Referral: r, RequestId: req})
	}
	resp, err := ilo.referrals().BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: batch})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range resp.GetResults() {
		if res.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED || res.GetCode() != "INVALID_ARGUMENT" {
			t.Errorf("batch item %d: %v", res.GetIndex(), res)
		}
	}
	list, err := ilo.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX})
	if err != nil || len(list.GetReferrals()) != 0 {
		t.Fatalf("refused referrals were stored: %v %v", list, err)
	}

	req := nextRequestID()
	parent, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: sealedReferral(t, "iom", req, ring), RequestId: req})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: parent.GetReferral().GetName()}); err != nil {
		t.Fatal(err)
	}
	for field, spoil := range map[string]func(*exchangev1.ForwardReferralRequest){
		"request": func(f *exchangev1.ForwardReferralRequest) { withUnknownText(f, 99, marker) },
		"consent": func(f *exchangev1.ForwardReferralRequest) { withUnknownText(f.Consent, 99, marker) },
		"service": func(f *exchangev1.ForwardReferralRequest) { withUnknownText(f.Service, 99, marker) },
	} {
		fwdReq := nextRequestID()
		fwd := newReferral("unicef") // fresh: each case spoils its own
		f := &exchangev1.ForwardReferralRequest{
			Name: parent.GetReferral().GetName(), Receiver: "agencies/unicef", Service: fwd.GetService(), Consent: fwd.GetConsent(), RequestId: fwdReq,
			SealedDetails: sealedReferral(t, "unicef", fwdReq, ring).GetSealedDetails(),
		}
		spoil(f)
		_, err := iom.referrals().ForwardReferral(ctx, f)
		if st := wantCode(t, err, codes.InvalidArgument); !slices.Contains(violatedFields(st), field) {
			t.Errorf("forward, %s: %v", field, st)
		}
	}
	inbox, err := iom.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX})
	if err != nil || len(inbox.GetReferrals()) != 0 {
		t.Fatalf("refused forwards were stored: %v %v", inbox, err)
	}
}
