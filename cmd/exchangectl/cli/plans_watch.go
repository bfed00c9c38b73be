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

// plansWatchOptions are the inputs of `plans watch`.
type plansWatchOptions struct {
	app       *app
	Provinces []string
	Niches    []exchangev1.Niche
	// From is the revision to follow changes after; 0 means from now.
	From int64
	// FromGiven is set when --from was given; StartOver is --start-over.
	FromGiven, StartOver bool
}

const plansWatchLong = `Print one line per change to the plans you may see, as it happens: a plan
created, updated or cancelled, or removed from your view (its owner stopped
sharing it with you, or it no longer matches your filters). Each line holds
the revision, the kind of change, the plan, its stage, niches and places and
its title; with --json, one JSON object per line (JSON Lines), the API's
WatchPlansResponse.

--province (repeatable) follows only plans touching those provinces (there, or
in their whole country), for example to hear when a new plan comes to your
provinces; --niche (repeatable) only plans in those niches.

The watch runs until interrupted (Ctrl-C), or for --timeout when given, and
then exits 0. When the connection breaks it says so on stderr, reconnects by
itself and resumes where it was: no change is lost or printed twice. --from
REVISION starts after that revision ('plans list' prints it on a terminal;
'plans apply' prints the revision it applied at), replaying what happened
since. Exit code 6 (OUT_OF_RANGE) means the exchange no longer keeps changes
that old: list again and watch from now.

` + watchResumeHelp + `
A watch with other --province or --niche filters is another watch, with a
place of its own.`

// newPlansWatchCmd is `exchangectl plans watch`.
func newPlansWatchCmd(a *app, runF func(*plansWatchOptions) error) *cobra.Command {
	opts := &plansWatchOptions{app: a}
	cmd := &cobra.Command{
		Use:   "watch [--province CODE]... [--niche N]... [--from REVISION]",
		Short: "Print changes to the plans you may see as they happen, until interrupted",
		Long:  plansWatchLong,
		Example: "  exchangectl plans watch --province KH-1,KH-12 --niche prevention\n" +
			"  exchangectl --json plans watch --from 1234 >> plan-events.jsonl",
		Args:        exactArgs(),
		Annotations: longRunning,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := opts.request(); err != nil {
				return err
			}
			if opts.From < 0 {
				return usageErrorf("--from %d: want a revision, 0 or more", opts.From)
			}
			opts.FromGiven = cmd.Flags().Changed("from")
			if runF != nil {
				return runF(opts)
			}
			return runPlansWatch(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.Provinces, "province", nil, "only plans touching these provinces, ISO 3166-2 such as KH-12 (repeatable or comma-separated)")
	newEnumSliceFlag(f, &opts.Niches, "niche", nicheNames, "only plans in these niches")
	f.Int64Var(&opts.From, "from", 0, "follow changes after this revision (default: from now)")
	addStartOverFlag(cmd, &opts.StartOver)
	return cmd
}

// request returns the watch's filters, or a usage error.
func (o *plansWatchOptions) request() (*exchangev1.WatchPlansRequest, error) {
	req := &exchangev1.WatchPlansRequest{Niches: o.Niches}
	for _, p := range o.Provinces {
		code, err := subdivisionCode(p)
		if err != nil {
			return nil, err
		}
		req.Subdivisions = append(req.Subdivisions, code)
	}
	return req, nil
}

// runPlansWatch prints events until the context ends.
func runPlansWatch(ctx context.Context, o *plansWatchOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connectReadOnly(ctx)
	if err != nil {
		return err
	}
	resume, err := o.app.watchResumeOptions(plansWatchCursorStart+digestOf(req), o.FromGiven, o.StartOver)
	if err != nil {
		return err
	}
	w := o.app.env.Stdout
	if o.app.stderrIsTerminal() && !o.app.global.JSON {
		fmt.Fprintln(o.app.env.Stderr, "Watching plans; Ctrl-C to stop.")
	}
	err = c.Plans.Watch(ctx, req, o.From, func(ev *exchangev1.WatchPlansResponse) error {
		if ev.GetKind() == exchangev1.PlanEventKind_PLAN_EVENT_KIND_HEARTBEAT {
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
		_, err := fmt.Fprintln(w, planEventLine(ev))
		return err
	}, append(resume, client.OnReconnect(func(err error, wait time.Duration, rev int64) {
		fmt.Fprintf(o.app.env.Stderr, "exchangectl: watch interrupted (%v); reconnecting in %v after revision %d\n",
			err, wait.Round(time.Millisecond), rev)
	}))...)
	_, bounded := ctx.Deadline()
	if ctx.Err() != nil || (bounded && status.Code(err) == codes.DeadlineExceeded) {
		// Interrupted, or --timeout reached: the normal end of a watch.
		return nil
	}
	return err
}

// planEventLine is the human form of one event.
func planEventLine(ev *exchangev1.WatchPlansResponse) string {
	p := ev.GetPlan()
	line := fmt.Sprintf("%-8d %-9s %s", ev.GetRevision(), planEventNames.name(protoreflect.EnumNumber(ev.GetKind())), shortPlanName(p.GetName()))
	if ev.GetKind() == exchangev1.PlanEventKind_PLAN_EVENT_KIND_REMOVED {
		return line
	}
	return fmt.Sprintf("%s %s %s %s [%s] %s", line, p.GetExternalId(), stageName(p.GetStage()),
		nicheList(p.GetNiches()), locationList(p.GetLocations()), p.GetTitle())
}
