package client

import (
	"context"
	"iter"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// ReportClient drafts, submits and reads quarterly progress reports.
//
// A report is named under its owner ("agencies/ngo-kh/reports/01jd…") and
// covers one quarter of the owner's fiscal year. Create prefills its
// figures (referrals by state, niche and province; plans and their budget
// in the quarter) from what the owner may see; the owner writes the
// narrative with Update and Submit makes an immutable numbered version.
// The audience (named agencies, members and observers of named working
// groups) reads only submitted versions and comments on them; anyone else
// gets NOT_FOUND, exactly as for a report that does not exist.
type ReportClient struct {
	rpc exchangev1.ReportServiceClient
}

// Create drafts the report r under parent, the caller's own agency, and
// returns it with its figures. r needs a title, fiscal_year,
// fiscal_year_start_month and quarter; output-only fields are ignored. The
// call carries a request id (random unless WithRequestID is given) and is
// retried on UNAVAILABLE, so it never creates twice. Agencies only.
func (c *ReportClient) Create(ctx context.Context, parent string, r *exchangev1.Report, opts ...CreateOption) (*exchangev1.Report, error) {
	s, err := newCreateSettings("CreateReport", false, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.CreateReport(ctx, &exchangev1.CreateReportRequest{Parent: parent, Report: r, RequestId: s.requestID})
	if err != nil {
		return nil, err
	}
	return resp.GetReport(), nil
}

// Get returns the report: with version 0, the draft to its owner and the
// last submitted version to its audience; else that submitted version.
func (c *ReportClient) Get(ctx context.Context, name string, version int32) (*exchangev1.Report, error) {
	resp, err := c.rpc.GetReport(ctx, &exchangev1.GetReportRequest{Name: name, Version: version})
	if err != nil {
		return nil, err
	}
	return resp.GetReport(), nil
}

// Reports iterates over the reports the caller may read under parent
// ("agencies/ilo", or "agencies/-" or "" for every agency): its own as
// they are now, others' as their last submitted version. On error the
// iterator yields the error once and stops.
func (c *ReportClient) Reports(ctx context.Context, parent string) iter.Seq2[*exchangev1.Report, error] {
	if parent == "" {
		parent = AllPlanOwners
	}
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Report, string, error) {
		resp, err := c.rpc.ListReports(ctx, &exchangev1.ListReportsRequest{Parent: parent, PageToken: token, PageSize: 1000})
		return resp.GetReports(), resp.GetNextPageToken(), err
	})
}

// Update changes the draft's fields named by paths (title, audience,
// summary, progress, challenges, next_quarter; none means all of them)
// to r's values. r carries the name and the etag as read; a stale etag
// fails with ABORTED. Owner only.
func (c *ReportClient) Update(ctx context.Context, r *exchangev1.Report, paths ...string) (*exchangev1.Report, error) {
	req := &exchangev1.UpdateReportRequest{Report: r}
	if len(paths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
	}
	resp, err := c.rpc.UpdateReport(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.GetReport(), nil
}

// Submit makes the draft the next submitted version and returns it; an
// etag, if given, must be the draft's. A report unchanged since its last
// submission fails with FAILED_PRECONDITION. Owner only.
func (c *ReportClient) Submit(ctx context.Context, name, etag string) (*exchangev1.Report, error) {
	resp, err := c.rpc.SubmitReport(ctx, &exchangev1.SubmitReportRequest{Name: name, Etag: etag})
	if err != nil {
		return nil, err
	}
	return resp.GetReport(), nil
}

// Comment adds a comment to the last submitted version of the report.
func (c *ReportClient) Comment(ctx context.Context, report, text string, opts ...CreateOption) (*exchangev1.ReportComment, error) {
	s, err := newCreateSettings("CreateReportComment", false, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.CreateReportComment(ctx, &exchangev1.CreateReportCommentRequest{
		Parent: report, Comment: &exchangev1.ReportComment{Text: text}, RequestId: s.requestID,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetComment(), nil
}

// Comments iterates over the report's comments, oldest first.
func (c *ReportClient) Comments(ctx context.Context, report string) iter.Seq2[*exchangev1.ReportComment, error] {
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.ReportComment, string, error) {
		resp, err := c.rpc.ListReportComments(ctx, &exchangev1.ListReportCommentsRequest{Parent: report, PageToken: token, PageSize: 1000})
		return resp.GetComments(), resp.GetNextPageToken(), err
	})
}
