package store

import (
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestReportSubmissionsAreImmutableVersionsAndDraftsStayTheOwners(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	op := agencyOp("ngo-kh", "CreateReport")
	op.RequestID = "r-1"
	draft, err := s.CreateReport(ctx, op, "ngo-kh", &exchangev1.Report{Title: "Q1", FiscalYear: 2026, FiscalYearStartMonth: 7, Quarter: 1,
		Figures: &exchangev1.ReportFigures{ReferralsTotal: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.CreateReport(ctx, op, "ngo-kh", &exchangev1.Report{Title: "other"}); err != nil || again.GetName() != draft.GetName() {
		t.Fatalf("retry with the same request id: %v, %v; want the first report", again.GetName(), err)
	}
	if draft.GetOwner() != "agencies/ngo-kh" || draft.GetState() != exchangev1.ReportState_REPORT_STATE_DRAFT || draft.GetVersion() != 0 {
		t.Fatalf("created %v", draft)
	}
	// Before its first submission only the owner lists it.
	for reader, want := range map[string]int{"agencies/ngo-kh": 1, "agencies/ilo": 0} {
		got, _, err := s.ListReports(ctx, ReportFilter{Reader: reader}, Page{})
		if err != nil || len(got) != want {
			t.Fatalf("%s lists %d reports (%v), want %d", reader, len(got), err, want)
		}
	}
	upd := agencyOp("ngo-kh", "UpdateReport")
	if _, err := s.UpdateReport(ctx, upd, draft.GetName(), draft.GetEtag(), func(r *exchangev1.Report) error {
		r.Summary = "first"
		r.Figures, r.Quarter, r.Version = nil, 4, 9 // fixed and output-only fields: ignored
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sub := agencyOp("ngo-kh", "SubmitReport")
	v1, err := s.SubmitReport(ctx, sub, draft.GetName(), "")
	if err != nil {
		t.Fatal(err)
	}
	if v1.GetVersion() != 1 || v1.GetQuarter() != 1 || v1.GetFigures().GetReferralsTotal() != 3 || v1.GetSubmitTime() == nil {
		t.Fatalf("submitted %v", v1)
	}
	_, err = s.SubmitReport(ctx, sub, draft.GetName(), "")
	wantKind(t, err, KindFailedPrecondition)
	if _, err := s.UpdateReport(ctx, upd, draft.GetName(), v1.GetEtag(), func(r *exchangev1.Report) error { r.Summary = "second"; return nil }); err != nil {
		t.Fatal(err)
	}
	// Others list the last submitted version, not the newer draft.
	got, _, err := s.ListReports(ctx, ReportFilter{Reader: "agencies/ilo"}, Page{})
	if err != nil || len(got) != 1 || got[0].GetSummary() != "first" {
		t.Fatalf("ilo lists %v, %v; want version 1", got, err)
	}
	if _, err := s.SubmitReport(ctx, sub, draft.GetName(), ""); err != nil {
		t.Fatal(err)
	}
	old, err := s.GetReportVersion(ctx, draft.GetName(), 1)
	if err != nil || old.GetSummary() != "first" {
		t.Fatalf("version 1 is %v, %v", old, err)
	}
	_, err = s.GetReportVersion(ctx, draft.GetName(), 3)
	wantKind(t, err, KindNotFound)

	c, err := s.CreateReportComment(ctx, agencyOp("ilo", "CreateReportComment"), draft.GetName(), "agencies/ilo", 2, "thanks")
	if err != nil || c.GetReportVersion() != 2 || c.GetAuthor() != "agencies/ilo" {
		t.Fatalf("comment %v, %v", c, err)
	}
	cs, _, err := s.ListReportComments(ctx, draft.GetName(), Page{})
	if err != nil || len(cs) != 1 || cs[0].GetName() != c.GetName() {
		t.Fatalf("comments %v, %v", cs, err)
	}
}
