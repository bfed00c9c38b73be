package cli

import (
	"context"
	"strings"

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
	return printOne(o.app, e, func(e *exchangev1.Engagement) []field {
		return []field{
			{"Engagement", e.GetName()},
			{"Agency", e.GetAgency()},
			{"From", formatDate(e.GetPeriod().GetStart())},
			{"To", formatDate(e.GetPeriod().GetEnd())},
			{"Niche", nicheNames.name(e.GetNiche().Number())},
			{"Purpose", e.GetPurpose()},
		}
	})
}
