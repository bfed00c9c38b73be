package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Flag names of the plan enums.
var (
	planStageNames    = enumNames{"plan stage", "PLAN_STAGE_", exchangev1.PlanStage(0).Descriptor()}
	applyActionNames  = enumNames{"apply action", "PLAN_APPLY_ACTION_", exchangev1.PlanApplyAction(0).Descriptor()}
	planEventNames    = enumNames{"plan event kind", "PLAN_EVENT_KIND_", exchangev1.PlanEventKind(0).Descriptor()}
	partnerRoleNames  = enumNames{"partner role", "PLAN_PARTNER_ROLE_", exchangev1.PlanPartnerRole(0).Descriptor()}
	budgetStatusNames = enumNames{"budget status", "PLAN_BUDGET_STATUS_", exchangev1.PlanBudgetStatus(0).Descriptor()}
)

// planIDPattern is the syntax of a plan id.
var planIDPattern = regexp.MustCompile(`^[0-9a-z]{26}$`)

const plansLong = `Plans agencies share from their inception stage, so that overlaps and gaps
show while plans can still change: who plans to do what (niches), where
(provinces), when, with whom and with what budget.

Your agency keeps its plans in a file and syncs them with 'plans apply' (or
imports its IATI activity file with 'plans import-iati'); everyone reads the
plans shared with them, and the coordination views 'plans overlaps', 'plans
gaps' and 'plans coverage' compare them. Only the owner changes a plan; every
change makes a new version ('plans versions', 'plans diff').

NAME is a plan's name as 'plans list' shows it, AGENCY/ID, or in full
agencies/AGENCY/plans/ID.`

// newPlansCmd is `exchangectl plans`.
func newPlansCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("plans", "Share plans at inception stage; find overlaps and gaps", plansLong)
	cmd.Aliases = []string{"plan"}
	cmd.AddCommand(
		newPlansApplyCmd(a, nil),
		newPlansImportIatiCmd(a, nil),
		newPlansListCmd(a, nil),
		newPlansGetCmd(a, nil),
		newPlansVersionsCmd(a, nil),
		newPlansDiffCmd(a, nil),
		newPlansCancelCmd(a, nil),
		newPlansOverlapsCmd(a, nil),
		newPlansGapsCmd(a, nil),
		newPlansCoverageCmd(a, nil),
		newPlansWatchCmd(a, nil),
	)
	return cmd
}

// planName accepts "agencies/ilo/plans/ID" or "ilo/ID" and returns the
// full resource name.
func planName(s string) (string, error) {
	rest := strings.TrimPrefix(strings.TrimSpace(s), "agencies/")
	agency, id, ok := strings.Cut(rest, "/")
	if ok {
		id = strings.TrimPrefix(id, "plans/")
	}
	if !ok || !pki.ValidAgencyID(agency) || !planIDPattern.MatchString(id) {
		return "", usageErrorf("invalid plan name %q: want AGENCY/ID as 'plans list' shows it, or agencies/AGENCY/plans/ID", s)
	}
	return client.PlanName(agency, id), nil
}

// shortPlanName is "ilo/ID" for "agencies/ilo/plans/ID", as tables show
// plans.
func shortPlanName(name string) string {
	if name == "" {
		return ""
	}
	return strings.Replace(strings.TrimPrefix(name, "agencies/"), "/plans/", "/", 1)
}

// callerAgency returns the resource name of the agency the client
// certificate names, for the calls that act under it.
func (a *app) callerAgency() (string, error) {
	return a.ownAgency("plans belong to agencies; pass an agency's --cert and --key")
}

// ownAgency returns the resource name of the agency the client
// certificate names; for another certificate (the secretariat's) it fails
// with a usage error ending in hint: why an agency is needed, and what to
// do instead.
func (a *app) ownAgency(hint string) (string, error) {
	cfg, err := a.clientConfig()
	if err != nil {
		return "", err
	}
	pemBytes, err := os.ReadFile(cfg.CertFile)
	if err != nil {
		return "", err
	}
	cert, err := pki.ParseCertPEM(pemBytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", cfg.CertFile, err)
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil {
		return "", err
	}
	if id.Role != pki.RoleAgency {
		return "", usageErrorf("the certificate %s is the %s's: %s", cfg.CertFile, id.Role, hint)
	}
	return client.AgencyName(id.AgencyID), nil
}

// periodValue is a flag holding a period: START..END, START.. (open
// end) or a year YYYY; dates are YYYY-MM-DD.
type periodValue struct{ target **exchangev1.DatePeriod }

// newPeriodFlag defines a period flag.
func newPeriodFlag(f *pflag.FlagSet, target **exchangev1.DatePeriod, name, usage string) {
	f.Var(periodValue{target}, name, usage+": START..END, START.. or a year, dates YYYY-MM-DD")
}

func (v periodValue) String() string { return formatPeriod(*v.target) }
func (v periodValue) Type() string   { return "period" }
func (v periodValue) Set(s string) error {
	p, err := parsePeriod(s)
	if err != nil {
		return err
	}
	*v.target = p
	return nil
}

// parsePeriod parses START..END, START.. or YYYY.
func parsePeriod(s string) (*exchangev1.DatePeriod, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if y, err := strconv.Atoi(s); err == nil && len(s) == 4 {
		return &exchangev1.DatePeriod{
			Start: &exchangev1.CalendarDate{Year: int32(y), Month: 1, Day: 1},
			End:   &exchangev1.CalendarDate{Year: int32(y), Month: 12, Day: 31},
		}, nil
	}
	from, to, ok := strings.Cut(s, "..")
	if !ok {
		return nil, fmt.Errorf("period %q: want START..END (such as 2026-01-01..2026-12-31), START.. or a year", s)
	}
	start, err := parseDate(from)
	if err != nil {
		return nil, fmt.Errorf("period %q: %w", s, err)
	}
	p := &exchangev1.DatePeriod{Start: start}
	if to != "" {
		if p.End, err = parseDate(to); err != nil {
			return nil, fmt.Errorf("period %q: %w", s, err)
		}
		if formatDate(p.End) < formatDate(p.Start) {
			return nil, fmt.Errorf("period %q ends before it starts", s)
		}
	}
	return p, nil
}

// formatPeriod is START..END, START.. for an open end, "" for nil.
func formatPeriod(p *exchangev1.DatePeriod) string {
	if p == nil {
		return ""
	}
	return formatDate(p.GetStart()) + ".." + formatDate(p.GetEnd())
}

// locationList joins locations as "KH-12, KH-1 Chbar Ampov, LA".
func locationList(locs []*exchangev1.LocationRef) string {
	out := make([]string, 0, len(locs))
	for _, l := range locs {
		out = append(out, locationString(l))
	}
	return strings.Join(out, ", ")
}

// niches joins niche names with ", ".
func niches(n []exchangev1.Niche) string {
	return strings.ReplaceAll(nicheList(n), ",", ", ")
}

// stageName is a stage's flag name.
func stageName(s exchangev1.PlanStage) string {
	return planStageNames.name(protoreflect.EnumNumber(s))
}

// plansListOptions are the inputs of `plans list`.
type plansListOptions struct {
	app        *app
	Owner      string
	Niche      exchangev1.Niche
	Country    string
	Province   string
	Stage      exchangev1.PlanStage
	Period     *exchangev1.DatePeriod
	ExternalID string
}

// newPlansListCmd is `exchangectl plans list`.
func newPlansListCmd(a *app, runF func(*plansListOptions) error) *cobra.Command {
	opts := &plansListOptions{app: a}
	cmd := &cobra.Command{
		Use:   "list [--owner AGENCY] [--niche N] [--country CC] [--province CODE] [--stage S] [--period P]",
		Short: "List the plans you may see",
		Long: "List the plans shared with you (and your own), by owner and then oldest first.\n" +
			"On a terminal, the revision the list was read at follows on stderr: watch\n" +
			"from it to follow what changes next.",
		Example: "  exchangectl plans list --country KH --niche prevention\n" +
			"  exchangectl plans list --owner ilo --period 2026\n" +
			"  exchangectl plans list --owner ilo --external-id XM-DAC-41302-KH-2026-01",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runPlansList(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Owner, "owner", "", "only plans of this agency id (default: every agency)")
	newEnumFlag(f, &opts.Niche, "niche", nicheNames, "only plans in this niche")
	f.StringVar(&opts.Country, "country", "", "only plans with a location in this country, ISO 3166-1 such as KH")
	f.StringVar(&opts.Province, "province", "", "only plans touching this province (there, or in its whole country), ISO 3166-2 such as KH-12")
	newEnumFlag(f, &opts.Stage, "stage", planStageNames, "only plans in this stage")
	newPeriodFlag(f, &opts.Period, "period", "only plans planned to run during this period")
	f.StringVar(&opts.ExternalID, "external-id", "", "only the plan with this external id (with --owner)")
	return cmd
}

// request returns the list request, or a usage error.
func (o *plansListOptions) request() (*exchangev1.ListPlansRequest, error) {
	req := &exchangev1.ListPlansRequest{Parent: client.AllPlanOwners, Niche: o.Niche, Stage: o.Stage, Period: o.Period, ExternalId: o.ExternalID}
	if o.Owner != "" {
		id, err := agencyID(o.Owner)
		if err != nil {
			return nil, err
		}
		req.Parent = client.AgencyName(id)
	} else if o.ExternalID != "" {
		return nil, usageErrorf("--external-id needs --owner: external ids are unique per agency")
	}
	if o.Country != "" {
		c, err := countryCode(o.Country)
		if err != nil {
			return nil, err
		}
		req.Country = c
	}
	if o.Province != "" {
		p, err := subdivisionCode(o.Province)
		if err != nil {
			return nil, err
		}
		req.Subdivision = p
	}
	return req, nil
}

// planRow is a plan's row in a table.
func planRow(p *exchangev1.Plan) []string {
	return []string{
		shortPlanName(p.GetName()),
		p.GetExternalId(),
		stageName(p.GetStage()),
		niches(p.GetNiches()),
		locationList(p.GetLocations()),
		formatPeriod(p.GetPlannedPeriod()),
		strconv.Itoa(int(p.GetVersion())),
		p.GetTitle(),
	}
}

// planHeader is the header of planRow tables.
var planHeader = []string{"PLAN", "EXTERNAL ID", "STAGE", "NICHES", "LOCATIONS", "PLANNED", "VERSION", "TITLE"}

// runPlansList prints the matching plans.
func runPlansList(ctx context.Context, o *plansListOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	plans, rev, err := c.Plans.Snapshot(ctx, req)
	if err != nil {
		return err
	}
	err = printList(o.app, plans, "plans", planHeader, planRow)
	if err == nil && o.app.stderrIsTerminal() {
		fmt.Fprintf(o.app.env.Stderr, "Listed at revision %d: 'exchangectl plans watch --from %d' follows what changes next.\n", rev, rev)
	}
	return err
}

// plansGetOptions are the inputs of `plans get`.
type plansGetOptions struct {
	app     *app
	Name    string
	Version int32
}

// newPlansGetCmd is `exchangectl plans get`.
func newPlansGetCmd(a *app, runF func(*plansGetOptions) error) *cobra.Command {
	opts := &plansGetOptions{app: a}
	cmd := &cobra.Command{
		Use:     "get NAME [--version N]",
		Aliases: []string{"show"},
		Short:   "Show a plan, or one of its earlier versions",
		Long: "Show a plan in full, or with --version an earlier version of it. Others than\n" +
			"the owner see only the versions that were shared with them.",
		Example: "  exchangectl plans get ilo/01jd8x4k2m9q7r3t5v6w8y0z1a\n" +
			"  exchangectl --json plans get ilo/01jd8x4k2m9q7r3t5v6w8y0z1a --version 1",
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := planName(opts.Name); err != nil {
				return err
			}
			if opts.Version < 0 {
				return usageErrorf("--version %d: want 1 or more (0 for the current version)", opts.Version)
			}
			if runF != nil {
				return runF(opts)
			}
			return runPlansGet(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int32Var(&opts.Version, "version", 0, "an earlier version to show (default: the current one)")
	return cmd
}

// runPlansGet prints the plan.
func runPlansGet(ctx context.Context, o *plansGetOptions) error {
	name, err := planName(o.Name)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	p, err := c.Plans.Get(ctx, name, o.Version)
	if err != nil {
		return err
	}
	return printOne(o.app, p, planDetail)
}

// planDetail is the human form of one plan.
func planDetail(p *exchangev1.Plan) []field {
	var budget []string
	if b := p.GetBudget(); b != nil {
		if b.GetTotalAmount() != "" {
			budget = append(budget, b.GetTotalAmount()+" "+b.GetCurrencyCode())
		}
		for _, l := range b.GetLines() {
			line := strings.TrimSpace(l.GetFiscalYear() + " " + formatPeriod(l.GetPeriod()))
			line += ": " + l.GetAmount() + " " + b.GetCurrencyCode()
			if s := budgetStatusNames.name(protoreflect.EnumNumber(l.GetStatus())); s != "" {
				line += " (" + s + ")"
			}
			budget = append(budget, line)
		}
	}
	var partners []string
	for _, pt := range p.GetPartners() {
		who := pt.GetDisplayName()
		if pt.GetAgency() != "" {
			who = client.ResourceID(pt.GetAgency())
		}
		var roles []string
		for _, r := range pt.GetRoles() {
			roles = append(roles, partnerRoleNames.name(protoreflect.EnumNumber(r)))
		}
		partners = append(partners, who+" ("+strings.Join(roles, ", ")+")")
	}
	return []field{
		{"Name", p.GetName()},
		{"External id", p.GetExternalId()},
		{"Owner", p.GetOwner()},
		{"Title", p.GetTitle()},
		{"Stage", stageName(p.GetStage())},
		{"Cancelled because", p.GetCancelReason()},
		{"Niches", niches(p.GetNiches())},
		{"Locations", locationList(p.GetLocations())},
		{"Planned", formatPeriod(p.GetPlannedPeriod())},
		{"Actual", formatPeriod(p.GetActualPeriod())},
		{"Budget", strings.Join(budget, "; ")},
		{"Partners", strings.Join(partners, "; ")},
		{"Target groups", strings.Join(p.GetTargetGroups(), "; ")},
		{"Shared with", planAudience(p.GetAudience())},
		{"Tags", strings.Join(p.GetTags(), ", ")},
		{"Description", oneLine(p.GetDescription())},
		{"Version", strconv.Itoa(int(p.GetVersion()))},
		{"Created", formatTime(p.GetCreateTime())},
		{"Updated", formatTime(p.GetUpdateTime())},
		{"Etag", p.GetEtag()},
	}
}

// planAudience says who may see a plan besides its owner.
func planAudience(a *exchangev1.Audience) string {
	if a.GetAllMembers() {
		return "all members"
	}
	var who []string
	for _, ag := range a.GetAgencies() {
		who = append(who, client.ResourceID(ag))
	}
	who = append(who, a.GetWorkingGroups()...)
	if len(who) == 0 {
		return "the owner only"
	}
	return strings.Join(who, ", ")
}

// plansVersionsOptions are the inputs of `plans versions`.
type plansVersionsOptions struct {
	app  *app
	Name string
}

// newPlansVersionsCmd is `exchangectl plans versions`.
func newPlansVersionsCmd(a *app, runF func(*plansVersionsOptions) error) *cobra.Command {
	opts := &plansVersionsOptions{app: a}
	return &cobra.Command{
		Use:   "versions NAME",
		Short: "List a plan's versions, oldest first",
		Long: "List the versions of a plan, oldest first: when each was made and its stage,\n" +
			"niches, locations and period. Others than the owner see only the versions\n" +
			"that were shared with them. 'plans diff' compares two.",
		Example: "  exchangectl plans versions ilo/01jd8x4k2m9q7r3t5v6w8y0z1a",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := planName(opts.Name); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runPlansVersions(cmd.Context(), opts)
		},
	}
}

// runPlansVersions prints the versions.
func runPlansVersions(ctx context.Context, o *plansVersionsOptions) error {
	name, err := planName(o.Name)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	versions, err := client.Collect(c.Plans.Versions(ctx, name))
	if err != nil {
		return err
	}
	return printList(o.app, versions, "versions",
		[]string{"VERSION", "MADE", "STAGE", "NICHES", "LOCATIONS", "PLANNED", "TITLE"},
		func(p *exchangev1.Plan) []string {
			return []string{
				strconv.Itoa(int(p.GetVersion())),
				formatTime(p.GetUpdateTime()),
				stageName(p.GetStage()),
				niches(p.GetNiches()),
				locationList(p.GetLocations()),
				formatPeriod(p.GetPlannedPeriod()),
				p.GetTitle(),
			}
		})
}

// plansDiffOptions are the inputs of `plans diff`.
type plansDiffOptions struct {
	app      *app
	Name     string
	From, To int32
}

// newPlansDiffCmd is `exchangectl plans diff`.
func newPlansDiffCmd(a *app, runF func(*plansDiffOptions) error) *cobra.Command {
	opts := &plansDiffOptions{app: a}
	cmd := &cobra.Command{
		Use:   "diff NAME --from N [--to M]",
		Short: "Show what changed in a plan between two versions",
		Long: "List the fields of a plan that differ between version --from and version --to\n" +
			"(default: the current one), for example what changed from inception to\n" +
			"agreement, with the values before and after; for lists, the elements added\n" +
			"(+) and removed (-). With --json, the API's DiffPlanVersionsResponse.",
		Example: "  exchangectl plans diff ilo/01jd8x4k2m9q7r3t5v6w8y0z1a --from 1\n" +
			"  exchangectl plans diff ilo/01jd8x4k2m9q7r3t5v6w8y0z1a --from 2 --to 4",
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := planName(opts.Name); err != nil {
				return err
			}
			switch {
			case opts.From < 1:
				return usageErrorf("--from is required: the older version, 1 or more")
			case opts.To < 0 || (opts.To != 0 && opts.To < opts.From):
				return usageErrorf("--to %d: want a version after --from %d (default: the current one)", opts.To, opts.From)
			}
			if runF != nil {
				return runF(opts)
			}
			return runPlansDiff(cmd.Context(), opts)
		},
	}
	cmd.Flags().Int32Var(&opts.From, "from", 0, "the older version (required)")
	cmd.Flags().Int32Var(&opts.To, "to", 0, "the newer version (default: the current one)")
	return cmd
}

// runPlansDiff prints the changed fields.
func runPlansDiff(ctx context.Context, o *plansDiffOptions) error {
	name, err := planName(o.Name)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	diff, err := c.Plans.Diff(ctx, name, o.From, o.To)
	if err != nil {
		return err
	}
	if o.app.global.JSON {
		return printJSON(o.app.env.Stdout, diff)
	}
	if len(diff.GetChanges()) == 0 {
		fmt.Fprintf(o.app.env.Stderr, "No changes from version %d to %d.\n", diff.GetFromVersion(), diff.GetToVersion())
		return nil
	}
	fmt.Fprintf(o.app.env.Stdout, "From version %d to %d:\n", diff.GetFromVersion(), diff.GetToVersion())
	var rows [][]string
	for _, ch := range diff.GetChanges() {
		if len(ch.GetAdded())+len(ch.GetRemoved()) > 0 {
			var parts []string
			for _, v := range ch.GetRemoved() {
				parts = append(parts, "-"+jsonText(v))
			}
			for _, v := range ch.GetAdded() {
				parts = append(parts, "+"+jsonText(v))
			}
			rows = append(rows, []string{ch.GetField(), strings.Join(parts, " ")})
			continue
		}
		rows = append(rows, []string{ch.GetField(), jsonText(ch.GetBefore()) + " -> " + jsonText(ch.GetAfter())})
	}
	return printTable(o.app.env.Stdout, []string{"FIELD", "CHANGE"}, rows)
}

// jsonText is a JSON value in one short line: a string without quotes,
// anything else as compact JSON, "(none)" for null or unset.
func jsonText(v *structpb.Value) string {
	if v == nil {
		return "(none)"
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return "(none)"
	case *structpb.Value_StringValue:
		return strconv.Quote(k.StringValue)
	}
	b, err := protojson.Marshal(v)
	if err != nil {
		return "?"
	}
	var compact bytes.Buffer
	if json.Compact(&compact, b) != nil {
		return string(b)
	}
	return compact.String()
}

// plansCancelOptions are the inputs of `plans cancel`.
type plansCancelOptions struct {
	app    *app
	Name   string
	Reason string
	Etag   string
}

// newPlansCancelCmd is `exchangectl plans cancel`.
func newPlansCancelCmd(a *app, runF func(*plansCancelOptions) error) *cobra.Command {
	opts := &plansCancelOptions{app: a}
	cmd := &cobra.Command{
		Use:   "cancel NAME --reason TEXT [--etag ETAG]",
		Short: "Abandon one of your plans (final)",
		Long: "Cancel one of your agency's plans, saying why for the agencies that\n" +
			"coordinated around it. Cancelling is final; the plan and its versions stay\n" +
			"readable, and it leaves the overlaps, gaps and coverage. With --etag (as\n" +
			"'plans get' shows it), the plan is cancelled only if nobody changed it since.\n" +
			"A plan kept in a file is better cancelled there: mark it 'stage: cancelled',\n" +
			"or remove it and apply with --prune.",
		Example: "  exchangectl plans cancel ilo/01jd8x4k2m9q7r3t5v6w8y0z1a --reason \"merged into the joint UN programme\"",
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if _, err := planName(opts.Name); err != nil {
				return err
			}
			if strings.TrimSpace(opts.Reason) == "" {
				return usageErrorf("--reason is required")
			}
			if runF != nil {
				return runF(opts)
			}
			return runPlansCancel(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why, for the agencies that coordinate with you (required)")
	cmd.Flags().StringVar(&opts.Etag, "etag", "", "cancel only if the plan still has this etag")
	return cmd
}

// runPlansCancel cancels the plan and prints it.
func runPlansCancel(ctx context.Context, o *plansCancelOptions) error {
	name, err := planName(o.Name)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	p, err := c.Plans.Cancel(ctx, name, o.Reason, o.Etag)
	if err != nil {
		return err
	}
	return printOne(o.app, p, planDetail)
}
