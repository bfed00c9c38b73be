package cli

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// plansApplyOptions are the inputs of `plans apply`.
type plansApplyOptions struct {
	app *app
	// File is the plans file, or "-" for standard input.
	File   string
	DryRun bool
	Prune  bool
}

const plansApplyLong = `Make your agency's plans on the exchange match a file that lists all of them
(declarative sync): plans new in the file are created, those that differ are
updated, equal ones are left alone, and a plan marked "stage: cancelled" is
cancelled. With --prune, your plans that are not in the file are cancelled
too (cancelled, never deleted; without --prune they are left alone).

The file (FILE, or - for standard input) is YAML or JSON:

  agency: ilo                       # optional; must be your certificate's
  plans:
    - externalId: XM-DAC-41302-KH-2026-01
      title: Safe migration information in Banteay Meanchey
      stage: concept                # concept, draft, agreed, in-implementation...
      niches: [prevention, migration]
      locations:
        - {country: KH, subdivision: KH-1}
      plannedPeriod: {start: 2026-04-01, end: 2027-03-31}
      audience: {allMembers: true}
      etag: p1234                   # optional: as last read (see below)

Each plan is the API's Plan in its JSON form: field names as in 'plans get
--json' (or as in the .proto file), enum values in full or short
("prevention"), dates YYYY-MM-DD. Plans are matched by externalId, your own id
for each (its IATI identifier, or a project code). A typo fails before
anything is sent, naming the file, line and field. The whole file is checked
by the exchange before anything changes: one invalid plan changes nothing.

Conflicts: give a plan the etag it had when you last read it (the ETAG column
of a previous apply, or 'plans get'), and if someone changed it since, it is
not overwritten but reported as a conflict; the other plans still apply.
Without an etag your file wins.

Output: a line per plan: the action (create, update, cancel, unchanged,
conflict, skip), its external id, its name, its version and, for an update,
the fields that change; then the plans --prune cancels. With --json, the API's
ApplyPlansResponse. --dry-run shows what would happen and changes nothing.

Exit codes: 0 when nothing changed (or would change), 1 when plans changed
(or would, with --dry-run), 5 when any plan is in conflict, and the usual codes
of 'exchangectl --help' on errors (6 for a mistake in the file). Applying the
same file twice changes nothing the second time.`

// newPlansApplyCmd is `exchangectl plans apply`.
func newPlansApplyCmd(a *app, runF func(*plansApplyOptions) error) *cobra.Command {
	opts := &plansApplyOptions{app: a}
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--dry-run] [--prune]",
		Short: "Sync your agency's plans with a file (declarative)",
		Long:  plansApplyLong,
		Example: "  exchangectl plans apply -f plans.yaml --dry-run\n" +
			"  exchangectl plans apply -f plans.yaml --prune\n" +
			"  exchangectl --json plans apply -f plans.json > result.json",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.File == "" {
				return usageErrorf("-f FILE is required (- for standard input)")
			}
			if runF != nil {
				return runF(opts)
			}
			return runPlansApply(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.File, "file", "f", "", "YAML or JSON file listing all your plans, - for standard input (required)")
	f.BoolVar(&opts.DryRun, "dry-run", false, "show what would change, change nothing")
	f.BoolVar(&opts.Prune, "prune", false, "also cancel your plans that are not in the file")
	return cmd
}

// request reads the file and returns the apply request for the caller's
// agency.
func (o *plansApplyOptions) request() (*exchangev1.ApplyPlansRequest, *planFile, error) {
	file, err := readPlansFile(o.app, o.File)
	if err != nil {
		return nil, nil, err
	}
	owner, err := o.app.callerAgency()
	if err != nil {
		return nil, nil, err
	}
	if file.agency != "" && file.agency != owner {
		return nil, nil, usageErrorf("%s lists the plans of %s, but your certificate is %s's: pass %s's certificate, or fix \"agency:\" in the file",
			o.File, file.agency, owner, file.agency)
	}
	return &exchangev1.ApplyPlansRequest{Parent: owner, Plans: file.plans, Prune: o.Prune, ValidateOnly: o.DryRun}, file, nil
}

// runPlansApply applies the file and prints the diff.
func runPlansApply(ctx context.Context, o *plansApplyOptions) error {
	req, file, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Plans.Apply(ctx, req)
	if err != nil {
		return locatePlanErrors(err, o.File, file)
	}
	if o.app.global.JSON {
		err = printJSON(o.app.env.Stdout, resp)
	} else {
		err = printApplyResults(o.app, resp.GetResults(), len(req.GetPlans()), file)
	}
	if err != nil {
		return err
	}
	tally := tallyResults(resp.GetResults())
	switch {
	case o.DryRun:
		fmt.Fprintf(o.app.env.Stderr, "Dry run: would %s. Nothing was changed.\n", tally.text(true))
	default:
		fmt.Fprintf(o.app.env.Stderr, "%s at revision %d.\n", capitalize(tally.text(false)), resp.GetRevision())
	}
	return applyExit(tally, resp.GetChanged())
}

// applyTally counts the actions of an apply or import.
type applyTally map[exchangev1.PlanApplyAction]int

// tallyResults counts results by action.
func tallyResults(results []*exchangev1.PlanApplyResult) applyTally {
	t := applyTally{}
	for _, r := range results {
		t[r.GetAction()]++
	}
	return t
}

// text is the tally in words: "create 2, update 1, cancel 0; 3 unchanged"
// (would) or "created 2, updated 1, cancelled 0; 3 unchanged".
func (t applyTally) text(would bool) string {
	verbs := [3]string{"created", "updated", "cancelled"}
	if would {
		verbs = [3]string{"create", "update", "cancel"}
	}
	s := fmt.Sprintf("%s %d, %s %d, %s %d; %d unchanged",
		verbs[0], t[exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CREATE],
		verbs[1], t[exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UPDATE],
		verbs[2], t[exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL],
		t[exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UNCHANGED])
	if n := t[exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CONFLICT]; n > 0 {
		s += fmt.Sprintf(", %d in conflict", n)
	}
	if n := t[exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_SKIP]; n > 0 {
		s += fmt.Sprintf(", %d skipped", n)
	}
	return s
}

// capitalize upper-cases the first letter of s.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// applyExit is the end of an apply or import: ExitConflict when any plan
// is in conflict, 1 when anything changed (or would), nil otherwise.
func applyExit(t applyTally, changed bool) error {
	if n := t[exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CONFLICT]; n > 0 {
		return exitError{code: ExitConflict, message: fmt.Sprintf("%d %s in conflict: someone changed %s since the etag you sent; read %s again ('plans get'), reconcile the file and apply again",
			n, plural(n, "plan is", "plans are"), plural(n, "it", "them"), plural(n, "it", "them"))}
	}
	if changed {
		return exitError{code: ExitError}
	}
	return nil
}

// printApplyResults prints a line per result: the file's plans (the
// first inFile results, with their lines in file), then pruned ones.
func printApplyResults(a *app, results []*exchangev1.PlanApplyResult, inFile int, file *planFile) error {
	rows := make([][]string, 0, len(results))
	for i, r := range results {
		line := "-"
		details := applyDetails(r)
		if i < inFile && file != nil && i < len(file.lines) {
			line = strconv.Itoa(file.lines[i])
			if r.GetAction() == exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CREATE {
				details = shorten(file.plans[i].GetTitle(), 60)
			}
		} else if r.GetAction() == exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL {
			details = "not in the file (--prune)"
		}
		rows = append(rows, []string{
			applyActionNames.name(protoreflect.EnumNumber(r.GetAction())),
			r.GetExternalId(),
			orDash(shortPlanName(r.GetPlan())),
			strconv.Itoa(int(r.GetVersion())),
			orDash(r.GetEtag()),
			line,
			details,
		})
	}
	if len(rows) == 0 {
		fmt.Fprintln(a.env.Stderr, "No plans in the file, and none to cancel.")
		return nil
	}
	return printTable(a.env.Stdout, []string{"ACTION", "EXTERNAL ID", "PLAN", "VERSION", "ETAG", "LINE", "DETAILS"}, rows)
}

// applyDetails is what a result says beyond its action: the fields an
// update changes, why a plan conflicts or was skipped.
func applyDetails(r *exchangev1.PlanApplyResult) string {
	switch r.GetAction() {
	case exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_UPDATE, exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CANCEL:
		if len(r.GetChangedFields()) > 0 {
			return strings.Join(r.GetChangedFields(), ", ")
		}
	case exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CONFLICT, exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_SKIP:
		return oneLine(r.GetMessage())
	}
	return orDash(oneLine(r.GetMessage()))
}

// planIndexField finds "plans[i]" at the start of a field path.
var planIndexField = regexp.MustCompile(`^plans\[(\d+)\]`)

// locatePlanErrors adds to an INVALID_ARGUMENT error about plans[i] where
// that plan is in the file, keeping the code and details.
func locatePlanErrors(err error, name string, file *planFile) error {
	st, ok := grpcStatus(err)
	if !ok || st.Code() != codes.InvalidArgument || file == nil {
		return err
	}
	var where []string
	seen := map[int]bool{}
	for _, v := range client.FieldViolations(err) {
		m := planIndexField.FindStringSubmatch(v.GetField())
		if m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		if i < len(file.lines) && !seen[i] {
			seen[i] = true
			where = append(where, fmt.Sprintf("plans[%d] is %s at %s line %d", i, file.plans[i].GetExternalId(), name, file.lines[i]))
		}
	}
	if len(where) == 0 {
		return err
	}
	p := st.Proto()
	p.Message += " (" + strings.Join(where, "; ") + ")"
	return status.FromProto(p).Err()
}
