package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client"
)

// Names of the watches' cursors in the field file.
const (
	referralsWatchCursor  = "watch:referrals"
	rowsWatchCursorStart  = "watch:rows:"
	plansWatchCursorStart = "watch:plans?"
)

// watchResumeHelp is the paragraph each watch's help ends with.
const watchResumeHelp = `With a field file (--field-file or EXCHANGE_FIELD_FILE), the watch keeps in
it how far it got, after each change it has printed, and the next watch
resumes there, even after exchangectl was stopped, crashed or lost its link:
nothing that happened in between is missed. A change being printed at the
very moment exchangectl was killed may be printed again. --from REVISION, or
--start-over (from now), forgets the saved place and starts there instead.
The watch opens the field file only while it saves its place, so commands in
another window can use the same field file while it runs.`

// addStartOverFlag adds a watch's --start-over flag.
func addStartOverFlag(cmd *cobra.Command, startOver *bool) {
	cmd.Flags().BoolVar(startOver, "start-over", false, "with a field file: forget where the last watch stopped and watch from now (or --from)")
}

// watchResumeOptions returns the options that make a watch keep its
// position in the field file under name and start from the one saved
// there, or none without a field file. fromGiven (--from) and startOver
// forget the saved position first. The watch holds the file only while
// it loads or saves its position (fieldfile.CursorsAt), so that it can
// run all day while writes in another window use the file; it must have
// connected with connectReadOnly.
func (a *app) watchResumeOptions(name string, fromGiven, startOver bool) ([]client.WatchOption, error) {
	cursors := a.fieldCursors()
	if cursors == nil {
		if startOver {
			return nil, usageErrorf("--start-over is for a watch with a field file (--field-file or %s), which keeps where the watch got", EnvFieldFile)
		}
		return nil, nil
	}
	if fromGiven || startOver {
		if err := cursors.Delete(name); err != nil {
			return nil, fmt.Errorf("--field-file: %w", err)
		}
	} else if v, err := cursors.Load(name); err != nil {
		return nil, fmt.Errorf("--field-file: %w", err)
	} else if v != "" {
		fmt.Fprintf(a.env.Stderr, "Resuming the watch where it stopped (kept in %s); --start-over watches from now.\n", cursors.Path())
	}
	return []client.WatchOption{client.ResumeFrom(cursors, name)}, nil
}

// digestOf is the first 16 hex digits of the SHA-256 of m in
// deterministic protobuf form: the filters of a watch in its cursor's
// name.
func digestOf(m proto.Message) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		b = []byte(fmt.Sprint(m))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
