package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// maxIatiFile is the largest IATI file the exchange takes in one import.
const maxIatiFile = 4_000_000

// plansImportIatiOptions are the inputs of `plans import-iati`.
type plansImportIatiOptions struct {
	app *app
	// File is the IATI activity file, or "-" for standard input.
	File   string
	DryRun bool
	// Audience is who may see the plans: "all", or agency ids and
	// workingGroups/ID names; empty keeps the exchange's default.
	Audience []string
}

const plansImportIatiLong = `Import your agency's IATI activity file (an iati-activities XML file,
version 2.01 to 2.03, as published to the IATI Registry; at most 4 MB) as
plans, matched to your plans by iati-identifier: new activities become plans,
changed ones update them, as 'plans apply' does without --prune.

The exchange maps the iati-identifier to the external id, title, descriptions,
activity-status to the stage, activity-dates to the planned and actual
periods, recipient-country and location codes to provinces, sectors to niches
(through a documented table), budgets, and participating organisations to
partners. Whatever it cannot map is reported, never dropped silently: the
output lists every unmapped element and attribute with its path (for example
iati-activity[2]/transaction[1]) and why. An activity that cannot become a plan
(no location in the sub-region, no sector that maps to a niche...) is skipped
with the reason; the others are still imported.

IATI has no audience: --audience all shares the plans with every member;
--audience ilo,iom,workingGroups/comm-kh with those. Without it, new plans are
seen by your agency alone (share them later), and plans already on the
exchange keep theirs.

Output: a line per activity (its position, iati-identifier, action, plan,
version and details), then the unmapped elements. With --json, the API's
ImportIatiActivitiesResponse. --dry-run shows what would happen and changes
nothing. Every skipped activity is listed again on stderr with its reason.
Exit codes as for 'plans apply': 0 nothing changed, 1 plans changed (or
would), 5 conflicts; and 6 when the file holds activities but none could be
imported (every one skipped).`

// newPlansImportIatiCmd is `exchangectl plans import-iati`.
func newPlansImportIatiCmd(a *app, runF func(*plansImportIatiOptions) error) *cobra.Command {
	opts := &plansImportIatiOptions{app: a}
	cmd := &cobra.Command{
		Use:   "import-iati FILE.xml [--dry-run] [--audience all|AGENCY,...]",
		Short: "Import your IATI activity file as plans",
		Long:  plansImportIatiLong,
		Example: "  exchangectl plans import-iati ilo-activities.xml --dry-run\n" +
			"  exchangectl plans import-iati ilo-activities.xml --audience all",
		Args: exactArgs("FILE.xml"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if _, err := opts.audience(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runPlansImportIati(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "show what would change, change nothing")
	cmd.Flags().StringSliceVar(&opts.Audience, "audience", nil, "who may see the plans: all, or agency ids and workingGroups/ID (repeatable or comma-separated)")
	return cmd
}

// audience returns the audience --audience names, nil for none.
func (o *plansImportIatiOptions) audience() (*exchangev1.Audience, error) {
	if len(o.Audience) == 0 {
		return nil, nil
	}
	a := &exchangev1.Audience{}
	for _, s := range o.Audience {
		s = strings.TrimSpace(s)
		switch {
		case s == "all":
			a.AllMembers = true
		case strings.HasPrefix(s, "workingGroups/"):
			id, err := workingGroupID(s)
			if err != nil {
				return nil, err
			}
			a.WorkingGroups = append(a.WorkingGroups, "workingGroups/"+id)
		default:
			names, err := agencyNames([]string{s})
			if err != nil {
				return nil, err
			}
			a.Agencies = append(a.Agencies, names...)
		}
	}
	if a.AllMembers && len(a.Agencies)+len(a.WorkingGroups) > 0 {
		return nil, usageErrorf("--audience all already includes every agency and working group")
	}
	return a, nil
}

// runPlansImportIati imports the file and prints what became of each
// activity and what was not mapped.
func runPlansImportIati(ctx context.Context, o *plansImportIatiOptions) error {
	audience, err := o.audience()
	if err != nil {
		return err
	}
	var r io.Reader = o.app.env.Stdin
	if o.File != "-" {
		f, err := os.Open(o.app.path(o.File))
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxIatiFile+1))
	if err != nil {
		return err
	}
	if len(data) > maxIatiFile {
		return &inputError{file: o.File, msg: fmt.Sprintf("larger than the %d bytes the exchange takes in one import: split it by activity", maxIatiFile)}
	}
	owner, err := o.app.callerAgency()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Plans.ImportIati(ctx, &exchangev1.ImportIatiActivitiesRequest{
		Parent: owner, IatiXml: data, Audience: audience, ValidateOnly: o.DryRun,
	})
	if err != nil {
		return err
	}
	var results []*exchangev1.PlanApplyResult
	for _, act := range resp.GetActivities() {
		results = append(results, act.GetResult())
	}
	if o.app.global.JSON {
		err = printJSON(o.app.env.Stdout, resp)
	} else {
		err = printImportResults(o.app, resp)
	}
	if err != nil {
		return err
	}
	tally := tallyResults(results)
	unmapped := len(resp.GetUnmapped())
	for _, act := range resp.GetActivities() {
		unmapped += len(act.GetUnmapped())
	}
	summary := fmt.Sprintf("IATI %s, %d %s: ", resp.GetIatiVersion(), len(resp.GetActivities()), plural(len(resp.GetActivities()), "activity", "activities"))
	if o.DryRun {
		summary += "would " + tally.text(true)
	} else {
		summary += tally.text(false)
	}
	summary += fmt.Sprintf("; %d %s not mapped.", unmapped, plural(unmapped, "element", "elements"))
	if o.DryRun {
		summary += " Nothing was changed."
	}
	fmt.Fprintln(o.app.env.Stderr, summary)
	if err := skippedSummary(o.app.env.Stderr, resp); err != nil {
		return err
	}
	return applyExit(tally, resp.GetChanged())
}

// skippedSummary lists on w the activities that could not be imported
// and why, and returns an ExitInvalid error when none could be.
func skippedSummary(w io.Writer, resp *exchangev1.ImportIatiActivitiesResponse) error {
	acts := resp.GetActivities()
	var skipped []*exchangev1.IatiActivityResult
	for _, act := range acts {
		if act.GetResult().GetAction() == exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_SKIP {
			skipped = append(skipped, act)
		}
	}
	if len(skipped) == 0 {
		return nil
	}
	fmt.Fprintf(w, "Skipped %d of %d %s:\n", len(skipped), len(acts), plural(len(acts), "activity", "activities"))
	for _, act := range skipped {
		fmt.Fprintf(w, "  %d %s: %s\n", act.GetIndex()+1, orDash(act.GetIatiIdentifier()), oneLine(act.GetResult().GetMessage()))
	}
	if len(skipped) < len(acts) {
		return nil
	}
	return exitError{code: ExitInvalid, message: fmt.Sprintf("nothing could be imported: all %d %s skipped, for the reasons above", len(acts), plural(len(acts), "activity was", "activities were"))}
}

// printImportResults prints a line per activity, then every unmapped
// element.
func printImportResults(a *app, resp *exchangev1.ImportIatiActivitiesResponse) error {
	w := a.env.Stdout
	var rows [][]string
	var unmapped [][]string
	for _, u := range resp.GetUnmapped() {
		unmapped = append(unmapped, []string{u.GetPath(), orDash(oneLine(u.GetValue())), oneLine(u.GetReason())})
	}
	for _, act := range resp.GetActivities() {
		r := act.GetResult()
		rows = append(rows, []string{
			strconv.Itoa(int(act.GetIndex()) + 1),
			orDash(act.GetIatiIdentifier()),
			applyActionNames.name(protoreflect.EnumNumber(r.GetAction())),
			orDash(shortPlanName(r.GetPlan())),
			strconv.Itoa(int(r.GetVersion())),
			applyDetails(r),
		})
		for _, u := range act.GetUnmapped() {
			unmapped = append(unmapped, []string{u.GetPath(), orDash(oneLine(u.GetValue())), oneLine(u.GetReason())})
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(a.env.Stderr, "The file holds no activities.")
	}
	if err := printTable(w, []string{"#", "IATI IDENTIFIER", "ACTION", "PLAN", "VERSION", "DETAILS"}, rows); err != nil {
		return err
	}
	if len(unmapped) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nNot mapped (%d):\n", len(unmapped))
	return printTable(w, []string{"WHERE", "VALUE", "WHY"}, unmapped)
}
