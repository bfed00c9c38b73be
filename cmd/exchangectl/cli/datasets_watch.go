package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/rowfile"
)

// datasetsWatchOptions are the inputs of `datasets watch`.
type datasetsWatchOptions struct {
	app     *app
	Dataset string
	// From is the revision to follow changes after; 0 means from now.
	From int64
	// FromGiven is set when --from was given; StartOver is --start-over.
	FromGiven, StartOver bool
}

const datasetsWatchLong = `Print one line per row change of a dataset as it happens: the row's revision,
"written" or "deleted", its period, location and contributor, its category
values and its measures. With --json, one Row per line in the API's protobuf
JSON form (JSON lines, as 'datasets pull --format jsonl' writes them; deleted
rows have "deleted": true).

The watch runs until interrupted (Ctrl-C), or for --timeout when given, and
then exits 0. When the connection breaks it says so on stderr, reconnects by
itself and resumes where it was: no change is lost. The rows of the one
revision a broken stream was sending may be printed again; apply them as
upserts keyed by contributor, period, location and categories, as the exchange
stores them, and a repeat changes nothing.

--from REVISION starts after that revision (for example the one 'datasets
pull' printed), replaying what changed since; without it the watch starts
now.

` + watchResumeHelp

// newDatasetsWatchCmd is `exchangectl datasets watch`.
func newDatasetsWatchCmd(a *app, runF func(*datasetsWatchOptions) error) *cobra.Command {
	opts := &datasetsWatchOptions{app: a}
	cmd := &cobra.Command{
		Use:   "watch DATASET [--from REVISION]",
		Short: "Print a dataset's row changes as they happen, until interrupted",
		Long:  datasetsWatchLong,
		Example: "  exchangectl datasets watch ilo/returns\n" +
			"  exchangectl --json datasets watch ilo/returns --from 4211 >> changes.jsonl",
		Args:        exactArgs("DATASET"),
		Annotations: longRunning,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dataset = args[0]
			if _, err := parseDatasetArg(opts.Dataset); err != nil {
				return err
			}
			if opts.From < 0 {
				return usageErrorf("--from %d: want a revision, 0 or more", opts.From)
			}
			opts.FromGiven = cmd.Flags().Changed("from")
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsWatch(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int64Var(&opts.From, "from", 0, "follow changes after this revision (default: from now)")
	addStartOverFlag(cmd, &opts.StartOver)
	return cmd
}

// runDatasetsWatch prints row changes until the context ends.
func runDatasetsWatch(ctx context.Context, o *datasetsWatchOptions) error {
	name, err := o.app.datasetName(o.Dataset)
	if err != nil {
		return err
	}
	c, err := o.app.connectReadOnly(ctx)
	if err != nil {
		return err
	}
	resume, err := o.app.watchResumeOptions(rowsWatchCursorStart+name, o.FromGiven, o.StartOver)
	if err != nil {
		return err
	}
	w := o.app.env.Stdout
	if o.app.stderrIsTerminal() && !o.app.global.JSON {
		fmt.Fprintf(o.app.env.Stderr, "Watching the rows of %s; Ctrl-C to stop.\n", name)
	}
	jsonl := rowfile.NewJSONLWriter(w)
	err = c.Datasets.WatchRows(ctx, name, o.From, func(m *exchangev1.WatchDatasetRowsResponse) error {
		for _, r := range m.GetRows() {
			if o.app.global.JSON {
				if err := jsonl.Write(r); err != nil {
					return err
				}
				continue
			}
			if _, err := fmt.Fprintln(w, rowLine(r)); err != nil {
				return err
			}
		}
		return jsonl.Flush()
	}, append(resume, client.OnReconnect(func(err error, wait time.Duration, rev int64) {
		fmt.Fprintf(o.app.env.Stderr, "exchangectl: watch interrupted (%v); reconnecting in %v after revision %d\n",
			err, wait.Round(time.Millisecond), rev)
	}))...)
	_, bounded := ctx.Deadline()
	if ctx.Err() != nil || (bounded && status.Code(err) == codes.DeadlineExceeded) {
		// Interrupted, or --timeout reached: the normal end of a watch.
		return nil
	}
	return err
}

// rowLine is the human form of one changed row.
func rowLine(r *exchangev1.Row) string {
	kind := "written"
	if r.GetDeleted() {
		kind = "deleted"
	}
	parts := []string{fmt.Sprintf("%-8d %-7s %s %s %s", r.GetRevision(), kind, r.GetPeriod(), r.GetLocation(), client.ResourceID(r.GetContributor()))}
	for _, k := range slices.Sorted(maps.Keys(r.GetCategories())) {
		parts = append(parts, k+"="+r.GetCategories()[k])
	}
	for _, k := range slices.Sorted(maps.Keys(r.GetValues())) {
		parts = append(parts, k+"="+valueString(r.GetValues()[k]))
	}
	return strings.Join(parts, " ")
}

// valueString is a measure's value for people.
func valueString(v *exchangev1.Value) string {
	switch x := v.GetKind().(type) {
	case *exchangev1.Value_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *exchangev1.Value_DecimalValue:
		return strconv.FormatFloat(x.DecimalValue, 'g', -1, 64)
	case *exchangev1.Value_TextValue:
		return strconv.Quote(x.TextValue)
	case *exchangev1.Value_DateValue:
		return formatDate(x.DateValue)
	case *exchangev1.Value_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *exchangev1.Value_CodeValue:
		return x.CodeValue
	}
	return "-"
}
