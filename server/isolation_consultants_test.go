package server

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The consultant roster in the isolation matrix and the malformed-request
// test, kept in this file so that the shared tables only gain entries.

func init() {
	for _, m := range []string{"GetConsultant", "ListConsultants", "CreateConsultant", "UpdateConsultant",
		"EraseConsultant", "CreateEngagement", "ListEngagements", "GetEngagement", "CancelEngagement"} {
		modelMethodKinds["ConsultantService/"+m] = forAgencies
	}
	for method, base := range consultantBadInputBases {
		badInputBases[method] = base
	}
}

// consultantBadInputBases are valid base requests of ConsultantService,
// every optional field filled.
var consultantBadInputBases = map[string]func() proto.Message{
	exchangev1.ConsultantService_GetConsultant_FullMethodName: func() proto.Message {
		return &exchangev1.GetConsultantRequest{Name: "agencies/ilo/consultants/" + badID}
	},
	exchangev1.ConsultantService_ListConsultants_FullMethodName: func() proto.Message {
		return &exchangev1.ListConsultantsRequest{Parent: "agencies/ilo", PageSize: 10, Niche: exchangev1.Niche_NICHE_LEGAL_AID,
			Language: "km", Province: "KH-12"}
	},
	exchangev1.ConsultantService_CreateConsultant_FullMethodName: func() proto.Message {
		return &exchangev1.CreateConsultantRequest{Parent: "agencies/ilo", Consultant: baseConsultant(), RequestId: "consultant-1"}
	},
	exchangev1.ConsultantService_UpdateConsultant_FullMethodName: func() proto.Message {
		k := baseConsultant()
		k.Name = "agencies/ilo/consultants/" + badID
		return &exchangev1.UpdateConsultantRequest{Consultant: k}
	},
	exchangev1.ConsultantService_EraseConsultant_FullMethodName: func() proto.Message {
		return &exchangev1.EraseConsultantRequest{Name: "agencies/ilo/consultants/" + badID}
	},
	exchangev1.ConsultantService_CreateEngagement_FullMethodName: func() proto.Message {
		return &exchangev1.CreateEngagementRequest{Parent: "agencies/ilo/consultants/" + badID, RequestId: "engagement-1",
			Engagement: &exchangev1.Engagement{Period: basePeriod(), Niche: exchangev1.Niche_NICHE_LEGAL_AID, Purpose: "legal aid training", Etag: "etag"}}
	},
	exchangev1.ConsultantService_ListEngagements_FullMethodName: func() proto.Message {
		return &exchangev1.ListEngagementsRequest{Parent: "agencies/ilo/consultants/" + badID, PageSize: 10}
	},
	exchangev1.ConsultantService_GetEngagement_FullMethodName: func() proto.Message {
		return &exchangev1.GetEngagementRequest{Name: "agencies/ilo/consultants/" + badID + "/engagements/" + badID}
	},
	exchangev1.ConsultantService_CancelEngagement_FullMethodName: func() proto.Message {
		return &exchangev1.CancelEngagementRequest{Name: "agencies/ilo/consultants/" + badID + "/engagements/" + badID, Etag: "etag", Reason: "training postponed"}
	},
}

func baseConsultant() *exchangev1.Consultant {
	return &exchangev1.Consultant{
		Name: "agencies/ilo/consultants/" + badID, DisplayName: "Sok Dara", ContactEmail: "roster@ilo.example",
		Languages: []string{"km"}, Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_LEGAL_AID}, Provinces: []string{"KH-12"},
		Availability: []*exchangev1.DatePeriod{basePeriod()},
		Consent:      &exchangev1.ConsultantConsent{GivenOn: date(2026, 1, 1), Record: "form"}, Etag: "etag",
	}
}

// isoConsultant is what the matrix knows of one consultant.
type isoConsultant struct {
	owner          string
	listed, erased bool
	profile        *exchangev1.Consultant
	engagements    map[string]string // engagement name → booking agency
}

// sees is the model of who sees a consultant: the adding agency, every
// agency while it is listed, and once it is erased the agencies that
// booked it.
func (k *isoConsultant) sees(caller string) bool {
	if caller == k.owner || k.listed {
		return true
	}
	for _, agency := range k.engagements {
		if k.erased && agency == caller {
			return true
		}
	}
	return false
}

// consultantEntries adds consultants to the world (of ilo: one listed,
// one unlisted, one erased after iom booked it, one erased before anyone
// booked it, one ilo erases in the matrix; of iom: one listed) and drives
// every ConsultantService method against them.
func (w *isoWorld) consultantEntries() []mxEntry {
	roster := map[string]*isoConsultant{}
	add := func(owner string, listed bool) string {
		body := newConsultant(fmt.Sprintf("Consultant %d", w.next()))
		if !listed {
			body.Consent = nil
		}
		k := addConsultant(w.t, w.conn(owner), body)
		roster[k.GetName()] = &isoConsultant{owner: owner, listed: listed, profile: body, engagements: map[string]string{}}
		return k.GetName()
	}
	// Every booking takes a day of its own, so that none overlaps another.
	day := func() *exchangev1.CalendarDate {
		d := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, w.next())
		return date(int32(d.Year()), int32(d.Month()), int32(d.Day()))
	}
	book := func(agency, name string) {
		d := day()
		e, err := bookConsultant(w.conn(agency), name, d, d)
		if err != nil {
			w.t.Fatalf("matrix fixture: %s books %s: %v", agency, name, err)
		}
		roster[name].engagements[e.GetName()] = agency
	}
	listed, unlisted, erased := add("agencies/ilo", true), add("agencies/ilo", false), add("agencies/ilo", true)
	toErase := add("agencies/ilo", true)
	add("agencies/iom", true)
	book("agencies/iom", listed)
	book("agencies/unicef", listed)
	book("agencies/ilo", unlisted)
	book("agencies/iom", erased)
	book("agencies/iom", toErase)
	if _, err := w.conn("agencies/ilo").consultants().EraseConsultant(bg(), &exchangev1.EraseConsultantRequest{Name: erased}); err != nil {
		w.t.Fatalf("matrix fixture: erase: %v", err)
	}
	roster[erased].listed, roster[erased].erased = false, true
	unbooked := add("agencies/ilo", false)
	if _, err := w.conn("agencies/ilo").consultants().EraseConsultant(bg(), &exchangev1.EraseConsultantRequest{Name: unbooked}); err != nil {
		w.t.Fatalf("matrix fixture: erase: %v", err)
	}
	roster[unbooked].erased = true
	names := slices.Sorted(keysOf(roster))

	sees := func(c, name string) verdict {
		if !roster[name].sees(c) {
			return vInvisible
		}
		return vAllow
	}
	owns := func(c, name string) verdict {
		k := roster[name]
		switch {
		case !k.sees(c):
			return vInvisible
		case c != k.owner:
			return vDenied
		case k.erased:
			return vPrecondition
		}
		return vAllow
	}
	per := func(want func(c, name string) verdict, call func(c as, name string) (any, error), check func(c, name string, resp any) []finding) []mxAttempt {
		var out []mxAttempt
		for _, name := range names {
			a := mxAttempt{label: name, owners: []string{roster[name].owner}, name: name, twin: twinOf(name),
				want: func(c string) verdict { return want(c, name) }, call: call}
			if check != nil {
				a.check = func(c string, resp any) []finding { return check(c, name, resp) }
			}
			out = append(out, a)
		}
		return out
	}
	// perEngagement is per over the engagements booked so far: the
	// booking agency and the consultant's adding agency see one, as long
	// as they see the consultant.
	cancelled := map[string]bool{}
	perEngagement := func(want func(c, e string, k *isoConsultant) verdict, call func(c as, name string) (any, error), check func(c, e string, resp any) []finding) []mxAttempt {
		var out []mxAttempt
		for _, name := range names {
			k := roster[name]
			for _, e := range slices.Sorted(keysOf(k.engagements)) {
				a := mxAttempt{label: e, owners: []string{k.engagements[e]}, name: e, twin: twinOf(e),
					want: func(c string) verdict { return want(c, e, k) }, call: call}
				if check != nil {
					a.check = func(c string, resp any) []finding { return check(c, e, resp) }
				}
				out = append(out, a)
			}
		}
		return out
	}
	seesEngagement := func(c, e string, k *isoConsultant) bool {
		return k.sees(c) && (c == k.engagements[e] || c == k.owner)
	}
	// personal reports a profile field an erased consultant still shows.
	personal := func(name string, k *exchangev1.Consultant) []finding {
		if roster[name].erased && (k.GetDisplayName() != "" || k.GetContactEmail() != "" || len(k.GetLanguages()) > 0 || k.GetConsent() != nil) {
			return []finding{leakf("erased %s shows %v", name, k)}
		}
		return nil
	}
	return []mxEntry{
		{exchangev1.ConsultantService_GetConsultant_FullMethodName, func() []mxAttempt {
			return per(sees, func(c as, n string) (any, error) {
				return c.consultants().GetConsultant(bg(), &exchangev1.GetConsultantRequest{Name: n})
			}, func(_, name string, resp any) []finding {
				return personal(name, resp.(*exchangev1.GetConsultantResponse).GetConsultant())
			})
		}},
		{exchangev1.ConsultantService_ListConsultants_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, parent := range append([]string{"agencies/-"}, isoActive...) {
				out = append(out, mxAttempt{label: parent, want: allow, call: func(c as, _ string) (any, error) {
					return listAll(func(tok string) ([]*exchangev1.Consultant, string, error) {
						r, err := c.consultants().ListConsultants(bg(), &exchangev1.ListConsultantsRequest{Parent: parent, PageSize: 2, PageToken: tok})
						return r.GetConsultants(), r.GetNextPageToken(), err
					})
				}, check: func(caller string, resp any) []finding {
					var got, want []string
					for _, k := range resp.([]*exchangev1.Consultant) {
						got = append(got, k.GetName())
					}
					for _, name := range names {
						k := roster[name]
						if (parent == "agencies/-" || parent == k.owner) && (k.owner == caller || k.listed) {
							want = append(want, name)
						}
					}
					if d := diffSets(got, want); d != "" {
						return []finding{leakf("%s", d)}
					}
					return nil
				}})
			}
			return out
		}},
		{exchangev1.ConsultantService_ListEngagements_FullMethodName, func() []mxAttempt {
			return per(sees, func(c as, n string) (any, error) {
				return c.consultants().ListEngagements(bg(), &exchangev1.ListEngagementsRequest{Parent: n})
			}, func(caller, name string, resp any) []finding {
				var got, want []string
				for _, e := range resp.(*exchangev1.ListEngagementsResponse).GetEngagements() {
					got = append(got, e.GetName())
				}
				for e, agency := range roster[name].engagements {
					if agency == caller || roster[name].owner == caller {
						want = append(want, e)
					}
				}
				if d := diffSets(got, want); d != "" {
					return []finding{leakf("%s", d)}
				}
				return nil
			})
		}},
		{exchangev1.ConsultantService_CreateEngagement_FullMethodName, func() []mxAttempt {
			out := per(func(c, name string) verdict {
				switch {
				case !roster[name].sees(c):
					return vInvisible
				case roster[name].erased:
					return vPrecondition
				}
				return vAllow
			}, func(c as, n string) (any, error) {
				d := day()
				return bookConsultant(c, n, d, d)
			}, func(caller, name string, resp any) []finding {
				if a := resp.(*exchangev1.Engagement).GetAgency(); a != caller {
					return []finding{leakf("booked for %s", a)}
				}
				return nil
			})
			for i := range out {
				name := out[i].name
				out[i].apply = func(caller string, resp any) {
					roster[name].engagements[resp.(*exchangev1.Engagement).GetName()] = caller
				}
			}
			return out
		}},
		{exchangev1.ConsultantService_GetEngagement_FullMethodName, func() []mxAttempt {
			return perEngagement(func(c, e string, k *isoConsultant) verdict {
				if !seesEngagement(c, e, k) {
					return vInvisible
				}
				return vAllow
			}, func(c as, n string) (any, error) {
				return c.consultants().GetEngagement(bg(), &exchangev1.GetEngagementRequest{Name: n})
			}, func(_, e string, resp any) []finding {
				if got := resp.(*exchangev1.GetEngagementResponse).GetEngagement(); got.GetName() != e || (got.GetCancelTime() != nil) != cancelled[e] {
					return []finding{leakf("asked for %s, got %v", e, got)}
				}
				return nil
			})
		}},
		{exchangev1.ConsultantService_CancelEngagement_FullMethodName, func() []mxAttempt {
			out := perEngagement(func(c, e string, k *isoConsultant) verdict {
				switch {
				case !seesEngagement(c, e, k):
					return vInvisible
				case c != k.engagements[e]:
					return vDenied
				case cancelled[e]:
					return vPrecondition
				}
				return vAllow
			}, func(c as, n string) (any, error) {
				return c.consultants().CancelEngagement(bg(), &exchangev1.CancelEngagementRequest{Name: n, Reason: "matrix: postponed"})
			}, func(caller, e string, resp any) []finding {
				got := resp.(*exchangev1.CancelEngagementResponse).GetEngagement()
				if got.GetName() != e || got.GetAgency() != caller || got.GetCancelTime() == nil {
					return []finding{leakf("cancelled %s as %s: %v", e, caller, got)}
				}
				return nil
			})
			for i := range out {
				e := out[i].name
				out[i].apply = func(string, any) { cancelled[e] = true }
			}
			return out
		}},
		{exchangev1.ConsultantService_UpdateConsultant_FullMethodName, func() []mxAttempt {
			return per(owns, func(c as, n string) (any, error) {
				k, ok := roster[n]
				body := newConsultant("Twin")
				if ok {
					body = proto.Clone(k.profile).(*exchangev1.Consultant)
				}
				body.Name = n
				return c.consultants().UpdateConsultant(bg(), &exchangev1.UpdateConsultantRequest{Consultant: body})
			}, nil)
		}},
		{exchangev1.ConsultantService_EraseConsultant_FullMethodName, func() []mxAttempt {
			out := per(owns, func(c as, n string) (any, error) {
				return c.consultants().EraseConsultant(bg(), &exchangev1.EraseConsultantRequest{Name: n})
			}, nil)
			for i := range out {
				name := out[i].name
				if name == toErase {
					out[i].apply = func(string, any) { roster[name].listed, roster[name].erased = false, true }
					continue
				}
				// Only toErase is erased by its owner, so that the others
				// keep their state for the entries after.
				out[i].skip = func(c string) bool { return c == roster[name].owner && !roster[name].erased }
			}
			return out
		}},
		{exchangev1.ConsultantService_CreateConsultant_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, own := range []bool{true, false} {
				parent := func(caller string) string {
					if own {
						return caller
					}
					return otherAgency(caller, "")
				}
				out = append(out, mxAttempt{label: fmt.Sprint("own parent ", own), want: func(c string) verdict { return w.m.ownParent(c, parent(c)) },
					call: func(c as, _ string) (any, error) {
						body := newConsultant(fmt.Sprintf("Matrix %d", w.next()))
						body.Owner = "agencies/iom" // output only: the caller's agency adds it
						return c.consultants().CreateConsultant(bg(), &exchangev1.CreateConsultantRequest{Parent: parent(callerOf(c)), Consultant: body, RequestId: nextRequestID()})
					}, check: func(caller string, resp any) []finding {
						if o := resp.(*exchangev1.CreateConsultantResponse).GetConsultant().GetOwner(); o != caller || !strings.HasPrefix(resp.(*exchangev1.CreateConsultantResponse).GetConsultant().GetName(), caller+"/") {
							return []finding{leakf("stored under %s", o)}
						}
						return nil
					}})
			}
			return out
		}},
	}
}
