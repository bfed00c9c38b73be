package cli

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// consultantsEngageOptions are the inputs of `consultants engage`.
type consultantsEngageOptions struct {
	app       *app
	Name      string
	From, To  *exchangev1.CalendarDate
	Niche     exchangev1.Niche
	Purpose   string
	RequestID string
}

// newConsultantsEngageCmd is `exchangectl consultants engage`.
func newConsultantsEngageCmd(a *app) *cobra.Command {
	opts := &consultantsEngageOptions{app: a}
	cmd := &cobra.Command{
		Use:   "engage CONSULTANT --from DATE --to DATE --niche NICHE --purpose TEXT",
		Short: "Book a consultant for your agency for some weeks",
		Long: "Book a consultant for your agency from --from to --to, both days included.\n" +
			"Weeks that overlap another engagement of the consultant are refused (exit 6,\n" +
			"FAILED_PRECONDITION), naming that engagement, its agency and its dates.",
		Example: "  exchangectl consultants engage ilo/01jd8x4k2m9q7r3t5v6w8y0z1a --from 2026-05-04 --to 2026-05-15 \\\n" +
			"    --niche psychosocial-counselling --purpose \"training of shelter staff\"",
		Args: exactArgs("CONSULTANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := consultantName(args[0])
			if err != nil {
				return err
			}
			opts.Name = name
			switch {
			case opts.From == nil || opts.To == nil:
				return usageErrorf("--from and --to are required: an engagement books whole days with an end")
			case formatDate(opts.To) < formatDate(opts.From):
				return usageErrorf("--to %s is before --from %s", formatDate(opts.To), formatDate(opts.From))
			case opts.Niche == 0:
				return usageErrorf("--niche is required")
			case strings.TrimSpace(opts.Purpose) == "":
				return usageErrorf("--purpose is required: what the consultant is engaged for, in a few words")
			}
			return runConsultantsEngage(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	newDateFlag(f, &opts.From, "from", "first day of the engagement (required)")
	newDateFlag(f, &opts.To, "to", "last day of the engagement (required)")
	newEnumFlag(f, &opts.Niche, "niche", nicheNames, "what expertise the engagement is for (required)")
	f.StringVar(&opts.Purpose, "purpose", "", "what for, in a few words; never a person helped (required)")
	f.StringVar(&opts.RequestID, "request-id", "", "idempotency key (default random): a retry with it books once")
	return cmd
}

// runConsultantsEngage books the consultant and prints the engagement.
func runConsultantsEngage(ctx context.Context, o *consultantsEngageOptions) error {
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	var opts []client.CreateOption
	if o.RequestID != "" {
		opts = append(opts, client.WithRequestID(o.RequestID))
	}
	e, err := c.Consultants.Engage(ctx, o.Name, &exchangev1.Engagement{
		Period: &exchangev1.DatePeriod{Start: o.From, End: o.To}, Niche: o.Niche, Purpose: o.Purpose,
	}, opts...)
	if err != nil {
		return err
	}
	return printOne(o.app, e, engagementFields)
}

// engagementFields are the fields `engage` and `cancel-engagement` print
// of an engagement; a cancelled one adds the day and reason.
func engagementFields(e *exchangev1.Engagement) []field {
	fields := []field{
		{"Engagement", e.GetName()},
		{"Agency", e.GetAgency()},
		{"From", formatDate(e.GetPeriod().GetStart())},
		{"To", formatDate(e.GetPeriod().GetEnd())},
		{"Niche", nicheNames.name(e.GetNiche().Number())},
		{"Purpose", e.GetPurpose()},
	}
	if t := e.GetCancelTime(); t != nil {
		fields = append(fields, field{"Cancelled", t.AsTime().UTC().Format(time.DateOnly)}, field{"Reason", e.GetCancelReason()})
	}
	return fields
}

// engagementNamePattern matches
// "agencies/AGENCY/consultants/ID/engagements/ID" and its short form
// "AGENCY/ID/ID".
var engagementNamePattern = regexp.MustCompile(`^(?:agencies/)?([a-z][a-z0-9-]{1,38}[a-z0-9])/(?:consultants/)?([0-9a-z]{26})/(?:engagements/)?([0-9a-z]{26})$`)

// engagementName returns the resource name of an engagement given in
// full, as 'consultants show' lists it, or as "AGENCY/CONSULTANT/ENGAGEMENT".
func engagementName(s string) (string, error) {
	m := engagementNamePattern.FindStringSubmatch(s)
	if m == nil {
		return "", usageErrorf("invalid engagement %q: want agencies/AGENCY/consultants/ID/engagements/ID, as 'consultants show' lists it, or AGENCY/ID/ID", s)
	}
	return "agencies/" + m[1] + "/consultants/" + m[2] + "/engagements/" + m[3], nil
}

// consultantsCancelEngagementOptions are the inputs of `consultants
// cancel-engagement`.
type consultantsCancelEngagementOptions struct {
	app    *app
	Name   string
	Reason string
	Etag   string
}

// newConsultantsCancelEngagementCmd is `exchangectl consultants
// cancel-engagement`.
func newConsultantsCancelEngagementCmd(a *app) *cobra.Command {
	opts := &consultantsCancelEngagementOptions{app: a}
	cmd := &cobra.Command{
		Use:   "cancel-engagement ENGAGEMENT --reason TEXT",
		Short: "Cancel an engagement your agency booked, freeing its weeks",
		Long: "Cancel an engagement your agency booked that has not ended. Its weeks are free\n" +
			"for another booking; the engagement stays, with the day and reason of its\n" +
			"cancellation, for the agency that added the consultant. One already cancelled\n" +
			"or ended is refused (exit 6, FAILED_PRECONDITION).",
		Example: "  exchangectl consultants cancel-engagement ilo/01jd8x4k2m9q7r3t5v6w8y0z1a/01jd9a0b1c2d3e4f5g6h7j8k9m \\\n" +
			"    --reason \"training postponed to next quarter\"",
		Args: exactArgs("ENGAGEMENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := engagementName(args[0])
			if err != nil {
				return err
			}
			opts.Name = name
			if strings.TrimSpace(opts.Reason) == "" {
				return usageErrorf("--reason is required: why, in a few words, for the agency that added the consultant")
			}
			return runConsultantsCancelEngagement(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Reason, "reason", "", "why, in a few words; never a person helped (required)")
	f.StringVar(&opts.Etag, "etag", "", "the etag as last read; refused (exit 5, ABORTED) if the engagement changed since")
	return cmd
}

// runConsultantsCancelEngagement cancels the engagement and prints it.
func runConsultantsCancelEngagement(ctx context.Context, o *consultantsCancelEngagementOptions) error {
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	e, err := c.Consultants.CancelEngagement(ctx, o.Name, o.Reason, o.Etag)
	if err != nil {
		return err
	}
	return printOne(o.app, e, engagementFields)
}
