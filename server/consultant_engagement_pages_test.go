package server

import (
	"context"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestErasedConsultantSeenByALateBooker books a consultant 110 times for
// unicef before iom books it once, then erases it: iom must still see the
// erased consultant it booked, although its engagement lies past the
// first page's scan budget of engagements (a page of one visits at most
// 100), behind pages that come back empty.
func TestErasedConsultantSeenByALateBooker(t *testing.T) {
	_, _, ilo, iom, unicef, _ := planParties(t)
	ctx := context.Background()
	k := addConsultant(t, ilo, newConsultant("Lim Sreymom"))
	day := func(i int) *exchangev1.CalendarDate {
		d := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i)
		return date(int32(d.Year()), int32(d.Month()), int32(d.Day()))
	}
	for i := range 110 {
		if _, err := bookConsultant(unicef, k.GetName(), day(i), day(i)); err != nil {
			t.Fatalf("booking %d: %v", i, err)
		}
	}
	if _, err := bookConsultant(iom, k.GetName(), day(120), day(121)); err != nil {
		t.Fatal(err)
	}
	if _, err := ilo.consultants().EraseConsultant(ctx, &exchangev1.EraseConsultantRequest{Name: k.GetName()}); err != nil {
		t.Fatal(err)
	}
	got, err := iom.consultants().GetConsultant(ctx, &exchangev1.GetConsultantRequest{Name: k.GetName()})
	if err != nil || !got.GetConsultant().GetErased() {
		t.Fatalf("the late booker lost sight of the erased consultant: %v, %v", got, err)
	}
}
