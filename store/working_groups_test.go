package store

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func workingGroup(display string, members ...string) *exchangev1.WorkingGroup {
	g := &exchangev1.WorkingGroup{DisplayName: display, Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP}
	for _, m := range members {
		g.Members = append(g.Members, &exchangev1.Membership{Agency: AgencyPrefix + m, Role: exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER})
	}
	return g
}

func setMembers(members ...string) func(*exchangev1.WorkingGroup) error {
	return func(g *exchangev1.WorkingGroup) error {
		g.Members = workingGroup("", members...).Members
		return nil
	}
}

func TestWorkingGroups(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	op := secretariat("CreateWorkingGroup")
	for _, id := range []string{"iom", "ilo", "unicef"} {
		mustCreateAgency(t, s, id, nil)
	}
	// The memberships index keys by agency id: "ilo" must not match "ilo-x".
	mustCreateAgency(t, s, "ilo-x", nil)

	t.Run("members must exist", func(t *testing.T) {
		before := countsOf(t, s)
		_, err := s.CreateWorkingGroup(ctx, op, "cmt", workingGroup("COMMIT", "iom", "nobody", "ilo"))
		e := wantKind(t, err, KindInvalidArgument)
		if e.Field != "working_group.members[1].agency" || e.Resource != "agencies/nobody" {
			t.Errorf("error field, resource = %q, %q; want working_group.members[1].agency, agencies/nobody", e.Field, e.Resource)
		}
		if after := countsOf(t, s); after != before {
			t.Errorf("a refused create changed the counts from %v to %v", before, after)
		}
	})

	cmt, err := s.CreateWorkingGroup(ctx, op, "cmt", workingGroup("COMMIT", "iom", "ilo"))
	if err != nil {
		t.Fatal(err)
	}
	if cmt.GetName() != "workingGroups/cmt" || cmt.GetEtag() == "" {
		t.Errorf("created group = %v", cmt)
	}
	tf, err := s.CreateWorkingGroup(ctx, op, "tf", workingGroup("Task force", "ilo", "unicef", "ilo-x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateWorkingGroup(ctx, op, "cmt", workingGroup("again", "iom")); KindOf(err) != KindAlreadyExists {
		t.Errorf("duplicate create = %v, want already exists", err)
	}

	list := func(member string) []string {
		t.Helper()
		return names(listAll(t, 1, func(p Page) ([]*exchangev1.WorkingGroup, string, error) {
			return s.ListWorkingGroups(ctx, member, p)
		}))
	}
	check := func(t *testing.T, want map[string][]string) {
		t.Helper()
		for member, w := range want {
			if got := list(member); !slices.Equal(got, w) {
				t.Errorf("ListWorkingGroups(%q) = %v, want %v", member, got, w)
			}
		}
		checkIndexes(t, s)
	}
	check(t, map[string][]string{
		"":       {"workingGroups/cmt", "workingGroups/tf"},
		"iom":    {"workingGroups/cmt"},
		"ilo":    {"workingGroups/cmt", "workingGroups/tf"},
		"unicef": {"workingGroups/tf"},
		"ilo-x":  {"workingGroups/tf"},
		"nobody": nil,
	})

	t.Run("update members", func(t *testing.T) {
		_, err := s.UpdateWorkingGroup(ctx, secretariat("UpdateWorkingGroup"), "workingGroups/cmt", cmt.GetEtag(), setMembers("ilo", "nobody"))
		if e := wantKind(t, err, KindInvalidArgument); e.Field != "working_group.members[1].agency" {
			t.Errorf("error field = %q", e.Field)
		}
		if got, _ := s.GetWorkingGroup(ctx, "workingGroups/cmt"); !proto.Equal(got, cmt) {
			t.Errorf("a refused update changed the group to %v", got)
		}
		up, err := s.UpdateWorkingGroup(ctx, secretariat("UpdateWorkingGroup"), "workingGroups/cmt", cmt.GetEtag(), setMembers("ilo", "unicef"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateWorkingGroup(ctx, secretariat("UpdateWorkingGroup"), "workingGroups/cmt", cmt.GetEtag(), setMembers("iom")); KindOf(err) != KindEtagMismatch {
			t.Errorf("update with a stale etag = %v, want etag mismatch", err)
		}
		cmt = up
		check(t, map[string][]string{
			"iom":    nil,
			"ilo":    {"workingGroups/cmt", "workingGroups/tf"},
			"unicef": {"workingGroups/cmt", "workingGroups/tf"},
		})
	})

	t.Run("delete", func(t *testing.T) {
		if err := s.DeleteWorkingGroup(ctx, secretariat("DeleteWorkingGroup"), "workingGroups/tf", "stale"); KindOf(err) != KindEtagMismatch {
			t.Errorf("delete with a stale etag = %v, want etag mismatch", err)
		}
		if err := s.DeleteWorkingGroup(ctx, secretariat("DeleteWorkingGroup"), "workingGroups/tf", tf.GetEtag()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetWorkingGroup(ctx, "workingGroups/tf"); KindOf(err) != KindNotFound {
			t.Errorf("GetWorkingGroup after delete = %v, want not found", err)
		}
		check(t, map[string][]string{
			"":       {"workingGroups/cmt"},
			"ilo":    {"workingGroups/cmt"},
			"unicef": {"workingGroups/cmt"},
			"ilo-x":  nil,
		})
		if err := s.DeleteWorkingGroup(ctx, secretariat("DeleteWorkingGroup"), "workingGroups/tf", ""); KindOf(err) != KindNotFound {
			t.Errorf("second delete = %v, want not found", err)
		}
	})
}
