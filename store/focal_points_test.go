package store

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func focalPoint(display, topic string, start, end *exchangev1.CalendarDate) *exchangev1.FocalPoint {
	return &exchangev1.FocalPoint{DisplayName: display, Topic: topic, Tenure: &exchangev1.DatePeriod{Start: start, End: end}}
}

func mustCreateFocalPoint(t *testing.T, s *Store, agencyID string, fp *exchangev1.FocalPoint) *exchangev1.FocalPoint {
	t.Helper()
	got, err := s.CreateFocalPoint(t.Context(), secretariat("CreateFocalPoint"), agencyID, fp)
	if err != nil {
		t.Fatalf("CreateFocalPoint(%s, %s): %v", agencyID, fp.GetDisplayName(), err)
	}
	return got
}

func listFocalPoints(t *testing.T, s *Store, f FocalPointFilter) []*exchangev1.FocalPoint {
	t.Helper()
	return listAll(t, 1, func(p Page) ([]*exchangev1.FocalPoint, string, error) { return s.ListFocalPoints(t.Context(), f, p) })
}

func displayNames(fps []*exchangev1.FocalPoint) []string {
	out := make([]string, len(fps))
	for i, fp := range fps {
		out[i] = fp.GetDisplayName()
	}
	return out
}

func TestFocalPointNeedsAgencyAndStart(t *testing.T) {
	s, _ := openTest(t)
	_, err := s.CreateFocalPoint(t.Context(), secretariat("CreateFocalPoint"), "nobody", focalPoint("Dara", "referrals", date(2024, 1, 1), nil))
	if e := wantKind(t, err, KindNotFound); e.Resource != "agencies/nobody" {
		t.Errorf("error resource = %q, want agencies/nobody", e.Resource)
	}
	mustCreateAgency(t, s, "iom", nil)
	_, err = s.CreateFocalPoint(t.Context(), secretariat("CreateFocalPoint"), "iom", &exchangev1.FocalPoint{DisplayName: "Dara", Topic: "referrals"})
	if e := wantKind(t, err, KindInvalidArgument); e.Field != "focal_point.tenure.start" {
		t.Errorf("error field = %q", e.Field)
	}
	if c := countsOf(t, s); c != (counts{1, 1, 1}) {
		t.Errorf("counts = %v after failed creates, want %v", c, counts{1, 1, 1})
	}
}

func TestFocalPointTenure(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "iom", nil)
	mustCreateAgency(t, s, "unicef", nil)

	dara := mustCreateFocalPoint(t, s, "iom", focalPoint("Dara", "referrals", date(2023, 6, 1), nil))
	lin := mustCreateFocalPoint(t, s, "iom", focalPoint("Lin", "data", date(2023, 1, 1), nil))
	closed := mustCreateFocalPoint(t, s, "iom", focalPoint("Old", "referrals", date(2020, 1, 1), date(2022, 12, 31)))
	if lin.GetName() == dara.GetName() || len(dara.GetName()) != len("agencies/iom/focalPoints/")+26 {
		t.Errorf("focal point names %q, %q", dara.GetName(), lin.GetName())
	}
	revBefore := s.Revision()

	// Naming Sokha for referrals on 2024-03-01 ends Dara's open tenure on
	// the day before (a leap day); the closed tenure and the other topic
	// are left alone.
	sokha := mustCreateFocalPoint(t, s, "iom", focalPoint("Sokha", "referrals", date(2024, 3, 1), nil))
	if s.Revision() != revBefore+2 {
		t.Errorf("Revision() = %d, want %d: ending a tenure and naming the successor are two changes", s.Revision(), revBefore+2)
	}
	got, err := s.GetFocalPoint(ctx, dara.GetName())
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.GetTenure().GetEnd(), date(2024, 2, 29)) {
		t.Errorf("Dara's tenure ends %v, want 2024-02-29", got.GetTenure().GetEnd())
	}
	if got.GetEtag() == dara.GetEtag() {
		t.Error("ending a tenure did not change the etag")
	}
	for _, fp := range []*exchangev1.FocalPoint{lin, closed} {
		if got, _ := s.GetFocalPoint(ctx, fp.GetName()); !proto.Equal(got, fp) {
			t.Errorf("%s changed to %v", fp.GetDisplayName(), got)
		}
	}
	// A focal point whose tenure starts no later than an open one does
	// not end it.
	sameDay := mustCreateFocalPoint(t, s, "iom", focalPoint("Same day", "referrals", date(2024, 3, 1), nil))
	if got, _ := s.GetFocalPoint(ctx, sokha.GetName()); got.GetTenure().GetEnd() != nil {
		t.Errorf("a focal point starting the same day ended Sokha's tenure: %v", got.GetTenure())
	}
	if err := s.DeleteFocalPoint(ctx, secretariat("DeleteFocalPoint"), sameDay.GetName(), ""); err != nil {
		t.Fatal(err)
	}
	mustCreateFocalPoint(t, s, "unicef", focalPoint("Uma", "referrals", date(2021, 5, 5), nil))

	tests := []struct {
		name string
		f    FocalPointFilter
		want []string
	}{
		{"agency: topic then start", FocalPointFilter{AgencyID: "iom"}, []string{"Lin", "Old", "Dara", "Sokha"}},
		{"agency and topic", FocalPointFilter{AgencyID: "iom", Topic: "referrals"}, []string{"Old", "Dara", "Sokha"}},
		{"all agencies", FocalPointFilter{}, []string{"Lin", "Old", "Dara", "Sokha", "Uma"}},
		{"topic in all agencies", FocalPointFilter{Topic: "referrals"}, []string{"Old", "Dara", "Sokha", "Uma"}},
		{"active today", FocalPointFilter{AgencyID: "iom", ActiveOn: date(2025, 7, 1)}, []string{"Lin", "Sokha"}},
		{"active on the last day", FocalPointFilter{AgencyID: "iom", Topic: "referrals", ActiveOn: date(2024, 2, 29)}, []string{"Dara"}},
		{"active on the first day", FocalPointFilter{AgencyID: "iom", Topic: "referrals", ActiveOn: date(2024, 3, 1)}, []string{"Sokha"}},
		{"active in all agencies", FocalPointFilter{Topic: "referrals", ActiveOn: date(2025, 7, 1)}, []string{"Sokha", "Uma"}},
		{"before anyone", FocalPointFilter{ActiveOn: date(2019, 1, 1)}, nil},
		{"other agency", FocalPointFilter{AgencyID: "unicef"}, []string{"Uma"}},
		{"agency id is not a prefix", FocalPointFilter{AgencyID: "io"}, nil},
		{"unknown topic", FocalPointFilter{AgencyID: "iom", Topic: "refer"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := displayNames(listFocalPoints(t, s, tt.f)); !slices.Equal(got, tt.want) {
				t.Errorf("ListFocalPoints(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
	checkIndexes(t, s)

	t.Run("token of another filter", func(t *testing.T) {
		_, next, err := s.ListFocalPoints(ctx, FocalPointFilter{AgencyID: "iom"}, Page{Size: 1})
		if err != nil || next == "" {
			t.Fatalf("first page: %q, %v", next, err)
		}
		_, _, err = s.ListFocalPoints(ctx, FocalPointFilter{AgencyID: "iom", ActiveOn: date(2025, 1, 1)}, Page{Token: next})
		wantKind(t, err, KindInvalidArgument)
	})
}

func TestFocalPointUpdateDelete(t *testing.T) {
	s, clk := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "iom", nil)
	fp := mustCreateFocalPoint(t, s, "iom", focalPoint("Dara", "referrals", date(2024, 1, 1), nil))
	clk.advance(time.Second)

	_, err := s.UpdateFocalPoint(ctx, secretariat("UpdateFocalPoint"), fp.GetName(), "stale", func(f *exchangev1.FocalPoint) error {
		f.Role = "coordinator"
		return nil
	})
	wantKind(t, err, KindEtagMismatch)

	// Moving the focal point to another topic moves its index entry.
	up, err := s.UpdateFocalPoint(ctx, secretariat("UpdateFocalPoint"), fp.GetName(), fp.GetEtag(), func(f *exchangev1.FocalPoint) error {
		f.Role = "coordinator"
		f.Topic = "data"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.GetRole() != "coordinator" || up.GetEtag() == fp.GetEtag() || !proto.Equal(up.GetCreateTime(), fp.GetCreateTime()) {
		t.Errorf("updated focal point = %v", up)
	}
	if got := displayNames(listFocalPoints(t, s, FocalPointFilter{AgencyID: "iom", Topic: "referrals"})); len(got) != 0 {
		t.Errorf("referrals still lists %v after the topic moved", got)
	}
	if got := displayNames(listFocalPoints(t, s, FocalPointFilter{AgencyID: "iom", Topic: "data"})); !slices.Equal(got, []string{"Dara"}) {
		t.Errorf("data lists %v, want [Dara]", got)
	}
	checkIndexes(t, s)

	if err := s.DeleteFocalPoint(ctx, secretariat("DeleteFocalPoint"), fp.GetName(), fp.GetEtag()); KindOf(err) != KindEtagMismatch {
		t.Errorf("delete with a stale etag = %v, want etag mismatch", err)
	}
	if _, err := s.GetFocalPoint(ctx, fp.GetName()); err != nil {
		t.Errorf("a refused delete removed the focal point: %v", err)
	}
	if err := s.DeleteFocalPoint(ctx, secretariat("DeleteFocalPoint"), fp.GetName(), up.GetEtag()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetFocalPoint(ctx, fp.GetName()); KindOf(err) != KindNotFound {
		t.Errorf("GetFocalPoint after delete = %v, want not found", err)
	}
	if got := listFocalPoints(t, s, FocalPointFilter{}); len(got) != 0 {
		t.Errorf("ListFocalPoints after delete = %v", displayNames(got))
	}
	if err := s.DeleteFocalPoint(ctx, secretariat("DeleteFocalPoint"), fp.GetName(), ""); KindOf(err) != KindNotFound {
		t.Errorf("second delete = %v, want not found", err)
	}
	checkIndexes(t, s)
}

func TestDates(t *testing.T) {
	tests := []struct {
		d, before *exchangev1.CalendarDate
		number    uint32
	}{
		{date(2024, 3, 1), date(2024, 2, 29), 20240301},
		{date(2023, 3, 1), date(2023, 2, 28), 20230301},
		{date(2025, 1, 1), date(2024, 12, 31), 20250101},
		{date(2025, 7, 15), date(2025, 7, 14), 20250715},
	}
	for _, tt := range tests {
		if got := dayBefore(tt.d); !proto.Equal(got, tt.before) {
			t.Errorf("dayBefore(%v) = %v, want %v", tt.d, got, tt.before)
		}
		if got := DateNumber(tt.d); got != tt.number {
			t.Errorf("DateNumber(%v) = %d, want %d", tt.d, got, tt.number)
		}
	}
	if DateNumber(nil) != 0 {
		t.Error("DateNumber(nil) != 0")
	}
}
