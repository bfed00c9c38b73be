package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/rowfile"
)

// defaultRowBatch is how many rows `datasets push` sends per call unless
// --batch-size says otherwise.
const defaultRowBatch = 1000

// Row file formats.
const (
	formatCSV   = "csv"
	formatHXL   = "hxl"
	formatJSONL = "jsonl"
)

// datasetsPushOptions are the inputs of `datasets push`.
type datasetsPushOptions struct {
	app     *app
	Dataset string
	// File is the rows file, or "-" for standard input.
	File string
	// Format is csv or jsonl; "" picks by the file's extension.
	Format    string
	BatchSize int
}

const datasetsPushLong = `Write rows into a dataset from a file (FILE, or - for standard input), as
your agency's contribution. A row's key is its period, location and category
values (and your agency), so pushing a row again replaces it: running the same
file again, or a corrected one, never duplicates anything. Within one file each
key may come once: a line that repeats the key of an earlier line, identical
or not, is reported ("repeats the key ... of line 4") and not sent.

Formats (--format, by default jsonl for a .jsonl or .ndjson file and csv
otherwise):
  csv    a header row, then one row per line: period, location, one column per
         category and one per measure, headed by their keys, in any order and
         any case (a contributor column is ignored). A file with a row of HXL
         hashtags (first, or under the header) is matched by hashtag and
         attributes instead, as HXL tools do, whatever its header texts:
         #date+period, the location's hashtag, and each column's hashtag as
         'datasets pull --format hxl' writes it, attributes in any order; an
         unknown hashtag is reported with its line and column. A "deleted"
         column with true deletes the row with that key, so a file pulled
         with --tombstones replays deletions.
  jsonl  one Row per line in the API's protobuf JSON form, as 'datasets pull
         --format jsonl' writes it; "deleted": true deletes the row.

The file is read as it is sent, --batch-size rows per call, so it may be as
large as you like. Each row is checked on its own and one bad row never stops
the rest: a line that cannot be read (malformed CSV or JSON, a cell that is not
of its measure's type) is reported with its line and column and not sent; the
exchange checks every row against the schema (allowed values, bounds, required
fields, locked periods) and stores the valid ones.

Output: one line per problem, in line order: the line of the file, the column
(CSV) or field (JSON lines) at fault, the error code and the reason. With
--json, a JSON array of {"line", "field", "code", "reason"} objects. A count
follows on stderr; on a terminal, progress too.

Exit codes: 0 when every row was written; 6 when any line was rejected (fix
those lines and push the file again); the usual codes of 'exchangectl --help'
when the exchange cannot be reached, after reporting the rows sent so far.

Only --timeout, when given, bounds the whole push; otherwise each call has 30
seconds.`

// newDatasetsPushCmd is `exchangectl datasets push`.
func newDatasetsPushCmd(a *app, runF func(*datasetsPushOptions) error) *cobra.Command {
	opts := &datasetsPushOptions{app: a}
	cmd := &cobra.Command{
		Use:   "push DATASET -f FILE [--format csv|jsonl] [--batch-size N]",
		Short: "Write rows into a dataset from a CSV or JSON lines file (contributors)",
		Long:  datasetsPushLong,
		Example: "  exchangectl datasets push ilo/returns -f rows.csv\n" +
			"  export-returns --month 2026-03 | exchangectl datasets push ilo/returns -f - --json > problems.json",
		Args:        exactArgs("DATASET"),
		Annotations: longRunning,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dataset = args[0]
			if err := opts.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsPush(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.File, "file", "f", "", "rows file, - for standard input (required)")
	f.StringVar(&opts.Format, "format", "", "csv or jsonl (default: by the file's extension, csv for standard input)")
	f.IntVar(&opts.BatchSize, "batch-size", defaultRowBatch, fmt.Sprintf("rows per call, 1 to %d", client.MaxRowWrites))
	return cmd
}

// check validates the options and settles the format.
func (o *datasetsPushOptions) check() error {
	if _, err := parseDatasetArg(o.Dataset); err != nil {
		return err
	}
	if o.File == "" {
		return usageErrorf("-f FILE is required (- for standard input)")
	}
	if o.BatchSize < 1 || o.BatchSize > client.MaxRowWrites {
		return usageErrorf("--batch-size %d: want 1 to %d", o.BatchSize, client.MaxRowWrites)
	}
	switch strings.ToLower(o.Format) {
	case "":
		o.Format = formatCSV
		if ext := strings.ToLower(filepath.Ext(o.File)); ext == ".jsonl" || ext == ".ndjson" {
			o.Format = formatJSONL
		}
	case formatCSV, formatJSONL:
		o.Format = strings.ToLower(o.Format)
	default:
		return usageErrorf("--format %q: want csv or jsonl", o.Format)
	}
	return nil
}

// runDatasetsPush streams the file into the dataset and reports each
// problem.
func runDatasetsPush(ctx context.Context, o *datasetsPushOptions) error {
	name, err := o.app.datasetName(o.Dataset)
	if err != nil {
		return err
	}
	var in io.Reader = o.app.env.Stdin
	file := "standard input"
	if o.File != "-" {
		f, err := os.Open(o.app.path(o.File))
		if err != nil {
			return err
		}
		defer f.Close()
		in, file = f, o.File
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	d, err := getDatasetKept(ctx, c, name)
	if err != nil {
		return err
	}
	p := &rowPusher{
		ctx:       ctx,
		datasets:  c.Datasets,
		dataset:   name,
		batchSize: o.BatchSize,
		csv:       o.Format == formatCSV,
		out:       &problemOutput{w: o.app.env.Stdout, json: o.app.global.JSON, array: jsonArray{w: o.app.env.Stdout}},
		progress:  o.app.newProgress(),
	}
	err = p.run(in, d)
	if endErr := p.out.end(); err == nil {
		err = endErr
	}
	p.progress.clear()
	n := p.counts
	tally := fmt.Sprintf("%d written, %d rejected", n.written, n.rejected)
	if n.queued > 0 {
		tally += fmt.Sprintf(", %d queued (the exchange cannot be reached; they will be sent by 'exchangectl outbox send')", n.queued)
	}
	var bad *rowfile.LineError
	switch {
	case errors.As(err, &bad) && n.total == 0:
		err = &inputError{file: file, line: bad.Line, field: bad.Column, msg: bad.Err.Error()}
		fmt.Fprintf(o.app.env.Stderr, "Nothing was sent from %s.\n", file)
	case err != nil && n.total == 0:
		fmt.Fprintf(o.app.env.Stderr, "Nothing was sent from %s.\n", file)
	case err != nil:
		fmt.Fprintf(o.app.env.Stderr, "%d %s from %s before the error (%s); lines after %d were not sent. Push the same file again to send them: rows sent before are only written again.\n",
			n.total, plural(n.total, "row", "rows"), file, tally, p.lastSent)
	case n.total == 0:
		fmt.Fprintf(o.app.env.Stderr, "No rows in %s.\n", file)
	default:
		fmt.Fprintf(o.app.env.Stderr, "%d %s from %s: %s.\n", n.total, plural(n.total, "row", "rows"), file, tally)
	}
	if err != nil {
		return err
	}
	if n.rejected > 0 {
		return rejectedError{rejected: n.rejected, total: n.total, what: "rows"}
	}
	return nil
}

// rowRecord is one row of the file and what became of it.
type rowRecord struct {
	line int
	// write is the write to send; nil for a line refused here.
	write *exchangev1.RowWrite
	// problems are why the line was refused or rejected.
	problems []problem
}

// problem is one line of the report.
type problem struct {
	Line   int    `json:"line"`
	Field  string `json:"field,omitempty"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// rowCounts tallies the rows.
type rowCounts struct {
	total, written, rejected int
	// queued counts the rows kept in the outbox (--field-file).
	queued int
}

// rowPusher streams a rows file through WriteDatasetRows.
type rowPusher struct {
	ctx       context.Context
	datasets  *client.DatasetClient
	dataset   string
	batchSize int
	// csv is set for CSV files, whose fields are reported as columns.
	csv      bool
	out      *problemOutput
	progress *progress

	pending []rowRecord
	// writes counts the writes in pending.
	writes int
	counts rowCounts
	// lastRead is the line of the last row read, lastSent the last line
	// whose row was reported.
	lastRead, lastSent int
	// queuing is set while the batch being reported was kept in the
	// outbox.
	queuing bool
}

// run reads every row of in, batching and sending as it goes. A bad
// CSV header is a *rowfile.LineError.
func (p *rowPusher) run(in io.Reader, d *exchangev1.Dataset) error {
	lines := newLineCounter(in, p.csv)
	var r *rowfile.Reader
	if p.csv {
		var err error
		if r, err = rowfile.NewCSVReader(lines, d); err != nil {
			return err
		}
		lines.afterHeader()
	} else {
		r = rowfile.NewJSONLReader(lines)
	}
	// Each key once a file: the exchange checks each call, and a file
	// goes in many.
	keys := rowfile.NewRowKeys()
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return p.flush()
		}
		line := 0
		if err == nil {
			line = lines.next()
			err = keys.Check(row, line)
		}
		var bad *rowfile.LineError
		switch {
		case errors.As(err, &bad):
			if line == 0 {
				lines.next()
			}
			p.lastRead = bad.Line
			p.pending = append(p.pending, rowRecord{line: bad.Line, problems: []problem{{
				Line: bad.Line, Field: bad.Column, Code: "INVALID_ARGUMENT", Reason: bad.Err.Error(),
			}}})
		case err != nil:
			return err
		default:
			p.lastRead = line
			p.pending = append(p.pending, rowRecord{line: line, write: rowWrite(row)})
			p.writes++
		}
		if p.writes >= p.batchSize {
			if err := p.flush(); err != nil {
				return err
			}
		}
	}
}

// rowWrite turns a row read from a file into a write: a deletion for a
// tombstone, an upsert otherwise, without the output-only fields (the
// exchange sets the contributor from the certificate).
func rowWrite(row *exchangev1.Row) *exchangev1.RowWrite {
	w := &exchangev1.RowWrite{Row: row, Delete: row.GetDeleted()}
	row.Contributor, row.Revision, row.Deleted, row.UpdateTime = "", 0, false, nil
	return w
}

// flush sends the pending writes and reports every pending line's
// problems, in line order.
func (p *rowPusher) flush() error {
	if len(p.pending) == 0 {
		return nil
	}
	var writes []*exchangev1.RowWrite
	var at []int
	for i, rec := range p.pending {
		if rec.write != nil {
			writes = append(writes, rec.write)
			at = append(at, i)
		}
	}
	if len(writes) > 0 {
		ctx, cancel := callContext(p.ctx)
		defer cancel()
		resp, err := p.datasets.Write(ctx, p.dataset, writes)
		if client.IsQueued(err) {
			// Kept in the outbox: no results until it is sent.
			resp, p.queuing = &exchangev1.WriteDatasetRowsResponse{}, true
			for i := range writes {
				resp.Results = append(resp.Results, &exchangev1.RowWriteResult{Index: int32(i), Accepted: true})
			}
		} else if err != nil {
			return err
		}
		if len(resp.GetResults()) != len(writes) {
			return status.Errorf(codes.Internal, "the exchange answered %d results for %d rows", len(resp.GetResults()), len(writes))
		}
		for _, res := range resp.GetResults() {
			i := int(res.GetIndex())
			if i < 0 || i >= len(at) {
				return status.Errorf(codes.Internal, "the exchange answered for row %d of %d", i, len(writes))
			}
			if !res.GetAccepted() {
				rec := &p.pending[at[i]]
				rec.problems = p.rejection(rec.line, res)
			}
		}
	}
	p.progress.clear()
	for _, rec := range p.pending {
		p.counts.total++
		switch {
		case len(rec.problems) == 0 && p.queuing && rec.write != nil:
			p.counts.queued++
		case len(rec.problems) == 0:
			p.counts.written++
		default:
			p.counts.rejected++
		}
		for _, pr := range rec.problems {
			if err := p.out.write(pr); err != nil {
				return err
			}
		}
		p.lastSent = rec.line
	}
	p.pending, p.writes, p.queuing = p.pending[:0], 0, false
	n := p.counts
	p.progress.show("Sent %d rows through line %d: %d written, %d rejected...", n.total, p.lastRead, n.written, n.rejected)
	return nil
}

// writeField matches the field paths of a write's violations:
// "writes[3].row.values.returned", "writes[3].row", "writes[3].delete".
var writeField = regexp.MustCompile(`^writes\[\d+\]\.?(?:row\.?)?`)

// rejection turns the exchange's rejection of the row on line into
// report lines, one per field at fault.
func (p *rowPusher) rejection(line int, res *exchangev1.RowWriteResult) []problem {
	code := res.GetCode()
	if code == "" {
		code = "REJECTED"
	}
	if len(res.GetViolations()) == 0 {
		return []problem{{Line: line, Code: code, Reason: "rejected by the exchange"}}
	}
	var out []problem
	for _, v := range res.GetViolations() {
		out = append(out, problem{Line: line, Field: p.fieldName(v.GetField()), Code: code, Reason: oneLine(violationReason(v.GetField(), v.GetDescription()))})
	}
	if more := unlistedText(res.GetUnlistedViolations(), res.GetCheckedToFirstViolation()); more != "" {
		out = append(out, problem{Line: line, Code: code, Reason: more})
	}
	return out
}

// unlistedText says what the exchange left out of a rejection, or "":
// its answer to a batch lists the first problem of each line and at
// most 100 more in all.
func unlistedText(unlisted int32, checkedToFirst bool) string {
	switch {
	case unlisted == 1:
		return "1 more problem not listed; send the line alone to see it"
	case unlisted > 1:
		return fmt.Sprintf("%d more problems not listed; send the line alone to see them", unlisted)
	case checkedToFirst:
		return "checked only up to its first problem; send the line alone to see any more"
	}
	return ""
}

// violationReason is a violation's description without the field path
// the exchange may repeat in front of it ("writes[1].row.period: ..."),
// which names a place in the request, not in the file.
func violationReason(field, description string) string {
	if head, rest, ok := strings.Cut(description, ": "); ok && head != "" && strings.HasSuffix(field, head) {
		return rest
	}
	return description
}

// fieldName maps the path of a field at fault in a write to what the file
// calls it: the CSV column ("returned" for "writes[3].row.values.returned")
// or the JSON path within the line ("values.returned").
func (p *rowPusher) fieldName(path string) string {
	f := writeField.ReplaceAllString(path, "")
	if p.csv {
		for _, prefix := range []string{"values.", "categories."} {
			if key, ok := strings.CutPrefix(f, prefix); ok {
				return key
			}
		}
	}
	return f
}

// problemOutput prints problems as they come: a table for people, or a
// JSON array written element by element.
type problemOutput struct {
	w     io.Writer
	json  bool
	array jsonArray
	// started is set once the table's header is written.
	started bool
}

// write prints one problem.
func (o *problemOutput) write(pr problem) error {
	if o.json {
		b, err := json.Marshal(pr)
		if err != nil {
			return err
		}
		return o.array.add(b)
	}
	if !o.started {
		o.started = true
		if _, err := fmt.Fprintf(o.w, "%-6s  %-20s  %-19s  %s\n", "LINE", "FIELD", "CODE", "REASON"); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(o.w, "%-6d  %-20s  %-19s  %s\n", pr.Line, orDash(pr.Field), pr.Code, oneLine(pr.Reason))
	return err
}

// end closes the JSON array ("[]" when there were no problems).
func (o *problemOutput) end() error {
	if !o.json {
		return nil
	}
	return o.array.end()
}

// lineCounter hands the bytes of a file to a rowfile reader one line at a
// time, and so knows on which line each row it returns starts. rowfile
// reports the line of a row it cannot read (LineError), but not of the
// rows it returns, which the exchange may still reject; and its reader
// reads through a bufio.Reader, which asks for more only when it has used
// up what it holds, and so, fed a line at a time, never holds a line
// beyond the row it is reading.
//
// After each Read of the rowfile reader (a row or a LineError), next
// returns the line the row started on: the first line with content (not
// only separators and spaces, which readers skip) handed out since the
// previous Read. A CSV reader reads the first record after the header
// when it is made (to see whether it is the HXL row); afterHeader keeps
// its line for the first Read, in case that record is a row.
type lineCounter struct {
	src *bufio.Reader
	// blank reports whether a byte may fill a line that readers skip: for
	// CSV separators and spaces, for JSON lines spaces.
	blank func(byte) bool

	lines   int  // complete lines handed out
	inLine  bool // a line has begun and not ended
	content bool // the current line has content

	// starts are the lines with content begun since the last next (at
	// most two are kept).
	starts []int
	// pending is the line of the first record after the header, and
	// pendingLines the lines handed out when the CSV reader was made.
	pending, pendingLines int
	first                 bool
}

// newLineCounter returns a line counter over r for a CSV or JSON lines
// reader.
func newLineCounter(r io.Reader, csv bool) *lineCounter {
	blank := func(b byte) bool { return b == ' ' || b == '\t' || b == '\r' }
	if csv {
		blank = func(b byte) bool { return b == ',' || b == ' ' || b == '\t' || b == '\r' }
	}
	return &lineCounter{src: bufio.NewReaderSize(r, 64<<10), blank: blank}
}

// Read hands out at most one line.
func (c *lineCounter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.src.Buffered() == 0 {
		if _, err := c.src.Peek(1); err != nil {
			return 0, err
		}
	}
	buf, _ := c.src.Peek(min(len(p), c.src.Buffered()))
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i+1]
	}
	n := copy(p, buf)
	for _, b := range p[:n] {
		if !c.inLine {
			c.inLine, c.content = true, false
		}
		if b == '\n' {
			c.lines++
			c.inLine = false
			continue
		}
		if !c.content && !c.blank(b) {
			c.content = true
			if len(c.starts) < 2 {
				c.starts = append(c.starts, c.lines+1)
			}
		}
	}
	_, _ = c.src.Discard(n)
	return n, nil
}

// afterHeader notes, once the CSV reader is made, the line of the record
// it read after the header.
func (c *lineCounter) afterHeader() {
	if len(c.starts) > 1 {
		c.pending = c.starts[1]
	}
	c.pendingLines, c.first = c.lines, true
	c.starts = c.starts[:0]
}

// next returns the line the row just read starts on, and prepares for the
// next Read.
func (c *lineCounter) next() int {
	line := c.lines + 1
	switch {
	case c.first && c.lines == c.pendingLines && c.pending > 0:
		// Nothing more was read: the row is the record read with the
		// header.
		line = c.pending
	case len(c.starts) > 0:
		line = c.starts[0]
	}
	c.first = false
	c.starts = c.starts[:0]
	return line
}
