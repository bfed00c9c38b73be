package cli

import (
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/rowfile"
)

// plansViewOptions are the inputs of `plans overlaps`, `plans gaps` and
// `plans coverage`.
type plansViewOptions struct {
	app *app
	// View is "overlaps", "gaps" or "coverage".
	View    string
	Country string
	Niches  []exchangev1.Niche
	Period  *exchangev1.DatePeriod
	// Agency limits overlaps to those involving a plan of this agency.
	Agency string
	CSV    bool
}

const plansViewsNote = `
Only the plans you may see count (your own, and those shared with you), and
cancelled plans do not. Output: a table for people; with --json the API's
response; with --csv one row per item, with a header, for spreadsheets.`

// newPlansOverlapsCmd is `exchangectl plans overlaps`.
func newPlansOverlapsCmd(a *app, runF func(*plansViewOptions) error) *cobra.Command {
	return newPlansViewCmd(a, runF, "overlaps",
		"overlaps [--country CC] [--niche N] [--period P] [--agency AGENCY]",
		"List pairs of plans of different agencies that may duplicate work",
		"List the pairs of plans of different agencies that share a niche and a place\n"+
			"and whose planned periods overlap: work that may be duplicated, to talk about\n"+
			"while the plans can still change. Each pair shows both plans (agency, external\n"+
			"id and title), the niches and places they share, and the days both are\n"+
			"planned to run. A plan for a whole country overlaps every province of it; two\n"+
			"plans in different districts of one province do not overlap.\n"+plansViewsNote,
		"  exchangectl plans overlaps --country KH --period 2026\n"+
			"  exchangectl plans overlaps --agency ilo --niche prevention --csv > overlaps.csv")
}

// newPlansGapsCmd is `exchangectl plans gaps`.
func newPlansGapsCmd(a *app, runF func(*plansViewOptions) error) *cobra.Command {
	return newPlansViewCmd(a, runF, "gaps",
		"gaps --country CC [--niche N]... [--period P]",
		"List provinces and niches no plan covers",
		"List, for a country and a period (by default this calendar year), the\n"+
			"provinces in which no plan is planned to be active in a niche: the gaps\n"+
			"between agencies' plans. A plan for a whole country covers all its provinces.\n"+
			"--niche (repeatable) looks at those niches only.\n"+plansViewsNote,
		"  exchangectl plans gaps --country KH --period 2026-01-01..2026-12-31\n"+
			"  exchangectl plans gaps --country LA --niche shelter,legal-aid --csv > gaps.csv")
}

// newPlansCoverageCmd is `exchangectl plans coverage`.
func newPlansCoverageCmd(a *app, runF func(*plansViewOptions) error) *cobra.Command {
	return newPlansViewCmd(a, runF, "coverage",
		"coverage --country CC [--niche N]... [--period P]",
		"Show who does what where: provinces × niches with agency counts",
		"Show the coverage matrix of a country: a row per province, a column per niche,\n"+
			"and in each cell how many agencies plan to work there in that niche (\"-\" for\n"+
			"none: a gap). Plans for the whole country count in their own row. --csv and\n"+
			"--json list the cells with the agencies and plan counts. --period counts only\n"+
			"plans planned to run then; --niche (repeatable) shows those niches only.\n"+plansViewsNote,
		"  exchangectl plans coverage --country KH --period 2026\n"+
			"  exchangectl plans coverage --country VN --csv > coverage-vn.csv")
}

// newPlansViewCmd builds overlaps, gaps and coverage.
func newPlansViewCmd(a *app, runF func(*plansViewOptions) error, view, use, short, long, example string) *cobra.Command {
	opts := &plansViewOptions{app: a, View: view}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    short + ".\n\n" + long,
		Example: example,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runPlansView(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Country, "country", "", "the country, ISO 3166-1 such as KH")
	newEnumSliceFlag(f, &opts.Niches, "niche", nicheNames, "only these niches")
	newPeriodFlag(f, &opts.Period, "period", "the period")
	if view == "overlaps" {
		f.StringVar(&opts.Agency, "agency", "", "only overlaps involving a plan of this agency id")
	}
	f.BoolVar(&opts.CSV, "csv", false, "print CSV for spreadsheets")
	return cmd
}

// check validates the options and normalizes the codes.
func (o *plansViewOptions) check() error {
	switch {
	case o.Country == "" && o.View != "overlaps":
		return usageErrorf("--country is required, such as KH")
	case o.CSV && o.app.global.JSON:
		return usageErrorf("--csv and --json exclude each other")
	case o.View == "overlaps" && len(o.Niches) > 1:
		return usageErrorf("overlaps takes one --niche (or none for all)")
	}
	if o.Country != "" {
		c, err := countryCode(o.Country)
		if err != nil {
			return err
		}
		o.Country = c
	}
	if o.Agency != "" {
		id, err := agencyID(o.Agency)
		if err != nil {
			return err
		}
		o.Agency = id
	}
	return nil
}

// gapsPeriod is the period of `plans gaps`: --period, or this calendar
// year.
func (o *plansViewOptions) gapsPeriod() *exchangev1.DatePeriod {
	if o.Period != nil {
		return o.Period
	}
	y := o.app.today().GetYear()
	return &exchangev1.DatePeriod{
		Start: &exchangev1.CalendarDate{Year: y, Month: 1, Day: 1},
		End:   &exchangev1.CalendarDate{Year: y, Month: 12, Day: 31},
	}
}

// overlapsRequest is the FindOverlaps request of the options.
func (o *plansViewOptions) overlapsRequest() *exchangev1.FindOverlapsRequest {
	req := &exchangev1.FindOverlapsRequest{Country: o.Country, Period: o.Period}
	if len(o.Niches) == 1 {
		req.Niche = o.Niches[0]
	}
	if o.Agency != "" {
		req.Agency = client.AgencyName(o.Agency)
	}
	return req
}

// runPlansView computes and prints the view.
func runPlansView(ctx context.Context, o *plansViewOptions) error {
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	switch o.View {
	case "overlaps":
		overlaps, err := client.Collect(c.Plans.Overlaps(ctx, o.overlapsRequest()))
		if err != nil {
			return err
		}
		return printOverlaps(o, overlaps)
	case "gaps":
		resp, err := c.Plans.Gaps(ctx, &exchangev1.FindGapsRequest{Country: o.Country, Period: o.gapsPeriod(), Niches: o.Niches})
		if err != nil {
			return err
		}
		return printGaps(o, resp)
	case "coverage":
		resp, err := c.Plans.Coverage(ctx, &exchangev1.GetCoverageRequest{Country: o.Country, Period: o.Period, Niches: o.Niches})
		if err != nil {
			return err
		}
		if o.app.global.JSON || o.CSV {
			return printCoverage(o, resp, nil)
		}
		provinces, err := client.Collect(c.Directory.Locations(ctx, &exchangev1.ListLocationsRequest{Country: o.Country, PageSize: 1000}))
		if err != nil {
			return err
		}
		return printCoverage(o, resp, provinces)
	default:
		return fmt.Errorf("unknown plans view %q", o.View)
	}
}

// writeCSV writes a header and rows as CSV to stdout. Cells are guarded
// against spreadsheet formulas (rowfile.GuardCell): plan titles and ids
// are written by other agencies, and the file is meant for a spreadsheet.
func writeCSV(a *app, header []string, rows [][]string) error {
	w := csv.NewWriter(a.env.Stdout)
	if err := w.Write(header); err != nil {
		return err
	}
	for _, row := range rows {
		for i, cell := range row {
			row[i] = rowfile.GuardCell(cell)
		}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

// shorten cuts s to n characters, with an ellipsis.
func shorten(s string, n int) string {
	s = oneLine(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// planRefText is a plan in a view's table: "ilo XM-…-01 Title".
func planRefText(p *exchangev1.PlanRef) string {
	return client.ResourceID(p.GetOwner()) + " " + p.GetExternalId() + " " + shorten(p.GetTitle(), 40)
}

// printOverlaps prints the overlaps.
func printOverlaps(o *plansViewOptions, overlaps []*exchangev1.PlanOverlap) error {
	a := o.app
	if o.CSV {
		rows := make([][]string, 0, len(overlaps))
		for _, ov := range overlaps {
			var row []string
			for _, p := range []*exchangev1.PlanRef{ov.GetFirst(), ov.GetSecond()} {
				row = append(row, p.GetName(), client.ResourceID(p.GetOwner()), p.GetExternalId(), p.GetTitle(), stageName(p.GetStage()))
			}
			row = append(row, nicheList(ov.GetNiches()), strings.ReplaceAll(locationList(ov.GetLocations()), ", ", ","),
				formatDate(ov.GetPeriod().GetStart()), formatDate(ov.GetPeriod().GetEnd()))
			rows = append(rows, row)
		}
		return writeCSV(a, []string{
			"first_plan", "first_agency", "first_external_id", "first_title", "first_stage",
			"second_plan", "second_agency", "second_external_id", "second_title", "second_stage",
			"niches", "locations", "start", "end",
		}, rows)
	}
	return printList(a, overlaps, "overlaps", []string{"PLAN", "OVERLAPS WITH", "NICHES", "WHERE", "WHEN"},
		func(ov *exchangev1.PlanOverlap) []string {
			return []string{
				planRefText(ov.GetFirst()),
				planRefText(ov.GetSecond()),
				niches(ov.GetNiches()),
				locationList(ov.GetLocations()),
				formatPeriod(ov.GetPeriod()),
			}
		})
}

// printGaps prints the gaps, a province per line.
func printGaps(o *plansViewOptions, resp *exchangev1.FindGapsResponse) error {
	a := o.app
	switch {
	case a.global.JSON:
		return printJSON(a.env.Stdout, resp)
	case o.CSV:
		rows := make([][]string, 0, len(resp.GetGaps()))
		for _, g := range resp.GetGaps() {
			rows = append(rows, []string{g.GetSubdivision(), g.GetDisplayName(), nicheNames.name(protoreflect.EnumNumber(g.GetNiche()))})
		}
		return writeCSV(a, []string{"province", "name", "niche"}, rows)
	}
	if len(resp.GetGaps()) == 0 {
		fmt.Fprintf(a.env.Stderr, "No gaps: every province of %s has a plan in every niche asked for, in %s.\n", o.Country, formatPeriod(o.gapsPeriod()))
		return nil
	}
	var rows [][]string
	for _, g := range resp.GetGaps() {
		n := nicheNames.name(protoreflect.EnumNumber(g.GetNiche()))
		if last := len(rows) - 1; last >= 0 && rows[last][0] == g.GetSubdivision() {
			rows[last][2] += ", " + n
			continue
		}
		rows = append(rows, []string{g.GetSubdivision(), g.GetDisplayName(), n})
	}
	slices.SortStableFunc(rows, func(x, y []string) int { return geo.CompareCodes(x[0], y[0]) })
	fmt.Fprintf(a.env.Stdout, "Gaps in %s, %s (no plan you can see):\n", o.Country, formatPeriod(o.gapsPeriod()))
	return printTable(a.env.Stdout, []string{"PROVINCE", "NAME", "NICHES WITHOUT A PLAN"}, rows)
}

// printCoverage prints the coverage: JSON, CSV cells, or for people the
// province × niche matrix of agency counts, with a row for each province
// of provinces (when the exchange listed them) and each with a cell.
func printCoverage(o *plansViewOptions, resp *exchangev1.GetCoverageResponse, provinces []*exchangev1.Location) error {
	a := o.app
	cells := resp.GetCells()
	switch {
	case a.global.JSON:
		return printJSON(a.env.Stdout, resp)
	case o.CSV:
		rows := make([][]string, 0, len(cells))
		for _, c := range cells {
			var agencies []string
			for _, ag := range c.GetAgencies() {
				agencies = append(agencies, client.ResourceID(ag))
			}
			rows = append(rows, []string{
				cmp.Or(c.GetSubdivision(), o.Country), c.GetDisplayName(), nicheNames.name(protoreflect.EnumNumber(c.GetNiche())),
				strconv.Itoa(len(c.GetAgencies())), strconv.Itoa(int(c.GetPlanCount())), strings.Join(agencies, " "),
			})
		}
		return writeCSV(a, []string{"province", "name", "niche", "agencies", "plans", "agency_ids"}, rows)
	}
	// Columns: the niches asked for, else those with a plan.
	cols := slices.Clone(o.Niches)
	if len(cols) == 0 {
		for _, c := range cells {
			if !slices.Contains(cols, c.GetNiche()) {
				cols = append(cols, c.GetNiche())
			}
		}
	}
	slices.Sort(cols)
	if len(cols) == 0 {
		fmt.Fprintf(a.env.Stderr, "No plans you can see in %s.\n", o.Country)
		return nil
	}
	type row struct{ code, name string }
	var rows []row
	names := map[string]string{}
	for _, p := range provinces {
		rows = append(rows, row{p.GetCode(), p.GetDisplayName()})
		names[p.GetCode()] = p.GetDisplayName()
	}
	counts := map[string]map[exchangev1.Niche]int{}
	for _, c := range cells {
		sub := c.GetSubdivision()
		if counts[sub] == nil {
			counts[sub] = map[exchangev1.Niche]int{}
			if _, listed := names[sub]; !listed {
				rows = append(rows, row{sub, c.GetDisplayName()})
				names[sub] = c.GetDisplayName()
			}
		}
		counts[sub][c.GetNiche()] = len(c.GetAgencies())
	}
	// The whole country ("") first, then provinces by code.
	slices.SortFunc(rows, func(x, y row) int { return geo.CompareCodes(x.code, y.code) })
	header := []string{"PROVINCE", "NAME"}
	for _, n := range cols {
		header = append(header, nicheNames.name(protoreflect.EnumNumber(n)))
	}
	table := make([][]string, 0, len(rows))
	for _, r := range rows {
		line := []string{cmp.Or(r.code, o.Country), r.name}
		if r.code == "" {
			line[1] = "(whole country)"
		}
		for _, n := range cols {
			v := "-"
			if k := counts[r.code][n]; k > 0 {
				v = strconv.Itoa(k)
			}
			line = append(line, v)
		}
		table = append(table, line)
	}
	title := "Coverage of " + o.Country
	if o.Period != nil {
		title += ", " + formatPeriod(o.Period)
	}
	fmt.Fprintln(a.env.Stdout, title+": agencies with plans per province and niche (- for none)")
	return printTable(a.env.Stdout, header, table)
}
