package client_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/clienttest"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// PlanService method names used in the tests.
const (
	createPlan   = exchangev1.PlanService_CreatePlan_FullMethodName
	getPlan      = exchangev1.PlanService_GetPlan_FullMethodName
	listPlans    = exchangev1.PlanService_ListPlans_FullMethodName
	updatePlan   = exchangev1.PlanService_UpdatePlan_FullMethodName
	cancelPlan   = exchangev1.PlanService_CancelPlan_FullMethodName
	diffPlan     = exchangev1.PlanService_DiffPlanVersions_FullMethodName
	applyPlans   = exchangev1.PlanService_ApplyPlans_FullMethodName
	importIati   = exchangev1.PlanService_ImportIatiActivities_FullMethodName
	findOverlaps = exchangev1.PlanService_FindOverlaps_FullMethodName
	findGaps     = exchangev1.PlanService_FindGaps_FullMethodName
	getCoverage  = exchangev1.PlanService_GetCoverage_FullMethodName
	watchPlans   = exchangev1.PlanService_WatchPlans_FullMethodName
)

var (
	prevention = exchangev1.Niche_NICHE_PREVENTION
	shelter    = exchangev1.Niche_NICHE_SHELTER
)

// newPlan is a valid concept plan for 2026 shared with every member,
// working in niche in the given provinces (or countries).
func newPlan(externalID string, niche exchangev1.Niche, places ...string) *exchangev1.Plan {
	p := &exchangev1.Plan{
		ExternalId: externalID,
		Title:      "Plan " + externalID,
		Stage:      exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
		Niches:     []exchangev1.Niche{niche},
		PlannedPeriod: &exchangev1.DatePeriod{
			Start: &exchangev1.CalendarDate{Year: 2026, Month: 1, Day: 1},
			End:   &exchangev1.CalendarDate{Year: 2026, Month: 12, Day: 31},
		},
		Audience: &exchangev1.Audience{AllMembers: true},
	}
	for _, place := range places {
		country, _, _ := strings.Cut(place, "-")
		l := &exchangev1.LocationRef{Country: country}
		if place != country {
			l.Subdivision = place
		}
		p.Locations = append(p.Locations, l)
	}
	return p
}

// planExchange is a fake exchange with ilo, iom and unicef, and clients
// for ilo and iom.
func planExchange(t *testing.T) (s *clienttest.Server, ilo, iom *client.Client) {
	t.Helper()
	s = clienttest.NewServer(t)
	seedAgencies(s, "ilo", "iom", "unicef")
	return s, s.Dial(t, "agency/ilo"), s.Dial(t, "agency/iom")
}

func TestPlanCreateReusesRequestIDAcrossRetries(t *testing.T) {
	s, ilo, _ := planExchange(t)
	ctx := context.Background()
	// The first attempt is stored but its answer is lost.
	s.FailAfterNext(createPlan, unavailable())
	p, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan("KH-ILO-01", prevention, "KH-12"))
	if err != nil {
		t.Fatal(err)
	}
	calls := s.Calls(createPlan)
	if len(calls) != 2 {
		t.Fatalf("%d attempts, want 2", len(calls))
	}
	first, second := calls[0].Request.(*exchangev1.CreatePlanRequest), calls[1].Request.(*exchangev1.CreatePlanRequest)
	if !requestIDPattern.MatchString(first.GetRequestId()) || first.GetRequestId() != second.GetRequestId() || first.GetValidateOnly() {
		t.Errorf("request ids %q, %q (validate_only %v)", first.GetRequestId(), second.GetRequestId(), first.GetValidateOnly())
	}
	if got := s.Plans(); len(got) != 1 || got[0].GetName() != p.GetName() || p.GetVersion() != 1 || !strings.HasPrefix(p.GetName(), "agencies/ilo/plans/") {
		t.Errorf("stored %v; returned %v", got, p)
	}

	// ValidateOnly checks and stores nothing; WithRequestID is sent as is.
	preview, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan("KH-ILO-02", shelter, "KH-12"), client.ValidateOnly(), client.WithRequestID("plan-kh-ilo-02"))
	if err != nil {
		t.Fatal(err)
	}
	req := s.Calls(createPlan)[2].Request.(*exchangev1.CreatePlanRequest)
	if !req.GetValidateOnly() || req.GetRequestId() != "plan-kh-ilo-02" || preview.GetName() != "" || len(s.Plans()) != 1 {
		t.Errorf("validate only: request %v, preview %v, %d plans stored", req, preview, len(s.Plans()))
	}
	if _, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan("KH-ILO-01", shelter, "KH-1")); status.Code(err) != codes.AlreadyExists {
		t.Errorf("repeated external id: %v", err)
	}
}

func TestPlanApplyAndImportAreRetriedOnlyAsDryRuns(t *testing.T) {
	s, ilo, _ := planExchange(t)
	ctx := context.Background()
	set := &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo", Plans: []*exchangev1.Plan{newPlan("KH-ILO-01", prevention, "KH-12")}}

	s.FailNext(applyPlans, unavailable())
	if _, err := ilo.Plans.Apply(ctx, set); status.Code(err) != codes.Unavailable {
		t.Errorf("apply: %v, want UNAVAILABLE without a retry", err)
	}
	if n := len(s.Calls(applyPlans)); n != 1 {
		t.Errorf("apply made %d attempts, want 1", n)
	}

	dry := proto.CloneOf(set)
	dry.ValidateOnly = true
	s.FailNext(applyPlans, unavailable())
	resp, err := ilo.Plans.Apply(ctx, dry)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Calls(applyPlans)); n != 3 || !resp.GetChanged() || resp.GetResults()[0].GetAction() != exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CREATE || len(s.Plans()) != 0 {
		t.Errorf("dry run: %d attempts in all (want 3), response %v, %d plans stored", n, resp, len(s.Plans()))
	}

	s.FailNext(importIati, unavailable())
	if _, err := ilo.Plans.ImportIati(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/ilo", IatiXml: []byte("<x/>")}); status.Code(err) != codes.Unavailable {
		t.Errorf("import: %v", err)
	}
	s.FailNext(importIati, unavailable())
	_, err = ilo.Plans.ImportIati(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/ilo", IatiXml: []byte("<x/>"), ValidateOnly: true})
	if status.Code(err) != codes.InvalidArgument || len(s.Calls(importIati)) != 3 {
		t.Errorf("import dry run: %v after %d attempts, want INVALID_ARGUMENT (not an IATI file) after 3", err, len(s.Calls(importIati)))
	}
}

func TestPlanWritesAreNotRetriedAndReadsAre(t *testing.T) {
	s, ilo, iom := planExchange(t)
	ctx := context.Background()
	p, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan("KH-ILO-01", prevention, "KH-12"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iom.Plans.Create(ctx, "agencies/iom", newPlan("KH-IOM-01", prevention, "KH")); err != nil {
		t.Fatal(err)
	}
	s.FailNext(updatePlan, unavailable())
	p.Title = "Safe migration in Phnom Penh"
	if _, err := ilo.Plans.Update(ctx, p, "title"); status.Code(err) != codes.Unavailable || len(s.Calls(updatePlan)) != 1 {
		t.Errorf("update: %v after %d attempts", err, len(s.Calls(updatePlan)))
	}
	s.FailNext(cancelPlan, unavailable())
	if _, err := ilo.Plans.Cancel(ctx, p.GetName(), "merged", ""); status.Code(err) != codes.Unavailable || len(s.Calls(cancelPlan)) != 1 {
		t.Errorf("cancel: %v after %d attempts", err, len(s.Calls(cancelPlan)))
	}

	period := &exchangev1.DatePeriod{Start: &exchangev1.CalendarDate{Year: 2026, Month: 1, Day: 1}, End: &exchangev1.CalendarDate{Year: 2026, Month: 6, Day: 30}}
	reads := []struct {
		method string
		call   func() error
	}{
		{getPlan, func() error { _, err := iom.Plans.Get(ctx, p.GetName(), 0); return err }},
		{diffPlan, func() error { _, err := iom.Plans.Diff(ctx, p.GetName(), 1, 0); return err }},
		{findOverlaps, func() error { _, err := client.Collect(iom.Plans.Overlaps(ctx, nil)); return err }},
		{findGaps, func() error {
			_, err := iom.Plans.Gaps(ctx, &exchangev1.FindGapsRequest{Country: "KH", Period: period})
			return err
		}},
		{getCoverage, func() error {
			_, err := iom.Plans.Coverage(ctx, &exchangev1.GetCoverageRequest{Country: "KH"})
			return err
		}},
	}
	for _, r := range reads {
		s.FailNext(r.method, unavailable(), unavailable())
		if err := r.call(); err != nil {
			t.Errorf("%s: %v", r.method, err)
		}
		if n := len(s.Calls(r.method)); n != 3 {
			t.Errorf("%s: %d attempts, want 3", r.method, n)
		}
	}
}

func TestPlansIteratorsWalkPages(t *testing.T) {
	s, ilo, iom := planExchange(t)
	ctx := context.Background()
	s.SetPageSize(2)
	for i := range 3 {
		if _, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan(fmt.Sprintf("KH-ILO-%02d", i), prevention, "KH-12")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := iom.Plans.Create(ctx, "agencies/iom", newPlan(fmt.Sprintf("KH-IOM-%02d", i), prevention, "KH")); err != nil {
			t.Fatal(err)
		}
	}
	plans, rev, err := iom.Plans.Snapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := s.Calls(listPlans)
	if len(plans) != 5 || len(calls) != 3 || rev != s.Revision() || calls[0].Request.(*exchangev1.ListPlansRequest).GetParent() != client.AllPlanOwners {
		t.Errorf("%d plans in %d calls at revision %d (server %d); first request %v", len(plans), len(calls), rev, s.Revision(), calls[0].Request)
	}
	req := &exchangev1.ListPlansRequest{Parent: "agencies/ilo", PageToken: "ignored"}
	mine, err := client.Collect(iom.Plans.Plans(ctx, req))
	if err != nil || len(mine) != 3 || req.GetPageToken() != "ignored" {
		t.Errorf("ilo's plans: %d, %v; request changed to %v", len(mine), err, req)
	}

	// Three ilo plans × two iom plans overlap: six pairs, three pages.
	before := len(s.Calls(findOverlaps))
	overlaps, err := client.Collect(iom.Plans.Overlaps(ctx, &exchangev1.FindOverlapsRequest{Country: "KH"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(overlaps) != 6 || len(s.Calls(findOverlaps))-before != 3 {
		t.Errorf("%d overlaps in %d calls", len(overlaps), len(s.Calls(findOverlaps))-before)
	}
	for _, o := range overlaps {
		if o.GetFirst().GetOwner() == o.GetSecond().GetOwner() || o.GetLocations()[0].GetSubdivision() != "KH-12" {
			t.Errorf("overlap %v", o)
		}
	}
}

func TestPlanVersionsAndDiff(t *testing.T) {
	_, ilo, iom := planExchange(t)
	ctx := context.Background()
	p, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan("KH-ILO-01", prevention, "KH-12"))
	if err != nil {
		t.Fatal(err)
	}
	p.Stage = exchangev1.PlanStage_PLAN_STAGE_AGREED
	p.Locations = append(p.Locations, &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-1"})
	if _, err := ilo.Plans.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := ilo.Plans.Update(ctx, p); status.Code(err) != codes.Aborted {
		t.Errorf("update with a stale etag: %v", err)
	}
	v1, err := iom.Plans.Get(ctx, p.GetName(), 1)
	if err != nil || v1.GetStage() != exchangev1.PlanStage_PLAN_STAGE_CONCEPT || v1.GetVersion() != 1 {
		t.Errorf("version 1: %v, %v", v1, err)
	}
	versions, err := client.Collect(iom.Plans.Versions(ctx, p.GetName()))
	if err != nil || len(versions) != 2 || versions[1].GetVersion() != 2 {
		t.Errorf("versions %v, %v", versions, err)
	}
	diff, err := iom.Plans.Diff(ctx, p.GetName(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, c := range diff.GetChanges() {
		fields = append(fields, c.GetField())
	}
	if strings.Join(fields, ",") != "stage,locations" || diff.GetToVersion() != 2 || len(diff.GetChanges()[1].GetAdded()) != 1 {
		t.Errorf("diff %v", diff)
	}
	cancelled, err := ilo.Plans.Cancel(ctx, p.GetName(), "merged into the joint programme", "")
	if err != nil || cancelled.GetStage() != exchangev1.PlanStage_PLAN_STAGE_CANCELLED || cancelled.GetCancelReason() == "" {
		t.Errorf("cancel: %v, %v", cancelled, err)
	}
	if _, err := iom.Plans.Cancel(ctx, p.GetName(), "not mine", ""); status.Code(err) != codes.PermissionDenied {
		t.Errorf("cancel by another agency: %v", err)
	}
}

// planCollector gathers what PlanClient.Watch delivers.
type planCollector struct {
	mu     sync.Mutex
	events []*exchangev1.WatchPlansResponse
	more   chan struct{}
}

func (c *planCollector) add(ev *exchangev1.WatchPlansResponse) error {
	if ev.GetKind() == exchangev1.PlanEventKind_PLAN_EVENT_KIND_HEARTBEAT {
		return nil
	}
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
	c.more <- struct{}{}
	return nil
}

// keys lists the events as "revision kind external-id".
func (c *planCollector) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ev := range c.events {
		out = append(out, fmt.Sprintf("%d %s %s", ev.GetRevision(), strings.TrimPrefix(ev.GetKind().String(), "PLAN_EVENT_KIND_"), ev.GetPlan().GetExternalId()))
	}
	return out
}

func (c *planCollector) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.events)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("%d of %d events arrived: %v", got, n, c.keys())
		}
	}
}

func TestPlanWatchResumesWithFiltersWithoutLossOrRepeats(t *testing.T) {
	s, ilo, iom := planExchange(t)
	ctx := context.Background()
	start := s.Revision()
	var want []string
	for i, place := range []string{"KH-12", "KH-1", "KH", "TH-10", "KH-12"} {
		p, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan(fmt.Sprintf("ILO-%d", i), prevention, place))
		if err != nil {
			t.Fatal(err)
		}
		// Watched: plans touching KH-12 (there or in all of KH).
		if place == "KH-12" || place == "KH" {
			want = append(want, fmt.Sprintf("%d CREATED %s", s.Revision(), p.GetExternalId()))
		}
	}
	// Shelter, not prevention: filtered out.
	if _, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan("ILO-shelter", shelter, "KH-12")); err != nil {
		t.Fatal(err)
	}

	// Stream 1 drops after two events, stream 2 at once, stream 3 stays.
	s.BreakWatch(2, 0, -1)
	s.SetWatchHeartbeat(time.Hour)
	req := &exchangev1.WatchPlansRequest{Subdivisions: []string{"KH-12"}, Niches: []exchangev1.Niche{prevention}, StartRevision: 99}
	c := &planCollector{more: make(chan struct{}, 100)}
	var mu sync.Mutex
	var reconnects []int64
	watchCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- iom.Plans.Watch(watchCtx, req, start, c.add, client.OnReconnect(func(_ error, _ time.Duration, rev int64) {
			mu.Lock()
			reconnects = append(reconnects, rev)
			mu.Unlock()
		}))
	}()
	c.waitFor(t, len(want))
	late, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan("ILO-late", prevention, "KH-12"))
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, fmt.Sprintf("%d CREATED %s", s.Revision(), late.GetExternalId()))
	c.waitFor(t, len(want))
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Errorf("Watch returned %v", err)
	}
	if got := c.keys(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	calls := s.Calls(watchPlans)
	if len(calls) != 3 {
		t.Fatalf("%d streams, want 3", len(calls))
	}
	// Stream 1 delivered two events; the second's revision might have had
	// more, so both reconnections resume after the first's.
	firstRev := c.events[0].GetRevision()
	wantStarts := []int64{start, firstRev, firstRev}
	for i, call := range calls {
		r := call.Request.(*exchangev1.WatchPlansRequest)
		if r.GetStartRevision() != wantStarts[i] || fmt.Sprint(r.GetSubdivisions()) != "[KH-12]" || len(r.GetNiches()) != 1 {
			t.Errorf("stream %d: %v, want start %d and the filters", i, r, wantStarts[i])
		}
	}
	if req.GetStartRevision() != 99 {
		t.Errorf("Watch changed the caller's request: %v", req)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(reconnects) != fmt.Sprint(wantStarts[1:]) {
		t.Errorf("OnReconnect saw %v, want %v", reconnects, wantStarts[1:])
	}
}

func TestPlanWatchFromNowPinsTheRevision(t *testing.T) {
	s, ilo, iom := planExchange(t)
	ctx := context.Background()
	if _, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan("ILO-before", prevention, "KH-12")); err != nil {
		t.Fatal(err)
	}
	pinned := s.Revision()
	s.FailNext(watchPlans, unavailable())
	var once sync.Once
	c := &planCollector{more: make(chan struct{}, 100)}
	watchCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- iom.Plans.Watch(watchCtx, nil, 0, c.add, client.OnReconnect(func(error, time.Duration, int64) {
			once.Do(func() {
				if _, err := ilo.Plans.Create(ctx, "agencies/ilo", newPlan("ILO-during", prevention, "KH-12")); err != nil {
					t.Error(err)
				}
			})
		}))
	}()
	c.waitFor(t, 1)
	cancel()
	<-done
	if got := c.keys(); len(got) != 1 || got[0] != fmt.Sprintf("%d CREATED ILO-during", pinned+1) {
		t.Errorf("events %v, want only the plan made during the outage", got)
	}
	list := s.Calls(listPlans)
	if len(list) != 1 || list[0].Request.(*exchangev1.ListPlansRequest).GetPageSize() != 1 {
		t.Errorf("ListPlans calls %v, want one of page size 1", list)
	}
	for _, call := range s.Calls(watchPlans) {
		if got := call.Request.(*exchangev1.WatchPlansRequest).GetStartRevision(); got != pinned {
			t.Errorf("stream started after %d, want %d", got, pinned)
		}
	}
	if err := iom.Plans.Watch(ctx, nil, -1, c.add); status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative revision: %v", err)
	}
}
