package server

import (
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// baseReport is a valid report that reaches every rule of Report.
func baseReport() *exchangev1.Report {
	return &exchangev1.Report{
		Name: "agencies/ilo/reports/" + badID, Title: "Q1 FY2026", FiscalYear: 2026, FiscalYearStartMonth: 7, Quarter: 1,
		Period: basePeriod(), Audience: baseAudience(),
		Figures: &exchangev1.ReportFigures{
			ReferralsTotal:      1,
			ReferralsByState:    []*exchangev1.ReportStateCount{{State: exchangev1.ReferralState_REFERRAL_STATE_REQUESTED, Count: 1}},
			ReferralsByNiche:    []*exchangev1.ReportNicheCount{{Niche: exchangev1.Niche_NICHE_PREVENTION, Count: 1}},
			ReferralsByLocation: []*exchangev1.ReportLocationCount{{Location: "KH-12", Count: 1}},
			Plans: []*exchangev1.ReportPlanLine{{Plan: "agencies/ilo/plans/" + badID, Title: "plan", PlannedPeriod: basePeriod(),
				PeriodBudgetLines: []*exchangev1.PlanBudgetLine{{FiscalYear: "2026", Period: basePeriod(), Amount: "10",
					Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_INDICATIVE}}}},
			Datasets: []*exchangev1.ReportDatasetTotals{{Dataset: "agencies/ilo/datasets/returns", PeriodFrom: "2026-07", PeriodTo: "2026-09",
				Sums: map[string]float64{"cases": 10}, RoundingBase: 5}},
		}, Summary: "summary", Progress: "progress", Challenges: "challenges", NextQuarter: "next", Etag: "etag",
	}
}

// The ReportService's base requests live here, beside the service, and
// join badInputBases when the package's tests start.
func init() {
	reportName := "agencies/ilo/reports/" + badID
	for m, base := range map[string]func() proto.Message{
		exchangev1.ReportService_GetReport_FullMethodName: func() proto.Message {
			return &exchangev1.GetReportRequest{Name: reportName, Version: 1}
		},
		exchangev1.ReportService_ListReports_FullMethodName: func() proto.Message {
			return &exchangev1.ListReportsRequest{Parent: "agencies/ilo", PageSize: 10}
		},
		exchangev1.ReportService_CreateReport_FullMethodName: func() proto.Message {
			return &exchangev1.CreateReportRequest{Parent: "agencies/ilo", Report: baseReport(), RequestId: "report-1"}
		},
		exchangev1.ReportService_UpdateReport_FullMethodName: func() proto.Message {
			return &exchangev1.UpdateReportRequest{Report: baseReport(), UpdateMask: badMask("summary")}
		},
		exchangev1.ReportService_SubmitReport_FullMethodName: func() proto.Message {
			return &exchangev1.SubmitReportRequest{Name: reportName, Etag: "etag"}
		},
		exchangev1.ReportService_CreateReportComment_FullMethodName: func() proto.Message {
			return &exchangev1.CreateReportCommentRequest{Parent: reportName, Comment: &exchangev1.ReportComment{Text: "thanks"}, RequestId: "comment-1"}
		},
		exchangev1.ReportService_ListReportComments_FullMethodName: func() proto.Message {
			return &exchangev1.ListReportCommentsRequest{Parent: reportName, PageSize: 10}
		},
	} {
		badInputBases[m] = base
	}
}
