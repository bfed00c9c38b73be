package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// datasetsPeriodOptions are the inputs of `datasets lock`, `datasets
// unlock` and `datasets completeness`.
type datasetsPeriodOptions struct {
	app     *app
	Dataset string
	Period  string
	// Reason is why a period is unlocked.
	Reason string
}

// parse takes the DATASET and PERIOD arguments.
func (o *datasetsPeriodOptions) parse(args []string) error {
	o.Dataset, o.Period = args[0], strings.TrimSpace(args[1])
	if _, err := parseDatasetArg(o.Dataset); err != nil {
		return err
	}
	if o.Period == "" || len(o.Period) > 16 {
		return usageErrorf("invalid period %q: want a label such as 2026-03, 2026-Q1, 2026 or FY2026", args[1])
	}
	return nil
}

// newDatasetsLockCmd is `exchangectl datasets lock`.
func newDatasetsLockCmd(a *app, runF func(*datasetsPeriodOptions) error) *cobra.Command {
	opts := &datasetsPeriodOptions{app: a}
	return &cobra.Command{
		Use:   "lock DATASET PERIOD",
		Short: "Approve a period: no contributor can change its rows (owner)",
		Long: "Lock (approve) a period of a dataset, such as 2026-03: from then on no\n" +
			"contributor can write or delete its rows, until the owner unlocks it with a\n" +
			"reason. 'datasets completeness' first shows who has reported.",
		Example: "  exchangectl datasets completeness returns 2026-03 && exchangectl datasets lock returns 2026-03",
		Args:    exactArgs("DATASET", "PERIOD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.parse(args); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsLock(cmd.Context(), opts, true)
		},
	}
}

// newDatasetsUnlockCmd is `exchangectl datasets unlock`.
func newDatasetsUnlockCmd(a *app, runF func(*datasetsPeriodOptions) error) *cobra.Command {
	opts := &datasetsPeriodOptions{app: a}
	cmd := &cobra.Command{
		Use:   "unlock DATASET PERIOD --reason TEXT",
		Short: "Reopen a locked period, with a reason (owner)",
		Long: "Unlock a locked period so that contributors can correct its rows. The reason\n" +
			"is kept in the dataset's lock history, which 'datasets get' shows.",
		Example: "  exchangectl datasets unlock returns 2026-03 --reason \"IOM corrects KH-12 after the audit\"",
		Args:    exactArgs("DATASET", "PERIOD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.parse(args); err != nil {
				return err
			}
			if opts.Reason = strings.TrimSpace(opts.Reason); opts.Reason == "" {
				return usageErrorf("--reason is required: say why the approved period is reopened")
			}
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsLock(cmd.Context(), opts, false)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why the period is reopened (required; kept in the lock history)")
	return cmd
}

// runDatasetsLock locks or unlocks the period and confirms it.
func runDatasetsLock(ctx context.Context, o *datasetsPeriodOptions, lock bool) error {
	name, err := o.app.datasetName(o.Dataset)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	var d *exchangev1.Dataset
	if lock {
		d, err = c.Datasets.Lock(ctx, name, o.Period)
	} else {
		d, err = c.Datasets.Unlock(ctx, name, o.Period, o.Reason)
	}
	if err != nil {
		return err
	}
	if o.app.global.JSON {
		return printJSON(o.app.env.Stdout, d)
	}
	if lock {
		_, err = fmt.Fprintf(o.app.env.Stdout, "Locked %s of %s: contributors can no longer change its rows.\n", o.Period, d.GetName())
	} else {
		_, err = fmt.Fprintf(o.app.env.Stdout, "Unlocked %s of %s: contributors can change its rows again.\n", o.Period, d.GetName())
	}
	return err
}

// newDatasetsCompletenessCmd is `exchangectl datasets completeness`.
func newDatasetsCompletenessCmd(a *app, runF func(*datasetsPeriodOptions) error) *cobra.Command {
	opts := &datasetsPeriodOptions{app: a}
	return &cobra.Command{
		Use:   "completeness DATASET PERIOD",
		Short: "Show which contributors have reported for a period, and which locations are missing",
		Long: "For one period, list each contributor (agencies named as contributors and\n" +
			"members of contributor groups, and anyone else with rows): how many rows it\n" +
			"has, the locations it has submitted, and the dataset's expected locations it\n" +
			"has not. A last line says whether the period is locked. With --json, the\n" +
			"API's GetDatasetCompletenessResponse.",
		Example: "  exchangectl datasets completeness returns 2026-03",
		Args:    exactArgs("DATASET", "PERIOD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.parse(args); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsCompleteness(cmd.Context(), opts)
		},
	}
}

// runDatasetsCompleteness prints who has reported.
func runDatasetsCompleteness(ctx context.Context, o *datasetsPeriodOptions) error {
	name, err := o.app.datasetName(o.Dataset)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Datasets.Completeness(ctx, name, o.Period)
	if err != nil {
		return err
	}
	if o.app.global.JSON {
		return printJSON(o.app.env.Stdout, resp)
	}
	var rows [][]string
	reported := 0
	for _, cc := range resp.GetContributors() {
		if cc.GetRows() > 0 {
			reported++
		}
		rows = append(rows, []string{
			client.ResourceID(cc.GetContributor()),
			strconv.FormatInt(cc.GetRows(), 10),
			orDash(strings.Join(cc.GetSubmittedLocations(), ",")),
			orDash(strings.Join(cc.GetMissingLocations(), ",")),
		})
	}
	if err := printTable(o.app.env.Stdout, []string{"CONTRIBUTOR", "ROWS", "SUBMITTED", "MISSING"}, rows); err != nil {
		return err
	}
	state := "open"
	if resp.GetLocked() {
		state = "locked"
	}
	_, err = fmt.Fprintf(o.app.env.Stdout, "%d of %d %s reported for %s; the period is %s.\n",
		reported, len(rows), plural(len(rows), "contributor has", "contributors have"), o.Period, state)
	return err
}
