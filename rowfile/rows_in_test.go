package rowfile_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/rowfile"
	"google.golang.org/protobuf/proto"
)

// Issue 19, item 3: a row that repeats the key (period, location and
// categories) of an earlier row of the file is a LineError for the later
// line naming the earlier, identical or not; the contributor is not part
// of the key, since the server takes it from whoever pushes the file.
func TestRowKeysReportRepeats(t *testing.T) {
	csvFile := "period,location,sex,age_group,cases,contributor\n" + // 1
		"2026-03,KH-12,female,child,4,\n" + // 2
		"2026-03,KH-12,female,,5,\n" + // 3: no age group: another key
		"2026-03,KH-12,female,child,9,\n" + // 4: key of 2, other value
		"2026-03,KH-12,female,,5,\n" + // 5: identical to 3
		"2026-03,KH-12,female,child,4,agencies/other\n" + // 6: key of 2, other contributor
		"2026-04,KH-12,female,child,4,\n" // 7: other period
	jsonl := `{"period":"2026-03","location":"KH-12","categories":{"sex":"female","age_group":"child"}}
{"period":"2026-03","location":"KH-12","categories":{"age_group":"child","sex":"female"},"deleted":true}
{"contributor":"agencies/x","period":"2026-03","location":"KH-12","categories":{"sex":"female","age_group":""}}
{"period":"2026-03","location":"KH-12","categories":{"sex":"female"}}
{"period":"2026-03","location":"KH-1","categories":{"sex":"female"}}
`
	csvReader, err := rowfile.NewCSVReader(strings.NewReader(csvFile), testDataset())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		r     *rowfile.Reader
		lines []int
		want  []string // "" for a row taken
	}{
		{"csv", csvReader, []int{2, 3, 4, 5, 6, 7}, []string{
			"", "",
			"line 4: repeats the key (period, location and categories) of line 2",
			"line 5: repeats the key (period, location and categories) of line 3",
			"line 6: repeats the key (period, location and categories) of line 2",
			"",
		}},
		{"jsonl: category order, deletions, contributors, empty categories", rowfile.NewJSONLReader(strings.NewReader(jsonl)), []int{1, 2, 3, 4, 5}, []string{
			"",
			"line 2: repeats the key (period, location and categories) of line 1",
			"",
			"line 4: repeats the key (period, location and categories) of line 3",
			"",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := readAll(t, tc.r)
			if len(rows) != len(tc.want) {
				t.Fatalf("read %d rows, want %d", len(rows), len(tc.want))
			}
			keys := rowfile.NewRowKeys()
			for i, row := range rows {
				err := keys.Check(row, tc.lines[i])
				var le *rowfile.LineError
				switch {
				case tc.want[i] == "" && err != nil:
					t.Errorf("row %d: %v", i, err)
				case tc.want[i] != "" && (!errors.As(err, &le) || le.Line != tc.lines[i] || !strings.HasPrefix(err.Error(), tc.want[i])):
					t.Errorf("row %d: %v, want %q", i, err, tc.want[i])
				}
			}
		})
	}
}

// RowKeys holds a digest a key, not the rows: the heap it takes for a
// million keys is measured and bounded generously.
func TestRowKeysMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("checks a million keys")
	}
	const n = 1_000_000
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	keys := rowfile.NewRowKeys()
	row := &exchangev1.Row{Categories: map[string]string{"sex": "female", "age_group": "child"}}
	for i := range n {
		row.Period = fmt.Sprintf("%d-%02d", 2000+i/1200, i/100%12+1)
		row.Location = fmt.Sprintf("KH-%d", i%100)
		if err := keys.Check(row, i+2); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	perKey := float64(int64(ms.HeapAlloc)-int64(base)) / n
	runtime.KeepAlive(keys)
	t.Logf("%.1f bytes of heap a key (%d keys)", perKey, n)
	if perKey > 200 {
		t.Errorf("%.1f bytes a key, want well under 200: RowKeys keeps more than digests", perKey)
	}
}

// hxlDataset is a schema whose columns carry HXL hashtags as an HXL tool
// would name them.
func hxlDataset() *exchangev1.Dataset {
	d := testDataset()
	d.Schema.Categories[0].Hxl = "#x_sex"
	d.Schema.Measures[0].Hxl = "#affected+f+children"
	return d
}

// Issue 19, item 5: a file with a hashtag row is matched by hashtag and
// attributes, as HXL tools match it, whatever its header texts say; the
// hashtags are those the CSV writer writes, attributes in any order and
// case.
func TestHashtagRowMatchesColumns(t *testing.T) {
	want := []*exchangev1.Row{
		{Period: "2026-03", Location: "KH-12", Categories: map[string]string{"sex": "female"},
			Values: map[string]*exchangev1.Value{"cases": intV(4), "route": codeV("land")}},
		{Period: "2026-03", Location: "KH-2", Categories: map[string]string{"sex": "male", "age_group": "child"},
			Values: map[string]*exchangev1.Value{"cases": intV(7)}},
	}
	for _, tc := range []struct{ name, file string }{
		{"headers of an HXL tool, not ours",
			"Month,Province (P-code),Sex of victim,Age,Children (F) affected,Transport route,Reporting org\n" +
				"#date+period,#adm1+code,#x_sex,#x_age_group,#affected+f+children,#indicator+route,#org+code\n" +
				"2026-03,KH-12,female,,4,land,IOM\n" +
				"2026-03,KH-2,male,child,7,,IOM\n"},
		{"attributes in another order and case, spaces",
			"a,b,c,d,e,f\n" +
				"#Date +Period,#ADM1+Code,#x_sex, #affected +children +F ,#x_age_group,#Indicator+ROUTE\n" +
				"2026-03,KH-12,female,4,,land\n" +
				"2026-03,KH-2,male,7,child,\n"},
		{"hashtag row first, no header texts",
			"#adm1+code,#date+period,#x_sex,#affected+children+f,#x_age_group,#indicator+route\n" +
				"KH-12,2026-03,female,4,,land\n" +
				"KH-2,2026-03,male,7,child,\n"},
		{"headers that name other columns of ours are not looked at",
			"cases,sex,period,location,route,notes\n" +
				"#date+period,#adm1+code,#x_sex,#affected+f+children,#indicator+route,#x_age_group\n" +
				"2026-03,KH-12,female,4,land,\n" +
				"2026-03,KH-2,male,7,,child\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := rowfile.NewCSVReader(strings.NewReader(tc.file), hxlDataset())
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

// What the CSV writer writes with HXL, the reader reads back by hashtag,
// however the header texts are changed.
func TestHashtagRowRoundTrip(t *testing.T) {
	d := hxlDataset()
	var buf strings.Builder
	w, err := rowfile.NewCSVWriter(&buf, d, rowfile.CSVOptions{HXL: true, Tombstones: true})
	if err != nil {
		t.Fatal(err)
	}
	rows := testRows()
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	header, rest, _ := strings.Cut(buf.String(), "\n")
	renamed := "Column " + strings.ReplaceAll(header, ",", ",Column ")
	r, err := rowfile.NewCSVReader(strings.NewReader(renamed+"\n"+rest), d)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, want %d", len(got), len(rows))
	}
	for i := range rows {
		if want := keyAndValues(rows[i]); !proto.Equal(got[i], want) {
			t.Errorf("row %d:\n got %v\nwant %v", i, got[i], want)
		}
	}
}

// Hashtags the dataset does not have, and cells of the hashtag row that
// are not hashtags, are reported with the line of the hashtag row and the
// column.
func TestHashtagRowErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		line       int
		column     string
		msg        string
	}{
		{"unknown hashtag", "Month,Province,Sex,Affected\n#date+period,#adm1+code,#x_sex,#affected+m\n", 2, "#affected+m",
			"line 2, column #affected+m: unknown hashtag in column 4 (D) (the dataset's hashtags are #date+period, #adm1+code, #org+code, #x_sex, #x_age_group, #affected+f+children,"},
		{"an attribute missing", "#date+period,#adm1+code,#x_sex,#affected+f\n", 1, "#affected+f", "line 1, column #affected+f: unknown hashtag in column 4 (D)"},
		{"an attribute too many", "a,b,c,d\n#date+period,#adm1+code+v_pcode,#x_sex,#affected+f+children\n", 2, "#adm1+code+v_pcode", "line 2, column #adm1+code+v_pcode: unknown hashtag in column 2 (B)"},
		{"not a hashtag", "a,b,c,d\n#date+period,#adm1+code,#x_sex,affected\n", 2, "affected", "line 2, column affected: column 4 (D) of the hashtag row is not an HXL hashtag"},
		{"repeated hashtag", "a,b,c,d\n#date+period,#adm1+code,#x_sex,#date +period\n", 2, "period", "line 2, column period: repeated column: column 4 (D) is period again"},
		{"missing hashtag", "a,b,c\n#date+period,#x_sex,#affected+f+children\n", 2, "location", "line 2, column location: missing column (hashtag #adm1+code)"},
		{"untagged column with an unknown header", "a,b,c,Victims\n#date+period,#adm1+code,#x_sex,\n", 1, "Victims", "line 1, column Victims: column 4 (D) has no hashtag, and its header names no column of the dataset: unknown column"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rowfile.NewCSVReader(strings.NewReader(tc.file+"2026-03,KH-12,female,4\n"), hxlDataset())
			var le *rowfile.LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *LineError", err)
			}
			if le.Line != tc.line || le.Column != tc.column || !strings.HasPrefix(le.Error(), tc.msg) {
				t.Errorf("err = %q (line %d, column %q), want line %d, column %q, %q", le, le.Line, le.Column, tc.line, tc.column, tc.msg)
			}
		})
	}
	// A data row whose cells are mostly not hashtags is data, not a
	// hashtag row: by libhxl's rule, at least half must be hashtags.
	r, err := rowfile.NewCSVReader(strings.NewReader("period,location,sex,notes\n2026-03,KH-12,female,#hashtag\n"), hxlDataset())
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 1 || got[0].GetValues()["notes"].GetTextValue() != "#hashtag" {
		t.Errorf("a row with one hashtag among values: %v", got)
	}
}
