package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func member(agency string, role exchangev1.MembershipRole) *exchangev1.Membership {
	return &exchangev1.Membership{Agency: agency, Role: role}
}

func TestWorkingGroupsWithObserversAndTheirOwnSecretariat(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom", "unicef", "escap"} {
		x.createAgency(sec, id)
	}
	resp, err := sec.dir.CreateWorkingGroup(ctx, &exchangev1.CreateWorkingGroupRequest{WorkingGroupId: "jac-kh", WorkingGroup: &exchangev1.WorkingGroup{
		DisplayName: "Joint advisory committee, Cambodia", Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_COMMITTEE,
		Members: []*exchangev1.Membership{
			member("agencies/ilo", exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT),
			member("agencies/unicef", exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER),
			member("agencies/iom", exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER),
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	group := resp.GetWorkingGroup()

	// A plain member may not edit the group; its own secretariat may.
	group.Members = append(group.Members, member("agencies/escap", exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER))
	_, err = x.asAgency("unicef").dir.UpdateWorkingGroup(ctx, &exchangev1.UpdateWorkingGroupRequest{WorkingGroup: group})
	wantCode(t, err, codes.PermissionDenied)
	upd, err := x.asAgency("ilo").dir.UpdateWorkingGroup(ctx, &exchangev1.UpdateWorkingGroupRequest{WorkingGroup: group})
	if err != nil {
		t.Fatal(err)
	}
	if len(upd.GetWorkingGroup().GetMembers()) != 4 {
		t.Fatal("member not added")
	}

	byMember, err := sec.dir.ListWorkingGroups(ctx, &exchangev1.ListWorkingGroupsRequest{Member: "agencies/escap"})
	if err != nil || len(byMember.GetWorkingGroups()) != 1 {
		t.Fatalf("groups of escap: %v %v", byMember, err)
	}

	// Unknown member agencies and duplicates are refused, naming the field.
	bad := upd.GetWorkingGroup()
	bad.Members = append(bad.Members, member("agencies/nobody", exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER))
	_, err = sec.dir.UpdateWorkingGroup(ctx, &exchangev1.UpdateWorkingGroupRequest{WorkingGroup: bad})
	st := wantCode(t, err, codes.InvalidArgument)
	if f := violatedFields(st); len(f) != 1 || f[0] != "working_group.members[4].agency" {
		t.Errorf("violations %v", f)
	}
	_, err = sec.dir.CreateWorkingGroup(ctx, &exchangev1.CreateWorkingGroupRequest{WorkingGroupId: "dup", WorkingGroup: &exchangev1.WorkingGroup{
		DisplayName: "Dup", Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_NETWORK,
		Members: []*exchangev1.Membership{member("agencies/ilo", 1), member("agencies/ilo", 2)},
	}})
	wantCode(t, err, codes.InvalidArgument)

	_, err = x.asAgency("ilo").dir.DeleteWorkingGroup(ctx, &exchangev1.DeleteWorkingGroupRequest{Name: "workingGroups/jac-kh"})
	wantCode(t, err, codes.PermissionDenied)
	if _, err := sec.dir.DeleteWorkingGroup(ctx, &exchangev1.DeleteWorkingGroupRequest{Name: "workingGroups/jac-kh"}); err != nil {
		t.Fatal(err)
	}
	byMember, _ = sec.dir.ListWorkingGroups(ctx, &exchangev1.ListWorkingGroupsRequest{Member: "agencies/escap"})
	if len(byMember.GetWorkingGroups()) != 0 {
		t.Fatal("deleted group still listed by member")
	}
}
