package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// newConsultantsCmd is `exchangectl consultants`.
func newConsultantsCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("consultants", "Keep the shared roster of consultants and book them",
		"Agencies share the consultants they work with: expertise (niches), languages,\n"+
			"provinces and availability. A consultant is listed to every agency only with\n"+
			"their consent to be listed, recorded with its date; without it only the agency\n"+
			"that added them sees the profile. Bookings (engagements) of one consultant\n"+
			"never overlap: a booking that would is refused, naming the other engagement,\n"+
			"its agency and its dates; the booking agency may cancel an engagement that has\n"+
			"not ended, which frees its weeks. An engagement is seen by the agency that booked it\n"+
			"and the agency that added the consultant. On the consultant's request the\n"+
			"adding agency erases the profile; engagements stay, of an erased consultant.")
	cmd.Aliases = []string{"consultant"}
	cmd.AddCommand(
		newConsultantsAddCmd(a),
		newConsultantsListCmd(a),
		newConsultantsShowCmd(a),
		newConsultantsEngageCmd(a),
		newConsultantsCancelEngagementCmd(a),
		newConsultantsEraseCmd(a),
	)
	return cmd
}

// consultantNamePattern matches "agencies/AGENCY/consultants/ID" and
// its short form "AGENCY/ID".
var consultantNamePattern = regexp.MustCompile(`^(?:agencies/)?([a-z][a-z0-9-]{1,38}[a-z0-9])/(?:consultants/)?([0-9a-z]{26})$`)

// consultantName returns the resource name of a consultant given as
// "agencies/AGENCY/consultants/ID" or "AGENCY/ID".
func consultantName(s string) (string, error) {
	m := consultantNamePattern.FindStringSubmatch(s)
	if m == nil {
		return "", usageErrorf("invalid consultant %q: want agencies/AGENCY/consultants/ID, as 'consultants list' shows, or AGENCY/ID", s)
	}
	return "agencies/" + m[1] + "/consultants/" + m[2], nil
}

// consultantsAddOptions are the inputs of `consultants add`.
type consultantsAddOptions struct {
	app          *app
	Name         string
	Email        string
	Languages    []string
	Niches       []exchangev1.Niche
	Provinces    []string
	Available    []string
	ConsentOn    *exchangev1.CalendarDate
	ConsentNote  string
	RequestID    string
	availability []*exchangev1.DatePeriod
}

// newConsultantsAddCmd is `exchangectl consultants add`.
func newConsultantsAddCmd(a *app) *cobra.Command {
	opts := &consultantsAddOptions{app: a}
	cmd := &cobra.Command{
		Use:   "add --name NAME [--consent-on DATE] [flags]",
		Short: "Add a consultant to the roster, under your agency",
		Long: "Add a consultant to the roster, under the agency your certificate names.\n" +
			"Without --consent-on (the day the consultant agreed to be listed) only your\n" +
			"agency sees the profile.",
		Example: "  exchangectl consultants add --name \"Sok Dara\" --email roster@ilo.example \\\n" +
			"    --language km --language en --niche psychosocial-counselling --province KH-12 \\\n" +
			"    --available 2026-04-01:2026-09-30 --consent-on 2026-03-01 --consent-note \"form CF-12\"",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			return runConsultantsAdd(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "", "the consultant's name as they want it shown (required)")
	f.StringVar(&opts.Email, "email", "", "a role-based address to reach them through (never a personal mailbox)")
	f.StringSliceVar(&opts.Languages, "language", nil, "a language they work in, BCP 47 (km, en, th); repeatable")
	newEnumSliceFlag(f, &opts.Niches, "niche", nicheNames, "an expertise; repeatable")
	f.StringSliceVar(&opts.Provinces, "province", nil, "a province they work in, ISO 3166-2 (KH-12); repeatable")
	f.StringSliceVar(&opts.Available, "available", nil, "a window they are available, FROM:TO dates; repeatable")
	newDateFlag(f, &opts.ConsentOn, "consent-on", "the day they consented to be listed")
	f.StringVar(&opts.ConsentNote, "consent-note", "", "how consent was recorded, for example a form number")
	f.StringVar(&opts.RequestID, "request-id", "", "idempotency key (default random): a retry with it adds nobody twice")
	return cmd
}

// check parses the flags, or returns a usage error.
func (o *consultantsAddOptions) check() error {
	if strings.TrimSpace(o.Name) == "" {
		return usageErrorf("--name is required")
	}
	if o.ConsentNote != "" && o.ConsentOn == nil {
		return usageErrorf("--consent-note needs --consent-on, the day consent was given")
	}
	o.availability = nil
	for _, w := range o.Available {
		from, to, ok := strings.Cut(w, ":")
		start, err1 := parseDate(from)
		end, err2 := parseDate(to)
		if !ok || err1 != nil || err2 != nil {
			return usageErrorf("invalid --available %q: want FROM:TO, two YYYY-MM-DD dates", w)
		}
		o.availability = append(o.availability, &exchangev1.DatePeriod{Start: start, End: end})
	}
	for _, p := range o.Provinces {
		if _, err := subdivisionCode(p); err != nil {
			return err
		}
	}
	return nil
}

// runConsultantsAdd adds the consultant and prints it.
func runConsultantsAdd(ctx context.Context, o *consultantsAddOptions) error {
	parent, err := o.app.ownAgency("consultants are added by agencies; pass an agency's --cert and --key")
	if err != nil {
		return err
	}
	k := &exchangev1.Consultant{
		DisplayName: o.Name, ContactEmail: o.Email, Languages: o.Languages, Niches: o.Niches,
		Provinces: o.Provinces, Availability: o.availability,
	}
	if o.ConsentOn != nil {
		k.Consent = &exchangev1.ConsultantConsent{GivenOn: o.ConsentOn, Record: o.ConsentNote}
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	var opts []client.CreateOption
	if o.RequestID != "" {
		opts = append(opts, client.WithRequestID(o.RequestID))
	}
	added, err := c.Consultants.Add(ctx, parent, k, opts...)
	if err != nil {
		return err
	}
	return printOne(o.app, added, consultantDetail)
}

// consultantDetail is the human form of a consultant.
func consultantDetail(k *exchangev1.Consultant) []field {
	var niches, windows []string
	for _, n := range k.GetNiches() {
		niches = append(niches, nicheNames.name(n.Number()))
	}
	for _, p := range k.GetAvailability() {
		windows = append(windows, formatDate(p.GetStart())+" to "+formatDate(p.GetEnd()))
	}
	consent := "none: not listed to other agencies"
	if c := k.GetConsent(); c.GetGivenOn() != nil {
		consent = "given " + formatDate(c.GetGivenOn())
		if c.GetRecord() != "" {
			consent += " (" + c.GetRecord() + ")"
		}
	}
	display := k.GetDisplayName()
	if k.GetErased() {
		display, consent = "(erased consultant)", "erased "+formatTime(k.GetEraseTime())
	}
	return []field{
		{"Name", k.GetName()},
		{"Consultant", display},
		{"Added by", k.GetOwner()},
		{"Contact", k.GetContactEmail()},
		{"Languages", strings.Join(k.GetLanguages(), ", ")},
		{"Expertise", strings.Join(niches, ", ")},
		{"Provinces", strings.Join(k.GetProvinces(), ", ")},
		{"Available", strings.Join(windows, "; ")},
		{"Consent", consent},
		{"Added", formatTime(k.GetCreateTime())},
		{"Updated", formatTime(k.GetUpdateTime())},
	}
}

// consultantsListOptions are the inputs of `consultants list`.
type consultantsListOptions struct {
	app      *app
	Agency   string
	Niche    exchangev1.Niche
	Language string
	Province string
}

// newConsultantsListCmd is `exchangectl consultants list`.
func newConsultantsListCmd(a *app) *cobra.Command {
	opts := &consultantsListOptions{app: a}
	cmd := &cobra.Command{
		Use:     "list [--agency ID|-] [--niche NICHE] [--language LANG] [--province CODE]",
		Aliases: []string{"ls"},
		Short:   "List the consultants you may see",
		Example: "  exchangectl consultants list --niche legal-aid --language km --province KH-12",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConsultantsList(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Agency, "agency", "-", "only consultants added by this agency, or - for all")
	newEnumFlag(f, &opts.Niche, "niche", nicheNames, "only consultants with this expertise")
	f.StringVar(&opts.Language, "language", "", "only consultants working in this language (BCP 47)")
	f.StringVar(&opts.Province, "province", "", "only consultants working in this province (ISO 3166-2)")
	return cmd
}

// runConsultantsList prints the matching consultants.
func runConsultantsList(ctx context.Context, o *consultantsListOptions) error {
	req := &exchangev1.ListConsultantsRequest{Parent: client.AllAgencies, Niche: o.Niche, Language: o.Language, Province: o.Province}
	if o.Agency != "-" && o.Agency != "" {
		id, err := agencyID(o.Agency)
		if err != nil {
			return err
		}
		req.Parent = client.AgencyName(id)
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	list, err := client.Collect(c.Consultants.Consultants(ctx, req))
	if err != nil {
		return err
	}
	return printList(o.app, list, "consultants", []string{"NAME", "CONSULTANT", "LANGUAGES", "EXPERTISE", "PROVINCES", "LISTED"},
		func(k *exchangev1.Consultant) []string {
			d := consultantDetail(k)
			listed := "yes"
			if k.GetConsent().GetGivenOn() == nil {
				listed = "no"
			}
			return []string{k.GetName(), d[1].value, orDash(d[4].value), orDash(d[5].value), orDash(d[6].value), listed}
		})
}

// newConsultantsShowCmd is `exchangectl consultants show`.
func newConsultantsShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show CONSULTANT",
		Short: "Show a consultant and the engagements you may see",
		Long: "Show a consultant and the engagements you may see: yours, or all of them if your\n" +
			"agency added the consultant. CONSULTANT is agencies/AGENCY/consultants/ID or AGENCY/ID.",
		Example: "  exchangectl consultants show ilo/01jd8x4k2m9q7r3t5v6w8y0z1a",
		Args:    exactArgs("CONSULTANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := consultantName(args[0])
			if err != nil {
				return err
			}
			return runConsultantsShow(cmd.Context(), a, name)
		},
	}
}

// runConsultantsShow prints the consultant, then its engagements.
func runConsultantsShow(ctx context.Context, a *app, name string) error {
	c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	k, err := c.Consultants.Get(ctx, name)
	if err != nil {
		return err
	}
	engagements, err := client.Collect(c.Consultants.Engagements(ctx, name))
	if err != nil {
		return err
	}
	if a.global.JSON {
		// {"consultant": {...}, "engagements": [...]}, each in protobuf JSON.
		var list bytes.Buffer
		if err := printJSONList(&list, engagements); err != nil {
			return err
		}
		one, err := protojson.Marshal(k)
		if err != nil {
			return err
		}
		b, err := json.Marshal(map[string]json.RawMessage{"consultant": one, "engagements": list.Bytes()})
		if err != nil {
			return err
		}
		return writeIndented(a.env.Stdout, b)
	}
	if err := printFields(a.env.Stdout, consultantDetail(k)); err != nil {
		return err
	}
	if len(engagements) == 0 {
		_, err := fmt.Fprintln(a.env.Stdout, "\nNo engagements you may see.")
		return err
	}
	fmt.Fprintln(a.env.Stdout)
	return printTable(a.env.Stdout, []string{"ENGAGEMENT", "AGENCY", "FROM", "TO", "NICHE", "PURPOSE", "CANCELLED"}, engagementRows(engagements))
}

// engagementRows are the table rows of engagements.
func engagementRows(list []*exchangev1.Engagement) [][]string {
	var rows [][]string
	for _, e := range list {
		cancelled := "-"
		if t := e.GetCancelTime(); t != nil {
			cancelled = t.AsTime().UTC().Format(time.DateOnly) + ": " + e.GetCancelReason()
		}
		rows = append(rows, []string{e.GetName(), e.GetAgency(), formatDate(e.GetPeriod().GetStart()), formatDate(e.GetPeriod().GetEnd()),
			nicheNames.name(e.GetNiche().Number()), e.GetPurpose(), cancelled})
	}
	return rows
}
