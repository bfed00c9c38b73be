package cli

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/rowfile"
)

// datasetsPullOptions are the inputs of `datasets pull`.
type datasetsPullOptions struct {
	app     *app
	Dataset string
	Since   int64
	Format  string
	// Out is the file to write, "" or "-" for standard output.
	Out          string
	From, To     string
	Locations    []string
	Contributors []string
	// Categories are key=value filters.
	Categories []string
	Tombstones bool
	// RawText writes text cells as stored, without the apostrophe that
	// keeps spreadsheets from running them as formulas.
	RawText bool
	// StartOver drops the position a pull into Out kept in the field
	// file, and its partial file, and pulls from the start.
	StartOver bool
}

const datasetsPullLong = `Write a dataset's rows to standard output or to a file (--out FILE), whole or,
with --since REVISION, only the rows changed after that revision.

Formats (--format):
  csv    (the default) a header row, then one row per line: period, location,
         contributor, one column per category and one per measure, in schema
         order; spreadsheets open it as it is.
  hxl    the same with a row of HXL hashtags under the header (#date+period,
         #adm1+code, #org+code and the schema's tags), for HDX and other HXL
         tools.
  jsonl  one Row per line in the API's protobuf JSON form, with every field
         (revision and update time included).

In csv and hxl, a text, code or category cell that a spreadsheet would run as
a formula (it starts with =, +, -, @, a tab or a carriage return) is written
with an apostrophe in front, as is one that starts with an apostrophe, so
that a text another agency wrote cannot act in your spreadsheet; 'datasets
push' takes the apostrophe off again. --raw-text writes such cells as stored,
for files no spreadsheet will open.

Filters: --from and --to bound the periods (inclusive, in the dataset's form:
2026-03, 2026-Q1, 2026 or FY2026); --location keeps those locations, a country
(KH) keeping all its provinces and districts and a province its districts;
--contributor keeps those agencies' rows; --category key=value keeps the rows
with that value. Each list flag may be repeated or comma-separated.

Incremental pulls: every pull ends by printing its revision on stderr (never
on standard output, which holds only the data). Pull again with --since that
revision to get exactly what changed meanwhile, each changed row in its new
form. Rows deleted since are left out unless --tombstones is given: then they
come as tombstones (a "deleted" column with true in CSV, "deleted": true in
JSON lines), which 'datasets push' replays as deletions.

With --out, the rows go to a temporary file beside FILE, which becomes FILE
only when the pull is complete: an interrupted pull leaves no half file, and
FILE keeps its previous contents. The file is readable by you only. A FILE
that is a device, a named pipe or a socket (/dev/null, /dev/stdout, a FIFO) is
written through as the rows come, never replaced; a symbolic link is never
replaced either: it is followed, and the regular file it leads to replaced
as above (a link to nothing or to a directory is refused). When the connection
breaks, the pull resumes where it was, without repeating or losing a row; on
a terminal it shows progress.

With a field file (--field-file or EXCHANGE_FIELD_FILE) and --out FILE, the
pull also survives the end of exchangectl itself (Ctrl-C, a lost link it gave
up on, a crash, a machine switched off): the rows go to a hidden partial file
beside FILE, synced to disk after each message of rows together with how far
the pull got, which the field file keeps. Run the same command again and it
resumes there, each row in FILE once; FILE is replaced only once the pull is
complete, and the field file then forgets the pull, so that the next run
pulls again from the start. --start-over forgets an interrupted pull and
begins again. A pull to standard output, a device or a pipe cannot be taken
back to where it was and is not resumed.`

// newDatasetsPullCmd is `exchangectl datasets pull`.
func newDatasetsPullCmd(a *app, runF func(*datasetsPullOptions) error) *cobra.Command {
	opts := &datasetsPullOptions{app: a}
	cmd := &cobra.Command{
		Use:   "pull DATASET [--since REVISION] [--format csv|hxl|jsonl] [--out FILE] [filters]",
		Short: "Write a dataset's rows, whole or changed since a revision, as CSV, HXL or JSON lines",
		Long:  datasetsPullLong,
		Example: "  exchangectl datasets pull ilo/returns --format hxl --out returns.csv\n" +
			"  exchangectl datasets pull ilo/returns --from 2026-01 --to 2026-03 --location KH-12 --category sex=female\n" +
			"  exchangectl datasets pull ilo/returns --since 4211 --tombstones --format jsonl >> changes.jsonl",
		Args:        exactArgs("DATASET"),
		Annotations: longRunning,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dataset = args[0]
			if _, err := opts.request(""); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsPull(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&opts.Since, "since", 0, "only rows changed after this revision (the one the previous pull printed)")
	f.StringVar(&opts.Format, "format", formatCSV, "csv, hxl (CSV with HXL hashtags) or jsonl")
	f.StringVarP(&opts.Out, "out", "o", "", "write to FILE (replaced only once the pull is complete; devices and pipes written through) instead of standard output")
	f.StringVar(&opts.From, "from", "", "only periods from this one on, like 2026-01")
	f.StringVar(&opts.To, "to", "", "only periods up to this one, like 2026-03")
	f.StringSliceVar(&opts.Locations, "location", nil, "only these locations: countries (KH), provinces (KH-12) or districts")
	f.StringSliceVar(&opts.Contributors, "contributor", nil, "only rows of these agencies (ids)")
	f.StringSliceVar(&opts.Categories, "category", nil, "only rows with this category value, key=value, like sex=female")
	f.BoolVar(&opts.Tombstones, "tombstones", false, "with --since: include rows deleted since, as tombstones")
	f.BoolVar(&opts.RawText, "raw-text", false, "csv and hxl: write text that starts like a spreadsheet formula as stored, without a guarding apostrophe")
	f.BoolVar(&opts.StartOver, "start-over", false, "with a field file: forget an interrupted pull into --out FILE and pull from the start")
	return cmd
}

// locationPattern is the syntax of a location code in filters.
var locationPattern = regexp.MustCompile(`^[A-Z]{2}(-[A-Z0-9]{1,3}(\.[A-Za-z0-9-]{1,16})?)?$`)

// categoryKeyPattern is the syntax of a category key.
var categoryKeyPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// locationCodes upper-cases the country and province part of each code
// and checks it.
func locationCodes(list []string) ([]string, error) {
	var out []string
	for _, s := range list {
		code := strings.TrimSpace(strings.TrimPrefix(s, "locations/"))
		if province, district, ok := strings.Cut(code, "."); ok {
			code = strings.ToUpper(province) + "." + district
		} else {
			code = strings.ToUpper(code)
		}
		if !locationPattern.MatchString(code) {
			return nil, usageErrorf("invalid location %q: want a country (KH), a province (KH-12) or a district (KH-12.1201)", s)
		}
		out = append(out, code)
	}
	return out, nil
}

// periodLabel checks a period flag loosely; the exchange checks it
// against the dataset's period type.
func periodLabel(flag, s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > 16 {
		return "", usageErrorf("--%s %q: want a period label such as 2026-03, 2026-Q1, 2026 or FY2026", flag, s)
	}
	return s, nil
}

// request returns the pull request for the dataset named name (the
// DATASET argument as app.datasetName resolves it; empty to check the
// argument and flags only), or a usage error.
func (o *datasetsPullOptions) request(name string) (*exchangev1.PullDatasetRowsRequest, error) {
	_, err := parseDatasetArg(o.Dataset)
	if err != nil {
		return nil, err
	}
	switch o.Format = strings.ToLower(o.Format); o.Format {
	case formatCSV, formatHXL, formatJSONL:
	default:
		return nil, usageErrorf("--format %q: want csv, hxl or jsonl", o.Format)
	}
	if o.Since < 0 {
		return nil, usageErrorf("--since %d: want a revision, 0 or more", o.Since)
	}
	if o.Tombstones && o.Since == 0 {
		return nil, usageErrorf("--tombstones needs --since: a whole pull has no deleted rows")
	}
	req := &exchangev1.PullDatasetRowsRequest{Dataset: name, SinceRevision: o.Since}
	if req.PeriodFrom, err = periodLabel("from", o.From); err != nil {
		return nil, err
	}
	if req.PeriodTo, err = periodLabel("to", o.To); err != nil {
		return nil, err
	}
	if req.Locations, err = locationCodes(o.Locations); err != nil {
		return nil, err
	}
	if req.Contributors, err = agencyNames(o.Contributors); err != nil {
		return nil, err
	}
	if req.Categories, err = categoryFilters(o.Categories); err != nil {
		return nil, err
	}
	return req, nil
}

// categoryFilters parses key=value filters.
func categoryFilters(list []string) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, s := range list {
		k, v, ok := strings.Cut(s, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case !ok || v == "" || !categoryKeyPattern.MatchString(k):
			return nil, usageErrorf("--category %q: want key=value, like sex=female", s)
		case out[k] != "":
			return nil, usageErrorf("--category %s given twice: a row has one value per category", k)
		}
		out[k] = v
	}
	return out, nil
}

// rowSink writes pulled rows in the chosen format.
type rowSink interface {
	Write(*exchangev1.Row) error
	Flush() error
}

// newSink returns the writer of rows to out in the chosen format; a CSV
// writer has written its header.
func (o *datasetsPullOptions) newSink(out io.Writer, d *exchangev1.Dataset) (rowSink, error) {
	if o.Format == formatJSONL {
		return rowfile.NewJSONLWriter(out), nil
	}
	return rowfile.NewCSVWriter(out, d, rowfile.CSVOptions{HXL: o.Format == formatHXL, Tombstones: o.Tombstones, RawText: o.RawText})
}

// runDatasetsPull pulls the rows into the output and prints the revision
// to pull since next time.
// pullTally counts what a pull has written: rows, deleted rows left out,
// the pull's revision, and whether any message came.
type pullTally struct {
	rows, skipped int
	revision      int64
	started       bool
}

// pullRows pulls req into sink, counting in t, showing progress in prog
// and each interruption on stderr; opts follow (a resumable pull adds
// where it keeps its place).
func (o *datasetsPullOptions) pullRows(ctx context.Context, c *client.Client, req *exchangev1.PullDatasetRowsRequest, sink rowSink, prog *progress, stderr io.Writer, t *pullTally, opts ...client.WatchOption) error {
	opts = append([]client.WatchOption{client.OnReconnect(func(err error, wait time.Duration, _ int64) {
		prog.clear()
		fmt.Fprintf(stderr, "exchangectl: pull interrupted (%v); resuming in %v after row %d\n", err, wait.Round(time.Millisecond), t.rows+t.skipped)
	})}, opts...)
	err := c.Datasets.Pull(ctx, req, func(m *exchangev1.PullDatasetRowsResponse) error {
		t.started, t.revision = true, m.GetRevision()
		for _, r := range m.GetRows() {
			if r.GetDeleted() && !o.Tombstones {
				t.skipped++
				continue
			}
			if err := sink.Write(r); err != nil {
				return err
			}
			t.rows++
		}
		prog.show("Pulled %d rows of %s...", t.rows, req.GetDataset())
		return nil
	}, opts...)
	prog.clear()
	return err
}

func runDatasetsPull(ctx context.Context, o *datasetsPullOptions) error {
	name, err := o.app.datasetName(o.Dataset)
	if err != nil {
		return err
	}
	req, err := o.request(name)
	if err != nil {
		return err
	}
	// A pull writes nothing at the exchange: it holds the field file only
	// while it loads or saves its position.
	c, err := o.app.connectReadOnly(ctx)
	if err != nil {
		return err
	}
	d, err := getDataset(ctx, c, req.GetDataset())
	if err != nil {
		return err
	}
	toFile := o.Out != "" && o.Out != "-"
	ff := o.app.fieldCursors()
	if o.StartOver && (ff == nil || !toFile) {
		return usageErrorf("--start-over is for a pull into --out FILE with a field file (--field-file or %s), which keeps where the pull got", EnvFieldFile)
	}
	if ff != nil && toFile {
		target, err := resumeTarget(o.app.path(o.Out))
		if err != nil {
			return err
		}
		if target != "" {
			return runResumablePull(ctx, o, c, d, req, ff, target)
		}
	}
	var out io.Writer = o.app.env.Stdout
	var file *outputFile
	if toFile {
		if file, err = createOutput(o.app.path(o.Out)); err != nil {
			return err
		}
		defer func() {
			if file != nil { // not committed: leave nothing behind
				file.Abort()
			}
		}()
		out = file
	}
	sink, err := o.newSink(out, d)
	if err != nil {
		return err
	}

	// Progress only where it cannot mix with the rows on a terminal.
	prog := o.app.newProgress()
	prog.on = prog.on && (toFile || !o.app.env.IsTerminal(o.app.env.Stdout))
	var t pullTally
	err = o.pullRows(ctx, c, req, sink, prog, o.app.env.Stderr, &t)
	rows, skipped, revision, started := t.rows, t.skipped, t.revision, t.started
	if err == nil {
		err = sink.Flush()
	}
	if err == nil && toFile {
		err = file.Commit()
		if err == nil {
			file = nil
		}
	}
	if err != nil {
		switch {
		case toFile && file != nil && file.WrittenThrough():
			fmt.Fprintf(o.app.env.Stderr, "The pull stopped after %d rows written to %s.\n", rows, o.Out)
		case toFile:
			fmt.Fprintf(o.app.env.Stderr, "Nothing was written to %s.\n", o.Out)
		}
		return err
	}
	where := ""
	if toFile {
		where = " into " + o.Out
	}
	note := ""
	if skipped > 0 {
		note = fmt.Sprintf(" %d deleted %s left out (--tombstones includes them).", skipped, plural(skipped, "row", "rows"))
	}
	if started {
		fmt.Fprintf(o.app.env.Stderr, "Pulled %d %s%s at revision %d.%s Next time: --since %d\n", rows, plural(rows, "row", "rows"), where, revision, note, revision)
	}
	return nil
}
