package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// auditWatchOptions are the inputs of `audit watch`.
type auditWatchOptions struct {
	app *app
	// From is a resume token to continue after; empty means from now.
	From string
}

const auditWatchLong = `Print one line per audit entry you may see as it is appended: for an agency,
the entries about its own resources or made by it, among them every
certificate issued, recorded or revoked for it and every change of its
encryption key; for the secretariat, every entry. Each line holds the time,
actor, certificate serial, method and resource; with --json, one JSON object
per line (JSON Lines), the API's WatchAuditEntriesResponse, heartbeats
included, each with its resume token.

The watch runs until interrupted (Ctrl-C), or for --timeout when given, and
then exits 0. When the connection breaks it says so on stderr, reconnects by
itself and resumes where it was: no entry is lost or printed twice.

--from TOKEN continues after a resume token printed by an earlier
'--json audit watch'; without it the watch starts now.`

// newAuditWatchCmd is `exchangectl audit watch`.
func newAuditWatchCmd(a *app) *cobra.Command {
	opts := &auditWatchOptions{app: a}
	cmd := &cobra.Command{
		Use:   "watch [--from TOKEN]",
		Short: "Print the audit entries you may see as they are appended, until interrupted",
		Long:  auditWatchLong,
		Example: "  exchangectl audit watch\n" +
			"  exchangectl --json audit watch >> audit.jsonl",
		Args:        exactArgs(),
		Annotations: longRunning,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAuditWatch(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.From, "from", "", "continue after this resume token (default: from now)")
	return cmd
}

// runAuditWatch prints entries until the context ends.
func runAuditWatch(ctx context.Context, o *auditWatchOptions) error {
	c, err := o.app.connectReadOnly(ctx)
	if err != nil {
		return err
	}
	w := o.app.env.Stdout
	if o.app.stderrIsTerminal() && !o.app.global.JSON {
		fmt.Fprintln(o.app.env.Stderr, "Watching the audit entries you may see; Ctrl-C to stop.")
	}
	err = c.Audit.Watch(ctx, o.From, func(msg *exchangev1.WatchAuditEntriesResponse) error {
		if o.app.global.JSON {
			b, err := protojson.Marshal(msg)
			if err != nil {
				return err
			}
			var line bytes.Buffer
			if err := json.Compact(&line, b); err != nil {
				return err
			}
			line.WriteByte('\n')
			_, err = w.Write(line.Bytes())
			return err
		}
		for _, e := range msg.GetEntries() {
			method := e.GetMethod()
			if i := strings.LastIndex(method, "/"); i >= 0 {
				method = method[i+1:]
			}
			if _, err := fmt.Fprintf(w, "%s %s [%s] %s %s\n", formatTime(e.GetTime()), e.GetActor(), e.GetActorCertificate(), method, e.GetResourceName()); err != nil {
				return err
			}
		}
		return nil
	}, client.OnReconnect(func(err error, wait time.Duration, _ int64) {
		fmt.Fprintf(o.app.env.Stderr, "exchangectl: audit watch interrupted (%v); reconnecting in %v\n", err, wait.Round(time.Millisecond))
	}))
	_, bounded := ctx.Deadline()
	if ctx.Err() != nil || (bounded && status.Code(err) == codes.DeadlineExceeded) {
		return nil // interrupted, or --timeout reached: the normal end of a watch
	}
	return err
}
