package rowfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// CSVOptions tunes a CSV writer.
type CSVOptions struct {
	// HXL writes the row of HXL hashtags under the header.
	HXL bool
	// Tombstones appends the deleted column and writes deleted rows.
	// Without it deleted rows are skipped, so that importing the file
	// cannot bring them back.
	Tombstones bool
	// RawText writes text, code and category cells exactly as stored.
	// Without it, such a cell that a spreadsheet would take for a formula
	// (it starts with =, +, -, @, a tab or a carriage return), or that
	// starts with an apostrophe, is written with an apostrophe in front;
	// NewCSVReader takes it off. Set it only for files no spreadsheet
	// will open.
	RawText bool
}

// Writer writes rows to a CSV or JSON lines file, one row at a time. It
// buffers; call Flush at the end. A Writer is not safe for concurrent use.
type Writer struct {
	// CSV.
	csv        *csv.Writer
	cols       []column
	cells      []string
	known      map[string]columnKind // category and measure keys
	tombstones bool
	rawText    bool

	// JSON lines.
	bw   *bufio.Writer
	raw  []byte
	line bytes.Buffer
}

// NewCSVWriter returns a writer of the dataset's CSV layout and writes the
// header (and, with opts.HXL, the hashtag row). It fails when the schema's
// keys clash, or with opts.HXL when a hashtag of the schema is not valid
// HXL.
func NewCSVWriter(w io.Writer, schema *exchangev1.Dataset, opts CSVOptions) (*Writer, error) {
	cols, err := schemaColumns(schema, opts.Tombstones)
	if err != nil {
		return nil, err
	}
	cw := &Writer{
		csv:        csv.NewWriter(w),
		cols:       cols,
		cells:      make([]string, len(cols)),
		known:      make(map[string]columnKind, len(cols)),
		tombstones: opts.Tombstones,
		rawText:    opts.RawText,
	}
	var tags []string
	if opts.HXL {
		tags = make([]string, len(cols))
		for i, c := range cols {
			if tags[i], err = c.hashtag(); err != nil {
				return nil, err
			}
		}
	}
	for i, c := range cols {
		cw.cells[i] = c.name
		if c.kind == kindCategory || c.kind == kindMeasure {
			cw.known[c.name] = c.kind
		}
	}
	if err := cw.csv.Write(cw.cells); err != nil {
		return nil, err
	}
	if tags != nil {
		if err := cw.csv.Write(tags); err != nil {
			return nil, err
		}
	}
	return cw, nil
}

// textCell is a text, code or category cell as written: guarded against
// spreadsheet formulas unless the writer writes raw text.
func (w *Writer) textCell(s string) string {
	if w.rawText {
		return s
	}
	return GuardCell(s)
}

// NewJSONLWriter returns a writer of JSON lines: each row as one line of
// compact protobuf JSON, fields in field-number order and map entries
// sorted by key, so that the same rows always give the same bytes.
func NewJSONLWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriter(w)}
}

// jsonOptions is the protobuf JSON form of a row: canonical
// (lowerCamelCase) field names, unset fields left out.
var jsonOptions = protojson.MarshalOptions{}

// Write writes one row. For CSV, a deleted row is skipped unless the
// writer writes tombstones, and a row with a category or measure the
// schema lacks, or a value whose case does not match its measure's type,
// is an error and nothing of it is written.
func (w *Writer) Write(row *exchangev1.Row) error {
	if row == nil {
		return errors.New("rowfile: nil row")
	}
	if w.csv == nil {
		return w.writeJSONL(row)
	}
	if row.GetDeleted() && !w.tombstones {
		return nil
	}
	for k := range row.GetCategories() {
		if w.known[k] != kindCategory {
			return fmt.Errorf("rowfile: the row has category %q, which the schema lacks", k)
		}
	}
	for k := range row.GetValues() {
		if w.known[k] != kindMeasure {
			return fmt.Errorf("rowfile: the row has measure %q, which the schema lacks", k)
		}
	}
	for i, c := range w.cols {
		var err error
		switch c.kind {
		case kindPeriod:
			w.cells[i] = row.GetPeriod()
		case kindLocation:
			w.cells[i] = row.GetLocation()
		case kindContributor:
			w.cells[i] = row.GetContributor()
		case kindCategory:
			w.cells[i] = w.textCell(row.GetCategories()[c.name])
		case kindMeasure:
			w.cells[i], err = formatValue(c.measure, row.GetValues()[c.name])
			if t := c.measure.GetType(); t == exchangev1.MeasureType_MEASURE_TYPE_TEXT || t == exchangev1.MeasureType_MEASURE_TYPE_CODE {
				w.cells[i] = w.textCell(w.cells[i])
			}
		case kindDeleted:
			w.cells[i] = strconv.FormatBool(row.GetDeleted())
		}
		if err != nil {
			return fmt.Errorf("rowfile: column %s: %w", c.name, err)
		}
	}
	return w.csv.Write(w.cells)
}

func (w *Writer) writeJSONL(row *exchangev1.Row) error {
	var err error
	if w.raw, err = jsonOptions.MarshalAppend(w.raw[:0], row); err != nil {
		return fmt.Errorf("rowfile: %w", err)
	}
	// protojson varies its spacing on purpose; compacting makes the
	// output stable.
	w.line.Reset()
	if err := json.Compact(&w.line, w.raw); err != nil {
		return fmt.Errorf("rowfile: %w", err)
	}
	w.line.WriteByte('\n')
	_, err = w.bw.Write(w.line.Bytes())
	return err
}

// Flush writes any buffered data to the underlying writer and reports
// any error of this or an earlier write.
func (w *Writer) Flush() error {
	if w.csv == nil {
		return w.bw.Flush()
	}
	w.csv.Flush()
	return w.csv.Error()
}
