package store

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestErasedDetailsAreUnrecoverableFromTheFile plants a marker in a
// referral's sealed details and checks the raw database file: the marker
// is never there in clear, the file holds the blob as sent, and after
// erasure and Vacuum the blob is nowhere in it.
func TestErasedDetailsAreUnrecoverableFromTheFile(t *testing.T) {
	needsFile(t, "the raw file")
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	const marker = "MARKER-Chanthy-9152"
	sent := &exchangev1.Referral{
		Receiver: "agencies/iom", SubjectReference: "s-1",
		Service:       &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
		SealedDetails: sealTestDetails(&exchangev1.ReferralDetails{Name: marker, GuardianContact: marker + " aunt", CaseNotes: "notes on " + marker}),
	}
	res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, []NewReferral{{RequestID: "r1", Referral: sent}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	name := res[0].Referral.GetName()
	if detailsOf(t, res[0].Referral).GetName() != marker {
		t.Fatal("the create result lost the details")
	}
	raw := func() []byte {
		b, err := os.ReadFile(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if bytes.Contains(raw(), []byte(marker)) {
		t.Fatal("the marker is in the database file in clear")
	}
	got, err := s.GetReferral(ctx, name)
	if err != nil || detailsOf(t, got).GetName() != marker || detailsOf(t, got).GetCaseNotes() != "notes on "+marker {
		t.Fatalf("details do not open: %v %v", got, err)
	}
	sealed := sent.GetSealedDetails()
	if !bytes.Contains(raw(), sealed) {
		t.Fatal("the sealed details are not where the test expects them")
	}

	_, err = s.EraseReferralDetails(ctx, Op{Actor: "agencies/ilo", Method: "EraseReferralDetails"}, name, func(*exchangev1.Referral) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.GetReferral(ctx, name)
	if err != nil || after.GetSubject() != nil || after.GetSealedDetails() != nil || !after.GetDetailsErased() || after.GetEraseTime() == nil {
		t.Fatalf("after erasure: %v %v", after, err)
	}
	if after.GetState() != exchangev1.ReferralState_REFERRAL_STATE_REQUESTED || len(after.GetHistory()) != 1 {
		t.Fatal("erasure lost the referral's state or history")
	}
	if _, err := s.EraseReferralDetails(ctx, Op{Actor: "agencies/ilo", Method: "EraseReferralDetails"}, name, func(*exchangev1.Referral) error { return nil }); KindOf(err) != KindFailedPrecondition {
		t.Fatalf("erasing twice: %v", err)
	}
	// Answered, the erasure has overwritten every freed page (scrub.go):
	// no copy of the blob is left, without a Vacuum.
	if bytes.Contains(raw(), sealed) {
		t.Fatal("the sealed details are still in the database file once the erasure is answered")
	}
	entries, _ := s.AuditEntries(ctx, 0, 100)
	if last := entries[len(entries)-1]; last.GetMethod() != "EraseReferralDetails" || last.GetResourceName() != name {
		t.Fatalf("the erasure is not audited: %v", last)
	}

	if err := s.Vacuum(ctx); err != nil {
		t.Fatal(err)
	}
	file := raw()
	for what, b := range map[string][]byte{"marker": []byte(marker), "sealed details": sealed} {
		if bytes.Contains(file, b) {
			t.Errorf("the %s is still in the database file after erasure and vacuum", what)
		}
	}
	// The store works on after the vacuum.
	if _, err := s.GetReferral(ctx, name); err != nil {
		t.Fatal(err)
	}
	mustCreateAgency(t, s, "unicef", nil)
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClosedReferralsPastRetention(t *testing.T) {
	s, clock := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	mk := func(rid string) string {
		res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, []NewReferral{{RequestID: rid, Referral: &exchangev1.Referral{
			Receiver: "agencies/iom", SealedDetails: sealTestDetails(&exchangev1.ReferralDetails{Name: "x"})}}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
		return res[0].Referral.GetName()
	}
	open, closed := mk("a"), mk("b")
	if _, err := s.UpdateReferral(ctx, Op{Actor: "agencies/ilo", Method: "test"}, closed, "", func(r *exchangev1.Referral) error {
		r.State = exchangev1.ReferralState_REFERRAL_STATE_CANCELLED
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	clock.advance(48 * time.Hour)
	due, err := s.ClosedReferralsBefore(ctx, clock.now().Add(-24*time.Hour), 100)
	if err != nil || len(due) != 1 || due[0] != closed {
		t.Fatalf("due %v %v (open %s)", due, err, open)
	}
	if due, _ := s.ClosedReferralsBefore(ctx, clock.now().Add(-72*time.Hour), 100); len(due) != 0 {
		t.Fatalf("not yet due: %v", due)
	}
}
