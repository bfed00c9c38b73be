package server

import (
	"context"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// Reader is what decides whether a caller may see a shared resource (a
// dataset, a plan): who the caller is and the working groups it belongs
// to, read once per call so that a view over thousands of resources does
// not read the directory for each.
type Reader struct {
	// Caller is the authenticated caller.
	Caller Caller
	// Groups are the caller's working groups, "workingGroups/{id}", in any
	// role (member, observer, secretariat).
	Groups map[string]bool
	// Members are the groups in which the caller is a member or the
	// group's secretariat (not an observer): those may contribute.
	Members map[string]bool
}

// readerFor loads the caller's working groups.
func readerFor(ctx context.Context, st *store.Store) (Reader, error) {
	r := Reader{Caller: CallerFrom(ctx), Groups: map[string]bool{}, Members: map[string]bool{}}
	if r.Caller.AgencyName() == "" {
		return r, nil
	}
	page := store.Page{Size: store.MaxPageSize}
	for {
		groups, next, err := st.ListWorkingGroups(ctx, r.Caller.Identity.AgencyID, page)
		if err != nil {
			return Reader{}, err
		}
		for _, g := range groups {
			r.Groups[g.GetName()] = true
			for _, m := range g.GetMembers() {
				if m.GetAgency() == r.Caller.AgencyName() && m.GetRole() != exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER {
					r.Members[g.GetName()] = true
				}
			}
		}
		if next == "" {
			return r, nil
		}
		page.Token = next
	}
}

// Sees reports whether the reader may see a resource owned by owner
// ("agencies/{id}") and shared with audience. The owner always sees its
// own; the audience adds all members, named agencies, or the members and
// observers of named working groups. The secretariat is no member agency:
// it sees only what is shared with all members.
func (r Reader) Sees(owner string, audience *exchangev1.Audience) bool {
	if audience.GetAllMembers() {
		return true
	}
	me := r.Caller.AgencyName()
	if me == "" {
		return false
	}
	if me == owner {
		return true
	}
	for _, a := range audience.GetAgencies() {
		if a == me {
			return true
		}
	}
	for _, g := range audience.GetWorkingGroups() {
		if r.Groups[g] {
			return true
		}
	}
	return false
}
