package server

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	validate "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// sealedFor seals details for the referral bound by b to the current keys
// of rings, as the client does.
func sealedFor(t *testing.T, d *exchangev1.ReferralDetails, b seal.Binding, rings ...*seal.KeyRing) []byte {
	t.Helper()
	plain, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var to []seal.Recipient
	for _, r := range rings {
		to = append(to, r.Current().Recipient())
	}
	blob, err := seal.Seal(plain, b, to...)
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

// openedWith opens r's sealed details with ring, bound to r itself.
func openedWith(t *testing.T, r *exchangev1.Referral, ring *seal.KeyRing) *exchangev1.ReferralDetails {
	t.Helper()
	plain, err := seal.Open(r.GetSealedDetails(), seal.Binding{RequestID: r.GetRequestId(), Sender: r.GetSender(), Receiver: r.GetReceiver()}, ring)
	if err != nil {
		t.Fatalf("open %s: %v", r.GetName(), err)
	}
	var d exchangev1.ReferralDetails
	if err := proto.Unmarshal(plain, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func newRingIn(t *testing.T) *seal.KeyRing {
	t.Helper()
	ring, err := seal.CreateKeyRing(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// sealedReferral is newReferral with its identifying details moved into a
// blob sealed to rings with the binding (requestID, ilo, receiver).
func sealedReferral(t *testing.T, receiver, requestID string, rings ...*seal.KeyRing) *exchangev1.Referral {
	r := newReferral(receiver)
	r.SealedDetails = sealedFor(t, testDetails(), seal.Binding{RequestID: requestID, Sender: "agencies/ilo", Receiver: r.Receiver}, rings...)
	return r
}

// TestSealedDetailsGoOnlyWhereDetailsGo sends a referral sealed by its
// client and follows the blob: stored and returned byte for byte in full
// views to the two agencies (who open it with their own key rings), never
// in lists, gone from the receiver after consent is revoked, re-sealed on
// a forward (and a forward without a re-sealed blob refused), and gone for
// everyone after erasure.
func TestSealedDetailsGoOnlyWhereDetailsGo(t *testing.T) {
	_, _, ilo, iom, unicef := threeAgencies(t)
	ctx := context.Background()
	iloRing, iomRing, unicefRing := newRingIn(t), newRingIn(t), newRingIn(t)
	req := nextRequestID()
	sent := sealedReferral(t, "iom", req, iomRing, iloRing)
	created, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: sent, RequestId: req})
	if err != nil {
		t.Fatal(err)
	}
	r := created.GetReferral()
	if !bytes.Equal(r.GetSealedDetails(), sent.GetSealedDetails()) || r.GetRequestId() != req {
		t.Fatalf("create returned %v", r)
	}
	for who, c := range map[string]struct {
		conn as
		ring *seal.KeyRing
	}{"sender": {ilo, iloRing}, "receiver": {iom, iomRing}} {
		got, err := c.conn.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
		if err != nil || !bytes.Equal(got.GetReferral().GetSealedDetails(), sent.GetSealedDetails()) || got.GetReferral().GetDetailsWithheld() {
			t.Fatalf("%s reads %v %v", who, got, err)
		}
		if d := openedWith(t, got.GetReferral(), c.ring); d.GetName() != marker || d.GetCaseNotes() != "notes about "+marker {
			t.Fatalf("%s opened %v", who, d)
		}
		if got.GetReferral().GetSubject().GetNationality() != "KH" || got.GetReferral().GetSubject().GetName() != "" {
			t.Fatalf("%s: routing subject %v", who, got.GetReferral().GetSubject())
		}
	}
	list, err := iom.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX})
	if err != nil || len(list.GetReferrals()) != 1 || list.GetReferrals()[0].GetSealedDetails() != nil || list.GetReferrals()[0].GetSubject() != nil {
		t.Fatalf("a list carries the blob: %v %v", list, err)
	}

	if _, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: r.GetName()}); err != nil {
		t.Fatal(err)
	}
	fwd := newReferral("unicef")
	_, err = iom.referrals().ForwardReferral(ctx, &exchangev1.ForwardReferralRequest{
		Name: r.GetName(), Receiver: "agencies/unicef", Service: fwd.GetService(), Consent: fwd.GetConsent(), RequestId: nextRequestID(),
	})
	if st := wantCode(t, err, codes.InvalidArgument); !slices.Contains(violatedFields(st), "sealed_details") || !strings.Contains(st.Message(), "docs/sealing.md") {
		t.Fatalf("forward without a re-sealed blob: %v", st)
	}
	fwdReq := nextRequestID()
	resealed := sealedFor(t, &exchangev1.ReferralDetails{Name: marker}, seal.Binding{RequestID: fwdReq, Sender: "agencies/iom", Receiver: "agencies/unicef"}, unicefRing, iomRing)
	child, err := iom.referrals().ForwardReferral(ctx, &exchangev1.ForwardReferralRequest{
		Name: r.GetName(), Receiver: "agencies/unicef", Service: fwd.GetService(), Consent: fwd.GetConsent(), RequestId: fwdReq, SealedDetails: resealed,
	})
	if err != nil {
		t.Fatal(err)
	}
	seen, err := unicef.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: child.GetReferral().GetName()})
	if err != nil || !bytes.Equal(seen.GetReferral().GetSealedDetails(), resealed) || seen.GetReferral().GetSubject().GetName() != "" ||
		seen.GetReferral().GetSubject().GetNationality() != "KH" || openedWith(t, seen.GetReferral(), unicefRing).GetName() != marker {
		t.Fatalf("the forwarded-to agency reads %v %v", seen, err)
	}

	if _, err := ilo.referrals().RevokeReferralConsent(ctx, &exchangev1.RevokeReferralConsentRequest{Name: r.GetName(), Reason: "withdrawn"}); err != nil {
		t.Fatal(err)
	}
	for who, read := range map[string]func() (*exchangev1.GetReferralResponse, error){
		"receiver": func() (*exchangev1.GetReferralResponse, error) {
			return iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
		},
		"forwarded-to": func() (*exchangev1.GetReferralResponse, error) {
			return unicef.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: child.GetReferral().GetName()})
		},
	} {
		resp, err := read()
		if err != nil || resp.GetReferral().GetSealedDetails() != nil || !resp.GetReferral().GetDetailsWithheld() {
			t.Errorf("%s after revocation: %v %v", who, resp, err)
		}
	}
	mine, err := ilo.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	if err != nil || !bytes.Equal(mine.GetReferral().GetSealedDetails(), sent.GetSealedDetails()) {
		t.Fatalf("the sender lost its blob: %v", err)
	}
	if _, err := ilo.referrals().EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: r.GetName(), Reason: "asked by the person", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST}); err != nil {
		t.Fatal(err)
	}
	mine, err = ilo.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()})
	if err != nil || mine.GetReferral().GetSealedDetails() != nil || mine.GetReferral().GetSubject() != nil || !mine.GetReferral().GetDetailsErased() {
		t.Fatalf("after erasure: %v %v", mine, err)
	}
}

// TestIdentifyingFieldsInClearBesideSealedDetailsAreRefused checks that a
// referral carrying sealed_details and any identifying field in clear, or
// a blob that is not an age file, is refused naming the field, alone and
// in a batch, and that nothing is stored; and that a referral without
// sealed_details is refused on sealed_details, pointing at docs/sealing.md.
func TestIdentifyingFieldsInClearBesideSealedDetailsAreRefused(t *testing.T) {
	_, _, ilo, _, _ := threeAgencies(t)
	ctx := context.Background()
	ring := newRingIn(t)
	cases := map[string]func(*exchangev1.Referral){
		"referral.subject.name":             func(r *exchangev1.Referral) { r.Subject.Name = "x" },
		"referral.subject.guardian_contact": func(r *exchangev1.Referral) { r.Subject.GuardianContact = "x" },
		"referral.subject.birth_year":       func(r *exchangev1.Referral) { r.Subject.BirthYear = 2010 },
		"referral.case_notes":               func(r *exchangev1.Referral) { r.CaseNotes = "x" },
		"referral.sealed_details":           func(r *exchangev1.Referral) { r.SealedDetails = []byte("-----BEGIN AGE ENCRYPTED FILE-----") },
	}
	var batch []*exchangev1.CreateReferralRequest
	for field, spoil := range cases {
		req := nextRequestID()
		r := sealedReferral(t, "iom", req, ring)
		spoil(r)
		_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: req})
		st := wantCode(t, err, codes.InvalidArgument)
		if !slices.Contains(violatedFields(st), field) || !strings.Contains(st.Message(), field) {
			t.Errorf("%s: %v", field, st)
		}
		if field != "referral.sealed_details" && !strings.Contains(st.Message(), "send it inside sealed_details, not in clear") {
			t.Errorf("%s: %q", field, st.Message())
		}
		batch = append(batch, &exchangev1.CreateReferralRequest{Referral: r, RequestId: req})
	}
	// An old client's referral: details in clear, no blob. The exchange
	// has no server-side sealing to fall back on.
	bare := newReferral("iom")
	bare.SealedDetails = nil
	bare.Subject.Name, bare.CaseNotes = marker, "notes about "+marker
	_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: bare, RequestId: nextRequestID()})
	if st := wantCode(t, err, codes.InvalidArgument); !slices.Contains(violatedFields(st), "referral.sealed_details") ||
		!strings.Contains(st.Message(), "sealed_details: required") || !strings.Contains(st.Message(), "docs/sealing.md") {
		t.Errorf("details in clear and no sealed_details: %v", st)
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
}

// TestSealedDetailsBoundIsTheSealPackagesMaxBlob keeps the proto bound on
// sealed_details equal to the largest blob package seal writes.
func TestSealedDetailsBoundIsTheSealPackagesMaxBlob(t *testing.T) {
	for _, m := range []proto.Message{&exchangev1.Referral{}, &exchangev1.ForwardReferralRequest{}} {
		fd := m.ProtoReflect().Descriptor().Fields().ByName("sealed_details")
		rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
		if got := rules.GetBytes().GetMaxLen(); got != seal.MaxBlob {
			t.Errorf("%s.sealed_details max_len is %d, seal.MaxBlob is %d", m.ProtoReflect().Descriptor().Name(), got, seal.MaxBlob)
		}
	}
}

// TestCreateLeavesOutTheSentSealedDetailsOnlyWhenAsked checks
// omit_sent_sealed_details: without it the blob comes back; with it the
// response leaves out a blob that is the one sent, says so, and the
// stored referral still carries it; a request_id first used with another
// blob returns that blob whatever the option says.
func TestCreateLeavesOutTheSentSealedDetailsOnlyWhenAsked(t *testing.T) {
	_, _, ilo, _, _ := threeAgencies(t)
	ctx := context.Background()
	iloRing, iomRing := newRingIn(t), newRingIn(t)
	create := func(r *exchangev1.Referral, req string, omit bool) *exchangev1.CreateReferralResponse {
		t.Helper()
		resp, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: req, OmitSentSealedDetails: omit})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	req := nextRequestID()
	sent := sealedReferral(t, "iom", req, iomRing, iloRing)
	if echoed := create(sent, req, false); !bytes.Equal(echoed.GetReferral().GetSealedDetails(), sent.GetSealedDetails()) || echoed.GetSealedDetailsOmitted() {
		t.Fatalf("without the option: %d bytes back, omitted %v", len(echoed.GetReferral().GetSealedDetails()), echoed.GetSealedDetailsOmitted())
	}

	req = nextRequestID()
	sent = sealedReferral(t, "iom", req, iomRing, iloRing)
	blob := bytes.Clone(sent.GetSealedDetails())
	lean := create(sent, req, true)
	if lean.GetReferral().GetSealedDetails() != nil || !lean.GetSealedDetailsOmitted() || lean.GetReferral().GetName() == "" || lean.GetReferral().GetDetailsWithheld() {
		t.Fatalf("with the option: %d bytes back, omitted %v, referral %q withheld %v",
			len(lean.GetReferral().GetSealedDetails()), lean.GetSealedDetailsOmitted(), lean.GetReferral().GetName(), lean.GetReferral().GetDetailsWithheld())
	}
	got, err := ilo.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: lean.GetReferral().GetName()})
	if err != nil || !bytes.Equal(got.GetReferral().GetSealedDetails(), blob) {
		t.Fatalf("stored after a lean create: %d bytes, %v", len(got.GetReferral().GetSealedDetails()), err)
	}

	// The same request again, as a retry sends it: still nothing to echo.
	again := sealedReferral(t, "iom", req, iomRing, iloRing)
	again.SealedDetails = bytes.Clone(blob)
	if retried := create(again, req, true); retried.GetReferral().GetName() != lean.GetReferral().GetName() || !retried.GetSealedDetailsOmitted() || retried.GetReferral().GetSealedDetails() != nil {
		t.Fatalf("retry: %q omitted %v", retried.GetReferral().GetName(), retried.GetSealedDetailsOmitted())
	}
	// The request_id reused with another blob: the first referral's blob
	// comes back, because the sender does not hold it in this call.
	other := sealedReferral(t, "iom", req, iomRing, iloRing)
	if bytes.Equal(other.GetSealedDetails(), blob) {
		t.Fatal("two seals gave one blob")
	}
	if reused := create(other, req, true); !bytes.Equal(reused.GetReferral().GetSealedDetails(), blob) || reused.GetSealedDetailsOmitted() {
		t.Fatalf("request_id reused with another blob: %d bytes back, omitted %v", len(reused.GetReferral().GetSealedDetails()), reused.GetSealedDetailsOmitted())
	}
}
