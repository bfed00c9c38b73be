package server

import (
	"fmt"
	"slices"
	"sync"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Reports in the isolation matrix: the model, the world's reports and the
// matrix entries of ReportService. They live in this file, beside the
// service, and join the matrix through one line in matrixEntries.

func init() {
	for m, k := range map[string]methodKind{
		// Agencies alone draft and comment; reads and the owner's changes
		// admit everyone, so that the report itself answers NOT_FOUND or
		// PERMISSION_DENIED, as for plans.
		"ReportService/GetReport":           forEveryone,
		"ReportService/ListReports":         forEveryone,
		"ReportService/CreateReport":        forAgencies,
		"ReportService/UpdateReport":        forEveryone,
		"ReportService/SubmitReport":        forEveryone,
		"ReportService/CreateReportComment": forAgencies,
		"ReportService/ListReportComments":  forEveryone,
	} {
		modelMethodKinds[m] = k
	}
}

// mReport is what the model knows of a report.
type mReport struct {
	name, owner string
	// audience is the draft's; submitted holds each submitted version's.
	audience  mAudience
	submitted []mAudience
	// changed: the draft differs from the last submitted version (or none
	// was submitted).
	changed  bool
	comments int
}

// isoReports is the report part of one isolation world.
type isoReports struct {
	once    sync.Once
	reports map[string]*mReport
}

var (
	isoReportWorldsMu sync.Mutex
	isoReportWorlds   = map[*isoWorld]*isoReports{}
)

// reportsOf returns the world's reports, creating them on first use.
func (w *isoWorld) reportsOf() *isoReports {
	isoReportWorldsMu.Lock()
	r, ok := isoReportWorlds[w]
	if !ok {
		r = &isoReports{reports: map[string]*mReport{}}
		isoReportWorlds[w] = r
	}
	isoReportWorldsMu.Unlock()
	r.once.Do(func() {
		// ilo's report went to un-wg, then (version 2) to ngo-kh alone.
		ilo := w.draftReport(r, "agencies/ilo", mAudience{groups: []string{isoUNWG}})
		w.submitReport(r, ilo)
		w.editReport(r, ilo, mAudience{agencies: []string{"agencies/ngo-kh"}})
		w.submitReport(r, ilo)
		// iom's went to moh-kh and has an unsubmitted edit since.
		iom := w.draftReport(r, "agencies/iom", mAudience{agencies: []string{"agencies/moh-kh"}})
		w.submitReport(r, iom)
		w.editReport(r, iom, mAudience{agencies: []string{"agencies/moh-kh"}})
		// unicef's is a draft addressed to ngo-net; ngo-kh's went to
		// un-wg.
		w.draftReport(r, "agencies/unicef", mAudience{groups: []string{isoNGONet}})
		ngo := w.draftReport(r, "agencies/ngo-kh", mAudience{groups: []string{isoUNWG}})
		w.submitReport(r, ngo)
	})
	return r
}

// isoReportBody is a valid report addressed to a.
func isoReportBody(name string, a mAudience, summary string) *exchangev1.Report {
	return &exchangev1.Report{Name: name, Title: "Quarterly report", FiscalYear: 2026, FiscalYearStartMonth: 7, Quarter: 1,
		Audience: a.proto(), Summary: summary}
}

func (w *isoWorld) draftReport(r *isoReports, owner string, a mAudience) string {
	w.t.Helper()
	resp, err := w.conn(owner).reports().CreateReport(bg(), &exchangev1.CreateReportRequest{Parent: owner, Report: isoReportBody("", a, "draft")})
	w.must(err, "draft a report of "+owner)
	name := resp.GetReport().GetName()
	r.reports[name] = &mReport{name: name, owner: owner, audience: a, changed: true}
	return name
}

func (w *isoWorld) editReport(r *isoReports, name string, a mAudience) {
	w.t.Helper()
	rep := r.reports[name]
	_, err := w.conn(rep.owner).reports().UpdateReport(bg(), &exchangev1.UpdateReportRequest{
		Report: isoReportBody(name, a, fmt.Sprintf("edit %d", w.next())), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"audience", "summary"}}})
	w.must(err, "edit "+name)
	rep.audience, rep.changed = a, true
}

func (w *isoWorld) submitReport(r *isoReports, name string) {
	w.t.Helper()
	rep := r.reports[name]
	_, err := w.conn(rep.owner).reports().SubmitReport(bg(), &exchangev1.SubmitReportRequest{Name: name})
	w.must(err, "submit "+name)
	rep.submitted, rep.changed = append(rep.submitted, rep.audience), false
}

// readsReport is the verdict of reading a report at version (0: the
// draft for the owner, the last submitted version for others).
func (w *isoWorld) readsReport(r *isoReports, caller, name string, version int) verdict {
	rep := r.reports[name]
	if rep == nil {
		return vInvisible
	}
	if callerAgency(caller) == rep.owner {
		if version > len(rep.submitted) {
			return vInvisible
		}
		return vAllow
	}
	if version == 0 {
		version = len(rep.submitted)
	}
	if version == 0 || version > len(rep.submitted) || !w.m.audienceSees(caller, rep.owner, rep.submitted[version-1]) {
		return vInvisible
	}
	return vAllow
}

// changesReport is the verdict of an owner-only change: the owner may,
// a reader is denied, anyone else sees nothing.
func (w *isoWorld) changesReport(r *isoReports, caller, name string) verdict {
	switch {
	case w.readsReport(r, caller, name, 0) != vAllow:
		return vInvisible
	case callerAgency(caller) != r.reports[name].owner:
		return vDenied
	}
	return vAllow
}

func (w *isoWorld) reportEntries() []mxEntry {
	names := func() []string { return slices.Sorted(keysOf(w.reportsOf().reports)) }
	perReport := func(want func(r *isoReports, c, n string) verdict, call func(c as, n string) (any, error), check func(c, n string, resp any) []finding, apply func(r *isoReports, c, n string)) []mxAttempt {
		r := w.reportsOf()
		var out []mxAttempt
		for _, name := range names() {
			a := mxAttempt{label: name, owners: []string{r.reports[name].owner}, name: name, twin: twinOf(name),
				want: func(c string) verdict { return want(r, c, name) }, call: call}
			if check != nil {
				a.check = func(c string, resp any) []finding { return check(c, name, resp) }
			}
			if apply != nil {
				a.apply = func(c string, _ any) { apply(r, c, name) }
			}
			out = append(out, a)
		}
		return out
	}
	return []mxEntry{
		{exchangev1.ReportService_GetReport_FullMethodName, func() []mxAttempt {
			r := w.reportsOf()
			var out []mxAttempt
			for _, name := range names() {
				for v := 0; v <= len(r.reports[name].submitted)+1; v++ {
					// The owner, who sees the report, is told which version
					// is missing; anyone else gets the answer for a missing
					// report.
					twinFor := func(c string) string {
						if callerAgency(c) == r.reports[name].owner {
							return ""
						}
						return twinOf(name)
					}
					out = append(out, mxAttempt{label: fmt.Sprintf("%s version %d", name, v), owners: []string{r.reports[name].owner}, name: name, twinFor: twinFor,
						want: func(c string) verdict { return w.readsReport(r, c, name, v) },
						call: func(c as, n string) (any, error) {
							return c.reports().GetReport(bg(), &exchangev1.GetReportRequest{Name: n, Version: int32(v)})
						},
						check: func(c string, resp any) []finding {
							got := resp.(*exchangev1.GetReportResponse).GetReport()
							want := int32(v)
							if v == 0 && callerAgency(c) != r.reports[name].owner {
								want = int32(len(r.reports[name].submitted))
							}
							if got.GetName() != name || (want > 0 && got.GetVersion() != want) || (want > 0 && got.GetState() != exchangev1.ReportState_REPORT_STATE_SUBMITTED) {
								return []finding{leakf("read %s version %d state %v, want version %d", got.GetName(), got.GetVersion(), got.GetState(), want)}
							}
							return nil
						}})
				}
			}
			return out
		}},
		{exchangev1.ReportService_ListReports_FullMethodName, func() []mxAttempt {
			r := w.reportsOf()
			return []mxAttempt{{label: "agencies/-", want: allow, call: func(c as, _ string) (any, error) {
				return listAll(func(tok string) ([]*exchangev1.Report, string, error) {
					resp, err := c.reports().ListReports(bg(), &exchangev1.ListReportsRequest{Parent: "agencies/-", PageSize: 1000, PageToken: tok})
					return resp.GetReports(), resp.GetNextPageToken(), err
				})
			}, check: func(c string, resp any) []finding {
				var got, want []string
				for _, rep := range resp.([]*exchangev1.Report) {
					got = append(got, rep.GetName())
					if callerAgency(c) != rep.GetOwner() && rep.GetState() != exchangev1.ReportState_REPORT_STATE_SUBMITTED {
						return []finding{leakf("lists %s's draft of %s", rep.GetOwner(), rep.GetName())}
					}
				}
				for _, n := range names() {
					if w.readsReport(r, c, n, 0) == vAllow {
						want = append(want, n)
					}
				}
				if d := diffSets(got, want); d != "" {
					return []finding{leakf("%s", d)}
				}
				return nil
			}}}
		}},
		{exchangev1.ReportService_ListReportComments_FullMethodName, func() []mxAttempt {
			return perReport(func(r *isoReports, c, n string) verdict { return w.readsReport(r, c, n, 0) },
				func(c as, n string) (any, error) {
					return c.reports().ListReportComments(bg(), &exchangev1.ListReportCommentsRequest{Parent: n, PageSize: 1000})
				}, nil, nil)
		}},
		{exchangev1.ReportService_CreateReportComment_FullMethodName, func() []mxAttempt {
			return perReport(func(r *isoReports, c, n string) verdict {
				if v := w.readsReport(r, c, n, 0); v != vAllow {
					return v
				}
				if len(r.reports[n].submitted) == 0 {
					return vPrecondition
				}
				return vAllow
			}, func(c as, n string) (any, error) {
				return c.reports().CreateReportComment(bg(), &exchangev1.CreateReportCommentRequest{Parent: n, Comment: &exchangev1.ReportComment{Text: "seen"}})
			}, nil, func(r *isoReports, _, n string) { r.reports[n].comments++ })
		}},
		{exchangev1.ReportService_UpdateReport_FullMethodName, func() []mxAttempt {
			return perReport(func(r *isoReports, c, n string) verdict { return w.changesReport(r, c, n) }, func(c as, n string) (any, error) {
				return c.reports().UpdateReport(bg(), &exchangev1.UpdateReportRequest{
					Report: isoReportBody(n, mAudience{}, fmt.Sprintf("matrix edit %d", w.next())), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"summary"}}})
			}, nil, func(r *isoReports, _, n string) { r.reports[n].changed = true })
		}},
		{exchangev1.ReportService_SubmitReport_FullMethodName, func() []mxAttempt {
			return perReport(func(r *isoReports, c, n string) verdict {
				if v := w.changesReport(r, c, n); v != vAllow {
					return v
				}
				if !r.reports[n].changed {
					return vPrecondition
				}
				return vAllow
			}, func(c as, n string) (any, error) {
				return c.reports().SubmitReport(bg(), &exchangev1.SubmitReportRequest{Name: n})
			}, nil, func(r *isoReports, _, n string) {
				rep := r.reports[n]
				rep.submitted, rep.changed = append(rep.submitted, rep.audience), false
			})
		}},
		{exchangev1.ReportService_CreateReport_FullMethodName, func() []mxAttempt {
			r := w.reportsOf()
			var out []mxAttempt
			for _, parent := range append(slices.Clone(isoActive), isoSuspended) {
				out = append(out, mxAttempt{label: parent, owners: []string{parent},
					want: func(c string) verdict {
						if callerAgency(c) != parent {
							return vDenied
						}
						return vAllow
					},
					call: func(c as, _ string) (any, error) {
						return c.reports().CreateReport(bg(), &exchangev1.CreateReportRequest{Parent: parent, Report: isoReportBody("", mAudience{groups: []string{isoUNWG}}, "new")})
					},
					apply: func(c string, resp any) {
						name := resp.(*exchangev1.CreateReportResponse).GetReport().GetName()
						r.reports[name] = &mReport{name: name, owner: c, audience: mAudience{groups: []string{isoUNWG}}, changed: true}
					}})
			}
			return out
		}},
	}
}
