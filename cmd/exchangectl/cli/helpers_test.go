package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// testNow is the fixed "now" of the tests: 15 March 2026.
var testNow = time.Date(2026, 3, 15, 10, 0, 0, 0, time.Local)

// testEnv is an environment with captured output, the given environment
// variables, a temporary working directory and the fixed clock.
type testEnv struct {
	Environment
	stdout, stderr *bytes.Buffer
	vars           map[string]string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, vars: map[string]string{}}
	e.Environment = Environment{
		Stdin:   bytes.NewReader(nil),
		Stdout:  e.stdout,
		Stderr:  e.stderr,
		Getenv:  func(k string) string { return e.vars[k] },
		WorkDir: t.TempDir(),
		Now:     func() time.Time { return testNow },
	}
	return e
}

// parse runs a verb's constructor on args with a run function that only
// captures the options, and returns them (nil if the run function was not
// reached) and the error.
func parse[O any](t *testing.T, newCmd func(*app, func(*O) error) *cobra.Command, args ...string) (*O, error) {
	t.Helper()
	a := newApp(newTestEnv(t).Environment)
	var got *O
	cmd := newCmd(a, func(o *O) error { got = o; return nil })
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return got, err
}

// isUsage reports whether err is a usage error.
func isUsage(err error) bool { return errors.As(err, new(usageError)) }

// equalProto fails t unless got equals want.
func equalProto(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("got  %s\nwant %s", protojson.Format(got), protojson.Format(want))
	}
}
