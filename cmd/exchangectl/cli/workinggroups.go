package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// newWorkingGroupsCmd is `exchangectl working-groups`.
func newWorkingGroupsCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("working-groups", "Read and administer working groups and committees",
		"Working groups, committees, networks and task forces: sets of agencies that\n"+
			"share plans and reports. Each agency is a member, an observer or the group's\n"+
			"own secretariat. The secretariat creates and deletes groups; a group's own\n"+
			"secretariat may update it.")
	cmd.Aliases = []string{"working-group", "wg"}
	cmd.AddCommand(
		newWorkingGroupsCreateCmd(a, nil),
		newWorkingGroupsGetCmd(a, nil),
		newWorkingGroupsListCmd(a, nil),
		newWorkingGroupsUpdateCmd(a, nil),
		newWorkingGroupsDeleteCmd(a, nil),
	)
	return cmd
}

// membershipFlags are the --member, --observer and --secretariat flags.
type membershipFlags struct {
	Members     []string
	Observers   []string
	Secretariat []string
}

// define adds the membership flags to f.
func (m *membershipFlags) define(f *pflag.FlagSet) {
	f.StringSliceVar(&m.Members, "member", nil, "member agency id (repeatable or comma-separated)")
	f.StringSliceVar(&m.Observers, "observer", nil, "observer agency id (repeatable or comma-separated)")
	f.StringSliceVar(&m.Secretariat, "secretariat", nil, "agency id acting as the group's own secretariat (repeatable or comma-separated)")
}

// memberships returns the membership list the flags describe, or a usage
// error if an agency is listed twice.
func (m *membershipFlags) memberships() ([]*exchangev1.Membership, error) {
	var out []*exchangev1.Membership
	seen := map[string]bool{}
	for _, group := range []struct {
		ids  []string
		role exchangev1.MembershipRole
	}{
		{m.Members, exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER},
		{m.Observers, exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER},
		{m.Secretariat, exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT},
	} {
		names, err := agencyNames(group.ids)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if seen[name] {
				return nil, usageErrorf("agency %s is listed more than once; each agency has one role", client.ResourceID(name))
			}
			seen[name] = true
			out = append(out, &exchangev1.Membership{Agency: name, Role: group.role})
		}
	}
	return out, nil
}

// workingGroupsCreateOptions are the inputs of `working-groups create`.
type workingGroupsCreateOptions struct {
	app         *app
	ID          string
	Name        string
	Kind        exchangev1.WorkingGroupKind
	Description string
	membershipFlags
}

// newWorkingGroupsCreateCmd is `exchangectl working-groups create`.
func newWorkingGroupsCreateCmd(a *app, runF func(*workingGroupsCreateOptions) error) *cobra.Command {
	opts := &workingGroupsCreateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "create ID --name NAME --kind KIND [flags]",
		Short: "Create a working group or committee (secretariat only)",
		Example: "  exchangectl working-groups create un-wg --name \"UN Working Group on Trafficking\" \\\n" +
			"    --kind working-group --member ilo,iom,unicef --observer escap --secretariat un-iap",
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runWorkingGroupsCreate(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "", "full name (required)")
	newEnumFlag(f, &opts.Kind, "kind", workingGroupKindNames, "kind of group (required)")
	f.StringVar(&opts.Description, "description", "", "what the group is for")
	opts.define(f)
	return cmd
}

// request returns the id and group to create, or a usage error.
func (o *workingGroupsCreateOptions) request() (string, *exchangev1.WorkingGroup, error) {
	id, err := workingGroupID(o.ID)
	if err != nil {
		return "", nil, err
	}
	if strings.TrimSpace(o.Name) == "" {
		return "", nil, usageErrorf("--name is required")
	}
	if o.Kind == exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_UNSPECIFIED {
		return "", nil, usageErrorf("--kind is required: %s", strings.Join(workingGroupKindNames.values(), ", "))
	}
	members, err := o.memberships()
	if err != nil {
		return "", nil, err
	}
	return id, &exchangev1.WorkingGroup{
		DisplayName: o.Name,
		Description: o.Description,
		Kind:        o.Kind,
		Members:     members,
	}, nil
}

// runWorkingGroupsCreate creates the group and prints it.
func runWorkingGroupsCreate(ctx context.Context, o *workingGroupsCreateOptions) error {
	id, wg, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	created, err := c.Directory.CreateWorkingGroup(ctx, id, wg)
	if err != nil {
		return err
	}
	return printOne(o.app, created, workingGroupDetail)
}

// workingGroupsGetOptions are the inputs of `working-groups get`.
type workingGroupsGetOptions struct {
	app *app
	ID  string
}

// newWorkingGroupsGetCmd is `exchangectl working-groups get`.
func newWorkingGroupsGetCmd(a *app, runF func(*workingGroupsGetOptions) error) *cobra.Command {
	opts := &workingGroupsGetOptions{app: a}
	return &cobra.Command{
		Use:     "get ID",
		Short:   "Show one working group and its members",
		Example: "  exchangectl working-groups get un-wg",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := workingGroupID(opts.ID); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runWorkingGroupsGet(cmd.Context(), opts)
		},
	}
}

// runWorkingGroupsGet prints the group.
func runWorkingGroupsGet(ctx context.Context, o *workingGroupsGetOptions) error {
	id, err := workingGroupID(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	wg, err := c.Directory.GetWorkingGroup(ctx, client.WorkingGroupName(id))
	if err != nil {
		return err
	}
	return printOne(o.app, wg, workingGroupDetail)
}

// workingGroupsListOptions are the inputs of `working-groups list`.
type workingGroupsListOptions struct {
	app    *app
	Member string
}

// newWorkingGroupsListCmd is `exchangectl working-groups list`.
func newWorkingGroupsListCmd(a *app, runF func(*workingGroupsListOptions) error) *cobra.Command {
	opts := &workingGroupsListOptions{app: a}
	cmd := &cobra.Command{
		Use:     "list [--member ID]",
		Aliases: []string{"ls"},
		Short:   "List working groups",
		Example: "  exchangectl working-groups list --member ilo",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runWorkingGroupsList(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Member, "member", "", "only groups this agency belongs to, in any role")
	return cmd
}

// request returns the list request, or a usage error.
func (o *workingGroupsListOptions) request() (*exchangev1.ListWorkingGroupsRequest, error) {
	req := &exchangev1.ListWorkingGroupsRequest{}
	if o.Member != "" {
		id, err := agencyID(o.Member)
		if err != nil {
			return nil, err
		}
		req.Member = client.AgencyName(id)
	}
	return req, nil
}

// runWorkingGroupsList prints the groups.
func runWorkingGroupsList(ctx context.Context, o *workingGroupsListOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	groups, err := client.Collect(c.Directory.WorkingGroups(ctx, req))
	if err != nil {
		return err
	}
	return printList(o.app, groups, "working groups",
		[]string{"ID", "NAME", "KIND", "MEMBERS"},
		func(wg *exchangev1.WorkingGroup) []string {
			return []string{
				client.ResourceID(wg.GetName()),
				wg.GetDisplayName(),
				workingGroupKindNames.name(protoreflect.EnumNumber(wg.GetKind())),
				orDash(memberList(wg.GetMembers())),
			}
		})
}

// workingGroupsUpdateOptions are the inputs of `working-groups update`.
type workingGroupsUpdateOptions struct {
	app         *app
	ID          string
	Name        string
	Description string
	Kind        exchangev1.WorkingGroupKind
	membershipFlags
	// Changed holds the names of the flags given; only their fields change.
	Changed map[string]bool
}

// newWorkingGroupsUpdateCmd is `exchangectl working-groups update`.
func newWorkingGroupsUpdateCmd(a *app, runF func(*workingGroupsUpdateOptions) error) *cobra.Command {
	opts := &workingGroupsUpdateOptions{app: a}
	cmd := &cobra.Command{
		Use:   "update ID [flags]",
		Short: "Change a working group or its membership",
		Long: "Change the fields given by flags. Any of --member, --observer and --secretariat\n" +
			"replaces the whole membership with the agencies given in those flags. The group\n" +
			"is read first and its etag sent, so a concurrent change fails with exit code 5.",
		Example: "  exchangectl working-groups update un-wg --description \"Meets quarterly\"\n" +
			"  exchangectl working-groups update un-wg --member ilo,iom,unicef,undp --secretariat un-iap",
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			opts.Changed = changedFlags(cmd.Flags())
			if _, err := opts.apply(&exchangev1.WorkingGroup{}); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runWorkingGroupsUpdate(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Name, "name", "", "full name")
	f.StringVar(&opts.Description, "description", "", "what the group is for")
	newEnumFlag(f, &opts.Kind, "kind", workingGroupKindNames, "kind of group")
	opts.define(f)
	return cmd
}

// apply changes wg as the flags say and returns the update mask paths, or a
// usage error.
func (o *workingGroupsUpdateOptions) apply(wg *exchangev1.WorkingGroup) ([]string, error) {
	if _, err := workingGroupID(o.ID); err != nil {
		return nil, err
	}
	var paths []string
	if o.Changed["name"] {
		if strings.TrimSpace(o.Name) == "" {
			return nil, usageErrorf("--name cannot be empty")
		}
		wg.DisplayName = o.Name
		paths = append(paths, "display_name")
	}
	if o.Changed["description"] {
		wg.Description = o.Description
		paths = append(paths, "description")
	}
	if o.Changed["kind"] {
		if o.Kind == exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_UNSPECIFIED {
			return nil, usageErrorf("--kind cannot be empty")
		}
		wg.Kind = o.Kind
		paths = append(paths, "kind")
	}
	if o.Changed["member"] || o.Changed["observer"] || o.Changed["secretariat"] {
		members, err := o.memberships()
		if err != nil {
			return nil, err
		}
		wg.Members = members
		paths = append(paths, "members")
	}
	if len(paths) == 0 {
		return nil, usageErrorf("nothing to update: give at least one of --name, --description, --kind, --member, --observer, --secretariat")
	}
	return paths, nil
}

// runWorkingGroupsUpdate reads the group, applies the change and prints the
// result.
func runWorkingGroupsUpdate(ctx context.Context, o *workingGroupsUpdateOptions) error {
	id, err := workingGroupID(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	current, err := c.Directory.GetWorkingGroup(ctx, client.WorkingGroupName(id))
	if err != nil {
		return err
	}
	changed := proto.CloneOf(current)
	paths, err := o.apply(changed)
	if err != nil {
		return err
	}
	updated, err := c.Directory.UpdateWorkingGroup(ctx, changed, paths...)
	if err != nil {
		return err
	}
	return printOne(o.app, updated, workingGroupDetail)
}

// workingGroupsDeleteOptions are the inputs of `working-groups delete`.
type workingGroupsDeleteOptions struct {
	app *app
	ID  string
}

// newWorkingGroupsDeleteCmd is `exchangectl working-groups delete`.
func newWorkingGroupsDeleteCmd(a *app, runF func(*workingGroupsDeleteOptions) error) *cobra.Command {
	opts := &workingGroupsDeleteOptions{app: a}
	return &cobra.Command{
		Use:     "delete ID",
		Short:   "Remove a working group (secretariat only)",
		Example: "  exchangectl working-groups delete old-task-force",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := workingGroupID(opts.ID); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runWorkingGroupsDelete(cmd.Context(), opts)
		},
	}
}

// runWorkingGroupsDelete deletes the group.
func runWorkingGroupsDelete(ctx context.Context, o *workingGroupsDeleteOptions) error {
	id, err := workingGroupID(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	name := client.WorkingGroupName(id)
	if err := c.Directory.DeleteWorkingGroup(ctx, name, ""); err != nil {
		return err
	}
	return printDeleted(o.app, name)
}

// workingGroupDetail is the human form of one working group.
func workingGroupDetail(wg *exchangev1.WorkingGroup) []field {
	byRole := map[exchangev1.MembershipRole][]string{}
	for _, m := range wg.GetMembers() {
		byRole[m.GetRole()] = append(byRole[m.GetRole()], client.ResourceID(m.GetAgency()))
	}
	return []field{
		{"Name", wg.GetName()},
		{"Display name", wg.GetDisplayName()},
		{"Kind", workingGroupKindNames.name(protoreflect.EnumNumber(wg.GetKind()))},
		{"Description", wg.GetDescription()},
		{"Members", strings.Join(byRole[exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER], ", ")},
		{"Observers", strings.Join(byRole[exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER], ", ")},
		{"Secretariat", strings.Join(byRole[exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT], ", ")},
		{"Created", formatTime(wg.GetCreateTime())},
		{"Updated", formatTime(wg.GetUpdateTime())},
		{"Etag", wg.GetEtag()},
	}
}

// memberList is a compact form of a membership: "ilo,iom,escap(observer)".
func memberList(members []*exchangev1.Membership) string {
	var parts []string
	for _, m := range members {
		part := client.ResourceID(m.GetAgency())
		if m.GetRole() != exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER {
			part += "(" + membershipRoleNames.name(protoreflect.EnumNumber(m.GetRole())) + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ",")
}
