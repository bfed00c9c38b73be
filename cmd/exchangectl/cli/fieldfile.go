package cli

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/alltogether/exchange/client/fieldfile"
)

// fieldFileState is the field file of one run: the path the flag or the
// environment names, and the file once opened.
type fieldFileState struct {
	path string
	file *fieldfile.File
}

// addFieldFileFlag adds the global --field-file flag to f.
func addFieldFileFlag(a *app, f *pflag.FlagSet) {
	f.StringVar(&a.field.path, "field-file", "", "the field office's local file: writes made while the exchange cannot be reached wait in its outbox for 'exchangectl outbox send', and pulls and watches keep how far they got there so that they resume after a break (env "+EnvFieldFile+"; none unless given; usually field.db beside --cert)")
}

// fieldFile returns the field file, opened on first use, or nil when
// neither --field-file nor EXCHANGE_FIELD_FILE names one.
func (a *app) fieldFile() (*fieldfile.File, error) {
	if a.field.file != nil {
		return a.field.file, nil
	}
	path := a.field.path
	if !a.flags.Changed("field-file") {
		path = a.env.Getenv(EnvFieldFile)
	}
	if path == "" {
		return nil, nil
	}
	f, err := fieldfile.Open(a.path(path))
	if err != nil {
		return nil, fmt.Errorf("--field-file: %w", err)
	}
	a.field.file = f
	return f, nil
}

// closeFieldFile closes the field file if it was opened.
func (a *app) closeFieldFile() {
	if a.field.file != nil {
		_ = a.field.file.Close()
		a.field.file = nil
	}
}
