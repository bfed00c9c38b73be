package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// reportCollection is the collection id in report names,
// "agencies/{agency}/reports/{report}".
const reportCollection = "/reports/"

// commentCollection is the collection id in report comment names,
// "agencies/{agency}/reports/{report}/comments/{comment}".
const commentCollection = "/comments/"

// ReportMutableFields are the Report fields its owner may change on a
// draft; the period fields are fixed at creation and the rest is output
// only.
var ReportMutableFields = []string{"title", "audience", "summary", "progress", "challenges", "next_quarter"}

var reports = table[*exchangev1.Report]{
	bucket: bucketReports,
	newT:   func() *exchangev1.Report { return new(exchangev1.Report) },
}

var reportComments = table[*exchangev1.ReportComment]{
	bucket: bucketReportComments,
	newT:   func() *exchangev1.ReportComment { return new(exchangev1.ReportComment) },
}

// ReportName returns "agencies/{agencyID}/reports/{id}".
func ReportName(agencyID, id string) string {
	return AgencyPrefix + agencyID + reportCollection + id
}

// SplitReportName returns the agency id and report id of
// "agencies/{agency}/reports/{report}"; ok is false for anything else.
func SplitReportName(name string) (agencyID, id string, ok bool) {
	rest, found := strings.CutPrefix(name, AgencyPrefix)
	if !found {
		return "", "", false
	}
	agencyID, id, ok = strings.Cut(rest, reportCollection)
	return agencyID, id, ok && agencyID != "" && len(id) == planIDLen
}

func reportKey(name string) []byte {
	agencyID, id, _ := SplitReportName(name)
	return joinKey(agencyID, id)
}

func reportVersionKey(name string, version int32) []byte {
	_, id, _ := SplitReportName(name)
	return append([]byte(id), u32(uint32(version))...)
}

// CreateReport stores a new draft report owned by "agencies/{agencyID}",
// with the figures the caller computed. A retry with the same
// Op.RequestID returns the report the first call created.
func (s *Store) CreateReport(ctx context.Context, op Op, agencyID string, r *exchangev1.Report) (*exchangev1.Report, error) {
	var out *exchangev1.Report
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := reports.get(w.tx, reportKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing report", err)
			}
			out = got
			return nil
		}
		r := proto.Clone(r).(*exchangev1.Report)
		r.Owner = AgencyPrefix + agencyID
		r.Version, r.State, r.SubmitTime = 0, exchangev1.ReportState_REPORT_STATE_DRAFT, nil
		id := newID(w.now)
		created, err := reports.create(w, joinKey(agencyID, id), ReportName(agencyID, id), r)
		out = created
		return err
	})
	return out, err
}

// GetReport returns the report's current record: the draft, or the last
// submitted version when it has not changed since.
func (s *Store) GetReport(ctx context.Context, name string) (*exchangev1.Report, error) {
	var out *exchangev1.Report
	err := s.view(ctx, func(tx kv.Tx) error {
		r, ok, err := reports.get(tx, reportKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		out = r
		return nil
	})
	return out, err
}

// reportVersion reads a submitted version; ok is false when there is none.
func reportVersion(tx kv.Tx, name string, version int32) (*exchangev1.Report, bool, error) {
	v := tx.Bucket(bucketReportVersions).Get(reportVersionKey(name, version))
	if v == nil {
		return nil, false, nil
	}
	r := new(exchangev1.Report)
	if err := unmarshal(v, r); err != nil {
		return nil, false, err
	}
	return r, r.GetName() == name, nil
}

// GetReportVersion returns a submitted version of the report;
// KindNotFound when the report or the version does not exist.
func (s *Store) GetReportVersion(ctx context.Context, name string, version int32) (*exchangev1.Report, error) {
	var out *exchangev1.Report
	err := s.view(ctx, func(tx kv.Tx) error {
		r, ok, err := reportVersion(tx, name, version)
		if err != nil {
			return err
		}
		if !ok {
			return &Error{Kind: KindNotFound, Resource: name, Message: fmt.Sprintf("%s has no submitted version %d", name, version)}
		}
		out = r
		return nil
	})
	return out, err
}

// UpdateReport applies mutate to the stored report; a non-empty etag must
// match. A change makes it a draft again (the submitted versions stay as
// they were); mutate cannot change the owner, the period, the figures,
// the version or the bookkeeping fields.
func (s *Store) UpdateReport(ctx context.Context, op Op, name, etag string, mutate func(*exchangev1.Report) error) (*exchangev1.Report, error) {
	var out *exchangev1.Report
	err := s.update(ctx, op, func(w *writeTx) error {
		r, err := reports.modify(w, reportKey(name), name, etag, func(r *exchangev1.Report) error {
			orig := proto.Clone(r).(*exchangev1.Report)
			if err := mutate(r); err != nil {
				return err
			}
			for _, f := range []string{"owner", "fiscal_year", "fiscal_year_start_month", "quarter", "period", "figures", "state", "version", "submit_time"} {
				copyField(r, orig, f)
			}
			if !proto.Equal(orig, r) {
				r.State, r.SubmitTime = exchangev1.ReportState_REPORT_STATE_DRAFT, nil
			}
			return nil
		})
		out = r
		return err
	})
	return out, err
}

// SubmitReport makes the draft the next submitted version and keeps a
// copy of it that never changes. A report unchanged since its last
// submission fails with KindFailedPrecondition.
func (s *Store) SubmitReport(ctx context.Context, op Op, name, etag string) (*exchangev1.Report, error) {
	var out *exchangev1.Report
	err := s.update(ctx, op, func(w *writeTx) error {
		r, err := reports.modify(w, reportKey(name), name, etag, func(r *exchangev1.Report) error {
			if r.GetState() == exchangev1.ReportState_REPORT_STATE_SUBMITTED {
				return &Error{Kind: KindFailedPrecondition, Resource: name,
					Message: fmt.Sprintf("%s is unchanged since it was submitted as version %d", name, r.GetVersion())}
			}
			r.State = exchangev1.ReportState_REPORT_STATE_SUBMITTED
			r.Version++
			r.SubmitTime = timestamppb.New(w.now)
			return nil
		})
		if err != nil {
			return err
		}
		b, err := marshal(r)
		if err != nil {
			return err
		}
		if err := w.tx.Bucket(bucketReportVersions).Put(reportVersionKey(name, r.GetVersion()), b); err != nil {
			return internal("cannot write report version", err)
		}
		out = r
		return nil
	})
	return out, err
}

// ReportFilter selects reports in ListReports.
type ReportFilter struct {
	// AgencyID limits the list to one owner; empty means every owner.
	AgencyID string
	// Reader is the listing agency, "agencies/{id}": its own reports are
	// listed as they are now (drafts included); others' as their last
	// submitted version, and not at all before their first submission.
	Reader string
	// Keep, when set, decides on each report as it would be listed.
	Keep func(*exchangev1.Report) bool
}

// ListReports returns one page of reports ordered by owner id, then
// creation.
func (s *Store) ListReports(ctx context.Context, f ReportFilter, p Page) ([]*exchangev1.Report, string, error) {
	var prefix []byte
	if f.AgencyID != "" {
		prefix = joinKey(f.AgencyID, "")
	}
	var items []*exchangev1.Report
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucketReports, prefix, p, query("reports", f.AgencyID, f.Reader), func(_, v []byte) (*exchangev1.Report, bool, error) {
			r := new(exchangev1.Report)
			if err := unmarshal(v, r); err != nil {
				return nil, false, err
			}
			if r.GetOwner() != f.Reader {
				if r.GetVersion() == 0 {
					return nil, false, nil
				}
				sub, ok, err := reportVersion(tx, r.GetName(), r.GetVersion())
				if err != nil || !ok {
					return nil, false, err
				}
				r = sub
			}
			return r, f.Keep == nil || f.Keep(r), nil
		})
		return err
	})
	return items, token, err
}

// CreateReportComment stores a comment by author ("agencies/{id}") on
// version of the report. A retry with the same Op.RequestID returns the
// comment the first call created.
func (s *Store) CreateReportComment(ctx context.Context, op Op, report, author string, version int32, text string) (*exchangev1.ReportComment, error) {
	_, reportID, _ := SplitReportName(report)
	var out *exchangev1.ReportComment
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			id := name[strings.LastIndex(name, "/")+1:]
			got, found, err := reportComments.get(w.tx, joinKey(reportID, id))
			if err != nil || !found {
				return internal("request id refers to a missing comment", err)
			}
			out = got
			return nil
		}
		if _, ok, err := reports.get(w.tx, reportKey(report)); err != nil {
			return err
		} else if !ok {
			return notFound(report)
		}
		id := newID(w.now)
		c := &exchangev1.ReportComment{Author: author, ReportVersion: version, Text: text}
		created, err := reportComments.create(w, joinKey(reportID, id), report+commentCollection+id, c)
		out = created
		return err
	})
	return out, err
}

// ListReportComments returns one page of the report's comments, oldest
// first.
func (s *Store) ListReportComments(ctx context.Context, report string, p Page) ([]*exchangev1.ReportComment, string, error) {
	_, reportID, _ := SplitReportName(report)
	var items []*exchangev1.ReportComment
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucketReportComments, joinKey(reportID, ""), p, query("report_comments", report), func(_, v []byte) (*exchangev1.ReportComment, bool, error) {
			c := new(exchangev1.ReportComment)
			if err := unmarshal(v, c); err != nil {
				return nil, false, err
			}
			return c, true, nil
		})
		return err
	})
	return items, token, err
}
