package rowfile_test

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/rowfile"
)

// TestStreaming writes 100,000 rows (about 30 MB) through a pipe into a
// reader and checks that the heap never grows by 16 MiB: neither side
// may hold the file or its rows.
func TestStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 100,000 rows")
	}
	const (
		rows  = 100_000
		bound = 16 << 20
		every = 10_000
	)
	d := testDataset()
	padding := strings.Repeat("a row long enough that 100,000 of them outgrow the bound; ", 4)
	for _, tc := range []struct {
		name  string
		write func(io.Writer) (*rowfile.Writer, error)
		read  func(io.Reader) (*rowfile.Reader, error)
	}{
		{
			"csv",
			func(w io.Writer) (*rowfile.Writer, error) {
				return rowfile.NewCSVWriter(w, d, rowfile.CSVOptions{HXL: true})
			},
			func(r io.Reader) (*rowfile.Reader, error) { return rowfile.NewCSVReader(r, d) },
		},
		{
			"jsonl",
			func(w io.Writer) (*rowfile.Writer, error) { return rowfile.NewJSONLWriter(w), nil },
			func(r io.Reader) (*rowfile.Reader, error) { return rowfile.NewJSONLReader(r), nil },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			base := ms.HeapAlloc
			var peak uint64
			sample := func() {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}

			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				err := func() error {
					w, err := tc.write(pw)
					if err != nil {
						return err
					}
					for i := range rows {
						row := &exchangev1.Row{
							Period: "2026-03", Location: fmt.Sprintf("KH-%d", i%25+1),
							Categories: map[string]string{"sex": "female", "age_group": "adult"},
							Values: map[string]*exchangev1.Value{
								"cases": intV(int64(i)), "share": decV(float64(i) / 7), "notes": textV(padding),
								"first_seen": dateV(2026, 3, 1), "referred": boolV(i%2 == 0), "route": codeV("land"),
							},
						}
						if err := w.Write(row); err != nil {
							return err
						}
					}
					return w.Flush()
				}()
				pw.CloseWithError(err)
				done <- err
			}()

			r, err := tc.read(pr)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				row, err := r.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("row %d: %v", n, err)
				}
				if got := row.GetValues()["cases"].GetIntValue(); got != int64(n) {
					t.Fatalf("row %d has cases %d", n, got)
				}
				n++
				if n%every == 0 {
					sample()
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			sample() // the reader and writer are still reachable here
			runtime.KeepAlive(r)
			if n != rows {
				t.Fatalf("read %d rows, want %d", n, rows)
			}
			if peak > base && peak-base >= bound {
				t.Errorf("heap grew by %.1f MiB, want < %d MiB: not streaming", float64(peak-base)/(1<<20), bound>>20)
			}
			t.Logf("heap growth %.2f MiB", float64(int64(peak)-int64(base))/(1<<20))
		})
	}
}
