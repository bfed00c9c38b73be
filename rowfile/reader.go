package rowfile

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// LineError is a bad line of a file. Read returns it for a line it could
// not turn into a row, and reading goes on with the next line; so a caller
// can report every bad line of a file in one pass. NewCSVReader returns
// it, as a fatal error, for a bad header.
type LineError struct {
	// Line is the 1-based line of the file where the bad row starts; the
	// header is line 1. (A quoted cell may span lines, so lines and rows
	// need not agree.)
	Line int
	// Column is the header of the bad cell, or "" when the line as a
	// whole is bad (malformed CSV or JSON, too many cells).
	Column string
	// Err says what is wrong.
	Err error
}

func (e *LineError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("line %d, column %s: %v", e.Line, e.Column, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// MaxJSONLine is the longest line a JSON lines reader accepts, in bytes;
// a longer line is a LineError. The largest row a schema allows (50 text
// measures of 10,000 characters) fits.
const MaxJSONLine = 8 << 20

// Reader reads rows from a CSV or JSON lines file, one row at a time. A
// Reader is not safe for concurrent use.
type Reader struct {
	// CSV.
	csv         *csv.Reader
	cols        []column // by position in the file
	pending     []string // the first data record, read while looking for the HXL row
	pendingLine int
	pendingErr  error
	hasPending  bool

	// JSON lines.
	br   *bufio.Reader
	line int
	buf  []byte

	err error // io.EOF or a read error; every later Read returns it
}

// byteOrderMark is what spreadsheets put at the start of a UTF-8 file.
var byteOrderMark = []byte("\ufeff")

// skipBOM drops a UTF-8 byte order mark at the start of br.
func skipBOM(br *bufio.Reader) {
	if b, err := br.Peek(len(byteOrderMark)); err == nil && bytes.Equal(b, byteOrderMark) {
		br.Discard(len(byteOrderMark))
	}
}

// NewCSVReader returns a reader of CSV rows of the dataset. It reads the
// header and, when there is one, the row of HXL hashtags (the first or the
// second row; see isHXLRow), and matches the file's columns to the
// schema's: by hashtag and attributes when the file has a hashtag row, as
// HXL tools do, and otherwise by header, in any order and in any case (see
// matchHashtags and matchHeaders). An unknown or repeated column or
// hashtag, or a missing period, location or required category column, is
// a *LineError naming the line and the column. A contributor column is
// read and ignored: the server takes the contributor from the caller's
// certificate. A UTF-8 byte order mark at the start is skipped.
func NewCSVReader(r io.Reader, schema *exchangev1.Dataset) (*Reader, error) {
	cols, err := schemaColumns(schema, true)
	if err != nil {
		return nil, err
	}
	for i := range cols {
		if cols[i].kind == kindContributor {
			cols[i].kind = kindIgnored
		}
	}

	br := bufio.NewReader(r)
	skipBOM(br)
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // ragged rows are checked here, line by line
	cr.ReuseRecord = true
	first, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("rowfile: the file is empty; it needs a header row")
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, parseLineError(pe)
		}
		return nil, err
	}
	first = slices.Clone(first)
	firstLine, _ := cr.FieldPos(0)
	rd := &Reader{csv: cr}

	// The hashtag row is the first row, or the second under a header.
	var header, tags []string
	tagLine := 0
	if isHXLRow(first) {
		tags, tagLine, header = first, firstLine, make([]string, len(first))
	} else {
		header = first
		rec, err := cr.Read()
		if err == nil && isHXLRow(rec) {
			tags = slices.Clone(rec)
			tagLine, _ = cr.FieldPos(0)
		} else {
			rd.hasPending = true
			rd.pendingErr = err
			if err == nil {
				rd.pending = slices.Clone(rec)
				rd.pendingLine, _ = cr.FieldPos(0)
			}
		}
	}
	var seen map[string]bool
	line := firstLine
	if tags != nil {
		line = tagLine
		rd.cols, seen, err = matchHashtags(cols, header, tags, firstLine, tagLine)
	} else {
		rd.cols, seen, err = matchHeaders(cols, header, firstLine)
	}
	if err != nil {
		return nil, err
	}
	for _, c := range cols {
		required := c.kind == kindPeriod || c.kind == kindLocation
		if c.kind == kindCategory {
			i := slices.IndexFunc(schema.GetSchema().GetCategories(), func(k *exchangev1.Category) bool { return k.GetKey() == c.name })
			required = schema.GetSchema().GetCategories()[i].GetRequired()
		}
		if required && !seen[c.name] {
			if tags != nil {
				tag, _ := c.hashtag()
				return nil, &LineError{Line: line, Column: c.name, Err: fmt.Errorf("missing column (hashtag %s)", tag)}
			}
			return nil, &LineError{Line: line, Column: c.name, Err: errors.New("missing column")}
		}
	}
	return rd, nil
}

// matchHeaders matches a header row to the schema's columns by name, in
// any case. It returns the columns by position in the file and the names
// of those found.
func matchHeaders(cols []column, header []string, line int) ([]column, map[string]bool, error) {
	byName := make(map[string]column, len(cols))
	names := make([]string, len(cols))
	for i, c := range cols {
		byName[c.name] = c
		names[i] = c.name
	}
	out := make([]column, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if name == "" {
			// Spreadsheets may write empty columns at the right; their
			// cells must stay empty.
			out[i] = column{kind: kindIgnored}
			continue
		}
		c, ok := byName[name]
		switch {
		case !ok:
			return nil, nil, &LineError{Line: line, Column: strings.TrimSpace(h), Err: fmt.Errorf("unknown column (the dataset's columns are %s)", strings.Join(names, ", "))}
		case seen[name]:
			return nil, nil, &LineError{Line: line, Column: name, Err: errors.New("repeated column")}
		}
		seen[name] = true
		out[i] = c
	}
	return out, seen, nil
}

// isHXLRow reports whether a record is a row of HXL hashtags, by the rule
// of HXL tools (libhxl-python's HXLReader): at least half of its non-empty
// cells are hashtags, and there is at least one. Cells of a hashtag row
// that are not hashtags are reported by matchHashtags.
func isHXLRow(rec []string) bool {
	tags, filled := 0, 0
	for _, cell := range rec {
		cell = strings.TrimSpace(cell)
		if cell == "" {
			continue
		}
		filled++
		if hxlHashtag.MatchString(cell) {
			tags++
		}
	}
	return tags > 0 && 2*tags >= filled
}

// NewJSONLReader returns a reader of JSON lines: one protobuf JSON row a
// line. Blank lines are skipped; a UTF-8 byte order mark at the start is
// skipped.
func NewJSONLReader(r io.Reader) *Reader {
	br := bufio.NewReader(r)
	skipBOM(br)
	return &Reader{br: br}
}

// Read returns the next row, io.EOF after the last, or a *LineError for a
// bad line, after which the next Read goes on with the next line. Any
// other error is fatal and returned again by every later Read.
//
// A CSV reader converts cells by the schema's types and requires a period
// and a location; checking values against the schema's allowed values,
// code lists, bounds and required measures is left to the server. Empty
// cells are absent categories and values, and rows whose cells are all
// empty are skipped. A JSON lines reader checks only that each line is a
// protobuf JSON Row (no unknown fields, values of the right JSON types).
func (r *Reader) Read() (*exchangev1.Row, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.csv == nil {
		return r.readJSONL()
	}
	for {
		rec, line, err := r.record()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, parseLineError(pe)
			}
			r.err = err
			return nil, err
		}
		if blank(rec) {
			continue
		}
		return r.parseRecord(rec, line)
	}
}

// record returns the next CSV record and the line it starts on.
func (r *Reader) record() ([]string, int, error) {
	if r.hasPending {
		r.hasPending = false
		rec, line, err := r.pending, r.pendingLine, r.pendingErr
		r.pending, r.pendingErr = nil, nil
		return rec, line, err
	}
	rec, err := r.csv.Read()
	if err != nil {
		return nil, 0, err
	}
	line, _ := r.csv.FieldPos(0)
	return rec, line, nil
}

func blank(rec []string) bool {
	for _, cell := range rec {
		if strings.TrimSpace(cell) != "" {
			return false
		}
	}
	return true
}

// parseLineError turns malformed CSV into a LineError.
func parseLineError(pe *csv.ParseError) *LineError {
	err := fmt.Errorf("malformed CSV at byte %d: %w", pe.Column, pe.Err)
	if pe.Line != pe.StartLine {
		err = fmt.Errorf("malformed CSV at line %d, byte %d: %w", pe.Line, pe.Column, pe.Err)
	}
	return &LineError{Line: pe.StartLine, Err: err}
}

// parseRecord converts a record to a row; the first bad cell, in file
// order, is the error.
func (r *Reader) parseRecord(rec []string, line int) (*exchangev1.Row, error) {
	if len(rec) > len(r.cols) && !blank(rec[len(r.cols):]) {
		return nil, &LineError{Line: line, Err: fmt.Errorf("%d cells, but the header has %d columns", len(rec), len(r.cols))}
	}
	row := &exchangev1.Row{}
	for i, c := range r.cols {
		cell := ""
		if i < len(rec) { // a short row's missing cells are empty
			cell = rec[i]
		}
		bad := func(err error) (*exchangev1.Row, error) {
			return nil, &LineError{Line: line, Column: c.name, Err: err}
		}
		switch c.kind {
		case kindIgnored:
			if c.name == "" && strings.TrimSpace(cell) != "" {
				return nil, &LineError{Line: line, Err: fmt.Errorf("cell %d has a value but its column has no header", i+1)}
			}
		case kindPeriod:
			if row.Period = strings.TrimSpace(cell); row.Period == "" {
				return bad(errors.New("required"))
			}
		case kindLocation:
			if row.Location = strings.TrimSpace(cell); row.Location == "" {
				return bad(errors.New("required"))
			}
		case kindCategory:
			if v := unguardCell(strings.TrimSpace(cell)); v != "" {
				if row.Categories == nil {
					row.Categories = map[string]string{}
				}
				row.Categories[c.name] = v
			}
		case kindMeasure:
			if cell == "" || c.measure.GetType() != exchangev1.MeasureType_MEASURE_TYPE_TEXT && strings.TrimSpace(cell) == "" {
				continue
			}
			switch c.measure.GetType() {
			case exchangev1.MeasureType_MEASURE_TYPE_TEXT:
				cell = unguardCell(cell)
			case exchangev1.MeasureType_MEASURE_TYPE_CODE:
				cell = unguardCell(strings.TrimSpace(cell))
			}
			v, err := parseValue(c.measure, cell)
			if err != nil {
				return bad(err)
			}
			if row.Values == nil {
				row.Values = map[string]*exchangev1.Value{}
			}
			row.Values[c.name] = v
		case kindDeleted:
			if s := strings.TrimSpace(cell); s != "" {
				d, err := parseBool(s)
				if err != nil {
					return bad(fmt.Errorf("%q is not a boolean (true/false, yes/no, 1/0)", cell))
				}
				row.Deleted = d
			}
		}
	}
	return row, nil
}

// readJSONL returns the next row of a JSON lines file.
func (r *Reader) readJSONL() (*exchangev1.Row, error) {
	for {
		line, tooLong, err := r.readLine()
		if err != nil {
			r.err = err
			return nil, err
		}
		if tooLong {
			return nil, &LineError{Line: r.line, Err: fmt.Errorf("longer than %d bytes", MaxJSONLine)}
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		row := &exchangev1.Row{}
		if err := protojson.Unmarshal(line, row); err != nil {
			return nil, &LineError{Line: r.line, Err: jsonError(err)}
		}
		return row, nil
	}
}

// protojsonPrefix and protojsonPosition match the start of protojson's
// errors and the position it gives; the line is always 1 here, since each
// line is parsed alone. protojson deliberately varies the spaces in its
// messages from build to build (a plain or a non-breaking space), so both
// are matched.
var (
	protojsonPrefix   = regexp.MustCompile(`^proto:[ \x{00a0}]*`)
	protojsonPosition = regexp.MustCompile(`^\(line 1:(\d+)\):[ \x{00a0}]*`)
)

// jsonError makes protojson's message read well after "line N: ":
// "proto: (line 1:32): unknown field" becomes "at byte 32: unknown field".
func jsonError(err error) error {
	msg := protojsonPrefix.ReplaceAllString(err.Error(), "")
	msg = protojsonPosition.ReplaceAllString(msg, "at byte $1: ")
	return errors.New(msg)
}

// readLine reads the next line, without its end. A line longer than
// MaxJSONLine is read to its end and dropped, and reported by tooLong.
// The returned slice is valid until the next call.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	r.buf = r.buf[:0]
	if cap(r.buf) > 1<<20 {
		r.buf = nil // do not keep a huge buffer after one huge line
	}
	n := 0
	for {
		frag, err := r.br.ReadSlice('\n')
		n += len(frag)
		if !tooLong {
			if len(r.buf)+len(frag) > MaxJSONLine+2 { // room for "\r\n"
				tooLong, r.buf = true, r.buf[:0]
			} else {
				r.buf = append(r.buf, frag...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && n > 0:
			// The last line has no end.
		case err != nil:
			return nil, false, err
		}
		r.line++
		return r.buf, tooLong, nil
	}
}
