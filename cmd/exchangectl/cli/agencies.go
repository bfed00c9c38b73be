package cli

import (
	"context"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// newAgenciesCmd is `exchangectl agencies`.
func newAgenciesCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("agencies", "Read and administer member agencies",
		"Member agencies: UN agencies, NGOs, ministries and national project offices.\n"+
			"Every member may read them; the secretariat creates, suspends and reactivates\n"+
			"them, and an agency may update its own record.")
	cmd.Aliases = []string{"agency"}
	cmd.AddCommand(
		newAgenciesCreateCmd(a, nil),
		newAgenciesGetCmd(a, nil),
		newAgenciesListCmd(a, nil),
		newAgenciesUpdateCmd(a, nil),
		newAgenciesSuspendCmd(a, nil),
		newAgenciesReactivateCmd(a, nil),
	)
	return cmd
}

// agencyFields are the record flags shared by create and update.
type agencyFields struct {
	Name      string
	ShortName string
	Kind      exchangev1.AgencyKind
	Parent    string
	Countries []string
	Niches    []exchangev1.Niche
	Coverage  []string
	Website   string
}

// agencyFlagPaths maps each record flag to the Agency field it sets.
var agencyFlagPaths = []struct{ flag, path string }{
	{"name", "display_name"},
	{"short-name", "short_name"},
	{"kind", "kind"},
	{"parent", "parent"},
	{"country", "countries"},
	{"niche", "niches"},
	{"coverage", "coverage"},
	{"website", "website"},
}

// define adds the record flags to f.
func (o *agencyFields) define(f *pflag.FlagSet, required string) {
	f.StringVar(&o.Name, "name", "", "full name, for example \"International Labour Organization\""+required)
	f.StringVar(&o.ShortName, "short-name", "", "short name or acronym, for example ILO")
	newEnumFlag(f, &o.Kind, "kind", agencyKindNames, "kind of organisation"+required)
	f.StringVar(&o.Parent, "parent", "", "parent agency id, for example ilo for a national project office")
	f.StringSliceVar(&o.Countries, "country", nil, "country where the agency works, ISO code such as KH (repeatable or comma-separated)")
	newEnumSliceFlag(f, &o.Niches, "niche", nicheNames, "the agency's niche")
	f.StringSliceVar(&o.Coverage, "coverage", nil, "country (KH) or province (KH-12) the agency covers (repeatable or comma-separated)")
	f.StringVar(&o.Website, "website", "", "public web site, https://...")
}

// apply sets the fields of a named by the given flags (every flag when
// flags is nil) and returns their field paths.
func (o *agencyFields) apply(a *exchangev1.Agency, flags map[string]bool) ([]string, error) {
	var paths []string
	for _, fp := range agencyFlagPaths {
		if flags != nil && !flags[fp.flag] {
			continue
		}
		switch fp.flag {
		case "name":
			a.DisplayName = o.Name
		case "short-name":
			a.ShortName = o.ShortName
		case "kind":
			a.Kind = o.Kind
		case "parent":
			a.Parent = ""
			if o.Parent != "" {
				id, err := agencyID(o.Parent)
				if err != nil {
					return nil, err
				}
				a.Parent = client.AgencyName(id)
			}
		case "country":
			countries, err := countryCodes(o.Countries)
			if err != nil {
				return nil, err
			}
			a.Countries = countries
		case "niche":
			a.Niches = slices.Clone(o.Niches)
		case "coverage":
			refs, err := locationRefs(o.Coverage)
			if err != nil {
				return nil, err
			}
			a.Coverage = refs
		case "website":
			a.Website = o.Website
		}
		paths = append(paths, fp.path)
	}
	return paths, nil
}

// changedFlags returns the names of the flags given on the command line.
func changedFlags(f *pflag.FlagSet) map[string]bool {
	changed := map[string]bool{}
	f.Visit(func(fl *pflag.Flag) { changed[fl.Name] = true })
	return changed
}

// agenciesCreateOptions are the inputs of `agencies create`.
type agenciesCreateOptions struct {
	app *app
	ID  string
	agencyFields
	ValidateOnly bool
}

// newAgenciesCreateCmd is `exchangectl agencies create`. runF, when set,
// replaces the run function (for tests).
func newAgenciesCreateCmd(a *app, runF func(*agenciesCreateOptions) error) *cobra.Command {
	opts := &agenciesCreateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "create ID --name NAME --kind KIND [flags]",
		Short: "Add a member agency (secretariat only)",
		Long: "Add a member agency. ID becomes its name (agencies/ID) and its certificate\n" +
			"identity, and cannot be changed later. Issue its certificate next with\n" +
			"'exchangectl certs issue --agency ID'.",
		Example: "  exchangectl agencies create ilo --name \"International Labour Organization\" \\\n" +
			"    --short-name ILO --kind un-agency --country KH,LA,MM,TH,VN --niche prevention,migration",
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runAgenciesCreate(cmd.Context(), opts)
		},
	}
	opts.define(cmd.Flags(), " (required)")
	cmd.Flags().BoolVar(&opts.ValidateOnly, "validate-only", false, "check the request without creating anything")
	return cmd
}

// request returns the id and agency to create, or a usage error.
func (o *agenciesCreateOptions) request() (string, *exchangev1.Agency, error) {
	id, err := agencyID(o.ID)
	if err != nil {
		return "", nil, err
	}
	if strings.TrimSpace(o.Name) == "" {
		return "", nil, usageErrorf("--name is required")
	}
	if o.Kind == exchangev1.AgencyKind_AGENCY_KIND_UNSPECIFIED {
		return "", nil, usageErrorf("--kind is required: %s", strings.Join(agencyKindNames.values(), ", "))
	}
	a := &exchangev1.Agency{}
	if _, err := o.apply(a, nil); err != nil {
		return "", nil, err
	}
	if len(a.Countries) == 0 {
		a.Countries = nil
	}
	if len(a.Coverage) == 0 {
		a.Coverage = nil
	}
	return id, a, nil
}

// runAgenciesCreate creates the agency and prints it.
func runAgenciesCreate(ctx context.Context, o *agenciesCreateOptions) error {
	id, agency, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	var opts []client.CreateOption
	if o.ValidateOnly {
		opts = append(opts, client.ValidateOnly())
	}
	created, err := c.Directory.CreateAgency(ctx, id, agency, opts...)
	if err != nil {
		return err
	}
	return printOne(o.app, created, agencyDetail)
}

// agenciesGetOptions are the inputs of `agencies get`.
type agenciesGetOptions struct {
	app *app
	ID  string
}

// newAgenciesGetCmd is `exchangectl agencies get`.
func newAgenciesGetCmd(a *app, runF func(*agenciesGetOptions) error) *cobra.Command {
	opts := &agenciesGetOptions{app: a}
	return &cobra.Command{
		Use:     "get ID",
		Short:   "Show one agency",
		Example: "  exchangectl agencies get ilo",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := agencyID(opts.ID); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runAgenciesGet(cmd.Context(), opts)
		},
	}
}

// runAgenciesGet prints the agency.
func runAgenciesGet(ctx context.Context, o *agenciesGetOptions) error {
	id, err := agencyID(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	a, err := c.Directory.GetAgency(ctx, client.AgencyName(id))
	if err != nil {
		return err
	}
	return printOne(o.app, a, agencyDetail)
}

// agenciesListOptions are the inputs of `agencies list`.
type agenciesListOptions struct {
	app         *app
	Country     string
	Niche       exchangev1.Niche
	Subdivision string
	State       exchangev1.AgencyState
}

// newAgenciesListCmd is `exchangectl agencies list`.
func newAgenciesListCmd(a *app, runF func(*agenciesListOptions) error) *cobra.Command {
	opts := &agenciesListOptions{app: a}
	cmd := &cobra.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "List agencies, optionally filtered",
		Example: "  exchangectl agencies list --country KH --niche return-and-reintegration",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runAgenciesList(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Country, "country", "", "only agencies working in this country, such as KH")
	newEnumFlag(f, &opts.Niche, "niche", nicheNames, "only agencies with this niche")
	f.StringVar(&opts.Subdivision, "subdivision", "", "only agencies covering this province, such as KH-12")
	newEnumFlag(f, &opts.State, "state", agencyStateNames, "only agencies in this state")
	return cmd
}

// request returns the list request, or a usage error.
func (o *agenciesListOptions) request() (*exchangev1.ListAgenciesRequest, error) {
	req := &exchangev1.ListAgenciesRequest{Niche: o.Niche, State: o.State}
	var err error
	if o.Country != "" {
		if req.Country, err = countryCode(o.Country); err != nil {
			return nil, err
		}
	}
	if o.Subdivision != "" {
		if req.Subdivision, err = subdivisionCode(o.Subdivision); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// runAgenciesList prints the matching agencies.
func runAgenciesList(ctx context.Context, o *agenciesListOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	agencies, err := client.Collect(c.Directory.Agencies(ctx, req))
	if err != nil {
		return err
	}
	return printList(o.app, agencies, "agencies",
		[]string{"ID", "SHORT", "NAME", "KIND", "STATE", "COUNTRIES", "NICHES"},
		func(a *exchangev1.Agency) []string {
			return []string{
				client.ResourceID(a.GetName()),
				orDash(a.GetShortName()),
				a.GetDisplayName(),
				agencyKindNames.name(protoreflect.EnumNumber(a.GetKind())),
				agencyStateNames.name(protoreflect.EnumNumber(a.GetState())),
				orDash(strings.Join(a.GetCountries(), ",")),
				orDash(nicheList(a.GetNiches())),
			}
		})
}

// agenciesUpdateOptions are the inputs of `agencies update`.
type agenciesUpdateOptions struct {
	app *app
	ID  string
	agencyFields
	// Changed holds the names of the flags given; only their fields change.
	Changed map[string]bool
}

// newAgenciesUpdateCmd is `exchangectl agencies update`.
func newAgenciesUpdateCmd(a *app, runF func(*agenciesUpdateOptions) error) *cobra.Command {
	opts := &agenciesUpdateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "update ID [flags]",
		Short: "Change fields of an agency",
		Long: "Change the fields given by flags and leave the rest. A list flag replaces the\n" +
			"whole list; give it an empty value (--niche \"\") to clear it. exchangectl reads\n" +
			"the agency first and sends its etag, so a concurrent change fails with exit\n" +
			"code 5 instead of being overwritten. The secretariat may change every field;\n" +
			"an agency its own record except kind and parent.",
		Example: "  exchangectl agencies update ilo --website https://www.ilo.org --niche prevention,migration",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.Changed = changedFlags(cmd.Flags())
			if _, err := opts.apply(&exchangev1.Agency{}); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runAgenciesUpdate(cmd.Context(), opts)
		},
	}
	opts.define(cmd.Flags(), "")
	return cmd
}

// apply changes a as the flags say and returns the update mask paths, or a
// usage error.
func (o *agenciesUpdateOptions) apply(a *exchangev1.Agency) ([]string, error) {
	if _, err := agencyID(o.ID); err != nil {
		return nil, err
	}
	paths, err := o.agencyFields.apply(a, o.Changed)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, usageErrorf("nothing to update: give at least one of --name, --short-name, --kind, --parent, --country, --niche, --coverage, --website")
	}
	if o.Changed["name"] && strings.TrimSpace(o.Name) == "" {
		return nil, usageErrorf("--name cannot be empty")
	}
	if o.Changed["kind"] && o.Kind == exchangev1.AgencyKind_AGENCY_KIND_UNSPECIFIED {
		return nil, usageErrorf("--kind cannot be empty")
	}
	return paths, nil
}

// runAgenciesUpdate reads the agency, applies the change and prints the
// result.
func runAgenciesUpdate(ctx context.Context, o *agenciesUpdateOptions) error {
	id, err := agencyID(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	current, err := c.Directory.GetAgency(ctx, client.AgencyName(id))
	if err != nil {
		return err
	}
	changed := proto.CloneOf(current)
	paths, err := o.apply(changed)
	if err != nil {
		return err
	}
	updated, err := c.Directory.UpdateAgency(ctx, changed, paths...)
	if err != nil {
		return err
	}
	return printOne(o.app, updated, agencyDetail)
}

// agenciesSuspendOptions are the inputs of `agencies suspend`.
type agenciesSuspendOptions struct {
	app    *app
	ID     string
	Reason string
}

// newAgenciesSuspendCmd is `exchangectl agencies suspend`.
func newAgenciesSuspendCmd(a *app, runF func(*agenciesSuspendOptions) error) *cobra.Command {
	opts := &agenciesSuspendOptions{app: a}
	cmd := &cobra.Command{
		Use:     "suspend ID --reason TEXT",
		Short:   "Refuse an agency at every call until reactivated (secretariat only)",
		Example: "  exchangectl agencies suspend acme --reason \"membership lapsed\"",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := agencyID(opts.ID); err != nil {
				return err
			}
			if strings.TrimSpace(opts.Reason) == "" {
				return usageErrorf("--reason is required")
			}
			if runF != nil {
				return runF(opts)
			}
			return runAgenciesSuspend(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why, recorded on the agency (required)")
	return cmd
}

// runAgenciesSuspend suspends the agency and prints it.
func runAgenciesSuspend(ctx context.Context, o *agenciesSuspendOptions) error {
	id, err := agencyID(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	a, err := c.Directory.SuspendAgency(ctx, client.AgencyName(id), o.Reason, "")
	if err != nil {
		return err
	}
	return printOne(o.app, a, agencyDetail)
}

// agenciesReactivateOptions are the inputs of `agencies reactivate`.
type agenciesReactivateOptions struct {
	app *app
	ID  string
}

// newAgenciesReactivateCmd is `exchangectl agencies reactivate`.
func newAgenciesReactivateCmd(a *app, runF func(*agenciesReactivateOptions) error) *cobra.Command {
	opts := &agenciesReactivateOptions{app: a}
	return &cobra.Command{
		Use:     "reactivate ID",
		Short:   "Let a suspended agency call again (secretariat only)",
		Example: "  exchangectl agencies reactivate acme",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := agencyID(opts.ID); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runAgenciesReactivate(cmd.Context(), opts)
		},
	}
}

// runAgenciesReactivate reactivates the agency and prints it.
func runAgenciesReactivate(ctx context.Context, o *agenciesReactivateOptions) error {
	id, err := agencyID(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	a, err := c.Directory.ReactivateAgency(ctx, client.AgencyName(id), "")
	if err != nil {
		return err
	}
	return printOne(o.app, a, agencyDetail)
}

// agencyDetail is the human form of one agency.
func agencyDetail(a *exchangev1.Agency) []field {
	var coverage []string
	for _, l := range a.GetCoverage() {
		switch {
		case l.GetArea() != "":
			coverage = append(coverage, l.GetSubdivision()+" "+l.GetArea())
		case l.GetSubdivision() != "":
			coverage = append(coverage, l.GetSubdivision())
		default:
			coverage = append(coverage, l.GetCountry())
		}
	}
	var keys []string
	for _, k := range a.GetPublicKeys() {
		keys = append(keys, k.GetKeyId())
	}
	return []field{
		{"Name", a.GetName()},
		{"Display name", a.GetDisplayName()},
		{"Short name", a.GetShortName()},
		{"Kind", agencyKindNames.name(protoreflect.EnumNumber(a.GetKind()))},
		{"Parent", a.GetParent()},
		{"State", agencyStateNames.name(protoreflect.EnumNumber(a.GetState()))},
		{"Suspended because", a.GetSuspendReason()},
		{"Countries", strings.Join(a.GetCountries(), ", ")},
		{"Niches", strings.ReplaceAll(nicheList(a.GetNiches()), ",", ", ")},
		{"Coverage", strings.Join(coverage, ", ")},
		{"Website", a.GetWebsite()},
		{"Public keys", strings.Join(keys, ", ")},
		{"Created", formatTime(a.GetCreateTime())},
		{"Updated", formatTime(a.GetUpdateTime())},
		{"Etag", a.GetEtag()},
	}
}

// nicheList joins niche flag names with commas.
func nicheList(niches []exchangev1.Niche) string {
	names := make([]string, 0, len(niches))
	for _, n := range niches {
		names = append(names, nicheNames.name(protoreflect.EnumNumber(n)))
	}
	return strings.Join(names, ",")
}
