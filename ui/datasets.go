package ui

import (
	"cmp"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// maxPeriods is how many of a dataset's latest periods the page shows.
const maxPeriods = 12

// idPattern is an agency or dataset id.
var idPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}[a-z0-9]$`)

// datasetRow is one dataset in the list.
type datasetRow struct {
	Owner, ID, Title, PeriodType string
	Contributors, Locked         int
}

// datasets serves the list of the datasets the caller can see.
func (d *Dashboard) datasets(w http.ResponseWriter, r *http.Request) {
	p := d.newPage("Datasets", "datasets")
	ctx, cancel := callContext(r)
	defer cancel()
	list, err := client.Collect(d.cfg.Client.Datasets.Datasets(ctx))
	var rows []datasetRow
	for _, ds := range list {
		rows = append(rows, datasetRow{
			Owner: client.ResourceID(ds.GetOwner()), ID: client.ResourceID(ds.GetName()), Title: ds.GetTitle(),
			PeriodType: enumText(ds.GetPeriodType(), "PERIOD_TYPE_"), Contributors: len(ds.GetContributors()), Locked: len(ds.GetLocks()),
		})
	}
	p.Data = rows
	code := http.StatusOK
	if err != nil {
		code, p.Error = httpStatus(err)
	}
	d.render(w, code, "datasets", p)
}

// datasetData is one dataset's page.
type datasetData struct {
	Dataset      *exchangev1.Dataset
	Owner, ID    string
	Contributors string
	// Periods are the latest periods with rows or a lock, oldest first.
	Periods []datasetPeriod
	// Completeness is one row per contributor, one cell per period.
	Completeness []completenessRow
	// Measure is the measure charted; Measures are those that can be.
	Measure  string
	Measures []string
	Chart    *barChart
	// Suppressed is how many period totals the exchange hid, below
	// Threshold.
	Suppressed, Threshold int32
	// RoundingBase is, for an agency outside the dataset's readers, the
	// base its figures were rounded to (docs/disclosure.md); 0 for a
	// reader, who sees exact totals.
	RoundingBase int32
}

// datasetPeriod is a period label and whether it is locked.
type datasetPeriod struct {
	Label    string
	Locked   bool
	LockedBy string
}

// completenessRow is one contributor's reporting across periods.
type completenessRow struct {
	Contributor string
	Cells       []completenessCell
}

// completenessCell is what one contributor reported for one period.
type completenessCell struct {
	Period  string
	Rows    int64
	Missing string
	// Reported is true when the contributor has rows in the period.
	Reported bool
}

// dataset serves one dataset's completeness, locks and chart.
func (d *Dashboard) dataset(w http.ResponseWriter, r *http.Request) {
	owner, id := r.PathValue("owner"), r.PathValue("id")
	p := d.newPage("Dataset "+owner+"/"+id, "datasets")
	data := &datasetData{Owner: owner, ID: id}
	p.Data = data
	if !idPattern.MatchString(owner) || !idPattern.MatchString(id) {
		p.Error = "dataset: " + strconv.Quote(owner+"/"+id) + " is not an agency id and a dataset id"
		d.render(w, http.StatusBadRequest, "dataset", p)
		return
	}
	ctx, cancel := callContext(r)
	defer cancel()
	name := client.DatasetName(owner, id)
	fail := func(err error) {
		code, msg := httpStatus(err)
		p.Error = msg
		d.render(w, code, "dataset", p)
	}
	ds, err := d.cfg.Client.Datasets.Get(ctx, name)
	if err != nil {
		fail(err)
		return
	}
	data.Dataset = ds
	data.Contributors = idList(ds.GetContributors())
	p.Title = cmp.Or(ds.GetTitle(), p.Title)
	for _, m := range ds.GetSchema().GetMeasures() {
		if m.GetType() == exchangev1.MeasureType_MEASURE_TYPE_INTEGER || m.GetType() == exchangev1.MeasureType_MEASURE_TYPE_DECIMAL {
			data.Measures = append(data.Measures, m.GetKey())
		}
	}
	data.Measure = r.URL.Query().Get("measure")
	if data.Measure == "" && len(data.Measures) > 0 {
		data.Measure = data.Measures[0]
	}
	if data.Measure != "" && !slices.Contains(data.Measures, data.Measure) {
		p.Error = "measure: " + strconv.Quote(data.Measure) + " is not a numeric measure of this dataset"
		d.render(w, http.StatusBadRequest, "dataset", p)
		return
	}
	agg, err := d.cfg.Client.Datasets.Aggregate(ctx, &exchangev1.AggregateDatasetRowsRequest{
		Dataset: name, GroupBy: []string{"period"}, SuppressBelow: ds.GetSuppressionThreshold(),
	})
	if err != nil {
		fail(err)
		return
	}
	data.Suppressed, data.Threshold = agg.GetSuppressedCells(), agg.GetSuppressionThreshold()
	data.RoundingBase = agg.GetRoundingBase()
	// The periods: those with rows, and locked ones. A period whose
	// total is a small cell is missing from agg; the labels come from a
	// second aggregate without a threshold (for a caller outside the
	// readers, the exchange leaves out periods whose rounded totals are
	// all zero). Only the labels are used.
	counts, err := d.cfg.Client.Datasets.Aggregate(ctx, &exchangev1.AggregateDatasetRowsRequest{Dataset: name, GroupBy: []string{"period"}})
	if err != nil {
		fail(err)
		return
	}
	var labels []string
	for _, c := range counts.GetCells() {
		labels = append(labels, c.GetGroup()["period"])
	}
	locks := map[string]*exchangev1.PeriodLock{}
	for _, l := range ds.GetLocks() {
		locks[l.GetPeriod()] = l
		labels = append(labels, l.GetPeriod())
	}
	totals := map[string]float64{}
	for _, c := range agg.GetCells() {
		label := c.GetGroup()["period"]
		labels = append(labels, label)
		totals[label] = c.GetSums()[data.Measure]
	}
	slices.Sort(labels)
	labels = slices.Compact(labels)
	if len(labels) > maxPeriods {
		labels = labels[len(labels)-maxPeriods:]
	}
	for _, l := range labels {
		dp := datasetPeriod{Label: l}
		if lock := locks[l]; lock != nil {
			dp.Locked, dp.LockedBy = true, client.ResourceID(lock.GetLockedBy())
		}
		data.Periods = append(data.Periods, dp)
	}
	byContributor := map[string]*completenessRow{}
	var order []string
	for _, l := range labels {
		resp, err := d.cfg.Client.Datasets.Completeness(ctx, name, l)
		if err != nil {
			fail(err)
			return
		}
		for _, c := range resp.GetContributors() {
			who := client.ResourceID(c.GetContributor())
			row := byContributor[who]
			if row == nil {
				row = &completenessRow{Contributor: who}
				byContributor[who] = row
				order = append(order, who)
			}
			row.Cells = append(row.Cells, completenessCell{Period: l, Rows: c.GetRows(), Reported: c.GetRows() > 0, Missing: strings.Join(c.GetMissingLocations(), ", ")})
		}
	}
	slices.Sort(order)
	for _, who := range order {
		data.Completeness = append(data.Completeness, *byContributor[who])
	}
	if data.Measure != "" {
		var bars []bar
		for _, l := range labels {
			v, ok := totals[l]
			bars = append(bars, bar{Label: l, Value: v, Hidden: !ok})
		}
		data.Chart = newBarChart("Total "+data.Measure+" by period", bars)
	}
	d.render(w, http.StatusOK, "dataset", p)
}
