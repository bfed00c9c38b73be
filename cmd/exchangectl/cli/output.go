package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// printJSON writes m as one indented protobuf JSON object.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	return writeIndented(w, b)
}

// printJSONList writes items as one indented JSON array of protobuf JSON
// objects ("[]" when there are none).
func printJSONList[T proto.Message](w io.Writer, items []T) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, m := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return writeIndented(w, buf.Bytes())
}

// writeIndented re-indents compact JSON deterministically (protojson's own
// spacing varies on purpose) and writes it with a final newline.
func writeIndented(w io.Writer, compact []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}

// printTable writes an aligned table with a header row. It writes nothing
// when there are no rows.
func printTable(w io.Writer, header []string, rows [][]string) error {
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// field is one line of a resource's human form.
type field struct{ label, value string }

// printFields writes a resource as aligned "label: value" lines, leaving
// out empty values.
func printFields(w io.Writer, fields []field) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	for _, f := range fields {
		if f.value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", f.label, f.value)
		}
	}
	return tw.Flush()
}

// formatTime formats a timestamp for people, in local time, or "" for nil.
func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().Local().Format("2006-01-02 15:04:05 MST")
}

// orDash returns s, or "-" when s is empty, for table cells.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printList prints items as a JSON array, or as a table with one row per
// item and a note on stderr when there are none.
func printList[T proto.Message](a *app, items []T, what string, header []string, row func(T) []string) error {
	if a.global.JSON {
		return printJSONList(a.env.Stdout, items)
	}
	if len(items) == 0 {
		fmt.Fprintf(a.env.Stderr, "No %s found.\n", what)
		return nil
	}
	rows := make([][]string, 0, len(items))
	for _, item := range items {
		rows = append(rows, row(item))
	}
	return printTable(a.env.Stdout, header, rows)
}

// printOne prints one resource as a JSON object or as labelled lines.
func printOne[T proto.Message](a *app, m T, fields func(T) []field) error {
	if a.global.JSON {
		return printJSON(a.env.Stdout, m)
	}
	return printFields(a.env.Stdout, fields(m))
}

// printDeleted confirms a deletion: {"name": ..., "deleted": true} with
// --json, a sentence otherwise.
func printDeleted(a *app, name string) error {
	if a.global.JSON {
		b, err := json.Marshal(map[string]any{"name": name, "deleted": true})
		if err != nil {
			return err
		}
		return writeIndented(a.env.Stdout, b)
	}
	_, err := fmt.Fprintf(a.env.Stdout, "Deleted %s.\n", name)
	return err
}

// progress keeps one line of progress on stderr while people watch it (a
// terminal), rewriting it in place; elsewhere it writes nothing, so that
// logs and pipes get only the final summary.
type progress struct {
	w  io.Writer
	on bool
}

// newProgress returns the progress line of a command: on when stderr is a
// terminal.
func (a *app) newProgress() *progress {
	return &progress{w: a.env.Stderr, on: a.stderrIsTerminal()}
}

// show replaces the progress line with the formatted text.
func (p *progress) show(format string, args ...any) {
	if p.on {
		fmt.Fprintf(p.w, "\r"+format+"\x1b[K", args...)
	}
}

// clear erases the progress line, before other output goes to stderr.
func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// jsonArray writes a JSON array element by element, formatted as
// printJSONList formats a whole array, so that a long report streams
// instead of waiting for its last element.
type jsonArray struct {
	w       io.Writer
	started bool
}

// add writes one element, given as compact JSON.
func (j *jsonArray) add(compact []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact, "  ", "  "); err != nil {
		return err
	}
	sep := ",\n  "
	if !j.started {
		j.started, sep = true, "[\n  "
	}
	_, err := io.WriteString(j.w, sep+buf.String())
	return err
}

// end closes the array ("[]" when empty).
func (j *jsonArray) end() error {
	closing := "\n]\n"
	if !j.started {
		closing = "[]\n"
	}
	_, err := io.WriteString(j.w, closing)
	return err
}
