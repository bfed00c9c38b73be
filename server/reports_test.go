package server

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// reports is a ReportService connection as one identity.
func (c as) reports() exchangev1.ReportServiceClient {
	return exchangev1.NewReportServiceClient(c.conn)
}

// fiscalQuarterOf returns the fiscal year and quarter containing t for a
// fiscal year starting in startMonth.
func fiscalQuarterOf(t time.Time, startMonth int) (int32, int32) {
	months := (t.Year()*12 + int(t.Month()) - 1) - startMonth + 1
	return int32(months / 12), int32(months%12/3 + 1)
}

// reportParties starts an exchange with ilo, iom, unicef and ngo-kh and a
// working group "un-wg" of ngo-kh and ilo (members) and iom (observer);
// unicef is outside it.
func reportParties(t *testing.T) (x *exchange, ilo, iom, unicef, ngo as) {
	t.Helper()
	x = startExchange(t)
	sec := x.asSecretariat()
	for _, id := range []string{"ilo", "iom", "unicef", "ngo-kh"} {
		x.createAgency(sec, id, exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, exchangev1.Niche_NICHE_PREVENTION)
	}
	createWorkingGroup(t, sec, "un-wg", map[string]exchangev1.MembershipRole{
		"ngo-kh": exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER,
		"ilo":    exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER,
		"iom":    exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER,
	})
	return x, x.asAgency("ilo"), x.asAgency("iom"), x.asAgency("unicef"), x.asAgency("ngo-kh")
}

// apiFigures computes, from ListReferrals and ListPlans answers alone, the
// figures a report of c for the period should hold.
func apiFigures(t *testing.T, c as, period *exchangev1.DatePeriod) *exchangev1.ReportFigures {
	t.Helper()
	ctx := context.Background()
	from, to := periodBounds(period)
	f := &exchangev1.ReportFigures{}
	byState, byNiche, byLoc := map[exchangev1.ReferralState]int64{}, map[exchangev1.Niche]int64{}, map[string]int64{}
	for token := ""; ; {
		resp, err := c.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{PageSize: 7, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetReferrals() {
			ct := r.GetCreateTime().AsTime()
			d := uint32(ct.Year()*10000 + int(ct.Month())*100 + ct.Day())
			if d < from || d > to {
				continue
			}
			f.ReferralsTotal++
			byState[r.GetState()]++
			byNiche[r.GetService().GetNiche()]++
			byLoc[cmp.Or(r.GetLocation().GetSubdivision(), r.GetLocation().GetCountry())]++
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	for k, n := range byState {
		f.ReferralsByState = append(f.ReferralsByState, &exchangev1.ReportStateCount{State: k, Count: n})
	}
	slices.SortFunc(f.ReferralsByState, func(a, b *exchangev1.ReportStateCount) int { return cmp.Compare(a.GetState(), b.GetState()) })
	for k, n := range byNiche {
		f.ReferralsByNiche = append(f.ReferralsByNiche, &exchangev1.ReportNicheCount{Niche: k, Count: n})
	}
	slices.SortFunc(f.ReferralsByNiche, func(a, b *exchangev1.ReportNicheCount) int { return cmp.Compare(a.GetNiche(), b.GetNiche()) })
	for k, n := range byLoc {
		f.ReferralsByLocation = append(f.ReferralsByLocation, &exchangev1.ReportLocationCount{Location: k, Count: n})
	}
	slices.SortFunc(f.ReferralsByLocation, func(a, b *exchangev1.ReportLocationCount) int {
		return strings.Compare(a.GetLocation(), b.GetLocation())
	})
	resp, err := c.plans().ListPlans(ctx, &exchangev1.ListPlansRequest{Parent: c.agencyName(), Period: period, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.GetPlans() {
		line := &exchangev1.ReportPlanLine{Plan: p.GetName(), Title: p.GetTitle(), Stage: p.GetStage(), PlannedPeriod: p.GetPlannedPeriod(),
			CurrencyCode: p.GetBudget().GetCurrencyCode(), TotalAmount: p.GetBudget().GetTotalAmount()}
		for _, l := range p.GetBudget().GetLines() {
			if s, e := periodBounds(l.GetPeriod()); l.GetPeriod() != nil && s <= to && from <= e {
				line.PeriodBudgetLines = append(line.PeriodBudgetLines, l)
			}
		}
		f.Plans = append(f.Plans, line)
	}
	return f
}

// sameNotFound fails unless err is NOT_FOUND and identical, but for the
// name, to the answer for the twin name that names nothing.
func sameNotFound(t *testing.T, who string, err, twinErr error, name, twin string) {
	t.Helper()
	st, tw := status.Convert(err), status.Convert(twinErr)
	if st.Code() != codes.NotFound {
		t.Fatalf("%s: got %v %q, want NOT_FOUND", who, st.Code(), st.Message())
	}
	a := strings.ReplaceAll(prototext.Format(st.Proto()), name, twin)
	if b := prototext.Format(tw.Proto()); a != b {
		t.Fatalf("%s: NOT_FOUND for a hidden report differs from a missing one:\n%s\nvs\n%s", who, a, b)
	}
}

func TestReportPrefilledSubmittedReadByItsAudienceOnly(t *testing.T) {
	_, ilo, iom, unicef, ngo := reportParties(t)
	ctx := context.Background()

	// ngo-kh's quarter: referrals it sent and received, in two states,
	// and a plan with a budget line in the quarter and one that is not.
	sent := refer(t, ngo, "ilo")
	refer(t, ngo, "ilo")
	other := newReferral("iom")
	other.Location = &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-2"}
	if _, err := ngo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: other, RequestId: nextRequestID()}); err != nil {
		t.Fatal(err)
	}
	refer(t, ilo, "ngo-kh")
	refer(t, ilo, "iom") // not ngo-kh's: must not count
	if _, err := ilo.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: sent.GetName()}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	fy, q := fiscalQuarterOf(now, 7)
	period := ReportPeriod(fy, 7, q)
	inQuarter := newPlan("NGO-1")
	inQuarter.PlannedPeriod = period
	inQuarter.Budget = &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "120000", Lines: []*exchangev1.PlanBudgetLine{
		{Period: period, Amount: "30000", Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_COMMITTED},
		{FiscalYear: "1999", Period: &exchangev1.DatePeriod{Start: date(1999, 1, 1), End: date(1999, 12, 31)}, Amount: "5"},
	}}
	createPlan(t, ngo, inQuarter)
	old := newPlan("NGO-OLD")
	old.PlannedPeriod = &exchangev1.DatePeriod{Start: date(2001, 1, 1), End: date(2001, 12, 31)}
	createPlan(t, ngo, old)

	// A monthly dataset of ngo-kh that publishes aggregates, with rows in
	// the quarter's three months (small values, which the public view
	// rounds) and one before it.
	ds := returnsDataset()
	ds.PublicAggregates, ds.SuppressionThreshold = true, 5
	dsResp, err := ngo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: ngo.agencyName(), DatasetId: "returns", Dataset: ds})
	if err != nil {
		t.Fatal(err)
	}
	dsName := dsResp.GetDataset().GetName()
	// One that publishes no aggregates stays out of the report.
	private := returnsDataset()
	if _, err := ngo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: ngo.agencyName(), DatasetId: "private", Dataset: private}); err != nil {
		t.Fatal(err)
	}
	month := func(i int32) string {
		m := period.GetStart().GetMonth() + i - 1
		return fmt.Sprintf("%04d-%02d", period.GetStart().GetYear()+m/12, m%12+1)
	}
	write(t, ngo, dsName, row(month(0), "KH-12", "female", 3), row(month(1), "KH-12", "male", 40), row(month(2), "KH-2", "female", 2),
		row(month(-1), "KH-2", "female", 500))
	created, err := ngo.reports().CreateReport(ctx, &exchangev1.CreateReportRequest{Parent: ngo.agencyName(), RequestId: nextRequestID(), Report: &exchangev1.Report{
		Title: "Quarterly progress", FiscalYear: fy, FiscalYearStartMonth: 7, Quarter: q,
		Audience: &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rep := created.GetReport()
	if !proto.Equal(rep.GetPeriod(), period) {
		t.Fatalf("period %v, want %v", rep.GetPeriod(), period)
	}
	want := apiFigures(t, ngo, period)
	// The dataset's figures are what an agency outside its readers gets
	// from AggregateDatasetRows for the same months: the public view.
	pub, err := unicef.datasets().AggregateDatasetRows(ctx, &exchangev1.AggregateDatasetRowsRequest{Dataset: dsName, PeriodFrom: month(0), PeriodTo: month(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pub.GetCells()) != 1 || pub.GetRoundingBase() != 5 {
		t.Fatalf("public aggregate: %v", pub)
	}
	want.Datasets = []*exchangev1.ReportDatasetTotals{{Dataset: dsName, Title: ds.GetTitle(), PeriodFrom: month(0), PeriodTo: month(2),
		Sums: pub.GetCells()[0].GetSums(), RoundingBase: 5}}
	if s := pub.GetCells()[0].GetSums()["cases"]; s < 40 || s > 50 {
		t.Fatalf("public total of cases %v: want 40 and the two small rows rounded (40 to 50), not the month before", s)
	}
	got := proto.Clone(rep.GetFigures()).(*exchangev1.ReportFigures)
	got.ComputeTime = nil
	if !proto.Equal(got, want) {
		t.Fatalf("prefilled figures differ from the API's for the same period:\n got %v\nwant %v", got, want)
	}
	if got.GetReferralsTotal() != 4 || len(got.GetReferralsByState()) != 2 || len(got.GetPlans()) != 1 || len(got.GetPlans()[0].GetPeriodBudgetLines()) != 1 {
		t.Fatalf("figures do not hold the quarter's 4 referrals in 2 states and its 1 plan with 1 budget line: %v", got)
	}

	// The draft is the owner's alone.
	name, twin := rep.GetName(), twinOf(rep.GetName())
	for _, c := range []as{ilo, iom, unicef} {
		_, err := c.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: name})
		_, twinErr := c.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: twin})
		sameNotFound(t, c.agencyID+" reading the draft", err, twinErr, name, twin)
	}

	rep.Summary, rep.Progress, rep.Challenges, rep.NextQuarter = "Shelter capacity doubled.", "Two referral pathways agreed.", "Border closures.", "Train focal points."
	refer(t, ngo, "ilo") // after the draft: its figures stay as computed
	upd, err := ngo.reports().UpdateReport(ctx, &exchangev1.UpdateReportRequest{Report: rep})
	if err != nil {
		t.Fatal(err)
	}
	if n := upd.GetReport().GetFigures().GetReferralsTotal(); n != 4 {
		t.Fatalf("the figures changed with an edit of the narrative: %d referrals, want the 4 computed at creation", n)
	}
	sub, err := ngo.reports().SubmitReport(ctx, &exchangev1.SubmitReportRequest{Name: name, Etag: upd.GetReport().GetEtag()})
	if err != nil {
		t.Fatal(err)
	}
	if sub.GetReport().GetVersion() != 1 || sub.GetReport().GetState() != exchangev1.ReportState_REPORT_STATE_SUBMITTED {
		t.Fatalf("submitted: version %d state %v, want 1 SUBMITTED", sub.GetReport().GetVersion(), sub.GetReport().GetState())
	}
	if _, err := ngo.reports().SubmitReport(ctx, &exchangev1.SubmitReportRequest{Name: name}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("submitting an unchanged report again: %v, want FAILED_PRECONDITION", err)
	}

	// Member and observer read it and comment; the outsider gets exactly
	// the answer for a report that does not exist.
	for _, c := range []as{ilo, iom} {
		got, err := c.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: name})
		if err != nil {
			t.Fatalf("%s reading the submitted report: %v", c.agencyID, err)
		}
		if got.GetReport().GetSummary() != "Shelter capacity doubled." || got.GetReport().GetVersion() != 1 {
			t.Fatalf("%s read %v", c.agencyID, got.GetReport())
		}
		if _, err := c.reports().CreateReportComment(ctx, &exchangev1.CreateReportCommentRequest{Parent: name, Comment: &exchangev1.ReportComment{Text: "Thanks from " + c.agencyID}}); err != nil {
			t.Fatalf("%s commenting: %v", c.agencyID, err)
		}
		if _, err := c.reports().UpdateReport(ctx, &exchangev1.UpdateReportRequest{Report: got.GetReport()}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s changing another agency's report: %v, want PERMISSION_DENIED", c.agencyID, err)
		}
	}
	_, err = unicef.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: name})
	_, twinErr := unicef.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: twin})
	sameNotFound(t, "outsider reading", err, twinErr, name, twin)
	_, err = unicef.reports().CreateReportComment(ctx, &exchangev1.CreateReportCommentRequest{Parent: name, Comment: &exchangev1.ReportComment{Text: "x"}})
	_, twinErr = unicef.reports().CreateReportComment(ctx, &exchangev1.CreateReportCommentRequest{Parent: twin, Comment: &exchangev1.ReportComment{Text: "x"}})
	sameNotFound(t, "outsider commenting", err, twinErr, name, twin)
	_, err = unicef.reports().ListReportComments(ctx, &exchangev1.ListReportCommentsRequest{Parent: name})
	_, twinErr = unicef.reports().ListReportComments(ctx, &exchangev1.ListReportCommentsRequest{Parent: twin})
	sameNotFound(t, "outsider listing comments", err, twinErr, name, twin)
	if l, err := unicef.reports().ListReports(ctx, &exchangev1.ListReportsRequest{Parent: "agencies/-"}); err != nil || len(l.GetReports()) != 0 {
		t.Fatalf("outsider lists %v, %v; want nothing", l.GetReports(), err)
	}
	if l, err := iom.reports().ListReports(ctx, &exchangev1.ListReportsRequest{Parent: "agencies/-"}); err != nil || len(l.GetReports()) != 1 {
		t.Fatalf("observer lists %v, %v; want the report", l.GetReports(), err)
	}
	comments, err := ngo.reports().ListReportComments(ctx, &exchangev1.ListReportCommentsRequest{Parent: name})
	if err != nil || len(comments.GetComments()) != 2 || comments.GetComments()[1].GetAuthor() != "agencies/iom" {
		t.Fatalf("owner's comments: %v, %v", comments.GetComments(), err)
	}

	// A later edit is a new draft: the audience still reads version 1,
	// unchanged, until the owner submits version 2.
	draft := sub.GetReport()
	draft.Summary = "Corrected summary."
	if _, err := ngo.reports().UpdateReport(ctx, &exchangev1.UpdateReportRequest{Report: draft, UpdateMask: badMask("summary")}); err != nil {
		t.Fatal(err)
	}
	v1, err := ilo.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: name})
	if err != nil || v1.GetReport().GetSummary() != "Shelter capacity doubled." {
		t.Fatalf("member after an unsubmitted edit reads %v, %v; want version 1 unchanged", v1.GetReport(), err)
	}
	if _, err := ngo.reports().SubmitReport(ctx, &exchangev1.SubmitReportRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	v2, err := iom.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: name})
	if err != nil || v2.GetReport().GetVersion() != 2 || v2.GetReport().GetSummary() != "Corrected summary." {
		t.Fatalf("observer after version 2 reads %v, %v", v2.GetReport(), err)
	}
	again, err := iom.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: name, Version: 1})
	if err != nil || again.GetReport().GetSummary() != "Shelter capacity doubled." {
		t.Fatalf("version 1 changed: %v, %v", again.GetReport(), err)
	}
}

func TestReportPeriodFollowsTheFiscalYear(t *testing.T) {
	for _, c := range []struct {
		fy, start, q int32
		want         string
	}{
		{2026, 1, 1, "20260101-20260331"},
		{2026, 7, 1, "20260701-20260930"},
		{2026, 7, 3, "20270101-20270331"},
		{2026, 10, 4, "20270701-20270930"},
		{2027, 4, 2, "20270701-20270930"},
	} {
		p := ReportPeriod(c.fy, c.start, c.q)
		s, e := periodBounds(p)
		if got := fmt.Sprintf("%d-%d", s, e); got != c.want {
			t.Errorf("FY%d from month %d, Q%d: %s, want %s", c.fy, c.start, c.q, got, c.want)
		}
	}
}
