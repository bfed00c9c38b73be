package cli

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Flag names of the dataset enums.
var (
	periodTypeNames  = enumNames{"period type", "PERIOD_TYPE_", exchangev1.PeriodType(0).Descriptor()}
	adminLevelNames  = enumNames{"admin level", "ADMIN_LEVEL_", exchangev1.AdminLevel(0).Descriptor()}
	measureTypeNames = enumNames{"measure type", "MEASURE_TYPE_", exchangev1.MeasureType(0).Descriptor()}
)

// newDatasetsCmd is `exchangectl datasets`.
func newDatasetsCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("datasets", "Define shared datasets, push and pull their rows (joint data collection)",
		"Joint data collection: agencies fill shared datasets together, like a DHIS2\n"+
			"data set or an OCHA 3W sheet. A dataset has a typed schema: a location at a\n"+
			"stated level, a period (month, quarter, year or fiscal year), categories such\n"+
			"as sex and age group, and measures. Each contributing agency writes rows; a\n"+
			"row's key is its period, location and categories, plus the agency, so\n"+
			"pushing a row again replaces it. National offices pull the rows whole or\n"+
			"since a revision, into CSV (with an optional HXL hashtag row) or JSON lines.\n\n"+
			"The owner defines the dataset from a file ('datasets create -f'), locks\n"+
			"(approves) periods and sees who has reported ('datasets completeness').\n\n"+
			"Datasets are named under their owner: agencies/AGENCY/datasets/ID, so two\n"+
			"agencies may each have a dataset with the same id. DATASET is one of:\n"+
			"  ID                           a dataset of your own agency, like returns-kh\n"+
			"  AGENCY/ID                    any agency's, as 'datasets list' shows it: a\n"+
			"                               contributor pushes to ILO's with ilo/returns-kh\n"+
			"  agencies/AGENCY/datasets/ID  the full name, as --json and the API give it")
	cmd.Aliases = []string{"dataset", "ds"}
	cmd.AddCommand(
		newDatasetsCreateCmd(a, nil),
		newDatasetsGetCmd(a, nil),
		newDatasetsListCmd(a, nil),
		newDatasetsUpdateCmd(a, nil),
		newDatasetsPushCmd(a, nil),
		newDatasetsPullCmd(a, nil),
		newDatasetsAggregateCmd(a, nil),
		newDatasetsLockCmd(a, nil),
		newDatasetsUnlockCmd(a, nil),
		newDatasetsCompletenessCmd(a, nil),
		newDatasetsWatchCmd(a, nil),
	)
	return cmd
}

// datasetArg is a DATASET argument taken apart: the owner's agency id,
// empty when the argument is a bare id (a dataset of the caller's own
// agency), and the dataset id.
type datasetArg struct{ agency, id string }

// parseDatasetArg checks the syntax of a DATASET argument: "ID",
// "AGENCY/ID" or "agencies/AGENCY/datasets/ID". It reads no certificate,
// so that arguments and flags are checked before anything else.
func parseDatasetArg(s string) (datasetArg, error) {
	var arg datasetArg
	parts := strings.Split(strings.TrimSpace(s), "/")
	switch {
	case len(parts) == 1:
		arg.id = parts[0]
	case len(parts) == 2 && parts[0] == "datasets":
		return datasetArg{}, usageErrorf("invalid dataset %q: datasets are named under their owner now, agencies/AGENCY/datasets/ID; "+
			"give ID for your own agency's, or AGENCY/ID as 'datasets list' shows it", s)
	case len(parts) == 2:
		arg.agency, arg.id = parts[0], parts[1]
	case len(parts) == 4 && parts[0] == "agencies" && parts[2] == "datasets":
		arg.agency, arg.id = parts[1], parts[3]
	}
	if (len(parts) > 1 && !pki.ValidAgencyID(arg.agency)) || !datasetIDPattern.MatchString(arg.id) {
		return datasetArg{}, usageErrorf("invalid dataset %q: want ID (your own agency's), AGENCY/ID as 'datasets list' shows it, "+
			"or agencies/AGENCY/datasets/ID; an id is 3 to 64 lowercase letters, digits and hyphens, starting with a letter", s)
	}
	return arg, nil
}

// datasetName returns the full resource name of a DATASET argument. A
// bare id names a dataset of the caller's own agency, which the client
// certificate says.
func (a *app) datasetName(s string) (string, error) {
	arg, err := parseDatasetArg(s)
	if err != nil {
		return "", err
	}
	if arg.agency == "" {
		owner, err := a.ownAgency(arg.id + " alone names a dataset of your own agency: name its owner, AGENCY/" + arg.id + ", or pass an agency's --cert and --key")
		if err != nil {
			return "", err
		}
		arg.agency = strings.TrimPrefix(owner, "agencies/")
	}
	return client.DatasetName(arg.agency, arg.id), nil
}

// shortDatasetName is "ilo/returns" for "agencies/ilo/datasets/returns",
// as tables show datasets and as DATASET arguments accept them.
func shortDatasetName(name string) string {
	return strings.Replace(strings.TrimPrefix(name, "agencies/"), "/datasets/", "/", 1)
}

// datasetFileLong is the part of the help of create and update that
// describes the file.
const datasetFileLong = `The file (FILE, or - for standard input) is YAML or JSON: a Dataset in the
API's protobuf JSON field names, with the dataset's id at the top:

  id: returns
  title: Returned victims of trafficking assisted, by province, sex and age group
  periodType: month               # month, quarter, year or fiscal-year
  contributors: [agencies/iom, agencies/unicef]
  audience: {allMembers: true}
  schema:
    locationLevel: province       # country, province or district
    locationHxl: "#adm1+code"
    categories:
      - {key: sex, values: [female, male], required: true}
    measures:
      - {key: returned, type: integer, required: true, min: 0, hxl: "#affected+returned"}

Enum values may be written as above or in full (PERIOD_TYPE_MONTH). The file
is read strictly: an unknown or repeated field, or a value of the wrong type,
fails with its path and line (exit code 6) before anything is sent, so that a
typo never silently drops a setting.`

// datasetsCreateOptions are the inputs of `datasets create`.
type datasetsCreateOptions struct {
	app *app
	// File is the definition file, or "-" for standard input.
	File   string
	DryRun bool
}

// newDatasetsCreateCmd is `exchangectl datasets create`.
func newDatasetsCreateCmd(a *app, runF func(*datasetsCreateOptions) error) *cobra.Command {
	opts := &datasetsCreateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "create -f FILE [--dry-run]",
		Short: "Define a dataset from a YAML or JSON file (agencies)",
		Long: "Define a dataset; your agency becomes its owner, and contributors may push\n" +
			"rows at once. It is named under your agency, agencies/AGENCY/datasets/ID:\n" +
			"the id must be new among your agency's datasets only.\n\n" + datasetFileLong + "\n\n" +
			"--dry-run asks the exchange to check the definition and show what it would\n" +
			"store, without storing anything.",
		Example: "  exchangectl datasets create -f dataset.yaml --dry-run\n" +
			"  exchangectl datasets create -f dataset.yaml",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.File == "" {
				return usageErrorf("-f FILE is required (- for standard input)")
			}
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsCreate(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "YAML or JSON definition file, - for standard input (required)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "check the definition and show it, without creating anything")
	return cmd
}

// runDatasetsCreate reads the file, creates the dataset and prints it.
func runDatasetsCreate(ctx context.Context, o *datasetsCreateOptions) error {
	def, err := readDatasetFile(o.app, o.File)
	if err != nil {
		return err
	}
	parent, err := o.app.ownAgency("datasets belong to agencies; pass an agency's --cert and --key")
	if err != nil {
		return err
	}
	if def.agency != "" && client.AgencyName(def.agency) != parent {
		return &inputError{file: o.File, field: "name", msg: fmt.Sprintf("the file defines %s, but you can create datasets only under your own agency, %s",
			client.DatasetName(def.agency, def.id), parent)}
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	var opts []client.CreateOption
	if o.DryRun {
		opts = append(opts, client.ValidateOnly())
	}
	d, err := c.Datasets.Create(ctx, parent, def.id, def.dataset, opts...)
	if err != nil {
		return err
	}
	if err := printOne(o.app, d, datasetDetail); err != nil {
		return err
	}
	if o.DryRun {
		fmt.Fprintf(o.app.env.Stderr, "The definition of %s is valid; nothing was created (--dry-run).\n", d.GetName())
	}
	return nil
}

// datasetsGetOptions are the inputs of `datasets get`.
type datasetsGetOptions struct {
	app     *app
	Dataset string
}

// newDatasetsGetCmd is `exchangectl datasets get`.
func newDatasetsGetCmd(a *app, runF func(*datasetsGetOptions) error) *cobra.Command {
	opts := &datasetsGetOptions{app: a}
	return &cobra.Command{
		Use:     "get DATASET",
		Aliases: []string{"show"},
		Short:   "Show a dataset's definition, locks and lock history",
		Example: "  exchangectl datasets get returns          # your own agency's\n" +
			"  exchangectl datasets get ilo/returns      # ILO's\n" +
			"  exchangectl --json datasets get returns > returns.json   # edit, then 'datasets update returns -f returns.json'",
		Args: exactArgs("DATASET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dataset = args[0]
			if _, err := parseDatasetArg(opts.Dataset); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsGet(cmd.Context(), opts)
		},
	}
}

// runDatasetsGet prints one dataset.
func runDatasetsGet(ctx context.Context, o *datasetsGetOptions) error {
	name, err := o.app.datasetName(o.Dataset)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	d, err := c.Datasets.Get(ctx, name)
	if err != nil {
		return err
	}
	return printOne(o.app, d, datasetDetail)
}

// datasetsListOptions are the inputs of `datasets list`.
type datasetsListOptions struct {
	app *app
}

// newDatasetsListCmd is `exchangectl datasets list`.
func newDatasetsListCmd(a *app, runF func(*datasetsListOptions) error) *cobra.Command {
	opts := &datasetsListOptions{app: a}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the datasets you may read or write",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsList(cmd.Context(), opts)
		},
	}
}

// runDatasetsList prints the datasets the caller sees.
func runDatasetsList(ctx context.Context, o *datasetsListOptions) error {
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	datasets, err := client.Collect(c.Datasets.Datasets(ctx))
	if err != nil {
		return err
	}
	return printList(o.app, datasets, "datasets",
		[]string{"DATASET", "PERIOD", "LOCATION", "MEASURES", "LOCKED", "TITLE"},
		func(d *exchangev1.Dataset) []string {
			var measures []string
			for _, m := range d.GetSchema().GetMeasures() {
				measures = append(measures, m.GetKey())
			}
			return []string{
				shortDatasetName(d.GetName()),
				periodTypeNames.name(protoreflect.EnumNumber(d.GetPeriodType())),
				adminLevelNames.name(protoreflect.EnumNumber(d.GetSchema().GetLocationLevel())),
				orDash(strings.Join(measures, ",")),
				strconv.Itoa(len(d.GetLocks())),
				d.GetTitle(),
			}
		})
}

// datasetsUpdateOptions are the inputs of `datasets update`.
type datasetsUpdateOptions struct {
	app     *app
	Dataset string
	// File is the definition file, or "-" for standard input.
	File string
}

// newDatasetsUpdateCmd is `exchangectl datasets update`.
func newDatasetsUpdateCmd(a *app, runF func(*datasetsUpdateOptions) error) *cobra.Command {
	opts := &datasetsUpdateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "update DATASET -f FILE",
		Short: "Replace a dataset's definition with the one in a file (owner)",
		Long: "Replace the definition of DATASET with the file's: every field that can\n" +
			"change takes the file's value, and a field the file leaves out is cleared, so\n" +
			"keep the whole definition in the file (the one you created the dataset from,\n" +
			"or 'datasets get --json' output). The file's id or name, if any, must be\n" +
			"DATASET's.\n\n" +
			"exchangectl reads the dataset first and sends its etag (or the etag in the\n" +
			"file, when it has one), so a concurrent change fails with exit code 5 instead\n" +
			"of being overwritten. The period type never changes, and a schema change that\n" +
			"could invalidate stored rows is refused (exit code 6): add optional categories\n" +
			"and measures, allowed values and codes, widen bounds, change titles and HXL\n" +
			"tags.\n\n" + datasetFileLong,
		Example: "  exchangectl datasets update returns -f dataset.yaml",
		Args:    exactArgs("DATASET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dataset = args[0]
			if _, err := parseDatasetArg(opts.Dataset); err != nil {
				return err
			}
			if opts.File == "" {
				return usageErrorf("-f FILE is required (- for standard input)")
			}
			if runF != nil {
				return runF(opts)
			}
			return runDatasetsUpdate(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "YAML or JSON definition file, - for standard input (required)")
	return cmd
}

// runDatasetsUpdate reads the file and the dataset, and replaces the
// definition.
func runDatasetsUpdate(ctx context.Context, o *datasetsUpdateOptions) error {
	name, err := o.app.datasetName(o.Dataset)
	if err != nil {
		return err
	}
	def, err := readDatasetFile(o.app, o.File)
	if err != nil {
		return err
	}
	arg, _ := parseDatasetArg(name)
	if file := client.DatasetName(cmp.Or(def.agency, arg.agency), def.id); file != name {
		return &inputError{file: o.File, field: "id", msg: fmt.Sprintf("the file defines %s, not %s", file, name)}
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	current, err := c.Datasets.Get(ctx, name)
	if err != nil {
		return err
	}
	changed := proto.CloneOf(def.dataset)
	changed.Name = name
	if changed.GetEtag() == "" {
		changed.Etag = current.GetEtag()
	}
	updated, err := c.Datasets.Update(ctx, changed)
	if err != nil {
		return err
	}
	return printOne(o.app, updated, datasetDetail)
}

// getDataset reads a dataset's definition for a long-running command (push,
// pull), within the time limit of one call.
func getDataset(ctx context.Context, c *client.Client, name string) (*exchangev1.Dataset, error) {
	ctx, cancel := callContext(ctx)
	defer cancel()
	return c.Datasets.Get(ctx, name)
}

// datasetDetail is the human form of a dataset.
func datasetDetail(d *exchangev1.Dataset) []field {
	period := periodTypeNames.name(protoreflect.EnumNumber(d.GetPeriodType()))
	if d.GetPeriodType() == exchangev1.PeriodType_PERIOD_TYPE_FISCAL_YEAR {
		period += fmt.Sprintf(" (starting in month %d)", d.GetFiscalYearStartMonth())
	}
	s := d.GetSchema()
	location := adminLevelNames.name(protoreflect.EnumNumber(s.GetLocationLevel()))
	if s.GetLocationHxl() != "" {
		location += " " + s.GetLocationHxl()
	}
	var categories, measures, locks []string
	for _, c := range s.GetCategories() {
		line := c.GetKey() + ": " + strings.Join(c.GetValues(), ", ")
		if c.GetRequired() {
			line += " (required)"
		}
		if c.GetHxl() != "" {
			line += " " + c.GetHxl()
		}
		categories = append(categories, line)
	}
	for _, m := range s.GetMeasures() {
		measures = append(measures, measureLine(m))
	}
	for _, l := range d.GetLocks() {
		locks = append(locks, fmt.Sprintf("%s by %s at %s", l.GetPeriod(), client.ResourceID(l.GetLockedBy()), formatTime(l.GetLockTime())))
	}
	var history []string
	for _, e := range d.GetLockHistory() {
		verb := "locked"
		if !e.GetLocked() {
			verb = "unlocked"
		}
		line := fmt.Sprintf("%s %s %s by %s", formatTime(e.GetTime()), verb, e.GetPeriod(), client.ResourceID(e.GetActor()))
		if e.GetReason() != "" {
			line += ": " + oneLine(e.GetReason())
		}
		history = append(history, line)
	}
	contributors := slices.Concat(d.GetContributors(), d.GetContributorGroups())
	public := ""
	if d.GetPublicAggregates() {
		k := d.GetSuppressionThreshold()
		if k == 0 {
			k = 5
		}
		public = fmt.Sprintf("yes, small values rounded to 0 or %d outside the audience", max(k, 5))
	}
	return []field{
		{"Name", d.GetName()},
		{"Title", d.GetTitle()},
		{"Owner", d.GetOwner()},
		{"Description", oneLine(d.GetDescription())},
		{"Period", period},
		{"Location", location},
		{"Categories", strings.Join(categories, "; ")},
		{"Measures", strings.Join(measures, "; ")},
		{"Contributors", strings.Join(contributors, ", ")},
		{"Audience", audienceString(d.GetAudience())},
		{"Public aggregates", public},
		{"Expected locations", strings.Join(d.GetExpectedLocations(), ", ")},
		{"Locked periods", strings.Join(locks, "; ")},
		{"Lock history", strings.Join(history, "; ")},
		{"Created", formatTime(d.GetCreateTime())},
		{"Updated", formatTime(d.GetUpdateTime())},
		{"Etag", d.GetEtag()},
	}
}

// measureLine describes a measure: key, type, bounds, whether required,
// hashtag.
func measureLine(m *exchangev1.Measure) string {
	line := m.GetKey() + " " + measureTypeNames.name(protoreflect.EnumNumber(m.GetType()))
	switch {
	case m.Min != nil && m.Max != nil:
		line += fmt.Sprintf(" %s..%s", formatNumber(m.GetMin()), formatNumber(m.GetMax()))
	case m.Min != nil:
		line += " ≥" + formatNumber(m.GetMin())
	case m.Max != nil:
		line += " ≤" + formatNumber(m.GetMax())
	}
	if len(m.GetCodes()) > 0 {
		line += " [" + strings.Join(m.GetCodes(), ", ") + "]"
	}
	if m.GetRequired() {
		line += " (required)"
	}
	if m.GetHxl() != "" {
		line += " " + m.GetHxl()
	}
	return line
}

// audienceString describes who may read a dataset besides its
// contributors.
func audienceString(a *exchangev1.Audience) string {
	if a.GetAllMembers() {
		return "all members"
	}
	return strings.Join(slices.Concat(a.GetAgencies(), a.GetWorkingGroups()), ", ")
}

// formatNumber formats a measure's number for people: as short as exact.
func formatNumber(x float64) string {
	return strconv.FormatFloat(x, 'f', -1, 64)
}
