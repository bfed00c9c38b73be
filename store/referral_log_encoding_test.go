package store

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// What the change log keeps of a referral, cut from the record's own
// encoding, is byte for byte the encoding of the referral without subject
// and case notes and with details_withheld set: whether the record has a
// subject, case notes, both or neither, and whatever it holds after them.
func TestTheLoggedReferralIsTheRecordWithoutItsDetails(t *testing.T) {
	full := func() *exchangev1.Referral {
		return &exchangev1.Referral{
			Name: "referrals/01jx0000000000000000000000", Sender: "agencies/ilo", Receiver: "agencies/iom",
			Service:          &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
			SubjectReference: "s-1", Subject: &exchangev1.Subject{Nationality: "KH"}, CaseNotes: "notes",
			State: exchangev1.ReferralState_REFERRAL_STATE_REQUESTED, Etag: "16e2493fb3abcd12", RequestId: "r1",
			Consent: &exchangev1.Consent{ReceivingAgency: "agencies/iom"},
		}
	}
	cases := map[string]func(*exchangev1.Referral){
		"subject and case notes": func(*exchangev1.Referral) {},
		"subject only":           func(r *exchangev1.Referral) { r.CaseNotes = "" },
		"case notes only":        func(r *exchangev1.Referral) { r.Subject = nil },
		"neither":                func(r *exchangev1.Referral) { r.Subject, r.CaseNotes = nil, "" },
		"nothing after them":     func(r *exchangev1.Referral) { r.State, r.Etag, r.RequestId, r.Consent = 0, "", "", nil },
	}
	for name, change := range cases {
		r := full()
		change(r)
		encoded, err := marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		before := proto.Clone(r)
		got, err := referrals.logged(r, encoded)
		if err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(r).(*exchangev1.Referral)
		want.Subject, want.CaseNotes, want.DetailsWithheld = nil, "", true
		wantBytes, err := marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wantBytes) {
			t.Errorf("%s: logged\n%x\nwant\n%x", name, got, wantBytes)
		}
		if !proto.Equal(r, before) {
			t.Errorf("%s: logging changed the record", name)
		}
	}
	if _, ok := withoutDetails(append([]byte(nil), detailsWithheldTrue...)); ok {
		t.Error("an encoding that already says its details are withheld was cut again")
	}
}
