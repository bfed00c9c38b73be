package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// The coordination views (overlaps, gaps, coverage) are computed in
// memory over a snapshot of every plan, read in one short transaction and
// indexed by niche and place. The index is kept until the store's
// revision moves, so repeated calls (paging through overlaps, several
// agencies looking at the same country) cost no database read. Visibility
// is decided per caller on top of the shared index.

// openEnd stands for a period without an end.
const openEnd = math.MaxUint32

// periodBounds returns a period's first and last day as yyyymmdd; an
// unset period is all time, an unset end is open.
func periodBounds(p *exchangev1.DatePeriod) (uint32, uint32) {
	if p == nil {
		return 0, openEnd
	}
	end := uint32(openEnd)
	if p.GetEnd() != nil {
		end = store.DateNumber(p.GetEnd())
	}
	return store.DateNumber(p.GetStart()), end
}

// checkOptionalPeriod checks a period filter when there is one.
func checkOptionalPeriod(field string, p *exchangev1.DatePeriod) error {
	if p == nil {
		return nil
	}
	return checkPeriod(field, p)
}

// dateOf turns yyyymmdd back into a date; nil for an open end.
func dateOf(n uint32) *exchangev1.CalendarDate {
	if n == openEnd {
		return nil
	}
	return &exchangev1.CalendarDate{Year: int32(n / 10000), Month: int32(n / 100 % 100), Day: int32(n % 100)}
}

// viewPlan is a non-cancelled plan as the views use it.
type viewPlan struct {
	p          *exchangev1.Plan
	name       string
	owner      string
	start, end uint32
}

type subKey struct {
	niche       exchangev1.Niche
	country     string
	subdivision string // "" for locations covering the whole country
}

type countryKey struct {
	niche   exchangev1.Niche
	country string
}

// planIndex is the view index of one snapshot.
type planIndex struct {
	rev   int64
	plans []viewPlan // sorted by name
	// bySub lists, for a niche and a place, the plans with that niche and
	// a location there (ascending positions in plans).
	bySub map[subKey][]int32
	// byCountry lists, for a niche and a country, the plans with that
	// niche and any location in the country.
	byCountry map[countryKey][]int32
}

func buildPlanIndex(all []*exchangev1.Plan, rev int64) *planIndex {
	idx := &planIndex{rev: rev, bySub: map[subKey][]int32{}, byCountry: map[countryKey][]int32{}}
	for _, p := range all {
		if p.GetStage() == exchangev1.PlanStage_PLAN_STAGE_CANCELLED {
			continue
		}
		s, e := periodBounds(p.GetPlannedPeriod())
		idx.plans = append(idx.plans, viewPlan{p: p, name: p.GetName(), owner: p.GetOwner(), start: s, end: e})
	}
	sort.Slice(idx.plans, func(i, j int) bool { return idx.plans[i].name < idx.plans[j].name })
	add := func(list []int32, i int32) []int32 {
		if len(list) > 0 && list[len(list)-1] == i {
			return list
		}
		return append(list, i)
	}
	for i := range idx.plans {
		p := idx.plans[i].p
		for _, n := range p.GetNiches() {
			for _, l := range p.GetLocations() {
				sk := subKey{n, l.GetCountry(), l.GetSubdivision()}
				idx.bySub[sk] = add(idx.bySub[sk], int32(i))
				ck := countryKey{n, l.GetCountry()}
				idx.byCountry[ck] = add(idx.byCountry[ck], int32(i))
			}
		}
	}
	return idx
}

// planViews keeps the index of the latest snapshot.
type planViews struct {
	store *store.Store
	build sync.Mutex // one rebuild at a time
	mu    sync.Mutex
	cur   *planIndex // guarded by mu
}

// get returns an index no older than the store's revision at the call
// (on etcd, the cluster's: a plan applied through another replica and
// acknowledged before the call is in it).
func (v *planViews) get(ctx context.Context) (*planIndex, error) {
	want, err := v.store.LatestRevision(ctx)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	idx := v.cur
	v.mu.Unlock()
	if idx != nil && idx.rev >= want {
		return idx, nil
	}
	v.build.Lock()
	defer v.build.Unlock()
	v.mu.Lock()
	idx = v.cur
	v.mu.Unlock()
	if idx != nil && idx.rev >= want {
		return idx, nil
	}
	if idx != nil {
		if moved, ok := v.advance(ctx, idx, want); ok {
			idx = moved
		} else {
			idx = nil
		}
	}
	if idx == nil {
		all, rev, err := v.store.PlanSnapshot(ctx)
		if err != nil {
			return nil, err
		}
		idx = buildPlanIndex(all, rev)
	}
	v.mu.Lock()
	if v.cur == nil || v.cur.rev < idx.rev {
		v.cur = idx
	}
	v.mu.Unlock()
	return idx, nil
}

// advanceLimit bounds the change-log entries read to prove that no plan
// changed; past it a rebuild is cheaper.
const advanceLimit = 4096

// advance returns idx moved to revision want or later when the change log
// since idx holds no plan change (the revision also moves for referrals,
// datasets and the directory); false when a plan changed, the log is
// compacted past idx, or proving it would read too much.
func (v *planViews) advance(ctx context.Context, idx *planIndex, want int64) (*planIndex, bool) {
	rev := idx.rev
	for read := 0; rev < want; {
		changes, err := v.store.Changes(ctx, rev, watchPage)
		if err != nil || len(changes) == 0 {
			return nil, false
		}
		for _, ch := range changes {
			if ch.GetResource().MessageIs((*exchangev1.Plan)(nil)) {
				return nil, false
			}
			rev = ch.GetRevision()
		}
		if read += len(changes); read > advanceLimit {
			return nil, false
		}
	}
	moved := *idx
	moved.rev = rev
	return &moved, true
}

// visibility caches Reader.Sees over one index for one call.
type visibility struct {
	r     Reader
	idx   *planIndex
	state []int8 // 0 not decided, 1 visible, 2 hidden
}

func newVisibility(r Reader, idx *planIndex) *visibility {
	return &visibility{r: r, idx: idx, state: make([]int8, len(idx.plans))}
}

func (v *visibility) sees(i int) bool {
	if v.state[i] == 0 {
		v.state[i] = 2
		if p := v.idx.plans[i].p; v.r.Sees(p.GetOwner(), p.GetAudience()) {
			v.state[i] = 1
		}
	}
	return v.state[i] == 1
}

// sharedNiches returns the niches of both plans, in enum order.
func sharedNiches(a, b *exchangev1.Plan) []exchangev1.Niche {
	var out []exchangev1.Niche
	for _, n := range a.GetNiches() {
		if slices.Contains(b.GetNiches(), n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// sharedLocations returns the places both plans work in, each the more
// precise of the two locations: a country covers its provinces, a
// province its areas; two different areas of a province do not meet.
func sharedLocations(a, b *exchangev1.Plan) []*exchangev1.LocationRef {
	var out []*exchangev1.LocationRef
	seen := map[string]bool{}
	for _, la := range a.GetLocations() {
		for _, lb := range b.GetLocations() {
			if la.GetCountry() != lb.GetCountry() {
				continue
			}
			var s *exchangev1.LocationRef
			switch {
			case la.GetSubdivision() == "":
				s = lb
			case lb.GetSubdivision() == "":
				s = la
			case la.GetSubdivision() != lb.GetSubdivision():
				continue
			case la.GetArea() == "":
				s = lb
			case lb.GetArea() == "" || la.GetArea() == lb.GetArea():
				s = la
			default:
				continue
			}
			k := s.GetCountry() + "\x00" + s.GetSubdivision() + "\x00" + s.GetArea()
			if !seen[k] {
				seen[k] = true
				out = append(out, proto.Clone(s).(*exchangev1.LocationRef))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.GetCountry() != y.GetCountry() {
			return x.GetCountry() < y.GetCountry()
		}
		if x.GetSubdivision() != y.GetSubdivision() {
			return x.GetSubdivision() < y.GetSubdivision()
		}
		return x.GetArea() < y.GetArea()
	})
	return out
}

func planRef(p *exchangev1.Plan) *exchangev1.PlanRef {
	return &exchangev1.PlanRef{Name: p.GetName(), Owner: p.GetOwner(), ExternalId: p.GetExternalId(), Title: p.GetTitle(), Stage: p.GetStage()}
}

// overlapToken is a page position: the last pair returned, tied to the
// request's filters.
type overlapToken struct {
	first, second string
}

func overlapFingerprint(req *exchangev1.FindOverlapsRequest) []byte {
	from, to := periodBounds(req.GetPeriod())
	h := sha256.Sum256(fmt.Appendf(nil, "overlaps\x00%s\x00%d\x00%d\x00%d\x00%s", req.GetCountry(), req.GetNiche(), from, to, req.GetAgency()))
	return h[:8]
}

func encodeOverlapToken(fp []byte, t overlapToken) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(append([]byte{}, fp...), "%s\x00%s", t.first, t.second))
}

func decodeOverlapToken(fp []byte, s string) (overlapToken, error) {
	bad := invalidField("page_token", "not valid for this request (it must come from a response to the same request)")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) <= len(fp) || !bytes.Equal(raw[:len(fp)], fp) {
		return overlapToken{}, bad
	}
	first, second, ok := strings.Cut(string(raw[len(fp):]), "\x00")
	if !ok || first >= second {
		return overlapToken{}, bad
	}
	return overlapToken{first, second}, nil
}

// FindOverlaps pages through the overlapping pairs of plans the caller
// may see. Pairs are found per plan through the niche × place index, in
// name order of the first plan, so that a page costs only the plans it
// reaches.
func (s *planService) FindOverlaps(ctx context.Context, req *exchangev1.FindOverlapsRequest) (*exchangev1.FindOverlapsResponse, error) {
	if err := checkOptionalPeriod("period", req.GetPeriod()); err != nil {
		return nil, err
	}
	fp := overlapFingerprint(req)
	var after overlapToken
	if req.GetPageToken() != "" {
		var err error
		if after, err = decodeOverlapToken(fp, req.GetPageToken()); err != nil {
			return nil, err
		}
	}
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	safe, err := s.views.store.SafeRevision(ctx) // the answer includes every change up to it (get reads the store's revision after)
	if err != nil {
		return nil, err
	}
	idx, err := s.views.get(ctx)
	if err != nil {
		return nil, err
	}
	limit := int(req.GetPageSize())
	if limit <= 0 {
		limit = store.DefaultPageSize
	}
	from, to := periodBounds(req.GetPeriod())
	country, niche, agency := req.GetCountry(), req.GetNiche(), req.GetAgency()
	vis := newVisibility(r, idx)
	stamp := make([]int32, len(idx.plans))
	var cands []int32
	resp := &exchangev1.FindOverlapsResponse{Revision: safe}
	var last overlapToken
	start := sort.Search(len(idx.plans), func(i int) bool { return idx.plans[i].name >= after.first })
	for ai := start; ai < len(idx.plans); ai++ {
		a := &idx.plans[ai]
		if !vis.sees(ai) || a.start > to || from > a.end ||
			(niche != 0 && !slices.Contains(a.p.GetNiches(), niche)) {
			continue
		}
		// Candidates: plans after a sharing a niche and a place with it.
		cands = cands[:0]
		for _, n := range a.p.GetNiches() {
			if niche != 0 && n != niche {
				continue
			}
			for _, l := range a.p.GetLocations() {
				if country != "" && l.GetCountry() != country {
					continue
				}
				var lists [2][]int32
				if l.GetSubdivision() == "" {
					lists[0] = idx.byCountry[countryKey{n, l.GetCountry()}]
				} else {
					lists[0] = idx.bySub[subKey{n, l.GetCountry(), l.GetSubdivision()}]
					lists[1] = idx.bySub[subKey{n, l.GetCountry(), ""}]
				}
				for _, list := range lists {
					for k := sort.Search(len(list), func(k int) bool { return int(list[k]) > ai }); k < len(list); k++ {
						if bi := list[k]; stamp[bi] != int32(ai)+1 {
							stamp[bi] = int32(ai) + 1
							cands = append(cands, bi)
						}
					}
				}
			}
		}
		slices.Sort(cands)
		for _, bi := range cands {
			b := &idx.plans[bi]
			if (a.name == after.first && b.name <= after.second) || a.owner == b.owner ||
				(agency != "" && a.owner != agency && b.owner != agency) ||
				a.start > b.end || b.start > a.end || !vis.sees(int(bi)) {
				continue
			}
			os, oe := max(a.start, b.start), min(a.end, b.end)
			if os > to || from > oe {
				continue
			}
			niches := sharedNiches(a.p, b.p)
			if len(niches) == 0 || (niche != 0 && !slices.Contains(niches, niche)) {
				continue
			}
			locs := sharedLocations(a.p, b.p)
			if len(locs) == 0 || (country != "" && !slices.ContainsFunc(locs, func(l *exchangev1.LocationRef) bool { return l.GetCountry() == country })) {
				continue
			}
			if len(resp.Overlaps) == limit {
				resp.NextPageToken = encodeOverlapToken(fp, last)
				return resp, nil
			}
			resp.Overlaps = append(resp.Overlaps, &exchangev1.PlanOverlap{
				First: planRef(a.p), Second: planRef(b.p), Niches: niches, Locations: locs,
				Period: &exchangev1.DatePeriod{Start: dateOf(os), End: dateOf(oe)},
			})
			last = overlapToken{a.name, b.name}
		}
	}
	return resp, nil
}

// allNiches lists every defined niche.
func allNiches() []exchangev1.Niche {
	values := exchangev1.Niche_NICHE_UNSPECIFIED.Descriptor().Values()
	var out []exchangev1.Niche
	for i := 0; i < values.Len(); i++ {
		if n := exchangev1.Niche(values.Get(i).Number()); n != 0 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// nicheFilter returns the niches asked for, all of them when none.
func nicheFilter(in []exchangev1.Niche) []exchangev1.Niche {
	if len(in) == 0 {
		return allNiches()
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}

// FindGaps lists the provinces × niches of a country where no plan the
// caller may see is active in the period.
func (s *planService) FindGaps(ctx context.Context, req *exchangev1.FindGapsRequest) (*exchangev1.FindGapsResponse, error) {
	provinces := geo.InCountry(req.GetCountry())
	if len(provinces) == 0 {
		return nil, invalidField("country", req.GetCountry()+" is not a country whose provinces the exchange knows (see ListLocations)")
	}
	if err := checkPeriod("period", req.GetPeriod()); err != nil {
		return nil, err
	}
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	safe, err := s.views.store.SafeRevision(ctx) // the answer includes every change up to it (get reads the store's revision after)
	if err != nil {
		return nil, err
	}
	idx, err := s.views.get(ctx)
	if err != nil {
		return nil, err
	}
	niches := nicheFilter(req.GetNiches())
	wanted := map[exchangev1.Niche]bool{}
	for _, n := range niches {
		wanted[n] = true
	}
	from, to := periodBounds(req.GetPeriod())
	whole := map[exchangev1.Niche]bool{}
	covered := map[string]map[exchangev1.Niche]bool{}
	vis := newVisibility(r, idx)
	for i := range idx.plans {
		vp := &idx.plans[i]
		if vp.start > to || from > vp.end || !vis.sees(i) {
			continue
		}
		for _, n := range vp.p.GetNiches() {
			if !wanted[n] {
				continue
			}
			for _, l := range vp.p.GetLocations() {
				switch {
				case l.GetCountry() != req.GetCountry():
				case l.GetSubdivision() == "":
					whole[n] = true
				default:
					if covered[l.GetSubdivision()] == nil {
						covered[l.GetSubdivision()] = map[exchangev1.Niche]bool{}
					}
					covered[l.GetSubdivision()][n] = true
				}
			}
		}
	}
	resp := &exchangev1.FindGapsResponse{Revision: safe}
	for _, prov := range provinces {
		for _, n := range niches {
			if !whole[n] && !covered[prov.Code][n] {
				resp.Gaps = append(resp.Gaps, &exchangev1.PlanGap{Subdivision: prov.Code, DisplayName: prov.Name, Niche: n})
			}
		}
	}
	return resp, nil
}

// GetCoverage returns, for a country, who plans to work in which niche in
// which province, over the plans the caller may see.
func (s *planService) GetCoverage(ctx context.Context, req *exchangev1.GetCoverageRequest) (*exchangev1.GetCoverageResponse, error) {
	if err := checkOptionalPeriod("period", req.GetPeriod()); err != nil {
		return nil, err
	}
	r, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	safe, err := s.views.store.SafeRevision(ctx) // the answer includes every change up to it (get reads the store's revision after)
	if err != nil {
		return nil, err
	}
	idx, err := s.views.get(ctx)
	if err != nil {
		return nil, err
	}
	wanted := map[exchangev1.Niche]bool{}
	for _, n := range nicheFilter(req.GetNiches()) {
		wanted[n] = true
	}
	from, to := periodBounds(req.GetPeriod())
	type cell struct {
		agencies map[string]bool
		plans    int32
	}
	cells := map[subKey]*cell{}
	vis := newVisibility(r, idx)
	for i := range idx.plans {
		vp := &idx.plans[i]
		if vp.start > to || from > vp.end || !vis.sees(i) {
			continue
		}
		var places []string
		for _, l := range vp.p.GetLocations() {
			if l.GetCountry() == req.GetCountry() && !slices.Contains(places, l.GetSubdivision()) {
				places = append(places, l.GetSubdivision())
			}
		}
		for _, n := range vp.p.GetNiches() {
			if !wanted[n] {
				continue
			}
			for _, place := range places {
				k := subKey{n, req.GetCountry(), place}
				c := cells[k]
				if c == nil {
					c = &cell{agencies: map[string]bool{}}
					cells[k] = c
				}
				c.agencies[vp.owner] = true
				c.plans++
			}
		}
	}
	resp := &exchangev1.GetCoverageResponse{Revision: safe}
	for k, c := range cells {
		out := &exchangev1.PlanCoverageCell{Subdivision: k.subdivision, Niche: k.niche, PlanCount: c.plans}
		if prov, ok := geo.Lookup(k.subdivision); ok {
			out.DisplayName = prov.Name
		}
		for a := range c.agencies {
			out.Agencies = append(out.Agencies, a)
		}
		slices.Sort(out.Agencies)
		resp.Cells = append(resp.Cells, out)
	}
	sort.Slice(resp.Cells, func(i, j int) bool {
		x, y := resp.Cells[i], resp.Cells[j]
		if x.GetSubdivision() != y.GetSubdivision() {
			return x.GetSubdivision() < y.GetSubdivision()
		}
		return x.GetNiche() < y.GetNiche()
	})
	return resp, nil
}
