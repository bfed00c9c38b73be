package store

import (
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store/kv"
)

// sameRefusal fails unless invisible and missing are the same NotFound,
// field for field, once each name is replaced by a placeholder.
func sameRefusal(t *testing.T, what string, invisible error, invisibleName string, missing error, missingName string) {
	t.Helper()
	a := wantKind(t, invisible, KindNotFound)
	b := wantKind(t, missing, KindNotFound)
	norm := func(e *Error, name string) Error {
		return Error{Kind: e.Kind, Field: e.Field, Err: e.Err,
			Resource: strings.ReplaceAll(e.Resource, name, "NAME"), Message: strings.ReplaceAll(e.Message, name, "NAME")}
	}
	if na, nb := norm(a, invisibleName), norm(b, missingName); na != nb {
		t.Errorf("%s: an invisible referral answers %+v, a missing one %+v", what, na, nb)
	}
}

// TestInvisibleAndMissingReferralsTakeOnePath checks that the store
// decides who may touch a referral from the party index alone, before it
// reads the record: it makes a referral's stored record undecodable, and
// for an agency that is no party to it (and for the secretariat) every
// read and change still answers exactly what it answers for a referral
// that does not exist, and changes nothing. A path that read the record
// first would fail on the broken record instead (as it does for the
// referral's own agencies, which shows the record really is broken).
func TestInvisibleAndMissingReferralsTakeOnePath(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	for _, id := range []string{"ilo", "iom", "unicef"} {
		mustCreateAgency(t, s, id, nil)
	}
	res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, []NewReferral{{RequestID: "r", Referral: ruleReferral("agencies/iom", "x")}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	invisible := res[0].Referral.GetName()
	missing := ReferralPrefix + newID(s.now())
	if err := s.updateAlone(func(tx kv.Tx) error {
		return tx.Bucket(bucketReferrals).Put([]byte(referralID(invisible)), []byte{0xff, 0xff, 0xff})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetReferralFor(ctx, "agencies/iom", invisible); KindOf(err) != KindInternal {
		t.Fatalf("the receiver's read of the broken record: %v (the record was not broken?)", err)
	}
	before := countsOf(t, s)
	refuse := func(*exchangev1.Referral) error {
		t.Error("mutate ran for a referral the caller may not see")
		return nil
	}
	for _, actor := range []string{"agencies/unicef", "secretariat"} {
		op := Op{Actor: actor, Method: "test"}
		verbs := []struct {
			name string
			do   func(name string) error
		}{
			{"GetReferralFor", func(name string) error { _, err := s.GetReferralFor(ctx, actor, name); return err }},
			{"UpdateReferral", func(name string) error { _, err := s.UpdateReferral(ctx, op, name, "", refuse); return err }},
			{"UpdateReferral with a stale etag", func(name string) error {
				_, err := s.UpdateReferral(ctx, op, name, "0123456789abcdef", refuse)
				return err
			}},
			{"RevokeReferralConsent", func(name string) error { _, err := s.RevokeReferralConsent(ctx, op, name, refuse); return err }},
			{"ForwardReferral", func(name string) error {
				_, err := s.ForwardReferral(ctx, op, name, "fwd", refuse, ruleReferral("agencies/ilo", "y"))
				return err
			}},
			{"EraseReferralDetails", func(name string) error { _, err := s.EraseReferralDetails(ctx, op, name, refuse); return err }},
		}
		for _, v := range verbs {
			sameRefusal(t, actor+" "+v.name, v.do(invisible), invisible, v.do(missing), missing)
		}
	}
	if after := countsOf(t, s); after != before {
		t.Errorf("refused calls changed the store: %+v, was %+v", after, before)
	}
}

// TestExchangeJobsActOnAnyReferral: the exchange's own jobs (the retention
// job erases details of any closed referral) are party to none and may
// act on all; the secretariat may not.
func TestExchangeJobsActOnAnyReferral(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, []NewReferral{{RequestID: "r", Referral: ruleReferral("agencies/iom", "x")}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	name := res[0].Referral.GetName()
	if r, err := s.GetReferralFor(ctx, ActorExchange, name); err != nil || detailsOf(t, r).GetCaseNotes() != "x" {
		t.Fatalf("the exchange reads %v: %v", r, err)
	}
	if _, err := s.EraseReferralDetails(ctx, Op{Actor: ActorExchange, Method: "exchanged/retention"}, name, func(*exchangev1.Referral) error { return nil }); err != nil {
		t.Fatalf("the retention job's erasure: %v", err)
	}
}
