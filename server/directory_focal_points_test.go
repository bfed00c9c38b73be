package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func date(y, m, d int32) *exchangev1.CalendarDate {
	return &exchangev1.CalendarDate{Year: y, Month: m, Day: d}
}

func TestFocalPointsKeepHistoryAndAnswerWhoHoldsATopic(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	ilo := x.asAgency("ilo")

	create := func(c as, name, topic string, start *exchangev1.CalendarDate) *exchangev1.FocalPoint {
		t.Helper()
		resp, err := c.dir.CreateFocalPoint(ctx, &exchangev1.CreateFocalPointRequest{Parent: "agencies/ilo", FocalPoint: &exchangev1.FocalPoint{
			DisplayName: name, Topic: topic, Role: "Programme officer", Email: "fp@ilo.example.org",
			Tenure: &exchangev1.DatePeriod{Start: start},
		}})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return resp.GetFocalPoint()
	}
	somchai := create(ilo, "Somchai", "referrals", date(2024, 1, 1))
	create(ilo, "Dara", "data", date(2024, 3, 1))
	create(sec, "Lan", "referrals", date(2026, 6, 1)) // the secretariat may name one too

	list := func(req *exchangev1.ListFocalPointsRequest) []string {
		t.Helper()
		resp, err := ilo.dir.ListFocalPoints(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, fp := range resp.GetFocalPoints() {
			out = append(out, fp.GetDisplayName())
		}
		return out
	}
	if got := list(&exchangev1.ListFocalPointsRequest{Parent: "agencies/ilo", Topic: "referrals"}); len(got) != 2 || got[0] != "Somchai" || got[1] != "Lan" {
		t.Fatalf("history of referrals: %v", got)
	}
	if got := list(&exchangev1.ListFocalPointsRequest{Parent: "agencies/ilo", Topic: "referrals", ActiveOn: date(2026, 11, 27)}); len(got) != 1 || got[0] != "Lan" {
		t.Fatalf("focal point for referrals today: %v", got)
	}
	if got := list(&exchangev1.ListFocalPointsRequest{Parent: "agencies/ilo", Topic: "referrals", ActiveOn: date(2025, 1, 1)}); len(got) != 1 || got[0] != "Somchai" {
		t.Fatalf("focal point for referrals in 2025: %v", got)
	}
	if got := list(&exchangev1.ListFocalPointsRequest{Parent: "agencies/-", ActiveOn: date(2026, 11, 27)}); len(got) != 2 {
		t.Fatalf("all current focal points: %v", got)
	}
	old, err := ilo.dir.GetFocalPoint(ctx, &exchangev1.GetFocalPointRequest{Name: somchai.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if end := old.GetFocalPoint().GetTenure().GetEnd(); end.GetYear() != 2026 || end.GetMonth() != 5 || end.GetDay() != 31 {
		t.Fatalf("previous tenure should end 2026-05-31, got %v", end)
	}

	// Another agency cannot touch ILO's focal points.
	iom := x.asAgency("iom")
	_, err = iom.dir.CreateFocalPoint(ctx, &exchangev1.CreateFocalPointRequest{Parent: "agencies/ilo", FocalPoint: &exchangev1.FocalPoint{
		DisplayName: "Intruder", Topic: "referrals", Tenure: &exchangev1.DatePeriod{Start: date(2026, 7, 1)},
	}})
	wantCode(t, err, codes.PermissionDenied)
	_, err = iom.dir.DeleteFocalPoint(ctx, &exchangev1.DeleteFocalPointRequest{Name: somchai.GetName()})
	wantCode(t, err, codes.PermissionDenied)

	// Ending a tenure through an update.
	fp := old.GetFocalPoint()
	fp.Tenure.End = date(2026, 5, 15)
	upd, err := ilo.dir.UpdateFocalPoint(ctx, &exchangev1.UpdateFocalPointRequest{FocalPoint: fp, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tenure"}}})
	if err != nil {
		t.Fatal(err)
	}
	if upd.GetFocalPoint().GetTenure().GetEnd().GetDay() != 15 {
		t.Fatal("tenure end not updated")
	}
	_, err = ilo.dir.UpdateFocalPoint(ctx, &exchangev1.UpdateFocalPointRequest{FocalPoint: upd.GetFocalPoint(), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"create_time"}}})
	st := wantCode(t, err, codes.InvalidArgument)
	if f := violatedFields(st); len(f) != 1 || f[0] != "update_mask.paths[0]" {
		t.Errorf("violations %v", f)
	}
	if _, err := ilo.dir.DeleteFocalPoint(ctx, &exchangev1.DeleteFocalPointRequest{Name: somchai.GetName()}); err != nil {
		t.Fatal(err)
	}
	_, err = ilo.dir.GetFocalPoint(ctx, &exchangev1.GetFocalPointRequest{Name: somchai.GetName()})
	wantCode(t, err, codes.NotFound)
}

func TestFocalPointDatesAreChecked(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	cases := map[string]struct {
		tenure *exchangev1.DatePeriod
		field  string
	}{
		"no such day":        {&exchangev1.DatePeriod{Start: date(2026, 2, 30)}, "focal_point.tenure.start"},
		"end before start":   {&exchangev1.DatePeriod{Start: date(2026, 2, 1), End: date(2026, 1, 1)}, "focal_point.tenure"},
		"month out of range": {&exchangev1.DatePeriod{Start: date(2026, 13, 1)}, "focal_point.tenure.start.month"},
		"no start":           {&exchangev1.DatePeriod{}, "focal_point.tenure.start"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := sec.dir.CreateFocalPoint(context.Background(), &exchangev1.CreateFocalPointRequest{Parent: "agencies/ilo", FocalPoint: &exchangev1.FocalPoint{
				DisplayName: "X", Topic: "data", Tenure: c.tenure,
			}})
			st := wantCode(t, err, codes.InvalidArgument)
			if f := violatedFields(st); len(f) == 0 || f[0] != c.field {
				t.Errorf("violations %v, want %s", f, c.field)
			}
		})
	}
}
