package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func consultantDate(y, m, d int32) *exchangev1.CalendarDate {
	return &exchangev1.CalendarDate{Year: y, Month: m, Day: d}
}

func weeks(from, to *exchangev1.CalendarDate) *exchangev1.DatePeriod {
	return &exchangev1.DatePeriod{Start: from, End: to}
}

func mustAddConsultant(t *testing.T, s *Store, agencyID, displayName string) *exchangev1.Consultant {
	t.Helper()
	c, err := s.CreateConsultant(context.Background(), Op{Actor: "agencies/" + agencyID, Method: "test"}, agencyID, &exchangev1.Consultant{
		DisplayName: displayName, ContactEmail: "roster@" + agencyID + ".example", Languages: []string{"km", "en"},
		Niches:    []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		Provinces: []string{"KH-12"}, Consent: &exchangev1.ConsultantConsent{GivenOn: consultantDate(2026, 3, 1), Record: "form CF-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func engage(s *Store, agencyID, consultant, requestID string, period *exchangev1.DatePeriod) (*exchangev1.Engagement, error) {
	return s.CreateEngagement(context.Background(), Op{Actor: "agencies/" + agencyID, Method: "test", RequestID: requestID}, consultant, agencyID,
		&exchangev1.Engagement{Period: period, Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Purpose: "staff training"},
		func(*exchangev1.Consultant) error { return nil })
}

// TestConsultantDoubleBookingIsRefusedNamingTheConflict books a consultant
// for two agencies: weeks that share even one day with another engagement
// are refused with the other engagement named, weeks next to it are not.
func TestConsultantDoubleBookingIsRefusedNamingTheConflict(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom", "unicef"} {
		mustCreateAgency(t, s, id, nil)
	}
	c := mustAddConsultant(t, s, "ilo", "Sok Dara")
	first, err := engage(s, "iom", c.GetName(), "r1", weeks(consultantDate(2026, 5, 4), consultantDate(2026, 5, 15)))
	if err != nil {
		t.Fatal(err)
	}
	if first.GetAgency() != "agencies/iom" || !strings.HasPrefix(first.GetName(), c.GetName()+"/engagements/") {
		t.Fatalf("engagement: %v", first)
	}
	again, err := engage(s, "iom", c.GetName(), "r1", weeks(consultantDate(2026, 5, 4), consultantDate(2026, 5, 15)))
	if err != nil || again.GetName() != first.GetName() {
		t.Fatalf("a retry with the same request id made another engagement: %v %v", again, err)
	}
	for _, overlap := range []*exchangev1.DatePeriod{
		weeks(consultantDate(2026, 5, 15), consultantDate(2026, 5, 29)), // shares the last day
		weeks(consultantDate(2026, 4, 20), consultantDate(2026, 5, 4)),  // shares the first day
		weeks(consultantDate(2026, 5, 6), consultantDate(2026, 5, 7)),   // inside
		weeks(consultantDate(2026, 4, 1), consultantDate(2026, 6, 30)),  // around
	} {
		_, err := engage(s, "unicef", c.GetName(), "", overlap)
		if KindOf(err) != KindFailedPrecondition {
			t.Fatalf("%v: overlapping booking: %v", overlap, err)
		}
		var se *Error
		if !errors.As(err, &se) || se.Resource != first.GetName() {
			t.Fatalf("the conflict is not named: %v", err)
		}
		for _, want := range []string{first.GetName(), "agencies/iom", "2026-05-04", "2026-05-15"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("the refusal does not name %s: %v", want, err)
			}
		}
	}
	if _, err := engage(s, "unicef", c.GetName(), "", weeks(consultantDate(2026, 5, 16), consultantDate(2026, 5, 29))); err != nil {
		t.Fatalf("the weeks after the engagement: %v", err)
	}
	// Another consultant's engagements do not conflict.
	other := mustAddConsultant(t, s, "ilo", "Chan Sophea")
	if _, err := engage(s, "unicef", other.GetName(), "", weeks(consultantDate(2026, 5, 4), consultantDate(2026, 5, 15))); err != nil {
		t.Fatalf("another consultant, same weeks: %v", err)
	}
	list, _, err := s.ListEngagements(ctx, c.GetName(), nil, Page{})
	if err != nil || len(list) != 2 {
		t.Fatalf("engagements: %v %v", list, err)
	}
}

// TestErasedConsultantIsGoneFromTheRecordAndTheFile erases a consultant
// whose profile holds a marker: the record keeps no personal field, its
// engagements stay, and the raw database file (change log included) no
// longer holds the marker once the erasure is answered.
func TestErasedConsultantIsGoneFromTheRecordAndTheFile(t *testing.T) {
	needsFile(t, "the raw file")
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	const marker = "MARKER-Consultant-7731"
	c := mustAddConsultant(t, s, "ilo", marker)
	c, err := s.UpdateConsultant(ctx, Op{Actor: "agencies/ilo", Method: "test"}, c.GetName(), c.GetEtag(), func(c *exchangev1.Consultant) error {
		c.DisplayName = marker + " (senior)"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engage(s, "iom", c.GetName(), "", weeks(consultantDate(2026, 5, 4), consultantDate(2026, 5, 15)))
	if err != nil {
		t.Fatal(err)
	}
	raw := func() []byte {
		b, err := os.ReadFile(s.Path())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Contains(raw(), []byte(marker)) {
		t.Fatal("the marker is not where the test expects it")
	}
	op := Op{Actor: "agencies/ilo", Method: "EraseConsultant", Reason: "person-request"}
	erased, err := s.EraseConsultant(ctx, op, c.GetName(), func(*exchangev1.Consultant) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetConsultant(ctx, c.GetName())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*exchangev1.Consultant{erased, got} {
		if !m.GetErased() || m.GetEraseTime() == nil || m.GetDisplayName() != "" || m.GetContactEmail() != "" ||
			len(m.GetLanguages()) != 0 || len(m.GetNiches()) != 0 || len(m.GetProvinces()) != 0 || m.GetConsent() != nil || IsListed(m) {
			t.Fatalf("after erasure the record still holds personal data: %v", m)
		}
	}
	if bytes.Contains(raw(), []byte(marker)) {
		t.Fatal("the marker is still in the database file once the erasure is answered")
	}
	list, _, err := s.ListEngagements(ctx, c.GetName(), nil, Page{})
	if err != nil || len(list) != 1 || list[0].GetName() != e.GetName() || list[0].GetAgency() != "agencies/iom" {
		t.Fatalf("the engagement history did not survive the erasure: %v %v", list, err)
	}
	if _, err := s.EraseConsultant(ctx, op, c.GetName(), func(*exchangev1.Consultant) error { return nil }); KindOf(err) != KindFailedPrecondition {
		t.Fatalf("erasing twice: %v", err)
	}
	if _, err := s.UpdateConsultant(ctx, op, c.GetName(), "", func(c *exchangev1.Consultant) error { c.DisplayName = "x"; return nil }); KindOf(err) != KindFailedPrecondition {
		t.Fatalf("an erased profile was filled again: %v", err)
	}
	entries, _ := s.AuditEntries(ctx, 0, 100)
	if last := entries[len(entries)-1]; last.GetMethod() != "EraseConsultant" || last.GetResourceName() != c.GetName() {
		t.Fatalf("the erasure is not audited: %v", last)
	}
}

// TestConcurrentBookingsOfTheSameWeeksLetOneThrough books one consultant
// for the same weeks from many goroutines at once: the overlap check runs
// inside the write, so exactly one booking is stored and every other is
// refused naming it.
func TestConcurrentBookingsOfTheSameWeeksLetOneThrough(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	mustCreateAgency(t, s, "ilo", nil)
	c := mustAddConsultant(t, s, "ilo", "Sok Dara")
	const n = 16
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := engage(s, "ilo", c.GetName(), "", weeks(consultantDate(2026, 5, 4), consultantDate(2026, 5, 15)))
			errs <- err
		}()
	}
	var ok, refused int
	for i := 0; i < n; i++ {
		switch err := <-errs; KindOf(err) {
		case KindFailedPrecondition:
			refused++
		default:
			if err != nil {
				t.Fatal(err)
			}
			ok++
		}
	}
	list, _, err := s.ListEngagements(ctx, c.GetName(), nil, Page{})
	if err != nil || ok != 1 || refused != n-1 || len(list) != 1 {
		t.Fatalf("%d booked, %d refused, %d stored (%v), want 1, %d, 1", ok, refused, len(list), err, n-1)
	}
}

// TestEngagementIsFoundOnlyUnderItsOwnName: an engagement's key holds the
// consultant's id but not the adding agency's, so the same ids under
// another agency must not reach it, to read or to cancel.
func TestEngagementIsFoundOnlyUnderItsOwnName(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	c := mustAddConsultant(t, s, "ilo", "Sok Dara")
	e, err := engage(s, "iom", c.GetName(), "r1", weeks(consultantDate(2031, 5, 4), consultantDate(2031, 5, 15)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetEngagement(ctx, e.GetName()); err != nil || got.GetName() != e.GetName() {
		t.Fatalf("under its own name: %v, %v", got, err)
	}
	elsewhere := strings.Replace(e.GetName(), "agencies/ilo/", "agencies/iom/", 1)
	if _, err := s.GetEngagement(ctx, elsewhere); KindOf(err) != KindNotFound {
		t.Fatalf("read as %s: %v", elsewhere, err)
	}
	_, err = s.CancelEngagement(ctx, Op{Actor: "agencies/iom", Method: "test"}, elsewhere, "", "moved", func(*exchangev1.Engagement) error { return nil })
	if KindOf(err) != KindNotFound {
		t.Fatalf("cancelled as %s: %v", elsewhere, err)
	}
}
