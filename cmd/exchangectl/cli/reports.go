package cli

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// reportStateNames are the flag and table names of report states.
var reportStateNames = enumNames{"report state", "REPORT_STATE_", exchangev1.ReportState(0).Descriptor()}

const reportsLong = `Quarterly progress reports to a working group or to named agencies.

Your agency drafts a report for a quarter of its fiscal year ('reports
create'); the exchange fills in the figures from what your agency may see:
its referrals created in the quarter by state, service and province, and its
plans active in the quarter with their budget. You write the narrative
('reports update'), then submit it ('reports submit'): each submission is an
immutable numbered version. The audience (members and observers of the
working groups named, or the agencies named) reads submitted versions and
comments on them; nobody else sees the report. 'reports export' writes a
printable HTML page and, with Chromium installed, a PDF.

The fiscal year starts on day 1 of --start-month (1 for the calendar year);
--fiscal-year is the calendar year in which it starts: with --start-month 7,
fiscal year 2026 quarter 1 is July to September 2026.

NAME is a report's name as 'reports list' shows it, AGENCY/ID, or in full
agencies/AGENCY/reports/ID.`

// newReportsCmd is `exchangectl reports`.
func newReportsCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("reports", "Draft, submit, read and print quarterly progress reports", reportsLong)
	cmd.Aliases = []string{"report"}
	cmd.AddCommand(
		newReportsCreateCmd(a, nil),
		newReportsListCmd(a, nil),
		newReportsGetCmd(a, nil),
		newReportsUpdateCmd(a, nil),
		newReportsSubmitCmd(a, nil),
		newReportsCommentCmd(a, nil),
		newReportsCommentsCmd(a, nil),
		newReportsExportCmd(a, nil),
	)
	return cmd
}

// reportName accepts "agencies/ilo/reports/ID" or "ilo/ID" and returns
// the full resource name.
func reportName(s string) (string, error) {
	rest := strings.TrimPrefix(strings.TrimSpace(s), "agencies/")
	agency, id, ok := strings.Cut(rest, "/")
	if ok {
		id = strings.TrimPrefix(id, "reports/")
	}
	if !ok || !pki.ValidAgencyID(agency) || !planIDPattern.MatchString(id) {
		return "", usageErrorf("invalid report name %q: want AGENCY/ID as 'reports list' shows it, or agencies/AGENCY/reports/ID", s)
	}
	return client.AgencyName(agency) + "/reports/" + id, nil
}

// shortReportName is "ilo/ID" for "agencies/ilo/reports/ID".
func shortReportName(name string) string {
	return strings.Replace(strings.TrimPrefix(name, "agencies/"), "/reports/", "/", 1)
}

// reportsCreateOptions are the options of `reports create`.
type reportsCreateOptions struct {
	app                             *app
	Title                           string
	FiscalYear, StartMonth, Quarter int32
	Groups, Agencies                []string
}

// newReportsCreateCmd is `exchangectl reports create`.
func newReportsCreateCmd(a *app, runF func(*reportsCreateOptions) error) *cobra.Command {
	opts := &reportsCreateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "create --fiscal-year YYYY --quarter N [--start-month M] --title TITLE (--group WG | --agency AGENCY)...",
		Short: "Draft a quarterly report with its figures filled in",
		Long: "Draft a report of your agency for a quarter of its fiscal year, addressed to\n" +
			"working groups (their members and observers) or named agencies. The exchange\n" +
			"fills in the figures; only your agency sees the draft until you submit it.",
		Example: "  exchangectl reports create --fiscal-year 2026 --start-month 7 --quarter 2 \\\n" +
			"    --title 'Progress report Q2 FY2026' --group un-wg",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case opts.Title == "":
				return usageErrorf("--title is required")
			case opts.FiscalYear < 2000 || opts.FiscalYear > 2999:
				return usageErrorf("--fiscal-year %d: want the calendar year in which the fiscal year starts, 2000 to 2999", opts.FiscalYear)
			case opts.StartMonth < 1 || opts.StartMonth > 12:
				return usageErrorf("--start-month %d: want 1 to 12", opts.StartMonth)
			case opts.Quarter < 1 || opts.Quarter > 4:
				return usageErrorf("--quarter %d: want 1 to 4", opts.Quarter)
			case len(opts.Groups) == 0 && len(opts.Agencies) == 0:
				return usageErrorf("name the audience: --group WORKING_GROUP or --agency AGENCY (repeatable)")
			}
			if runF != nil {
				return runF(opts)
			}
			return runReportsCreate(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Title, "title", "", "the report's title")
	f.Int32Var(&opts.FiscalYear, "fiscal-year", 0, "the calendar year in which the fiscal year starts")
	f.Int32Var(&opts.StartMonth, "start-month", 1, "the month (1-12) your fiscal year starts in")
	f.Int32Var(&opts.Quarter, "quarter", 0, "the quarter of the fiscal year, 1 to 4")
	f.StringSliceVar(&opts.Groups, "group", nil, "a working group to address, by id (repeatable)")
	f.StringSliceVar(&opts.Agencies, "agency", nil, "an agency to address, by id (repeatable)")
	return cmd
}

// runReportsCreate drafts the report and prints it.
func runReportsCreate(ctx context.Context, o *reportsCreateOptions) error {
	parent, err := o.app.ownAgency("reports belong to agencies; pass an agency's --cert and --key")
	if err != nil {
		return err
	}
	aud := &exchangev1.Audience{}
	for _, g := range o.Groups {
		aud.WorkingGroups = append(aud.WorkingGroups, "workingGroups/"+strings.TrimPrefix(g, "workingGroups/"))
	}
	for _, ag := range o.Agencies {
		aud.Agencies = append(aud.Agencies, client.AgencyName(strings.TrimPrefix(ag, "agencies/")))
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	r, err := c.Reports.Create(ctx, parent, &exchangev1.Report{
		Title: o.Title, FiscalYear: o.FiscalYear, FiscalYearStartMonth: o.StartMonth, Quarter: o.Quarter, Audience: aud,
	})
	if err != nil {
		return err
	}
	return printOne(o.app, r, reportDetail)
}

// reportDetail is the human form of one report.
func reportDetail(r *exchangev1.Report) []field {
	f := r.GetFigures()
	var states, niches, places, plans []string
	for _, s := range f.GetReferralsByState() {
		states = append(states, fmt.Sprintf("%s %d", referralStateNames.name(protoreflect.EnumNumber(s.GetState())), s.GetCount()))
	}
	for _, n := range f.GetReferralsByNiche() {
		niches = append(niches, fmt.Sprintf("%s %d", nicheNames.name(protoreflect.EnumNumber(n.GetNiche())), n.GetCount()))
	}
	for _, l := range f.GetReferralsByLocation() {
		places = append(places, fmt.Sprintf("%s %d", l.GetLocation(), l.GetCount()))
	}
	for _, p := range f.GetPlans() {
		line := fmt.Sprintf("%s (%s, %s)", p.GetTitle(), planStageNames.name(protoreflect.EnumNumber(p.GetStage())), shortPlanName(p.GetPlan()))
		if p.GetTotalAmount() != "" {
			line += " " + p.GetTotalAmount() + " " + p.GetCurrencyCode()
		}
		plans = append(plans, line)
	}
	var data []string
	for _, d := range f.GetDatasets() {
		var sums []string
		for _, k := range slices.Sorted(maps.Keys(d.GetSums())) {
			sums = append(sums, fmt.Sprintf("%s %s", k, strconv.FormatFloat(d.GetSums()[k], 'f', -1, 64)))
		}
		data = append(data, fmt.Sprintf("%s %s..%s: %s", d.GetDataset(), d.GetPeriodFrom(), d.GetPeriodTo(), cmp.Or(strings.Join(sums, ", "), "0")))
	}
	var audience []string
	audience = append(audience, r.GetAudience().GetWorkingGroups()...)
	audience = append(audience, r.GetAudience().GetAgencies()...)
	return []field{
		{"name", shortReportName(r.GetName())},
		{"title", r.GetTitle()},
		{"owner", r.GetOwner()},
		{"quarter", fmt.Sprintf("FY%d Q%d (%s)", r.GetFiscalYear(), r.GetQuarter(), formatPeriod(r.GetPeriod()))},
		{"state", reportStateNames.name(protoreflect.EnumNumber(r.GetState()))},
		{"version", strconv.Itoa(int(r.GetVersion()))},
		{"audience", strings.Join(audience, ", ")},
		{"referrals", strconv.FormatInt(f.GetReferralsTotal(), 10)},
		{"by state", strings.Join(states, ", ")},
		{"by service", strings.Join(niches, ", ")},
		{"by province", strings.Join(places, ", ")},
		{"plans", strings.Join(plans, "; ")},
		{"datasets (public totals)", strings.Join(data, "; ")},
		{"summary", r.GetSummary()},
		{"progress", r.GetProgress()},
		{"challenges", r.GetChallenges()},
		{"next quarter", r.GetNextQuarter()},
		{"submitted", formatTime(r.GetSubmitTime())},
		{"etag", r.GetEtag()},
	}
}

// reportsListOptions are the options of `reports list`.
type reportsListOptions struct {
	app    *app
	Agency string
}

// newReportsListCmd is `exchangectl reports list`.
func newReportsListCmd(a *app, runF func(*reportsListOptions) error) *cobra.Command {
	opts := &reportsListOptions{app: a}
	cmd := &cobra.Command{
		Use:   "list [--agency AGENCY]",
		Short: "List the reports you may read",
		Long:  "List your agency's reports (drafts included) and the last submitted version of\nthe reports addressed to you.",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Agency != "" && !pki.ValidAgencyID(opts.Agency) {
				return usageErrorf("--agency %q: want an agency id", opts.Agency)
			}
			if runF != nil {
				return runF(opts)
			}
			return runReportsList(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Agency, "agency", "", "only this agency's reports")
	return cmd
}

// runReportsList prints the reports.
func runReportsList(ctx context.Context, o *reportsListOptions) error {
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	parent := ""
	if o.Agency != "" {
		parent = client.AgencyName(o.Agency)
	}
	items, err := client.Collect(c.Reports.Reports(ctx, parent))
	if err != nil {
		return err
	}
	return printList(o.app, items, "reports", []string{"NAME", "QUARTER", "STATE", "VERSION", "REFERRALS", "TITLE"}, func(r *exchangev1.Report) []string {
		return []string{shortReportName(r.GetName()), fmt.Sprintf("FY%d Q%d", r.GetFiscalYear(), r.GetQuarter()),
			reportStateNames.name(protoreflect.EnumNumber(r.GetState())), strconv.Itoa(int(r.GetVersion())),
			strconv.FormatInt(r.GetFigures().GetReferralsTotal(), 10), r.GetTitle()}
	})
}

// reportsGetOptions are the options of `reports get`.
type reportsGetOptions struct {
	app     *app
	Name    string
	Version int32
}

// newReportsGetCmd is `exchangectl reports get`.
func newReportsGetCmd(a *app, runF func(*reportsGetOptions) error) *cobra.Command {
	opts := &reportsGetOptions{app: a}
	cmd := &cobra.Command{
		Use:     "get NAME [--version N]",
		Aliases: []string{"show"},
		Short:   "Show a report: your draft, or the last (or a given) submitted version",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := reportName(opts.Name); err != nil {
				return err
			}
			if opts.Version < 0 {
				return usageErrorf("--version %d: want 1 or more (0 for the draft or the last submitted version)", opts.Version)
			}
			if runF != nil {
				return runF(opts)
			}
			return runReportsGet(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int32Var(&opts.Version, "version", 0, "a submitted version to show")
	return cmd
}

// runReportsGet prints the report.
func runReportsGet(ctx context.Context, o *reportsGetOptions) error {
	r, err := fetchReport(ctx, o.app, o.Name, o.Version)
	if err != nil {
		return err
	}
	return printOne(o.app, r, reportDetail)
}

// fetchReport reads the report named as the user wrote it.
func fetchReport(ctx context.Context, a *app, s string, version int32) (*exchangev1.Report, error) {
	name, err := reportName(s)
	if err != nil {
		return nil, err
	}
	c, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	return c.Reports.Get(ctx, name, version)
}

// reportsUpdateOptions are the options of `reports update`.
type reportsUpdateOptions struct {
	app  *app
	Name string
	// Texts maps a narrative field to its new text (or @FILE).
	Texts map[string]string
}

// reportTextFlags are the narrative flags of `reports update` and the
// Report fields they set.
var reportTextFlags = []struct{ flag, field string }{
	{"title", "title"}, {"summary", "summary"}, {"progress", "progress"}, {"challenges", "challenges"}, {"next-quarter", "next_quarter"},
}

// newReportsUpdateCmd is `exchangectl reports update`.
func newReportsUpdateCmd(a *app, runF func(*reportsUpdateOptions) error) *cobra.Command {
	opts := &reportsUpdateOptions{app: a, Texts: map[string]string{}}
	values := make([]string, len(reportTextFlags))
	cmd := &cobra.Command{
		Use:   "update NAME [--summary TEXT|@FILE] [--progress ...] [--challenges ...] [--next-quarter ...] [--title ...]",
		Short: "Write the narrative of your draft report",
		Long: "Set the narrative sections of your report. A value @FILE reads the text from\n" +
			"FILE; a blank line starts a new paragraph. Changing a submitted report makes a\n" +
			"new draft; the audience keeps reading the submitted version until you submit again.",
		Example: "  exchangectl reports update ngo-kh/01jd8x4k2m9q7r3t5v6w8y0z1a --summary @summary.txt --challenges 'Border closures.'",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := reportName(opts.Name); err != nil {
				return err
			}
			for i, t := range reportTextFlags {
				if !cmd.Flags().Changed(t.flag) {
					continue
				}
				v := values[i]
				if path, ok := strings.CutPrefix(v, "@"); ok {
					b, err := os.ReadFile(a.path(path))
					if err != nil {
						return usageErrorf("--%s %s: %v", t.flag, v, err)
					}
					v = string(b)
				}
				opts.Texts[t.field] = v
			}
			if len(opts.Texts) == 0 {
				return usageErrorf("nothing to change: give --summary, --progress, --challenges, --next-quarter or --title")
			}
			if runF != nil {
				return runF(opts)
			}
			return runReportsUpdate(cmd.Context(), opts)
		},
	}
	for i, t := range reportTextFlags {
		cmd.Flags().StringVar(&values[i], t.flag, "", "new "+strings.ReplaceAll(t.flag, "-", " ")+" (TEXT or @FILE)")
	}
	return cmd
}

// runReportsUpdate changes the draft's narrative.
func runReportsUpdate(ctx context.Context, o *reportsUpdateOptions) error {
	name, err := reportName(o.Name)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	// The draft as read carries valid values for the fields the mask
	// leaves alone, and its etag keeps a concurrent edit from being lost.
	r, err := c.Reports.Get(ctx, name, 0)
	if err != nil {
		return err
	}
	var paths []string
	for _, t := range reportTextFlags {
		v, ok := o.Texts[t.field]
		if !ok {
			continue
		}
		paths = append(paths, t.field)
		switch t.field {
		case "title":
			r.Title = v
		case "summary":
			r.Summary = v
		case "progress":
			r.Progress = v
		case "challenges":
			r.Challenges = v
		case "next_quarter":
			r.NextQuarter = v
		}
	}
	updated, err := c.Reports.Update(ctx, r, paths...)
	if err != nil {
		return err
	}
	return printOne(o.app, updated, reportDetail)
}

// reportsSubmitOptions are the options of `reports submit`.
type reportsSubmitOptions struct {
	app  *app
	Name string
}

// newReportsSubmitCmd is `exchangectl reports submit`.
func newReportsSubmitCmd(a *app, runF func(*reportsSubmitOptions) error) *cobra.Command {
	opts := &reportsSubmitOptions{app: a}
	cmd := &cobra.Command{
		Use:   "submit NAME",
		Short: "Submit your draft as the next immutable version, for the audience to read",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := reportName(opts.Name); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			name, _ := reportName(opts.Name)
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			r, err := c.Reports.Submit(cmd.Context(), name, "")
			if err != nil {
				return err
			}
			return printOne(a, r, reportDetail)
		},
	}
	return cmd
}

// reportsCommentOptions are the options of `reports comment`.
type reportsCommentOptions struct {
	app        *app
	Name, Text string
}

// newReportsCommentCmd is `exchangectl reports comment`.
func newReportsCommentCmd(a *app, runF func(*reportsCommentOptions) error) *cobra.Command {
	opts := &reportsCommentOptions{app: a}
	cmd := &cobra.Command{
		Use:   "comment NAME TEXT",
		Short: "Comment on the last submitted version of a report addressed to you",
		Args:  exactArgs("NAME", "TEXT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name, opts.Text = args[0], args[1]
			name, err := reportName(opts.Name)
			if err != nil {
				return err
			}
			if strings.TrimSpace(opts.Text) == "" {
				return usageErrorf("TEXT is empty")
			}
			if runF != nil {
				return runF(opts)
			}
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			cm, err := c.Reports.Comment(cmd.Context(), name, opts.Text)
			if err != nil {
				return err
			}
			return printOne(a, cm, commentDetail)
		},
	}
	return cmd
}

// commentDetail is the human form of one comment.
func commentDetail(c *exchangev1.ReportComment) []field {
	return []field{{"author", c.GetAuthor()}, {"version", strconv.Itoa(int(c.GetReportVersion()))}, {"time", formatTime(c.GetCreateTime())}, {"text", c.GetText()}}
}

// reportsCommentsOptions are the options of `reports comments`.
type reportsCommentsOptions struct {
	app  *app
	Name string
}

// newReportsCommentsCmd is `exchangectl reports comments`.
func newReportsCommentsCmd(a *app, runF func(*reportsCommentsOptions) error) *cobra.Command {
	opts := &reportsCommentsOptions{app: a}
	cmd := &cobra.Command{
		Use:   "comments NAME",
		Short: "List the comments on a report, oldest first",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			name, err := reportName(opts.Name)
			if err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			c, err := a.connect(cmd.Context())
			if err != nil {
				return err
			}
			items, err := client.Collect(c.Reports.Comments(cmd.Context(), name))
			if err != nil {
				return err
			}
			return printList(a, items, "comments", []string{"TIME", "AUTHOR", "VERSION", "TEXT"}, func(c *exchangev1.ReportComment) []string {
				return []string{formatTime(c.GetCreateTime()), c.GetAuthor(), strconv.Itoa(int(c.GetReportVersion())), c.GetText()}
			})
		},
	}
	return cmd
}
