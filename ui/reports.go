package ui

import (
	"cmp"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// reportIDPattern is a report's id, the last part of its name.
var reportIDPattern = regexp.MustCompile(`^[0-9a-z]{26}$`)

// reportRow is one report in the list.
type reportRow struct {
	Owner, ID, Title, Quarter, Period, Audience, State string
	// Version is the last submitted version (0: never submitted).
	Version int32
	// Yours is true for the caller's own reports; the others are
	// addressed to it.
	Yours bool
}

// reports serves the list of the reports the caller may read: its own
// and those addressed to it.
func (d *Dashboard) reports(w http.ResponseWriter, r *http.Request) {
	p := d.newPage("Reports", "reports")
	ctx, cancel := callContext(r)
	defer cancel()
	list, err := client.Collect(d.cfg.Client.Reports.Reports(ctx, "agencies/-"))
	var rows []reportRow
	for _, rep := range list {
		rows = append(rows, reportRow{
			Owner: client.ResourceID(rep.GetOwner()), ID: client.ResourceID(rep.GetName()), Title: rep.GetTitle(),
			Quarter: quarterText(rep), Period: dateText(rep.GetPeriod().GetStart()) + " to " + dateText(rep.GetPeriod().GetEnd()),
			Audience: audienceText(rep.GetAudience()), State: enumText(rep.GetState(), "REPORT_STATE_"),
			Version: rep.GetVersion(), Yours: rep.GetOwner() == d.cfg.Agency,
		})
	}
	p.Data = rows
	code := http.StatusOK
	if err != nil {
		code, p.Error = httpStatus(err)
	}
	d.render(w, code, "reports", p)
}

// reportData is one report's page: every version the caller may read.
type reportData struct {
	Owner, ID string
	// Versions are the draft (to its owner) and the submitted versions,
	// newest first.
	Versions []reportVersion
}

// reportVersion is one version of a report as the page shows it.
type reportVersion struct {
	// Label is "draft" or "version N".
	Label, Anchor                                        string
	Title, Quarter, Period, Audience, Submitted, Figured string
	// Narrative is the four written sections, in order, empty ones left out.
	Narrative []reportSection
	Total     int64
	ByState   []countRow
	ByNiche   []countRow
	ByPlace   []countRow
	Plans     []reportPlanRow
	Datasets  []reportDatasetRow
}

// reportSection is one narrative section.
type reportSection struct{ Heading, Text string }

// countRow is a number of referrals under a label.
type countRow struct {
	Label string
	Count int64
}

// reportPlanRow is one plan line of a report's figures.
type reportPlanRow struct {
	ID, Title, Stage, Period, Budget, PeriodBudget string
}

// reportDatasetRow is one dataset's rounded totals in a report.
type reportDatasetRow struct {
	Dataset, Title, Periods, Sums string
	RoundingBase                  int32
}

// report serves one report with each version's figures and narrative.
func (d *Dashboard) report(w http.ResponseWriter, r *http.Request) {
	owner, id := r.PathValue("owner"), r.PathValue("id")
	p := d.newPage("Report "+owner+"/"+id, "reports")
	data := &reportData{Owner: owner, ID: id}
	p.Data = data
	if !idPattern.MatchString(owner) || !reportIDPattern.MatchString(id) {
		p.Error = "report: " + strconv.Quote(owner+"/"+id) + " is not an agency id and a report id"
		d.render(w, http.StatusBadRequest, "report", p)
		return
	}
	ctx, cancel := callContext(r)
	defer cancel()
	name := "agencies/" + owner + "/reports/" + id
	fail := func(err error) {
		code, msg := httpStatus(err)
		p.Error = msg
		d.render(w, code, "report", p)
	}
	first, err := d.cfg.Client.Reports.Get(ctx, name, 0)
	if err != nil {
		fail(err)
		return
	}
	p.Title = cmp.Or(first.GetTitle(), p.Title)
	// The owner gets the draft, whose version is the last submitted
	// one's number; the audience gets that last submitted version.
	data.Versions = append(data.Versions, newReportVersion(first))
	latest := first.GetVersion()
	if first.GetState() != exchangev1.ReportState_REPORT_STATE_DRAFT {
		latest--
	}
	for v := latest; v >= 1; v-- {
		rep, err := d.cfg.Client.Reports.Get(ctx, name, v)
		if err != nil {
			fail(err)
			return
		}
		data.Versions = append(data.Versions, newReportVersion(rep))
	}
	d.render(w, http.StatusOK, "report", p)
}

// newReportVersion lays out one version of a report.
func newReportVersion(rep *exchangev1.Report) reportVersion {
	v := reportVersion{
		Label: "draft", Anchor: "draft", Title: rep.GetTitle(), Quarter: quarterText(rep),
		Period:   dateText(rep.GetPeriod().GetStart()) + " to " + dateText(rep.GetPeriod().GetEnd()),
		Audience: audienceText(rep.GetAudience()), Submitted: timeText(rep.GetSubmitTime()),
		Figured: timeText(rep.GetFigures().GetComputeTime()), Total: rep.GetFigures().GetReferralsTotal(),
	}
	if rep.GetState() == exchangev1.ReportState_REPORT_STATE_SUBMITTED {
		v.Label, v.Anchor = fmt.Sprintf("version %d", rep.GetVersion()), fmt.Sprintf("v%d", rep.GetVersion())
	}
	for _, s := range []reportSection{
		{"Summary", rep.GetSummary()}, {"Progress", rep.GetProgress()},
		{"Challenges", rep.GetChallenges()}, {"Next quarter", rep.GetNextQuarter()},
	} {
		if strings.TrimSpace(s.Text) != "" {
			v.Narrative = append(v.Narrative, s)
		}
	}
	f := rep.GetFigures()
	for _, c := range f.GetReferralsByState() {
		v.ByState = append(v.ByState, countRow{stateText(c.GetState()), c.GetCount()})
	}
	for _, c := range f.GetReferralsByNiche() {
		v.ByNiche = append(v.ByNiche, countRow{nicheText(c.GetNiche()), c.GetCount()})
	}
	for _, c := range f.GetReferralsByLocation() {
		v.ByPlace = append(v.ByPlace, countRow{c.GetLocation(), c.GetCount()})
	}
	slices.SortStableFunc(v.ByPlace, func(a, b countRow) int { return geo.CompareCodes(a.Label, b.Label) })
	for _, pl := range f.GetPlans() {
		row := reportPlanRow{
			ID: client.ResourceID(pl.GetPlan()), Title: pl.GetTitle(), Stage: enumText(pl.GetStage(), "PLAN_STAGE_"),
			Period: dateText(pl.GetPlannedPeriod().GetStart()) + " to " + dateText(pl.GetPlannedPeriod().GetEnd()),
		}
		if pl.GetTotalAmount() != "" {
			row.Budget = pl.GetTotalAmount() + " " + pl.GetCurrencyCode()
		}
		var lines []string
		for _, l := range pl.GetPeriodBudgetLines() {
			lines = append(lines, strings.TrimSpace(l.GetAmount()+" "+pl.GetCurrencyCode())+" ("+enumText(l.GetStatus(), "PLAN_BUDGET_STATUS_")+")")
		}
		row.PeriodBudget = strings.Join(lines, ", ")
		v.Plans = append(v.Plans, row)
	}
	for _, ds := range f.GetDatasets() {
		keys := make([]string, 0, len(ds.GetSums()))
		for k := range ds.GetSums() {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		sums := make([]string, 0, len(keys))
		for _, k := range keys {
			sums = append(sums, k+" "+strconv.FormatFloat(ds.GetSums()[k], 'f', -1, 64))
		}
		v.Datasets = append(v.Datasets, reportDatasetRow{
			Dataset: strings.TrimPrefix(strings.Replace(ds.GetDataset(), "/datasets/", "/", 1), "agencies/"),
			Title:   ds.GetTitle(), Periods: ds.GetPeriodFrom() + " to " + ds.GetPeriodTo(),
			Sums: strings.Join(sums, ", "), RoundingBase: ds.GetRoundingBase(),
		})
	}
	return v
}

// quarterText is "FY2026 Q2" for a report.
func quarterText(rep *exchangev1.Report) string {
	return fmt.Sprintf("FY%d Q%d", rep.GetFiscalYear(), rep.GetQuarter())
}

// audienceText says who may see a shared resource besides its owner.
func audienceText(a *exchangev1.Audience) string {
	if a.GetAllMembers() {
		return "all members"
	}
	var parts []string
	if len(a.GetAgencies()) > 0 {
		parts = append(parts, "agencies: "+idList(a.GetAgencies()))
	}
	if len(a.GetWorkingGroups()) > 0 {
		parts = append(parts, "working groups: "+idList(a.GetWorkingGroups()))
	}
	if len(parts) == 0 {
		return "the owner alone"
	}
	return strings.Join(parts, "; ")
}
