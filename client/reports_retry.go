package client

import exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"

// The ReportService's retry decisions join retryPolicies here, beside its
// client: reads are retried; creates only with their request id; updates
// and submissions are made once (read the report again after
// UNAVAILABLE to see whether they took).
func init() {
	for m, p := range map[string]RetryPolicy{
		exchangev1.ReportService_GetReport_FullMethodName:           RetryAlways,
		exchangev1.ReportService_ListReports_FullMethodName:         RetryAlways,
		exchangev1.ReportService_ListReportComments_FullMethodName:  RetryAlways,
		exchangev1.ReportService_CreateReport_FullMethodName:        RetryWithRequestID,
		exchangev1.ReportService_CreateReportComment_FullMethodName: RetryWithRequestID,
		exchangev1.ReportService_UpdateReport_FullMethodName:        NoRetry,
		exchangev1.ReportService_SubmitReport_FullMethodName:        NoRetry,
	} {
		retryPolicies[m] = p
	}
}
