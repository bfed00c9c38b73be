package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestViewsNeverRevealAPlanTheCallerMayNotSee(t *testing.T) {
	_, sec, ilo, iom, unicef, _ := planParties(t)
	ctx := context.Background()
	// ilo's plan is its own; iom's is shared with all. Both prevention in
	// Battambang in 2026.
	hidden := newPlan("ilo-private")
	hidden.Audience = nil
	hidden = createPlan(t, ilo, hidden)
	open := createPlan(t, iom, newPlan("iom-open"))
	period := &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)}

	for who, c := range map[string]as{"ilo": ilo, "iom": iom, "unicef": unicef, "secretariat": sec} {
		resp, err := c.plans().FindOverlaps(ctx, &exchangev1.FindOverlapsRequest{Country: "KH"})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if who == "ilo" {
			want = 1
		}
		if len(resp.GetOverlaps()) != want {
			t.Errorf("%s sees %d overlaps, want %d", who, len(resp.GetOverlaps()), want)
		}
		gaps, err := c.plans().FindGaps(ctx, &exchangev1.FindGapsRequest{Country: "KH", Period: period, Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gaps.GetGaps() {
			if g.GetSubdivision() == "KH-2" {
				t.Errorf("%s: Battambang is a gap, but iom's plan covers it", who)
			}
		}
		cov, err := c.plans().GetCoverage(ctx, &exchangev1.GetCoverageRequest{Country: "KH"})
		if err != nil {
			t.Fatal(err)
		}
		wantAgencies := []string{"agencies/iom"}
		if who == "ilo" {
			wantAgencies = []string{"agencies/ilo", "agencies/iom"}
		}
		if len(cov.GetCells()) != 1 || !slices.Equal(cov.GetCells()[0].GetAgencies(), wantAgencies) || cov.GetCells()[0].GetDisplayName() != "Battambang" {
			t.Errorf("%s coverage %v", who, cov.GetCells())
		}
	}
	// Only ilo's own plan covers Siem Reap: a gap for everyone else.
	hidden.Locations = append(hidden.Locations, &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-17"})
	if _, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: hidden}); err != nil {
		t.Fatal(err)
	}
	for who, c := range map[string]as{"ilo": ilo, "unicef": unicef} {
		gaps, err := c.plans().FindGaps(ctx, &exchangev1.FindGapsRequest{Country: "KH", Period: period, Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}})
		if err != nil {
			t.Fatal(err)
		}
		isGap := slices.ContainsFunc(gaps.GetGaps(), func(g *exchangev1.PlanGap) bool { return g.GetSubdivision() == "KH-17" })
		if isGap != (who != "ilo") {
			t.Errorf("%s: Siem Reap gap %v", who, isGap)
		}
		if len(gaps.GetGaps()) != len(geo.InCountry("KH"))-map[bool]int{true: 2, false: 1}[who == "ilo"] {
			t.Errorf("%s: %d gaps", who, len(gaps.GetGaps()))
		}
	}
	_ = open
	_, err := ilo.plans().FindGaps(ctx, &exchangev1.FindGapsRequest{Country: "FR", Period: period})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "country" {
		t.Errorf("unknown country %v", f)
	}
}

func TestViewIndexIsRebuiltOnlyWhenPlansChange(t *testing.T) {
	x, sec, ilo, _, _, _ := planParties(t)
	ctx := context.Background()
	createPlan(t, ilo, newPlan("first"))
	views := &planViews{store: x.store}
	idx, err := views.get(ctx)
	if err != nil || len(idx.plans) != 1 {
		t.Fatalf("index %v %v", idx, err)
	}
	// A directory change moves the revision, not the plans.
	x.createAgency(sec, "escap", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	moved, err := views.get(ctx)
	if err != nil || moved.rev != x.store.Revision() || moved.rev == idx.rev || &moved.plans[0] != &idx.plans[0] {
		t.Fatalf("after a directory change: rev %d → %d, rebuilt %v (%v)", idx.rev, moved.rev, &moved.plans[0] != &idx.plans[0], err)
	}
	createPlan(t, ilo, newPlan("second"))
	rebuilt, err := views.get(ctx)
	if err != nil || len(rebuilt.plans) != 2 || rebuilt.rev != x.store.Revision() {
		t.Fatalf("after a plan change: %d plans at %d (%v)", len(rebuilt.plans), rebuilt.rev, err)
	}
}

// The randomized comparison: a few hundred plans of six agencies with
// every kind of audience, then every view, from every party's point of
// view, against a brute-force computation over the stored plans.

var (
	viewNiches = []exchangev1.Niche{
		exchangev1.Niche_NICHE_PREVENTION, exchangev1.Niche_NICHE_CHILD_PROTECTION, exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION,
		exchangev1.Niche_NICHE_LIVELIHOODS_AND_SKILLS, exchangev1.Niche_NICHE_SHELTER, exchangev1.Niche_NICHE_COORDINATION,
	}
	viewProvinces = []string{"KH-1", "KH-2", "KH-12", "KH-17", "LA-KH", "LA-SV", "LA-CH", "LA-VT"}
	viewAgencies  = []string{"ilo", "iom", "unicef", "escap", "uniap", "ngo-kh"}
	viewGroups    = map[string][]string{"workingGroups/un-wg": {"ilo", "iom", "unicef"}, "workingGroups/kh-network": {"ngo-kh", "escap"}}
)

// randomPlan draws a plan; ext is its external id.
func randomPlan(rng *rand.Rand, owner, ext string) *exchangev1.Plan {
	p := &exchangev1.Plan{ExternalId: ext, Title: "Plan " + ext, Stage: exchangev1.PlanStage(1 + rng.IntN(5))}
	for _, i := range rng.Perm(len(viewNiches))[:1+rng.IntN(2)] {
		p.Niches = append(p.Niches, viewNiches[i])
	}
	seen := map[string]bool{}
	for range 1 + rng.IntN(3) {
		prov := viewProvinces[rng.IntN(len(viewProvinces))]
		l := &exchangev1.LocationRef{Country: prov[:2], Subdivision: prov}
		switch r := rng.IntN(100); {
		case r < 12:
			l.Subdivision = ""
		case r < 30:
			l.Area = []string{"District A", "District B"}[rng.IntN(2)]
		}
		k := l.GetCountry() + l.GetSubdivision() + l.GetArea()
		if !seen[k] {
			seen[k] = true
			p.Locations = append(p.Locations, l)
		}
	}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(1400))
	p.PlannedPeriod = &exchangev1.DatePeriod{Start: calendarDate(start)}
	if rng.IntN(10) > 0 {
		p.PlannedPeriod.End = calendarDate(start.AddDate(0, 0, 30+rng.IntN(670)))
	}
	switch r := rng.IntN(100); {
	case r < 35:
		p.Audience = &exchangev1.Audience{AllMembers: true}
	case r < 55:
		a := &exchangev1.Audience{}
		for _, i := range rng.Perm(len(viewAgencies))[:1+rng.IntN(2)] {
			if viewAgencies[i] != owner {
				a.Agencies = append(a.Agencies, "agencies/"+viewAgencies[i])
			}
		}
		if len(a.Agencies) > 0 {
			p.Audience = a
		}
	case r < 75:
		groups := []string{"workingGroups/un-wg", "workingGroups/kh-network"}
		p.Audience = &exchangev1.Audience{WorkingGroups: []string{groups[rng.IntN(2)]}}
	}
	return p
}

func calendarDate(t time.Time) *exchangev1.CalendarDate {
	return &exchangev1.CalendarDate{Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day())}
}

// bruteSees is the audience rule, written out: viewer "" is the
// secretariat.
func bruteSees(viewer string, p *exchangev1.Plan) bool {
	a := p.GetAudience()
	if a.GetAllMembers() {
		return true
	}
	if viewer == "" {
		return false
	}
	if p.GetOwner() == "agencies/"+viewer || slices.Contains(a.GetAgencies(), "agencies/"+viewer) {
		return true
	}
	for _, g := range a.GetWorkingGroups() {
		if slices.Contains(viewGroups[g], viewer) {
			return true
		}
	}
	return false
}

func days(p *exchangev1.DatePeriod) (int, int) {
	n := func(d *exchangev1.CalendarDate) int {
		return int(d.GetYear())*10000 + int(d.GetMonth())*100 + int(d.GetDay())
	}
	if p == nil {
		return 0, 99999999
	}
	end := 99999999
	if p.GetEnd() != nil {
		end = n(p.GetEnd())
	}
	return n(p.GetStart()), end
}

// contains reports whether place x includes place y.
func contains(x, y *exchangev1.LocationRef) bool {
	return x.GetCountry() == y.GetCountry() &&
		(x.GetSubdivision() == "" || (x.GetSubdivision() == y.GetSubdivision() && (x.GetArea() == "" || x.GetArea() == y.GetArea())))
}

func placeKey(l *exchangev1.LocationRef) string {
	return l.GetCountry() + "/" + l.GetSubdivision() + "/" + l.GetArea()
}

// bruteOverlaps lists every overlap the viewer may see, as comparable
// strings in (first, second) order.
func bruteOverlaps(plans []*exchangev1.Plan, viewer string, req *exchangev1.FindOverlapsRequest) []string {
	var live []*exchangev1.Plan
	for _, p := range plans {
		if p.GetStage() != exchangev1.PlanStage_PLAN_STAGE_CANCELLED && bruteSees(viewer, p) {
			live = append(live, p)
		}
	}
	slices.SortFunc(live, func(a, b *exchangev1.Plan) int { return strings.Compare(a.GetName(), b.GetName()) })
	fs, fe := days(req.GetPeriod())
	var out []string
	for i, a := range live {
		for _, b := range live[i+1:] {
			if a.GetOwner() == b.GetOwner() {
				continue
			}
			if req.GetAgency() != "" && a.GetOwner() != req.GetAgency() && b.GetOwner() != req.GetAgency() {
				continue
			}
			as, ae := days(a.GetPlannedPeriod())
			bs, be := days(b.GetPlannedPeriod())
			s, e := max(as, bs), min(ae, be)
			if s > e || s > fe || fs > e {
				continue
			}
			var niches []string
			for _, n := range viewNiches {
				if slices.Contains(a.GetNiches(), n) && slices.Contains(b.GetNiches(), n) {
					niches = append(niches, n.String())
				}
			}
			places := map[string]bool{}
			for _, la := range a.GetLocations() {
				for _, lb := range b.GetLocations() {
					if contains(la, lb) {
						places[placeKey(lb)] = true
					} else if contains(lb, la) {
						places[placeKey(la)] = true
					}
				}
			}
			var locs []string
			inCountry := false
			for k := range places {
				locs = append(locs, k)
				inCountry = inCountry || strings.HasPrefix(k, req.GetCountry()+"/")
			}
			slices.Sort(locs)
			if len(niches) == 0 || len(locs) == 0 || (req.GetCountry() != "" && !inCountry) ||
				(req.GetNiche() != 0 && !slices.Contains(niches, req.GetNiche().String())) {
				continue
			}
			slices.Sort(niches)
			out = append(out, fmt.Sprintf("%s %s %v %v %d-%d", a.GetName(), b.GetName(), niches, locs, s, e))
		}
	}
	return out
}

func overlapString(o *exchangev1.PlanOverlap) string {
	var niches, locs []string
	for _, n := range o.GetNiches() {
		niches = append(niches, n.String())
	}
	for _, l := range o.GetLocations() {
		locs = append(locs, placeKey(l))
	}
	slices.Sort(niches)
	s, e := days(o.GetPeriod())
	return fmt.Sprintf("%s %s %v %v %d-%d", o.GetFirst().GetName(), o.GetSecond().GetName(), niches, locs, s, e)
}

// bruteGaps lists "province niche" for every gap.
func bruteGaps(plans []*exchangev1.Plan, viewer, country string, period *exchangev1.DatePeriod, niches []exchangev1.Niche) []string {
	if len(niches) == 0 {
		for n := range exchangev1.Niche_name {
			if n != 0 {
				niches = append(niches, exchangev1.Niche(n))
			}
		}
	}
	slices.Sort(niches)
	fs, fe := days(period)
	var out []string
	for _, prov := range geo.InCountry(country) {
		for _, n := range niches {
			covered := false
			for _, p := range plans {
				s, e := days(p.GetPlannedPeriod())
				if p.GetStage() == exchangev1.PlanStage_PLAN_STAGE_CANCELLED || !bruteSees(viewer, p) || s > fe || fs > e || !slices.Contains(p.GetNiches(), n) {
					continue
				}
				for _, l := range p.GetLocations() {
					covered = covered || contains(&exchangev1.LocationRef{Country: l.GetCountry(), Subdivision: l.GetSubdivision()}, &exchangev1.LocationRef{Country: country, Subdivision: prov.Code})
				}
			}
			if !covered {
				out = append(out, prov.Code+" "+n.String())
			}
		}
	}
	return out
}

// bruteCoverage lists "province niche agencies count" for every cell.
func bruteCoverage(plans []*exchangev1.Plan, viewer, country string, period *exchangev1.DatePeriod, niches []exchangev1.Niche) []string {
	fs, fe := days(period)
	type cell struct {
		agencies []string
		count    int
	}
	cells := map[string]*cell{}
	for _, p := range plans {
		s, e := days(p.GetPlannedPeriod())
		if p.GetStage() == exchangev1.PlanStage_PLAN_STAGE_CANCELLED || !bruteSees(viewer, p) || s > fe || fs > e {
			continue
		}
		for _, n := range p.GetNiches() {
			if len(niches) > 0 && !slices.Contains(niches, n) {
				continue
			}
			counted := map[string]bool{}
			for _, l := range p.GetLocations() {
				k := fmt.Sprintf("%s %02d", l.GetSubdivision(), n)
				if l.GetCountry() != country || counted[k] {
					continue
				}
				counted[k] = true
				c := cells[k]
				if c == nil {
					c = &cell{}
					cells[k] = c
				}
				if !slices.Contains(c.agencies, p.GetOwner()) {
					c.agencies = append(c.agencies, p.GetOwner())
				}
				c.count++
			}
		}
	}
	var out []string
	for k, c := range cells {
		slices.Sort(c.agencies)
		out = append(out, fmt.Sprintf("%s %v %d", k, c.agencies, c.count))
	}
	slices.Sort(out)
	return out
}

func TestViewsMatchBruteForceForEveryPartyOnRandomPlans(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	ctx := context.Background()
	for _, id := range viewAgencies {
		x.createAgency(sec, id, exchangev1.Niche_NICHE_PREVENTION)
	}
	createWorkingGroup(t, sec, "un-wg", map[string]exchangev1.MembershipRole{
		"ilo": exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER, "iom": exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER,
		"unicef": exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT,
	})
	createWorkingGroup(t, sec, "kh-network", map[string]exchangev1.MembershipRole{
		"ngo-kh": exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER, "escap": exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER,
	})
	viewers := map[string]as{"": sec}
	rng := rand.New(rand.NewPCG(20260501, 5))
	for _, id := range viewAgencies {
		c := x.asAgency(id)
		viewers[id] = c
		var set []*exchangev1.Plan
		for i := range 50 {
			set = append(set, randomPlan(rng, "agencies/"+id, fmt.Sprintf("%s-%03d", id, i)))
		}
		apply(t, c, set, false, false)
		// Some are cancelled: they take no part in the views.
		for _, p := range set {
			if rng.IntN(100) < 6 {
				p.Stage = exchangev1.PlanStage_PLAN_STAGE_CANCELLED
			}
		}
		apply(t, c, set, false, false)
	}
	plans, _, err := x.store.PlanSnapshot(ctx)
	if err != nil || len(plans) != 300 {
		t.Fatalf("%d plans stored (%v)", len(plans), err)
	}

	year := &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)}
	half := &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 6, 30)}
	overlapQueries := []*exchangev1.FindOverlapsRequest{
		{PageSize: 150},
		{Country: "LA", PageSize: 1000},
		{Niche: exchangev1.Niche_NICHE_PREVENTION, PageSize: 1000},
		{Period: half, PageSize: 1000},
		{Agency: "agencies/ilo", Country: "KH", Niche: exchangev1.Niche_NICHE_SHELTER, PageSize: 7},
	}
	total := 0
	for viewer, c := range viewers {
		name := viewer
		if name == "" {
			name = "secretariat"
		}
		t.Run(name, func(t *testing.T) {
			for qi, q := range overlapQueries {
				want := bruteOverlaps(plans, viewer, q)
				var got []string
				req := q
				for pages := 0; ; pages++ {
					resp, err := c.plans().FindOverlaps(ctx, req)
					if err != nil {
						t.Fatal(err)
					}
					for _, o := range resp.GetOverlaps() {
						got = append(got, overlapString(o))
					}
					if resp.GetNextPageToken() == "" {
						break
					}
					if len(resp.GetOverlaps()) != int(q.GetPageSize()) {
						t.Fatalf("query %d: a short page (%d) before the last", qi, len(resp.GetOverlaps()))
					}
					req = proto.Clone(q).(*exchangev1.FindOverlapsRequest)
					req.PageToken = resp.GetNextPageToken()
				}
				total += len(got)
				if !slices.Equal(got, want) {
					t.Errorf("query %d: %d overlaps, brute force %d", qi, len(got), len(want))
					for _, d := range symmetricDifference(got, want) {
						t.Log(d)
					}
				}
			}
			for _, q := range []struct {
				country string
				period  *exchangev1.DatePeriod
				niches  []exchangev1.Niche
			}{
				{"KH", year, nil},
				{"LA", half, []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION, exchangev1.Niche_NICHE_SHELTER}},
			} {
				resp, err := c.plans().FindGaps(ctx, &exchangev1.FindGapsRequest{Country: q.country, Period: q.period, Niches: q.niches})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, g := range resp.GetGaps() {
					got = append(got, g.GetSubdivision()+" "+g.GetNiche().String())
				}
				if want := bruteGaps(plans, viewer, q.country, q.period, q.niches); !slices.Equal(got, want) {
					t.Errorf("gaps %s: %d, brute force %d: %v", q.country, len(got), len(want), symmetricDifference(got, want))
				}
				cov, err := c.plans().GetCoverage(ctx, &exchangev1.GetCoverageRequest{Country: q.country, Period: q.period, Niches: q.niches})
				if err != nil {
					t.Fatal(err)
				}
				got = nil
				for _, cell := range cov.GetCells() {
					got = append(got, fmt.Sprintf("%s %02d %v %d", cell.GetSubdivision(), cell.GetNiche(), cell.GetAgencies(), cell.GetPlanCount()))
				}
				slices.Sort(got)
				if want := bruteCoverage(plans, viewer, q.country, q.period, q.niches); !slices.Equal(got, want) {
					t.Errorf("coverage %s: %v", q.country, symmetricDifference(got, want))
				}
			}
		})
	}
	if total < 500 {
		t.Errorf("only %d overlaps in all: the random plans exercise too little", total)
	}
}

func symmetricDifference(got, want []string) []string {
	var out []string
	for _, g := range got {
		if !slices.Contains(want, g) {
			out = append(out, "unexpected: "+g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, "missing: "+w)
		}
	}
	if len(out) == 0 && len(got) == len(want) {
		out = append(out, "same elements, different order")
	}
	return out
}
