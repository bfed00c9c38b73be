package server

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// reportService implements ReportService.
type reportService struct {
	exchangev1.UnimplementedReportServiceServer
	store *store.Store
}

// ReportPeriod returns the calendar dates, both included, of quarter
// (1-4) of the fiscal year that starts on day 1 of startMonth (1-12) of
// calendar year fiscalYear.
func ReportPeriod(fiscalYear, startMonth, quarter int32) *exchangev1.DatePeriod {
	start := time.Date(int(fiscalYear), time.Month(startMonth)+time.Month(3*(quarter-1)), 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 3, -1)
	return &exchangev1.DatePeriod{Start: reportDate(start), End: reportDate(end)}
}

func reportDate(t time.Time) *exchangev1.CalendarDate {
	return &exchangev1.CalendarDate{Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day())}
}

// ReportFiguresFor computes the figures of a report of the agency for the
// period from the store, through the same store calls ListReferrals and
// ListPlans serve the agency with: its referrals (sent or received)
// created in the period, by state, niche and location, and its plans
// whose planned period overlaps the period.
func ReportFiguresFor(ctx context.Context, st *store.Store, agencyID string, period *exchangev1.DatePeriod, now time.Time) (*exchangev1.ReportFigures, error) {
	from, to := periodBounds(period)
	f := &exchangev1.ReportFigures{ComputeTime: timestamppb.New(now)}
	byState := map[exchangev1.ReferralState]int64{}
	byNiche := map[exchangev1.Niche]int64{}
	byLocation := map[string]int64{}
	createdIn := func(r *exchangev1.Referral) bool {
		d := store.DateNumber(reportDate(r.GetCreateTime().AsTime()))
		return from <= d && d <= to
	}
	page := store.Page{Size: store.MaxPageSize}
	for {
		items, next, _, err := st.ListReferrals(ctx, store.ReferralFilter{AgencyID: agencyID, Keep: createdIn, Fingerprint: "report"}, page)
		if err != nil {
			return nil, err
		}
		for _, r := range items {
			f.ReferralsTotal++
			byState[r.GetState()]++
			byNiche[r.GetService().GetNiche()]++
			loc := cmp.Or(r.GetLocation().GetSubdivision(), r.GetLocation().GetCountry())
			byLocation[loc]++
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	for k, n := range byState {
		f.ReferralsByState = append(f.ReferralsByState, &exchangev1.ReportStateCount{State: k, Count: n})
	}
	slices.SortFunc(f.ReferralsByState, func(a, b *exchangev1.ReportStateCount) int { return cmp.Compare(a.GetState(), b.GetState()) })
	for k, n := range byNiche {
		f.ReferralsByNiche = append(f.ReferralsByNiche, &exchangev1.ReportNicheCount{Niche: k, Count: n})
	}
	slices.SortFunc(f.ReferralsByNiche, func(a, b *exchangev1.ReportNicheCount) int { return cmp.Compare(a.GetNiche(), b.GetNiche()) })
	for k, n := range byLocation {
		f.ReferralsByLocation = append(f.ReferralsByLocation, &exchangev1.ReportLocationCount{Location: k, Count: n})
	}
	slices.SortFunc(f.ReferralsByLocation, func(a, b *exchangev1.ReportLocationCount) int {
		return strings.Compare(a.GetLocation(), b.GetLocation())
	})

	overlaps := func(p *exchangev1.DatePeriod) bool {
		if p == nil {
			return false
		}
		start, end := periodBounds(p)
		return start <= to && from <= end
	}
	page = store.Page{Size: store.MaxPageSize}
	for {
		items, next, _, err := st.ListPlans(ctx, store.PlanFilter{AgencyID: agencyID, Keep: func(p *exchangev1.Plan) bool { return overlaps(p.GetPlannedPeriod()) }, Fingerprint: "report"}, page)
		if err != nil {
			return nil, err
		}
		for _, p := range items {
			line := &exchangev1.ReportPlanLine{
				Plan: p.GetName(), Title: p.GetTitle(), Stage: p.GetStage(), PlannedPeriod: p.GetPlannedPeriod(),
				CurrencyCode: p.GetBudget().GetCurrencyCode(), TotalAmount: p.GetBudget().GetTotalAmount(),
			}
			for _, l := range p.GetBudget().GetLines() {
				if overlaps(l.GetPeriod()) {
					line.PeriodBudgetLines = append(line.PeriodBudgetLines, l)
				}
			}
			f.Plans = append(f.Plans, line)
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	var err error
	f.Datasets, err = reportDatasetTotals(ctx, st, agencyID, period)
	return f, err
}

// reportDatasetTotals returns the public totals over the period of the
// agency's datasets that publish aggregates and whose periods fall within
// it, computed as AggregateDatasetRows answers a member outside their
// readers: a report goes to agencies that may not read the rows.
func reportDatasetTotals(ctx context.Context, st *store.Store, agencyID string, period *exchangev1.DatePeriod) ([]*exchangev1.ReportDatasetTotals, error) {
	owner := store.AgencyPrefix + agencyID
	var out []*exchangev1.ReportDatasetTotals
	page := store.Page{Size: store.MaxPageSize}
	for {
		items, next, err := st.ListDatasets(ctx, func(d *exchangev1.Dataset) bool { return d.GetOwner() == owner && d.GetPublicAggregates() }, "report "+owner, page)
		if err != nil {
			return nil, err
		}
		for _, d := range items {
			from, to, ok := datasetPeriodsWithin(d.GetPeriodType(), period)
			if !ok {
				continue
			}
			rounding, err := newRowRounding(st.PageSecret(), d.GetName(), roundingBaseOf(d))
			if err != nil {
				return nil, err
			}
			agg, err := aggregateRows(ctx, st, d, &exchangev1.AggregateDatasetRowsRequest{Dataset: d.GetName(), PeriodFrom: from, PeriodTo: to}, rounding)
			if err != nil {
				return nil, err
			}
			t := &exchangev1.ReportDatasetTotals{Dataset: d.GetName(), Title: d.GetTitle(), PeriodFrom: from, PeriodTo: to, RoundingBase: agg.GetRoundingBase()}
			if len(agg.GetCells()) == 1 {
				t.Sums = agg.GetCells()[0].GetSums()
			}
			out = append(out, t)
		}
		if next == "" {
			return out, nil
		}
		page.Token = next
	}
}

// datasetPeriodsWithin returns the first and last period labels of a
// dataset of the period type that the report's period covers exactly:
// months always, calendar quarters when the period is one; ok is false
// for years and for quarters the period does not match.
func datasetPeriodsWithin(t exchangev1.PeriodType, p *exchangev1.DatePeriod) (from, to string, ok bool) {
	s, e := p.GetStart(), p.GetEnd()
	switch t {
	case exchangev1.PeriodType_PERIOD_TYPE_MONTH:
		return fmt.Sprintf("%04d-%02d", s.GetYear(), s.GetMonth()), fmt.Sprintf("%04d-%02d", e.GetYear(), e.GetMonth()), true
	case exchangev1.PeriodType_PERIOD_TYPE_QUARTER:
		if (s.GetMonth()-1)%3 != 0 {
			return "", "", false
		}
		label := fmt.Sprintf("%04d-Q%d", s.GetYear(), (s.GetMonth()-1)/3+1)
		return label, label, true
	}
	return "", "", false
}

// visibleReport returns the report as the reader may read it: for the
// owner the draft (version 0) or a submitted version; for others a
// submitted version whose audience includes them. Anything else answers
// NOT_FOUND exactly as a report that does not exist.
func (s *reportService) visibleReport(ctx context.Context, r Reader, name string, version int32) (*exchangev1.Report, error) {
	cur, err := s.store.GetReport(ctx, name)
	if err != nil {
		if store.KindOf(err) == store.KindNotFound {
			return nil, notFound(name)
		}
		return nil, err
	}
	if cur.GetOwner() == r.Caller.AgencyName() {
		if version == 0 {
			return cur, nil
		}
		return s.store.GetReportVersion(ctx, name, version)
	}
	if cur.GetVersion() == 0 || version > cur.GetVersion() {
		return nil, notFound(name)
	}
	sub, err := s.store.GetReportVersion(ctx, name, cmp.Or(version, cur.GetVersion()))
	if err != nil {
		if store.KindOf(err) == store.KindNotFound {
			return nil, notFound(name)
		}
		return nil, err
	}
	if !r.Sees(sub.GetOwner(), sub.GetAudience()) {
		return nil, notFound(name)
	}
	return sub, nil
}

// ownReport loads a report the caller is about to change: NOT_FOUND when
// it may not read it, PERMISSION_DENIED when it reads it but does not own
// it.
func (s *reportService) ownReport(ctx context.Context, name string) (*exchangev1.Report, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	rep, err := s.visibleReport(ctx, r, name, 0)
	if err != nil {
		return nil, err
	}
	if rep.GetOwner() != r.Caller.AgencyName() {
		return nil, permissionDenied(fmt.Sprintf("only %s, the owner, may change %s", rep.GetOwner(), name))
	}
	return rep, nil
}

// GetReport returns a report to its owner or its audience.
func (s *reportService) GetReport(ctx context.Context, req *exchangev1.GetReportRequest) (*exchangev1.GetReportResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	rep, err := s.visibleReport(ctx, r, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetReportResponse{Report: rep}, nil
}

// ListReports lists the reports the caller may read.
func (s *reportService) ListReports(ctx context.Context, req *exchangev1.ListReportsRequest) (*exchangev1.ListReportsResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	agencyID := strings.TrimPrefix(req.GetParent(), store.AgencyPrefix)
	if agencyID == "-" {
		agencyID = ""
	}
	items, next, err := s.store.ListReports(ctx, store.ReportFilter{
		AgencyID: agencyID, Reader: r.Caller.AgencyName(),
		Keep: func(rep *exchangev1.Report) bool { return r.Sees(rep.GetOwner(), rep.GetAudience()) },
	}, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListReportsResponse{Reports: items, NextPageToken: next}, nil
}

// CreateReport drafts a report of the caller with its figures prefilled.
func (s *reportService) CreateReport(ctx context.Context, req *exchangev1.CreateReportRequest) (*exchangev1.CreateReportResponse, error) {
	agencyID, err := ownParent(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	in := req.GetReport()
	rep := &exchangev1.Report{
		Title: in.GetTitle(), FiscalYear: in.GetFiscalYear(), FiscalYearStartMonth: in.GetFiscalYearStartMonth(), Quarter: in.GetQuarter(),
		Audience: in.GetAudience(), Summary: in.GetSummary(), Progress: in.GetProgress(), Challenges: in.GetChallenges(), NextQuarter: in.GetNextQuarter(),
	}
	rep.Period = ReportPeriod(rep.GetFiscalYear(), rep.GetFiscalYearStartMonth(), rep.GetQuarter())
	if rep.Figures, err = ReportFiguresFor(ctx, s.store, agencyID, rep.GetPeriod(), time.Now()); err != nil {
		return nil, err
	}
	created, err := s.store.CreateReport(ctx, opFor(ctx, req.GetRequestId()), agencyID, rep)
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreateReportResponse{Report: created}, nil
}

// UpdateReport changes a report's title, audience or narrative; owner
// only.
func (s *reportService) UpdateReport(ctx context.Context, req *exchangev1.UpdateReportRequest) (*exchangev1.UpdateReportResponse, error) {
	in := req.GetReport()
	if in.GetName() == "" {
		return nil, invalidField("report.name", "required: the name of the report to update")
	}
	if _, err := s.ownReport(ctx, in.GetName()); err != nil {
		return nil, err
	}
	src := proto.Clone(in).(*exchangev1.Report)
	updated, err := s.store.UpdateReport(ctx, opFor(ctx, ""), in.GetName(), in.GetEtag(), func(stored *exchangev1.Report) error {
		return applyMask(stored, src, req.GetUpdateMask(), store.ReportMutableFields, "report")
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.UpdateReportResponse{Report: updated}, nil
}

// SubmitReport makes the draft the next immutable version; owner only.
func (s *reportService) SubmitReport(ctx context.Context, req *exchangev1.SubmitReportRequest) (*exchangev1.SubmitReportResponse, error) {
	if _, err := s.ownReport(ctx, req.GetName()); err != nil {
		return nil, err
	}
	sub, err := s.store.SubmitReport(ctx, opFor(ctx, ""), req.GetName(), req.GetEtag())
	if err != nil {
		return nil, err
	}
	return &exchangev1.SubmitReportResponse{Report: sub}, nil
}

// CreateReportComment adds a comment to the last submitted version of a
// report the caller may read.
func (s *reportService) CreateReportComment(ctx context.Context, req *exchangev1.CreateReportCommentRequest) (*exchangev1.CreateReportCommentResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	rep, err := s.visibleReport(ctx, r, req.GetParent(), 0)
	if err != nil {
		return nil, err
	}
	if rep.GetVersion() == 0 {
		return nil, &store.Error{Kind: store.KindFailedPrecondition, Resource: req.GetParent(),
			Message: req.GetParent() + " has no submitted version to comment on yet"}
	}
	c, err := s.store.CreateReportComment(ctx, opFor(ctx, req.GetRequestId()), req.GetParent(), r.Caller.AgencyName(), rep.GetVersion(), req.GetComment().GetText())
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreateReportCommentResponse{Comment: c}, nil
}

// ListReportComments lists a report's comments to those who may read it.
func (s *reportService) ListReportComments(ctx context.Context, req *exchangev1.ListReportCommentsRequest) (*exchangev1.ListReportCommentsResponse, error) {
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	if _, err := s.visibleReport(ctx, r, req.GetParent(), 0); err != nil {
		return nil, err
	}
	items, next, err := s.store.ListReportComments(ctx, req.GetParent(), store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListReportCommentsResponse{Comments: items, NextPageToken: next}, nil
}
