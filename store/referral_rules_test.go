package store

import (
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// ruleReferral is a minimal referral from the tests' sender to receiver
// ("agencies/{id}") whose sealed details carry notes as the name and the
// case notes (sealed_fixtures_test.go).
func ruleReferral(receiver, notes string) *exchangev1.Referral {
	return &exchangev1.Referral{
		Receiver: receiver, SubjectReference: "s-1",
		Service:       &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
		SealedDetails: sealTestDetails(&exchangev1.ReferralDetails{Name: notes, CaseNotes: notes}),
	}
}

// setAgencyState suspends or reactivates an agency as the secretariat.
func setAgencyState(t *testing.T, s *Store, id string, state exchangev1.AgencyState) {
	t.Helper()
	if _, err := s.UpdateAgency(t.Context(), secretariat("SuspendAgency"), AgencyPrefix+id, "", func(a *exchangev1.Agency) error {
		a.State = state
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCreateReferralRepeatedRequestIDWritesNothing sends a referral, then
// the same request id again (with other content, as a confused retry
// might), alone and inside a batch: each retry answers with the first
// referral, marked duplicate, and writes nothing at all (no revision,
// change, audit entry or referral). The id is the sender's own: another
// sender using it creates a referral of its own.
func TestCreateReferralRepeatedRequestIDWritesNothing(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	for _, id := range []string{"ilo", "iom", "unicef"} {
		mustCreateAgency(t, s, id, nil)
	}
	ilo := Op{Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/CreateReferral"}
	first, err := s.CreateReferrals(ctx, ilo, []NewReferral{{RequestID: "req-1", Referral: ruleReferral("agencies/iom", "first")}})
	if err != nil || first[0].Err != nil || first[0].Duplicate {
		t.Fatalf("first create: %v %+v", err, first)
	}
	name := first[0].Referral.GetName()
	before := countsOf(t, s)

	again, err := s.CreateReferrals(ctx, ilo, []NewReferral{{RequestID: "req-1", Referral: ruleReferral("agencies/unicef", "second")}})
	if err != nil || again[0].Err != nil {
		t.Fatalf("retry: %v %+v", err, again)
	}
	if !again[0].Duplicate || again[0].Referral.GetName() != name || again[0].Referral.GetReceiver() != "agencies/iom" {
		t.Errorf("retry returned %s to %s (duplicate %t), want the first referral %s to agencies/iom",
			again[0].Referral.GetName(), again[0].Referral.GetReceiver(), again[0].Duplicate, name)
	}
	// In a batch: the repeated id is a duplicate, the new one is created.
	batch, err := s.CreateReferrals(ctx, ilo, []NewReferral{
		{RequestID: "req-1", Referral: ruleReferral("agencies/iom", "third")},
		{RequestID: "req-2", Referral: ruleReferral("agencies/iom", "fourth")},
	})
	if err != nil || batch[0].Err != nil || batch[1].Err != nil {
		t.Fatalf("batch: %v %+v", err, batch)
	}
	if !batch[0].Duplicate || batch[0].Referral.GetName() != name || batch[1].Duplicate {
		t.Errorf("batch: %s duplicate %t, %s duplicate %t", batch[0].Referral.GetName(), batch[0].Duplicate, batch[1].Referral.GetName(), batch[1].Duplicate)
	}
	after := countsOf(t, s)
	if want := (counts{before.revision + 1, before.changes + 1, before.audit + 1}); after != want {
		t.Errorf("after a retry and a batch with one new referral: %+v, want %+v (the retries wrote something)", after, want)
	}
	stored, err := s.GetReferral(ctx, name)
	if err != nil || detailsOf(t, stored).GetCaseNotes() != "first" {
		t.Errorf("the first referral now holds %q (%v)", detailsOf(t, stored).GetCaseNotes(), err)
	}
	listed, _, _, err := s.ListReferrals(ctx, ReferralFilter{AgencyID: "ilo"}, Page{Size: 100})
	if err != nil || len(listed) != 2 {
		t.Errorf("ilo has %d referrals (%v), want 2", len(listed), err)
	}
	// Another sender's request ids are its own.
	unicef := Op{Actor: "agencies/unicef", Method: ilo.Method}
	other, err := s.CreateReferrals(ctx, unicef, []NewReferral{{RequestID: "req-1", Referral: ruleReferral("agencies/iom", "unicef's")}})
	if err != nil || other[0].Err != nil || other[0].Duplicate || other[0].Referral.GetName() == name {
		t.Errorf("unicef's req-1: %v %+v", err, other)
	}
}

// TestReferralToSuspendedReceiverIsRefused sends, in one batch, a
// referral to a suspended agency and one to an active agency: the store
// refuses the first with FAILED_PRECONDITION naming referral.receiver and
// writes nothing for it, stores the second, and does not remember the
// refused request id, so that the same request succeeds once the
// receiver is active again.
func TestReferralToSuspendedReceiverIsRefused(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	for _, id := range []string{"ilo", "iom", "unicef"} {
		mustCreateAgency(t, s, id, nil)
	}
	setAgencyState(t, s, "iom", exchangev1.AgencyState_AGENCY_STATE_SUSPENDED)
	before := countsOf(t, s)
	ilo := Op{Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/BatchCreateReferrals"}
	res, err := s.CreateReferrals(ctx, ilo, []NewReferral{
		{RequestID: "to-suspended", Referral: ruleReferral("agencies/iom", "x")},
		{RequestID: "to-active", Referral: ruleReferral("agencies/unicef", "y")},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := wantKind(t, res[0].Err, KindFailedPrecondition)
	if e.Field != "referral.receiver" || res[0].Referral != nil {
		t.Errorf("refusal names %q and returns %v", e.Field, res[0].Referral)
	}
	if res[1].Err != nil || res[1].Referral.GetReceiver() != "agencies/unicef" {
		t.Fatalf("the referral to the active agency: %+v", res[1])
	}
	if after := countsOf(t, s); after != (counts{before.revision + 1, before.changes + 1, before.audit + 1}) {
		t.Errorf("counts %+v after one stored referral, were %+v", after, before)
	}
	inbox, _, _, err := s.ListReferrals(ctx, ReferralFilter{AgencyID: "iom", Inbox: true}, Page{Size: 100})
	if err != nil || len(inbox) != 0 {
		t.Errorf("the suspended agency received %d referrals (%v)", len(inbox), err)
	}

	setAgencyState(t, s, "iom", exchangev1.AgencyState_AGENCY_STATE_ACTIVE)
	res, err = s.CreateReferrals(ctx, ilo, []NewReferral{{RequestID: "to-suspended", Referral: ruleReferral("agencies/iom", "x")}})
	if err != nil || res[0].Err != nil || res[0].Duplicate {
		t.Fatalf("the same request once iom is active: %v %+v", err, res)
	}
}

// TestLookupCallerSeesSuspensionAtOnce: whether a suspended agency may
// act on its referrals (accept one, say) is decided by the server, which
// refuses every call of a suspended agency (checkCredentials), from what
// LookupCaller reports. The store's part of that rule is to report the
// suspension from the very next call, even though it caches callers.
func TestLookupCallerSeesSuspensionAtOnce(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "iom", nil)
	for range 2 { // the second answer comes from the cache
		c, err := s.LookupCaller(ctx, "0a1b", "iom")
		if err != nil || c.Agency.GetState() != exchangev1.AgencyState_AGENCY_STATE_ACTIVE {
			t.Fatalf("before: %+v %v", c, err)
		}
	}
	setAgencyState(t, s, "iom", exchangev1.AgencyState_AGENCY_STATE_SUSPENDED)
	c, err := s.LookupCaller(ctx, "0a1b", "iom")
	if err != nil || c.Agency.GetState() != exchangev1.AgencyState_AGENCY_STATE_SUSPENDED {
		t.Fatalf("after suspension LookupCaller reports %v (%v): a suspended receiver could still accept referrals", c.Agency.GetState(), err)
	}
}
