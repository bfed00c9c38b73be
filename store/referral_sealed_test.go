package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store/kv"
)

// TestAClientSealedReferralIsKeptAsSentWithNoDataKey stores a referral
// whose client sealed its details: the blob is kept byte for byte, the
// file has no bucket of data keys, the record keeps the request id and the routing subject
// (without a name), Get returns the blob unopened, the change log carries
// neither the blob nor the routing subject, and erasure deletes the blob and the routing subject.
func TestAClientSealedReferralIsKeptAsSentWithNoDataKey(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	blob := []byte(AgeHeader + "-> mlkem768x25519 stand-in stanza\nBLOB-BODY-5521")
	sent := &exchangev1.Referral{
		Receiver: "agencies/iom", SubjectReference: "s-1",
		Service: &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
		Subject: &exchangev1.Subject{Sex: exchangev1.Sex_SEX_FEMALE, Nationality: "KH",
			CurrentLocation: &exchangev1.LocationRef{Country: "KH", Area: "ROUTING-AREA-77"}},
		SealedDetails: blob,
	}
	res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, []NewReferral{{RequestID: "r1", Referral: sent}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	name := res[0].Referral.GetName()
	if !bytes.Equal(res[0].Referral.GetSealedDetails(), blob) || res[0].Referral.GetRequestId() != "r1" {
		t.Fatalf("create result: %v", res[0].Referral)
	}
	stored := func() (keys bool, details, record []byte) {
		s.view(context.Background(), func(tx kv.Tx) error {
			id := []byte(referralID(name))
			if b := tx.Bucket(legacyBucketReferralKeys); b != nil {
				k, _ := b.Cursor().First()
				keys = k != nil
			}
			details = bytes.Clone(tx.Bucket(bucketReferralDetails).Get(id))
			record = bytes.Clone(tx.Bucket(bucketReferrals).Get(id))
			return nil
		})
		return
	}
	keys, details, record := stored()
	if keys || !bytes.Equal(details, blob) || bytes.Contains(record, []byte("BLOB-BODY")) {
		t.Fatalf("stored: referral_keys bucket %t, details %q", keys, details)
	}
	got, err := s.GetReferral(ctx, name)
	if err != nil || !bytes.Equal(got.GetSealedDetails(), blob) || got.GetRequestId() != "r1" ||
		got.GetSubject().GetNationality() != "KH" || got.GetSubject().GetName() != "" {
		t.Fatalf("get: %v %v", got, err)
	}
	changes, err := s.Changes(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if v := c.GetResource().GetValue(); bytes.Contains(v, []byte("BLOB-BODY")) || bytes.Contains(v, []byte("ROUTING-AREA")) {
			t.Fatalf("the change log carries the blob or the routing subject: %v", c)
		}
	}

	_, err = s.EraseReferralDetails(ctx, Op{Actor: "agencies/ilo", Method: "EraseReferralDetails"}, name, func(*exchangev1.Referral) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, details, _ := stored(); details != nil {
		t.Fatal("erasure left the blob")
	}
	after, err := s.GetReferral(ctx, name)
	if err != nil || after.GetSealedDetails() != nil || after.GetSubject() != nil || !after.GetDetailsErased() {
		t.Fatalf("after erasure: %v %v", after, err)
	}
}

// TestAClientSealedReferralInClearOrNotAgeIsRefused checks the store's own
// guard: a blob that is not an age file, an identifying field sent in
// clear beside a blob, or details in clear with no blob at all, are
// refused naming the field, and nothing is stored.
func TestAClientSealedReferralInClearOrNotAgeIsRefused(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	blob := []byte(AgeHeader + "body")
	for field, r := range map[string]*exchangev1.Referral{
		"referral.sealed_details":           {SealedDetails: []byte("not age at all")},
		"referral.subject.name":             {SealedDetails: blob, Subject: &exchangev1.Subject{Name: "x"}},
		"referral.subject.guardian_contact": {SealedDetails: blob, Subject: &exchangev1.Subject{GuardianContact: "x"}},
		"referral.subject.birth_year":       {SealedDetails: blob, Subject: &exchangev1.Subject{BirthYear: 2010}},
		"referral.case_notes":               {SealedDetails: blob, CaseNotes: "x"},
	} {
		r.Receiver, r.SubjectReference = "agencies/iom", "s-1"
		_, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, []NewReferral{{RequestID: "r1", Referral: r}})
		var e *Error
		if KindOf(err) != KindInvalidArgument || !errors.As(err, &e) || e.Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
	// Details in clear without a blob, as a client without a key ring
	// would send them: there is no server-side sealing to fall back on.
	inClear := &exchangev1.Referral{Receiver: "agencies/iom", SubjectReference: "s-1", Subject: &exchangev1.Subject{Name: "x"}, CaseNotes: "x"}
	_, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, []NewReferral{{RequestID: "r2", Referral: inClear}})
	var e *Error
	if KindOf(err) != KindInvalidArgument || !errors.As(err, &e) || e.Field != "referral.sealed_details" || !strings.Contains(e.Message, "sealed_details: required") || !strings.Contains(e.Message, "docs/sealing.md") {
		t.Errorf("details in clear without sealed_details: %v", err)
	}
	s.view(context.Background(), func(tx kv.Tx) error {
		if k, _ := tx.Bucket(bucketReferralDetails).Cursor().First(); k != nil {
			n := 1
			t.Errorf("%d details stored", n)
		}
		return nil
	})
}
