package ui

import (
	"cmp"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// countryPattern is an ISO 3166-1 alpha-2 code, as the plans service takes.
var countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)

// coverageData is the coverage page: provinces × niches for a country and
// a year, from the plans service's coverage, gap and overlap views.
type coverageData struct {
	Country, Period string
	// Niches are the grid's columns: the niches some visible plan has.
	Niches []string
	Rows   []coverageRow
	// Overlaps are pairs of plans of different agencies that meet in
	// niche, place and time.
	Overlaps []*exchangev1.PlanOverlap
	// Gaps counts the grid's cells no plan covers.
	Gaps int
}

// coverageRow is one province (or the whole country, Code "") of the grid.
type coverageRow struct {
	Code, Name string
	Cells      []coverageCell
}

// coverageCell is one province and niche.
type coverageCell struct {
	Niche string
	// Agencies are the ids of the agencies with plans there.
	Agencies []string
	Plans    int32
	// Class is "overlap" (two or more agencies), "covered" (one), "gap"
	// (none, and the gaps view lists it) or "none".
	Class string
}

// coverage serves the coverage page.
func (d *Dashboard) coverage(w http.ResponseWriter, r *http.Request) {
	p := d.newPage("Coverage", "coverage")
	ctx, cancel := callContext(r)
	defer cancel()
	country := strings.ToUpper(strings.TrimSpace(r.URL.Query().Get("country")))
	if country == "" {
		country = d.cfg.Country
	}
	if country == "" && d.cfg.Agency != "" {
		if a, err := d.cfg.Client.Directory.GetAgency(ctx, d.cfg.Agency); err == nil && len(a.GetCountries()) > 0 {
			country = a.GetCountries()[0]
		}
	}
	period := strings.TrimSpace(r.URL.Query().Get("period"))
	if period == "" {
		period = cmp.Or(d.cfg.Period, strconv.Itoa(d.cfg.Now().Year()))
	}
	data := &coverageData{Country: country, Period: period}
	p.Data = data
	p.Title = "Coverage of " + cmp.Or(country, "a country") + ", " + period
	year, err := strconv.Atoi(period)
	switch {
	case country == "":
		p.Error = "country: choose a country (two letters, such as KH)"
		d.render(w, http.StatusOK, "coverage", p)
		return
	case !countryPattern.MatchString(country):
		p.Error = "country: " + strconv.Quote(country) + " is not a two-letter ISO 3166-1 code such as KH"
		d.render(w, http.StatusBadRequest, "coverage", p)
		return
	case err != nil || len(period) != 4 || year < 1900:
		p.Error = "period: " + strconv.Quote(period) + " is not a year such as 2027"
		d.render(w, http.StatusBadRequest, "coverage", p)
		return
	}
	dp := &exchangev1.DatePeriod{
		Start: &exchangev1.CalendarDate{Year: int32(year), Month: 1, Day: 1},
		End:   &exchangev1.CalendarDate{Year: int32(year), Month: 12, Day: 31},
	}
	cov, err := d.cfg.Client.Plans.Coverage(ctx, &exchangev1.GetCoverageRequest{Country: country, Period: dp})
	if err != nil {
		code, msg := httpStatus(err)
		p.Error = msg
		d.render(w, code, "coverage", p)
		return
	}
	var niches []exchangev1.Niche
	for _, c := range cov.GetCells() {
		if !slices.Contains(niches, c.GetNiche()) {
			niches = append(niches, c.GetNiche())
		}
	}
	slices.Sort(niches)
	gaps := map[string]bool{}
	if len(niches) > 0 {
		resp, err := d.cfg.Client.Plans.Gaps(ctx, &exchangev1.FindGapsRequest{Country: country, Period: dp, Niches: niches})
		if err != nil {
			code, msg := httpStatus(err)
			p.Error = msg
			d.render(w, code, "coverage", p)
			return
		}
		for _, g := range resp.GetGaps() {
			gaps[g.GetSubdivision()+"|"+nicheText(g.GetNiche())] = true
		}
	}
	data.Overlaps, err = client.Collect(d.cfg.Client.Plans.Overlaps(ctx, &exchangev1.FindOverlapsRequest{Country: country, Period: dp}))
	if err != nil {
		code, msg := httpStatus(err)
		p.Error = msg
		d.render(w, code, "coverage", p)
		return
	}
	provinces, err := client.Collect(d.cfg.Client.Directory.Locations(ctx, &exchangev1.ListLocationsRequest{Country: country, PageSize: 1000}))
	if err != nil {
		code, msg := httpStatus(err)
		p.Error = msg
		d.render(w, code, "coverage", p)
		return
	}
	for _, n := range niches {
		data.Niches = append(data.Niches, nicheText(n))
	}
	data.Rows = coverageRows(country, provinces, cov.GetCells(), niches, gaps)
	for _, row := range data.Rows {
		for _, c := range row.Cells {
			if c.Class == "gap" {
				data.Gaps++
			}
		}
	}
	d.render(w, http.StatusOK, "coverage", p)
}

// coverageRows lays the coverage cells out as the grid: every province
// the directory knows (and any a cell names besides, such as the whole
// country), by code, and one cell per niche.
func coverageRows(country string, provinces []*exchangev1.Location, cells []*exchangev1.PlanCoverageCell, niches []exchangev1.Niche, gaps map[string]bool) []coverageRow {
	names := map[string]string{}
	var codes []string
	for _, l := range provinces {
		if _, seen := names[l.GetCode()]; !seen {
			codes = append(codes, l.GetCode())
		}
		names[l.GetCode()] = l.GetDisplayName()
	}
	byCell := map[string]*exchangev1.PlanCoverageCell{}
	for _, c := range cells {
		if _, seen := names[c.GetSubdivision()]; !seen {
			codes = append(codes, c.GetSubdivision())
			names[c.GetSubdivision()] = c.GetDisplayName()
		}
		byCell[c.GetSubdivision()+"|"+nicheText(c.GetNiche())] = c
	}
	slices.SortFunc(codes, geo.CompareCodes)
	rows := make([]coverageRow, 0, len(codes))
	for _, code := range codes {
		row := coverageRow{Code: code, Name: names[code]}
		if code == "" {
			row.Code, row.Name = country, "Whole country"
		}
		for _, n := range niches {
			key := code + "|" + nicheText(n)
			cell := coverageCell{Niche: nicheText(n), Class: "none"}
			if c := byCell[key]; c != nil {
				for _, a := range c.GetAgencies() {
					cell.Agencies = append(cell.Agencies, client.ResourceID(a))
				}
				cell.Plans = c.GetPlanCount()
			}
			switch {
			case len(cell.Agencies) >= 2:
				cell.Class = "overlap"
			case len(cell.Agencies) == 1:
				cell.Class = "covered"
			case gaps[key]:
				cell.Class = "gap"
			}
			row.Cells = append(row.Cells, cell)
		}
		rows = append(rows, row)
	}
	return rows
}
