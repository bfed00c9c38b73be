package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// datasetsAggregateOptions are the inputs of `datasets aggregate`.
type datasetsAggregateOptions struct {
	app           *app
	Dataset       string
	By            []string
	From, To      string
	Locations     []string
	SuppressBelow int32
}

// newDatasetsAggregateCmd is `exchangectl datasets aggregate`.
func newDatasetsAggregateCmd(a *app, runF func(*datasetsAggregateOptions) error) *cobra.Command {
	opts := &datasetsAggregateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "aggregate DATASET [--by DIMENSIONS] [--from P] [--to P] [--location L] [--suppress-below K]",
		Short: "Total a dataset's measures across contributors, grouped by dimensions",
		Long: "Total the integer and decimal measures of a dataset's rows across\n" +
			"contributors, one line per group of --by dimensions (period, location,\n" +
			"contributor or category keys, comma-separated; none gives one grand total),\n" +
			"with the number of rows summed.\n\n" +
			"--suppress-below K hides the groups with a total below K (small-cell\n" +
			"suppression, so that individuals cannot be singled out); stderr says how many\n" +
			"were hidden. Members outside the dataset's readers get aggregates only when\n" +
			"the owner made them public, and then totals of rows whose values below the\n" +
			"dataset's threshold (at least 5) were rounded at random to 0 or the\n" +
			"threshold, without row counts; stderr says so (docs/disclosure.md).\n" +
			"With --json, the API's AggregateDatasetRowsResponse.",
		Example: "  exchangectl datasets aggregate ilo/returns --by location,sex --suppress-below 5\n" +
			"  exchangectl datasets aggregate ilo/returns --by period --from 2026-01 --to 2026-06 --location KH",
		Args: exactArgs("DATASET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dataset = args[0]
			if _, err := opts.request(""); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsAggregate(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.By, "by", nil, "group by these dimensions: period, location, contributor or category keys")
	f.StringVar(&opts.From, "from", "", "only periods from this one on, like 2026-01")
	f.StringVar(&opts.To, "to", "", "only periods up to this one, like 2026-03")
	f.StringSliceVar(&opts.Locations, "location", nil, "only these locations: countries (KH), provinces (KH-12) or districts")
	f.Int32Var(&opts.SuppressBelow, "suppress-below", 0, "hide groups with a total below this (0 to 1000)")
	return cmd
}

// request returns the aggregate request for the dataset named name (the
// DATASET argument as app.datasetName resolves it; empty to check the
// argument and flags only), or a usage error.
func (o *datasetsAggregateOptions) request(name string) (*exchangev1.AggregateDatasetRowsRequest, error) {
	_, err := parseDatasetArg(o.Dataset)
	if err != nil {
		return nil, err
	}
	req := &exchangev1.AggregateDatasetRowsRequest{Dataset: name, SuppressBelow: o.SuppressBelow}
	if o.SuppressBelow < 0 || o.SuppressBelow > 1000 {
		return nil, usageErrorf("--suppress-below %d: want 0 to 1000", o.SuppressBelow)
	}
	for _, b := range o.By {
		b = strings.TrimSpace(b)
		switch {
		case !categoryKeyPattern.MatchString(b):
			return nil, usageErrorf("--by %q: want period, location, contributor or a category key", b)
		case slices.Contains(req.GroupBy, b):
			return nil, usageErrorf("--by %s given twice", b)
		}
		req.GroupBy = append(req.GroupBy, b)
	}
	if req.PeriodFrom, err = periodLabel("from", o.From); err != nil {
		return nil, err
	}
	if req.PeriodTo, err = periodLabel("to", o.To); err != nil {
		return nil, err
	}
	if req.Locations, err = locationCodes(o.Locations); err != nil {
		return nil, err
	}
	return req, nil
}

// runDatasetsAggregate prints the totals.
func runDatasetsAggregate(ctx context.Context, o *datasetsAggregateOptions) error {
	name, err := o.app.datasetName(o.Dataset)
	if err != nil {
		return err
	}
	req, err := o.request(name)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Datasets.Aggregate(ctx, req)
	if err != nil {
		return err
	}
	if o.app.global.JSON {
		return printJSON(o.app.env.Stdout, resp)
	}
	measures := map[string]bool{}
	for _, cell := range resp.GetCells() {
		for k := range cell.GetSums() {
			measures[k] = true
		}
	}
	keys := slices.Sorted(maps.Keys(measures))
	rounded := resp.GetRoundingBase() > 0 // the public view counts no rows
	header := slices.Concat(upper(req.GetGroupBy()), upper(keys))
	if !rounded {
		header = append(header, "ROWS")
	}
	var rows [][]string
	for _, cell := range resp.GetCells() {
		var row []string
		for _, g := range req.GetGroupBy() {
			row = append(row, orDash(cell.GetGroup()[g]))
		}
		for _, k := range keys {
			row = append(row, formatNumber(cell.GetSums()[k]))
		}
		if !rounded {
			row = append(row, strconv.FormatInt(cell.GetRows(), 10))
		}
		rows = append(rows, row)
	}
	if err := printTable(o.app.env.Stdout, header, rows); err != nil {
		return err
	}
	if b := resp.GetRoundingBase(); rounded {
		fmt.Fprintf(o.app.env.Stderr, "Outside the dataset's readers: totals of rows whose values below %d were rounded at random to 0 or %d.\n", b, b)
	}
	switch n := resp.GetSuppressedCells(); {
	case n > 0:
		fmt.Fprintf(o.app.env.Stderr, "%d %s hidden: a total below %d.\n", n, plural(int(n), "group", "groups"), resp.GetSuppressionThreshold())
	case len(rows) == 0:
		fmt.Fprintln(o.app.env.Stderr, "No rows found.")
	}
	return nil
}

// upper upper-cases table headers.
func upper(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strings.ToUpper(s)
	}
	return out
}
