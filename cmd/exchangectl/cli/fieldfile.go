package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/fieldfile"
)

// fieldFileState is the field file of one run: the path the flag or the
// environment names, and the file once opened.
type fieldFileState struct {
	path string
	file *fieldfile.File
	// readOnly says the command makes no write the outbox covers (a
	// watch or a pull): its connection goes without the outbox, and it
	// keeps its position through fieldfile.CursorsAt, so that it never
	// holds the file longer than a load or save and writes in another
	// window can use the file while it runs.
	readOnly bool
}

// addFieldFileFlag adds the global --field-file flag to f.
func addFieldFileFlag(a *app, f *pflag.FlagSet) {
	f.StringVar(&a.field.path, "field-file", "", "the field office's local file: writes made while the exchange cannot be reached wait in its outbox for 'exchangectl outbox send', and pulls and watches keep how far they got there so that they resume after a break (env "+EnvFieldFile+"; none unless given; usually field.db beside --cert)")
}

// fieldFilePath is the field file's path, resolved against the working
// directory, or "" when neither --field-file nor EXCHANGE_FIELD_FILE
// names one.
func (a *app) fieldFilePath() string {
	path := a.field.path
	if !a.flags.Changed("field-file") {
		path = a.env.Getenv(EnvFieldFile)
	}
	return a.path(path)
}

// fieldFile returns the field file, opened on first use and held until
// the run ends, or nil when neither --field-file nor EXCHANGE_FIELD_FILE
// names one. Only commands that write through the outbox, or list or
// drive it, hold the file: the others use fieldCursors.
func (a *app) fieldFile() (*fieldfile.File, error) {
	if a.field.file != nil {
		return a.field.file, nil
	}
	path := a.fieldFilePath()
	if path == "" {
		return nil, nil
	}
	f, err := fieldfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--field-file: %w", err)
	}
	a.field.file = f
	return f, nil
}

// connectReadOnly connects without the outbox, for a command that makes
// no covered write (a watch, a pull): it never holds the field file.
func (a *app) connectReadOnly(ctx context.Context) (*client.Client, error) {
	a.field.readOnly = true
	return a.connect(ctx)
}

// fieldCursors returns the field file's cursors, opening the file for each
// load and save only, or nil without a field file. The first load reports
// a file fieldfile.Open refuses.
func (a *app) fieldCursors() *fieldfile.PathCursors {
	path := a.fieldFilePath()
	if path == "" {
		return nil
	}
	return fieldfile.CursorsAt(path)
}

// closeFieldFile closes the field file if it was opened.
func (a *app) closeFieldFile() {
	if a.field.file != nil {
		_ = a.field.file.Close()
		a.field.file = nil
	}
}
