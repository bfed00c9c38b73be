package cli

import (
	"slices"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func member(id string, role exchangev1.MembershipRole) *exchangev1.Membership {
	return &exchangev1.Membership{Agency: "agencies/" + id, Role: role}
}

const (
	roleMember      = exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER
	roleObserver    = exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER
	roleSecretariat = exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT
)

func TestWorkingGroupsCreateRequest(t *testing.T) {
	opts, err := parse(t, newWorkingGroupsCreateCmd, "un-wg", "--name", "UN Working Group", "--kind", "task-force",
		"--description", "Coordination", "--member", "ilo,iom", "--member", "unicef", "--observer", "escap", "--secretariat", "un-iap")
	if err != nil {
		t.Fatal(err)
	}
	id, wg, err := opts.request()
	if err != nil {
		t.Fatal(err)
	}
	if id != "un-wg" {
		t.Errorf("id %q", id)
	}
	equalProto(t, wg, &exchangev1.WorkingGroup{
		DisplayName: "UN Working Group",
		Description: "Coordination",
		Kind:        exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_TASK_FORCE,
		Members: []*exchangev1.Membership{
			member("ilo", roleMember), member("iom", roleMember), member("unicef", roleMember),
			member("escap", roleObserver), member("un-iap", roleSecretariat),
		},
	})
	for _, bad := range [][]string{
		{"un-wg", "--name", "X"},
		{"un-wg", "--kind", "committee"},
		{"un-wg", "--name", "X", "--kind", "club"},
		{"UN", "--name", "X", "--kind", "committee"},
		{"un-wg", "--name", "X", "--kind", "committee", "--member", "ilo", "--observer", "ilo"},
	} {
		if _, err := parse(t, newWorkingGroupsCreateCmd, bad...); !isUsage(err) {
			t.Errorf("%v: got %v, want a usage error", bad, err)
		}
	}
}

func TestWorkingGroupsUpdateReplacesMembership(t *testing.T) {
	base := func() *exchangev1.WorkingGroup {
		return &exchangev1.WorkingGroup{
			Name: "workingGroups/un-wg", DisplayName: "UN WG", Description: "old",
			Kind:    exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP,
			Members: []*exchangev1.Membership{member("ilo", roleMember), member("iom", roleObserver)},
			Etag:    "3",
		}
	}
	tests := []struct {
		args      []string
		wantPaths []string
		change    func(*exchangev1.WorkingGroup)
	}{
		{[]string{"un-wg", "--description", "new"}, []string{"description"}, func(wg *exchangev1.WorkingGroup) { wg.Description = "new" }},
		{[]string{"un-wg", "--observer", "undp"}, []string{"members"}, func(wg *exchangev1.WorkingGroup) {
			wg.Members = []*exchangev1.Membership{member("undp", roleObserver)}
		}},
		{[]string{"un-wg", "--name", "N", "--kind", "network", "--member", "ilo", "--secretariat", "iom"}, []string{"display_name", "kind", "members"}, func(wg *exchangev1.WorkingGroup) {
			wg.DisplayName = "N"
			wg.Kind = exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_NETWORK
			wg.Members = []*exchangev1.Membership{member("ilo", roleMember), member("iom", roleSecretariat)}
		}},
		{[]string{"un-wg", "--member", ""}, []string{"members"}, func(wg *exchangev1.WorkingGroup) { wg.Members = nil }},
	}
	for _, tt := range tests {
		opts, err := parse(t, newWorkingGroupsUpdateCmd, tt.args...)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		got := base()
		paths, err := opts.apply(got)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(paths, tt.wantPaths) {
			t.Errorf("%v: paths %v, want %v", tt.args, paths, tt.wantPaths)
		}
		want := base()
		tt.change(want)
		equalProto(t, got, want)
	}
	if _, err := parse(t, newWorkingGroupsUpdateCmd, "un-wg"); !isUsage(err) {
		t.Errorf("update without flags: %v", err)
	}
}

func TestWorkingGroupsListAndDeleteParse(t *testing.T) {
	opts, err := parse(t, newWorkingGroupsListCmd, "--member", "ilo")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := opts.request()
	equalProto(t, req, &exchangev1.ListWorkingGroupsRequest{Member: "agencies/ilo"})
	if _, err := parse(t, newWorkingGroupsDeleteCmd); !isUsage(err) {
		t.Errorf("delete without id: %v", err)
	}
	if d, err := parse(t, newWorkingGroupsDeleteCmd, "workingGroups/un-wg"); err != nil || d.ID != "workingGroups/un-wg" {
		t.Errorf("delete: %+v, %v", d, err)
	}
}
