package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// referralsWatchOptions are the inputs of `referrals watch`.
type referralsWatchOptions struct {
	app *app
	// From is the revision to follow changes after; 0 means from now.
	From int64
	// FromGiven is set when --from was given; StartOver is --start-over.
	FromGiven, StartOver bool
}

const referralsWatchLong = `Print one line per event on your agency's referrals as it happens: a
referral sent to or by you (created), or a change to one (updated: state,
consent, forward). Each line holds the revision, the kind of event, the
referral's id, its state, sender -> receiver and service; with --json, one
JSON object per line (JSON Lines, not an array), the API's
WatchReferralsResponse. Events carry no identifying details.

The watch runs until interrupted (Ctrl-C), or for --timeout when given, and
then exits 0. When the connection breaks it says so on stderr, reconnects by
itself and resumes where it was: no event is lost or printed twice.

--from REVISION starts after that revision (for example the one 'referrals
inbox' reports on a terminal), replaying what happened since; without it the
watch starts now. Exit code 6 (OUT_OF_RANGE) means the exchange no longer
keeps changes that old: list again and watch from now.

` + watchResumeHelp

// newReferralsWatchCmd is `exchangectl referrals watch`.
func newReferralsWatchCmd(a *app, runF func(*referralsWatchOptions) error) *cobra.Command {
	opts := &referralsWatchOptions{app: a}
	cmd := &cobra.Command{
		Use:   "watch [--from REVISION]",
		Short: "Print events on your referrals as they happen, until interrupted",
		Long:  referralsWatchLong,
		Example: "  exchangectl referrals watch\n" +
			"  exchangectl --json referrals watch --from 1234 >> events.jsonl",
		Args:        exactArgs(),
		Annotations: longRunning,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.From < 0 {
				return usageErrorf("--from %d: want a revision, 0 or more", opts.From)
			}
			opts.FromGiven = cmd.Flags().Changed("from")
			if runF != nil {
				return runF(opts)
			}
			return runReferralsWatch(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int64Var(&opts.From, "from", 0, "follow changes after this revision (default: from now)")
	addStartOverFlag(cmd, &opts.StartOver)
	return cmd
}

// runReferralsWatch prints events until the context ends.
func runReferralsWatch(ctx context.Context, o *referralsWatchOptions) error {
	c, err := o.app.connectReadOnly(ctx)
	if err != nil {
		return err
	}
	resume, err := o.app.watchResumeOptions(referralsWatchCursor, o.FromGiven, o.StartOver)
	if err != nil {
		return err
	}
	w := o.app.env.Stdout
	if o.app.stderrIsTerminal() && !o.app.global.JSON {
		fmt.Fprintln(o.app.env.Stderr, "Watching referrals; Ctrl-C to stop.")
	}
	err = c.Referrals.Watch(ctx, o.From, func(ev *exchangev1.WatchReferralsResponse) error {
		if ev.GetKind() == exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
			return nil
		}
		if o.app.global.JSON {
			b, err := protojson.Marshal(ev)
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
		_, err := fmt.Fprintln(w, eventLine(ev))
		return err
	}, append(resume, client.OnReconnect(func(err error, wait time.Duration, rev int64) {
		fmt.Fprintf(o.app.env.Stderr, "exchangectl: watch interrupted (%v); reconnecting in %v after revision %d\n",
			err, wait.Round(time.Millisecond), rev)
	}))...)
	_, bounded := ctx.Deadline()
	if ctx.Err() != nil || (bounded && status.Code(err) == codes.DeadlineExceeded) {
		// Interrupted, or --timeout reached (the server may notice the
		// deadline a moment before this process): the normal end of a
		// watch.
		return nil
	}
	return err
}

// eventLine is the human form of one event.
func eventLine(ev *exchangev1.WatchReferralsResponse) string {
	r := ev.GetReferral()
	line := fmt.Sprintf("%-8d %-8s %s %-11s %s -> %s %s",
		ev.GetRevision(),
		eventKindNames.name(protoreflect.EnumNumber(ev.GetKind())),
		client.ResourceID(r.GetName()),
		referralStateNames.name(protoreflect.EnumNumber(r.GetState())),
		client.ResourceID(r.GetSender()),
		client.ResourceID(r.GetReceiver()),
		nicheNames.name(protoreflect.EnumNumber(r.GetService().GetNiche())))
	if r.GetOverdue() {
		line += " overdue"
	}
	return line
}
