package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// newFocalPointsCmd is `exchangectl focal-points`.
func newFocalPointsCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("focal-points", "Name and find agencies' focal points",
		"A focal point is the person an agency names as its contact for a topic\n"+
			"(referrals, data, plans...) for a tenure. Staff move on: naming a new focal\n"+
			"point for a topic ends the earlier one's tenure, and the history stays.\n"+
			"An agency manages its own focal points; the secretariat all of them.")
	cmd.Aliases = []string{"focal-point", "fp"}
	cmd.AddCommand(
		newFocalPointsCreateCmd(a, nil),
		newFocalPointsListCmd(a, nil),
		newFocalPointsGetCmd(a, nil),
		newFocalPointsCurrentCmd(a, nil),
		newFocalPointsEndCmd(a, nil),
		newFocalPointsDeleteCmd(a, nil),
	)
	return cmd
}

// focalPointsCreateOptions are the inputs of `focal-points create`.
type focalPointsCreateOptions struct {
	app    *app
	Agency string
	Name   string
	Topic  string
	Role   string
	Email  string
	Phone  string
	// Start is the first day of the tenure; nil means today.
	Start *exchangev1.CalendarDate
	// End is the last day of the tenure; nil means open.
	End *exchangev1.CalendarDate
}

// newFocalPointsCreateCmd is `exchangectl focal-points create`.
func newFocalPointsCreateCmd(a *app, runF func(*focalPointsCreateOptions) error) *cobra.Command {
	opts := &focalPointsCreateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "create --agency ID --name NAME --topic TOPIC [flags]",
		Short: "Name a focal point for a topic",
		Example: "  exchangectl focal-points create --agency ilo --name \"Somchai P.\" --topic referrals \\\n" +
			"    --role \"Programme officer\" --email somchai@example.org --start 2026-01-01",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runFocalPointsCreate(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Agency, "agency", "", "the agency id (required)")
	f.StringVar(&opts.Name, "name", "", "the person's name (required)")
	f.StringVar(&opts.Topic, "topic", "", "the topic, a lowercase slug such as referrals, data or plans (required)")
	f.StringVar(&opts.Role, "role", "", "role or job title")
	f.StringVar(&opts.Email, "email", "", "work e-mail address")
	f.StringVar(&opts.Phone, "phone", "", "work telephone in international format, +855 ...")
	newDateFlag(f, &opts.Start, "start", "first day of the tenure (default today)")
	newDateFlag(f, &opts.End, "end", "last day of the tenure (default open)")
	return cmd
}

// request returns the parent and the focal point to create, or a usage
// error.
func (o *focalPointsCreateOptions) request() (string, *exchangev1.FocalPoint, error) {
	if o.Agency == "" {
		return "", nil, usageErrorf("--agency is required")
	}
	id, err := agencyID(o.Agency)
	if err != nil {
		return "", nil, err
	}
	if strings.TrimSpace(o.Name) == "" {
		return "", nil, usageErrorf("--name is required")
	}
	if o.Topic == "" {
		return "", nil, usageErrorf("--topic is required")
	}
	if !topicPattern.MatchString(o.Topic) {
		return "", nil, usageErrorf("invalid --topic %q: want a lowercase slug such as referrals or child-protection", o.Topic)
	}
	start := o.Start
	if start == nil {
		start = o.app.today()
	}
	if o.End != nil && formatDate(o.End) < formatDate(start) {
		return "", nil, usageErrorf("--end %s is before the start %s", formatDate(o.End), formatDate(start))
	}
	return client.AgencyName(id), &exchangev1.FocalPoint{
		DisplayName: o.Name,
		Topic:       o.Topic,
		Role:        o.Role,
		Email:       o.Email,
		Phone:       o.Phone,
		Tenure:      &exchangev1.DatePeriod{Start: start, End: o.End},
	}, nil
}

// runFocalPointsCreate creates the focal point and prints it.
func runFocalPointsCreate(ctx context.Context, o *focalPointsCreateOptions) error {
	parent, fp, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	created, err := c.Directory.CreateFocalPoint(ctx, parent, fp)
	if err != nil {
		return err
	}
	return printOne(o.app, created, focalPointDetail)
}

// focalPointsListOptions are the inputs of `focal-points list`.
type focalPointsListOptions struct {
	app    *app
	Agency string
	Topic  string
	// On limits the list to tenures that include this date.
	On      *exchangev1.CalendarDate
	Current bool
}

// newFocalPointsListCmd is `exchangectl focal-points list`.
func newFocalPointsListCmd(a *app, runF func(*focalPointsListOptions) error) *cobra.Command {
	opts := &focalPointsListOptions{app: a}
	cmd := &cobra.Command{
		Use:     "list [--agency ID|-] [--topic TOPIC] [--on DATE | --current]",
		Aliases: []string{"ls"},
		Short:   "List focal points, with their tenures",
		Example: "  exchangectl focal-points list --agency ilo\n" +
			"  exchangectl focal-points list --topic referrals --current",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runFocalPointsList(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Agency, "agency", "-", "the agency id, or - for all agencies")
	f.StringVar(&opts.Topic, "topic", "", "only focal points for this topic")
	newDateFlag(f, &opts.On, "on", "only focal points in office on this date")
	f.BoolVar(&opts.Current, "current", false, "only focal points in office today")
	return cmd
}

// request returns the list request, or a usage error.
func (o *focalPointsListOptions) request() (*exchangev1.ListFocalPointsRequest, error) {
	req := &exchangev1.ListFocalPointsRequest{Parent: client.AllAgencies, Topic: o.Topic, ActiveOn: o.On}
	if o.Agency != "-" && o.Agency != "" {
		id, err := agencyID(o.Agency)
		if err != nil {
			return nil, err
		}
		req.Parent = client.AgencyName(id)
	}
	if o.Topic != "" && !topicPattern.MatchString(o.Topic) {
		return nil, usageErrorf("invalid --topic %q: want a lowercase slug such as referrals", o.Topic)
	}
	if o.Current {
		if o.On != nil {
			return nil, usageErrorf("give --on or --current, not both")
		}
		req.ActiveOn = o.app.today()
	}
	return req, nil
}

// runFocalPointsList prints the matching focal points.
func runFocalPointsList(ctx context.Context, o *focalPointsListOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	fps, err := client.Collect(c.Directory.FocalPoints(ctx, req))
	if err != nil {
		return err
	}
	return printList(o.app, fps, "focal points",
		[]string{"NAME", "TOPIC", "PERSON", "ROLE", "EMAIL", "START", "END"},
		func(fp *exchangev1.FocalPoint) []string {
			return []string{
				fp.GetName(),
				fp.GetTopic(),
				fp.GetDisplayName(),
				orDash(fp.GetRole()),
				orDash(fp.GetEmail()),
				formatDate(fp.GetTenure().GetStart()),
				orDash(formatDate(fp.GetTenure().GetEnd())),
			}
		})
}

// focalPointsGetOptions are the inputs of `focal-points get`.
type focalPointsGetOptions struct {
	app  *app
	Name string
}

// newFocalPointsGetCmd is `exchangectl focal-points get`.
func newFocalPointsGetCmd(a *app, runF func(*focalPointsGetOptions) error) *cobra.Command {
	opts := &focalPointsGetOptions{app: a}
	return &cobra.Command{
		Use:     "get NAME",
		Short:   "Show one focal point",
		Long:    "Show one focal point. NAME is agencies/AGENCY/focalPoints/ID, as 'focal-points list'\nshows, or AGENCY/ID.",
		Example: "  exchangectl focal-points get agencies/ilo/focalPoints/01jd8x4k2m9q7r3t5v6w8y0z1a",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := focalPointName(opts.Name); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runFocalPointsGet(cmd.Context(), opts)
		},
	}
}

// runFocalPointsGet prints the focal point.
func runFocalPointsGet(ctx context.Context, o *focalPointsGetOptions) error {
	name, err := focalPointName(o.Name)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	fp, err := c.Directory.GetFocalPoint(ctx, name)
	if err != nil {
		return err
	}
	return printOne(o.app, fp, focalPointDetail)
}

// focalPointsCurrentOptions are the inputs of `focal-points current`.
type focalPointsCurrentOptions struct {
	app    *app
	Agency string
	Topic  string
}

// newFocalPointsCurrentCmd is `exchangectl focal-points current`.
func newFocalPointsCurrentCmd(a *app, runF func(*focalPointsCurrentOptions) error) *cobra.Command {
	opts := &focalPointsCurrentOptions{app: a}
	cmd := &cobra.Command{
		Use:     "current --agency ID --topic TOPIC",
		Short:   "Show whom to contact at an agency about a topic today",
		Long:    "Show the focal point of an agency for a topic whose tenure includes today.\nExits with code 3 if there is none.",
		Example: "  exchangectl focal-points current --agency iom --topic referrals",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runFocalPointsCurrent(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Agency, "agency", "", "the agency id (required)")
	cmd.Flags().StringVar(&opts.Topic, "topic", "", "the topic, such as referrals (required)")
	return cmd
}

// request returns the agency name and topic, or a usage error.
func (o *focalPointsCurrentOptions) request() (string, string, error) {
	if o.Agency == "" || o.Topic == "" {
		return "", "", usageErrorf("--agency and --topic are required")
	}
	id, err := agencyID(o.Agency)
	if err != nil {
		return "", "", err
	}
	if !topicPattern.MatchString(o.Topic) {
		return "", "", usageErrorf("invalid --topic %q: want a lowercase slug such as referrals", o.Topic)
	}
	return client.AgencyName(id), o.Topic, nil
}

// runFocalPointsCurrent prints today's focal point.
func runFocalPointsCurrent(ctx context.Context, o *focalPointsCurrentOptions) error {
	agency, topic, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	fp, err := c.Directory.FocalPointOn(ctx, agency, topic, o.app.today())
	if err != nil {
		return err
	}
	return printOne(o.app, fp, focalPointDetail)
}

// focalPointsEndOptions are the inputs of `focal-points end`.
type focalPointsEndOptions struct {
	app  *app
	Name string
	// On is the last day of the tenure; nil means today.
	On *exchangev1.CalendarDate
}

// newFocalPointsEndCmd is `exchangectl focal-points end`.
func newFocalPointsEndCmd(a *app, runF func(*focalPointsEndOptions) error) *cobra.Command {
	opts := &focalPointsEndOptions{app: a}
	cmd := &cobra.Command{
		Use:   "end NAME [--on DATE]",
		Short: "End a focal point's tenure (someone left)",
		Long: "End a focal point's tenure on a date (inclusive, default today): the way to\n" +
			"record that someone left. The record stays in the history.",
		Example: "  exchangectl focal-points end agencies/ilo/focalPoints/01jd8x4k2m9q7r3t5v6w8y0z1a --on 2026-06-30",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := focalPointName(opts.Name); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runFocalPointsEnd(cmd.Context(), opts)
		},
	}
	newDateFlag(cmd.Flags(), &opts.On, "on", "last day of the tenure (default today)")
	return cmd
}

// runFocalPointsEnd ends the tenure and prints the focal point.
func runFocalPointsEnd(ctx context.Context, o *focalPointsEndOptions) error {
	name, err := focalPointName(o.Name)
	if err != nil {
		return err
	}
	last := o.On
	if last == nil {
		last = o.app.today()
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	fp, err := c.Directory.EndFocalPoint(ctx, name, last)
	if err != nil {
		return err
	}
	return printOne(o.app, fp, focalPointDetail)
}

// focalPointsDeleteOptions are the inputs of `focal-points delete`.
type focalPointsDeleteOptions struct {
	app  *app
	Name string
}

// newFocalPointsDeleteCmd is `exchangectl focal-points delete`.
func newFocalPointsDeleteCmd(a *app, runF func(*focalPointsDeleteOptions) error) *cobra.Command {
	opts := &focalPointsDeleteOptions{app: a}
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Remove a focal point entered by mistake",
		Long: "Remove a focal point entered by mistake. To record that someone left, use\n" +
			"'focal-points end' instead, which keeps the history.",
		Example: "  exchangectl focal-points delete agencies/ilo/focalPoints/01jd8x4k2m9q7r3t5v6w8y0z1a",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := focalPointName(opts.Name); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runFocalPointsDelete(cmd.Context(), opts)
		},
	}
}

// runFocalPointsDelete deletes the focal point.
func runFocalPointsDelete(ctx context.Context, o *focalPointsDeleteOptions) error {
	name, err := focalPointName(o.Name)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	if err := c.Directory.DeleteFocalPoint(ctx, name, ""); err != nil {
		return err
	}
	return printDeleted(o.app, name)
}

// focalPointDetail is the human form of one focal point.
func focalPointDetail(fp *exchangev1.FocalPoint) []field {
	end := formatDate(fp.GetTenure().GetEnd())
	if end == "" {
		end = "open"
	}
	return []field{
		{"Name", fp.GetName()},
		{"Person", fp.GetDisplayName()},
		{"Topic", fp.GetTopic()},
		{"Role", fp.GetRole()},
		{"Email", fp.GetEmail()},
		{"Phone", fp.GetPhone()},
		{"Tenure start", formatDate(fp.GetTenure().GetStart())},
		{"Tenure end", end},
		{"Created", formatTime(fp.GetCreateTime())},
		{"Updated", formatTime(fp.GetUpdateTime())},
		{"Etag", fp.GetEtag()},
	}
}
