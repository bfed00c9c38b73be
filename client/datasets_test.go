package client_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
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

// DatasetService method names used in the tests.
const (
	createDataset = exchangev1.DatasetService_CreateDataset_FullMethodName
	writeRows     = exchangev1.DatasetService_WriteDatasetRows_FullMethodName
	pullRows      = exchangev1.DatasetService_PullDatasetRows_FullMethodName
	watchRows     = exchangev1.DatasetService_WatchDatasetRows_FullMethodName
	lockPeriod    = exchangev1.DatasetService_LockDatasetPeriod_FullMethodName
	listDatasets  = exchangev1.DatasetService_ListDatasets_FullMethodName
)

const returnsName = "agencies/ilo/datasets/returns"

// returnsDataset is a monthly dataset of returned victims by province,
// sex and age group, written by iom and unicef, read by all members.
func returnsDataset() *exchangev1.Dataset {
	zero := 0.0
	return &exchangev1.Dataset{
		Title:        "Returned victims assisted",
		Contributors: []string{"agencies/iom", "agencies/unicef"},
		Audience:     &exchangev1.Audience{AllMembers: true},
		PeriodType:   exchangev1.PeriodType_PERIOD_TYPE_MONTH,
		Schema: &exchangev1.DatasetSchema{
			LocationLevel: exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE,
			Categories: []*exchangev1.Category{
				{Key: "sex", Values: []string{"female", "male"}, Required: true},
				{Key: "age_group", Values: []string{"0-17", "18+"}},
			},
			Measures: []*exchangev1.Measure{
				{Key: "returned", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER, Required: true, Min: &zero},
				{Key: "assisted", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER, Min: &zero},
			},
		},
		ExpectedLocations: []string{"KH-1", "KH-12"},
	}
}

// datasetExchange is a fake exchange where ilo owns the returns dataset
// and iom and unicef contribute, with clients for the three.
func datasetExchange(t *testing.T) (s *clienttest.Server, ilo, iom, unicef *client.Client) {
	t.Helper()
	s = clienttest.NewServer(t)
	seedAgencies(s, "ilo", "iom", "unicef")
	ilo, iom, unicef = s.Dial(t, "agency/ilo"), s.Dial(t, "agency/iom"), s.Dial(t, "agency/unicef")
	if _, err := ilo.Datasets.Create(context.Background(), "agencies/ilo", "returns", returnsDataset()); err != nil {
		t.Fatal(err)
	}
	return s, ilo, iom, unicef
}

// returnsRow is a row of the returns dataset.
func returnsRow(period, location, sex string, returned int64) *exchangev1.Row {
	return &exchangev1.Row{
		Period: period, Location: location,
		Categories: map[string]string{"sex": sex},
		Values:     map[string]*exchangev1.Value{"returned": {Kind: &exchangev1.Value_IntValue{IntValue: returned}}},
	}
}

// upserts wraps rows in writes.
func upserts(rows ...*exchangev1.Row) []*exchangev1.RowWrite {
	var out []*exchangev1.RowWrite
	for _, r := range rows {
		out = append(out, &exchangev1.RowWrite{Row: r})
	}
	return out
}

// rowID identifies a row by its key and values, for comparing sets of
// rows.
func rowID(r *exchangev1.Row) string {
	return fmt.Sprintf("%s %s %s %s %d deleted=%v", r.GetContributor(), r.GetPeriod(), r.GetLocation(),
		r.GetCategories()["sex"], r.GetValues()["returned"].GetIntValue(), r.GetDeleted())
}

// writeMonths writes, as c, one row per province and sex for each month
// of 2026 from the first to the last, each month in its own call, and
// returns the revision of the last.
func writeMonths(t *testing.T, c *client.Client, first, last int) int64 {
	t.Helper()
	var rev int64
	for m := first; m <= last; m++ {
		period := fmt.Sprintf("2026-%02d", m)
		resp, err := c.Datasets.Write(context.Background(), returnsName, upserts(
			returnsRow(period, "KH-1", "female", int64(m)),
			returnsRow(period, "KH-1", "male", int64(m+10)),
			returnsRow(period, "KH-12", "female", int64(m+20)),
		))
		if err != nil || resp.GetAccepted() != 3 {
			t.Fatalf("write %s: %v %v", period, resp, err)
		}
		rev = resp.GetRevision()
	}
	return rev
}

func TestDatasetCreateReusesRequestIDAndValidatesOnly(t *testing.T) {
	s, ilo, _, _ := datasetExchange(t)
	ctx := context.Background()

	// The answer to the first attempt is lost; the retry carries the same
	// id and gets the dataset the first attempt created.
	s.FailAfterNext(createDataset, unavailable())
	d, err := ilo.Datasets.Create(ctx, "agencies/ilo", "arrivals", returnsDataset())
	if err != nil {
		t.Fatal(err)
	}
	calls := s.Calls(createDataset)[1:] // the first is datasetExchange's
	if len(calls) != 2 {
		t.Fatalf("%d attempts, want 2", len(calls))
	}
	first, second := calls[0].Request.(*exchangev1.CreateDatasetRequest), calls[1].Request.(*exchangev1.CreateDatasetRequest)
	if !requestIDPattern.MatchString(first.GetRequestId()) || first.GetRequestId() != second.GetRequestId() {
		t.Errorf("request ids %q then %q, want one random id", first.GetRequestId(), second.GetRequestId())
	}
	if d.GetName() != "agencies/ilo/datasets/arrivals" || d.GetOwner() != "agencies/ilo" || d.GetEtag() == "" {
		t.Errorf("created %v", d)
	}
	if n := len(s.Datasets()); n != 2 {
		t.Errorf("%d datasets stored, want 2", n)
	}

	preview, err := ilo.Datasets.Create(ctx, "agencies/ilo", "preview", returnsDataset(), client.ValidateOnly())
	if err != nil || preview.GetName() != "agencies/ilo/datasets/preview" || preview.GetOwner() != "agencies/ilo" {
		t.Errorf("validate only: %v, %v", preview, err)
	}
	if last := s.Calls(createDataset); !last[len(last)-1].Request.(*exchangev1.CreateDatasetRequest).GetValidateOnly() {
		t.Error("validate_only not sent")
	}
	if n := len(s.Datasets()); n != 2 {
		t.Errorf("validate only stored a dataset: %d", n)
	}

	bad := returnsDataset()
	bad.Title = ""
	_, err = ilo.Datasets.Create(ctx, "agencies/ilo", "bad", bad)
	if v := client.FieldViolations(err); status.Code(err) != codes.InvalidArgument || len(v) != 1 || v[0].GetField() != "dataset.title" {
		t.Errorf("invalid definition: %v %v", err, v)
	}
}

func TestDatasetGetListUpdate(t *testing.T) {
	s, ilo, iom, _ := datasetExchange(t)
	ctx := context.Background()
	for _, id := range []string{"arrivals", "shelters", "hotline"} {
		if _, err := ilo.Datasets.Create(ctx, "agencies/ilo", id, returnsDataset()); err != nil {
			t.Fatal(err)
		}
	}
	s.SetPageSize(2)
	var names []string
	for d, err := range iom.Datasets.Datasets(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, client.ResourceID(d.GetName()))
	}
	if strings.Join(names, ",") != "arrivals,hotline,returns,shelters" || len(s.Calls(listDatasets)) != 2 {
		t.Errorf("listed %v in %d pages", names, len(s.Calls(listDatasets)))
	}

	d, err := iom.Datasets.Get(ctx, client.DatasetName("ilo", "returns"))
	if err != nil {
		t.Fatal(err)
	}
	changed := proto.CloneOf(d)
	changed.Title = "Returned victims assisted, by province"
	if _, err := iom.Datasets.Update(ctx, changed, "title"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("update by a contributor: %v", err)
	}
	updated, err := ilo.Datasets.Update(ctx, changed, "title")
	if err != nil || updated.GetTitle() != changed.GetTitle() || updated.GetEtag() == d.GetEtag() {
		t.Fatalf("update: %v, %v", updated, err)
	}
	// The etag read before is stale now.
	_, err = ilo.Datasets.Update(ctx, changed, "title")
	if status.Code(err) != codes.Aborted || client.Reason(err) != "ETAG_MISMATCH" {
		t.Errorf("stale etag: %v (%q)", err, client.Reason(err))
	}
	if _, err := iom.Datasets.Get(ctx, client.DatasetName("ilo", "nothing")); !client.IsNotFound(err) {
		t.Errorf("missing dataset: %v", err)
	}
}

// TestDatasetListOrdersByOwnerThenID checks the fake lists as the
// exchange does: by owner, then id, so "wfp" comes before "wfp-kh" even
// though "agencies/wfp-kh/..." sorts before "agencies/wfp/..." as a string.
func TestDatasetListOrdersByOwnerThenID(t *testing.T) {
	s, _, iom, _ := datasetExchange(t)
	seedAgencies(s, "wfp", "wfp-kh")
	ctx := context.Background()
	wfp, wfpKH := s.Dial(t, "agency/wfp"), s.Dial(t, "agency/wfp-kh")
	if _, err := wfp.Datasets.Create(ctx, "agencies/wfp", "zeta", returnsDataset()); err != nil {
		t.Fatal(err)
	}
	if _, err := wfpKH.Datasets.Create(ctx, "agencies/wfp-kh", "alpha", returnsDataset()); err != nil {
		t.Fatal(err)
	}
	var names []string
	for d, err := range iom.Datasets.Datasets(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, d.GetName())
	}
	want := "agencies/ilo/datasets/returns agencies/wfp/datasets/zeta agencies/wfp-kh/datasets/alpha"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("listed %s, want %s", got, want)
	}
}

func TestDatasetWriteReportsEachRowAndIsRetried(t *testing.T) {
	s, _, iom, _ := datasetExchange(t)
	ctx := context.Background()
	bad := returnsRow("2026-3", "KH-12", "other", -1)
	writes := upserts(returnsRow("2026-03", "KH-12", "female", 4), bad, returnsRow("2026-03", "KH-1", "male", 2))

	// The first attempt is stored but its answer is lost: the retry
	// rewrites the same rows and answers for them.
	s.FailAfterNext(writeRows, unavailable())
	resp, err := iom.Datasets.Write(ctx, returnsName, writes)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Calls(writeRows)); n != 2 {
		t.Errorf("%d attempts, want 2 (WriteDatasetRows is idempotent)", n)
	}
	if resp.GetAccepted() != 2 || resp.GetRejected() != 1 || resp.GetRevision() == 0 {
		t.Errorf("response %v", resp)
	}
	res := resp.GetResults()[1]
	var fields []string
	for _, v := range res.GetViolations() {
		fields = append(fields, v.GetField())
	}
	if res.GetAccepted() || res.GetIndex() != 1 || res.GetCode() != "INVALID_ARGUMENT" ||
		strings.Join(fields, " ") != "writes[1].row.categories.sex writes[1].row.period writes[1].row.values.returned" {
		t.Errorf("rejected row: %v", res)
	}
	var stored []string
	for _, r := range s.DatasetRows(returnsName) {
		stored = append(stored, rowID(r))
	}
	if want := "agencies/iom 2026-03 KH-1 male 2 deleted=false|agencies/iom 2026-03 KH-12 female 4 deleted=false"; strings.Join(stored, "|") != want {
		t.Errorf("stored rows:\n%s\nwant\n%s", strings.Join(stored, "\n"), want)
	}

	if resp, err := iom.Datasets.Write(ctx, returnsName, nil); err != nil || len(resp.GetResults()) != 0 || len(s.Calls(writeRows)) != 2 {
		t.Errorf("empty write: %v, %v", resp, err)
	}
	// A deletion, then a locked period.
	del := []*exchangev1.RowWrite{{Row: returnsRow("2026-03", "KH-1", "male", 0), Delete: true}}
	if resp, err := iom.Datasets.Write(ctx, returnsName, del); err != nil || resp.GetAccepted() != 1 {
		t.Errorf("delete: %v, %v", resp, err)
	}
	if resp, err := iom.Datasets.Write(ctx, returnsName, del); err != nil || resp.GetResults()[0].GetCode() != "NOT_FOUND" {
		t.Errorf("delete again: %v, %v", resp, err)
	}
}

func TestDatasetLockAndUnlockAreNotRetried(t *testing.T) {
	s, ilo, iom, _ := datasetExchange(t)
	ctx := context.Background()
	s.FailNext(lockPeriod, unavailable())
	if _, err := ilo.Datasets.Lock(ctx, returnsName, "2026-03"); status.Code(err) != codes.Unavailable || len(s.Calls(lockPeriod)) != 1 {
		t.Errorf("lock: %v after %d attempts; want UNAVAILABLE after 1", err, len(s.Calls(lockPeriod)))
	}
	d, err := ilo.Datasets.Lock(ctx, returnsName, "2026-03")
	if err != nil || len(d.GetLocks()) != 1 || d.GetLocks()[0].GetPeriod() != "2026-03" {
		t.Fatalf("lock: %v, %v", d, err)
	}
	resp, err := iom.Datasets.Write(ctx, returnsName, upserts(returnsRow("2026-03", "KH-12", "female", 1)))
	if err != nil || resp.GetResults()[0].GetCode() != "FAILED_PRECONDITION" || resp.GetResults()[0].GetViolations()[0].GetField() != "writes[0].row.period" {
		t.Errorf("write into a locked period: %v, %v", resp, err)
	}
	if _, err := iom.Datasets.Lock(ctx, returnsName, "2026-04"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("lock by a contributor: %v", err)
	}
	d, err = ilo.Datasets.Unlock(ctx, returnsName, "2026-03", "IOM corrects KH-12")
	if err != nil || len(d.GetLocks()) != 0 || len(d.GetLockHistory()) != 2 || d.GetLockHistory()[1].GetReason() != "IOM corrects KH-12" {
		t.Errorf("unlock: %v, %v", d, err)
	}
}

func TestDatasetAggregateAndCompleteness(t *testing.T) {
	_, ilo, iom, unicef := datasetExchange(t)
	ctx := context.Background()
	writeMonths(t, iom, 3, 3)
	if _, err := unicef.Datasets.Write(ctx, returnsName, upserts(returnsRow("2026-03", "KH-12", "female", 2))); err != nil {
		t.Fatal(err)
	}
	agg, err := ilo.Datasets.Aggregate(ctx, &exchangev1.AggregateDatasetRowsRequest{Dataset: returnsName, GroupBy: []string{"location", "sex"}, SuppressBelow: 5})
	if err != nil {
		t.Fatal(err)
	}
	var cells []string
	for _, c := range agg.GetCells() {
		cells = append(cells, fmt.Sprintf("%s/%s=%v(%d)", c.GetGroup()["location"], c.GetGroup()["sex"], c.GetSums()["returned"], c.GetRows()))
	}
	// KH-1/female is 3: below 5, hidden.
	if strings.Join(cells, " ") != "KH-1/male=13(1) KH-12/female=25(2)" || agg.GetSuppressedCells() != 1 {
		t.Errorf("cells %v, %d suppressed", cells, agg.GetSuppressedCells())
	}
	comp, err := ilo.Datasets.Completeness(ctx, returnsName, "2026-03")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range comp.GetContributors() {
		lines = append(lines, fmt.Sprintf("%s %d %v %v", c.GetContributor(), c.GetRows(), c.GetSubmittedLocations(), c.GetMissingLocations()))
	}
	if want := "agencies/iom 3 [KH-1 KH-12] []|agencies/unicef 1 [KH-12] [KH-1]"; strings.Join(lines, "|") != want {
		t.Errorf("completeness %q, want %q", strings.Join(lines, "|"), want)
	}
}

// pulled collects what Pull delivers.
type pulled struct {
	rows      []string
	revisions []int64
}

func (p *pulled) add(m *exchangev1.PullDatasetRowsResponse) error {
	for _, r := range m.GetRows() {
		p.rows = append(p.rows, rowID(r))
	}
	p.revisions = append(p.revisions, m.GetRevision())
	return nil
}

func TestDatasetPullResumesAfterDroppedStreamsWithoutDuplicates(t *testing.T) {
	s, ilo, iom, _ := datasetExchange(t)
	ctx := context.Background()
	writeMonths(t, iom, 1, 4) // 12 rows
	var full pulled
	if err := ilo.Datasets.Pull(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: returnsName}, full.add); err != nil {
		t.Fatal(err)
	}
	if len(full.rows) != 12 || len(full.revisions) != 1 {
		t.Fatalf("full pull: %d rows in %d messages", len(full.rows), len(full.revisions))
	}
	pinned := s.Revision()

	// Three rows a message, four messages: the first stream drops after
	// two, the second at once, the third after one, the fourth stays.
	// Rows rewritten at the first drop move to a later revision.
	s.BreakPull(2, 0, 1, -1)
	req := &exchangev1.PullDatasetRowsRequest{Dataset: returnsName, PageSize: 3}
	var got pulled
	var reconnects []error
	err := ilo.Datasets.Pull(ctx, req, got.add, client.OnReconnect(func(err error, wait time.Duration, rev int64) {
		reconnects = append(reconnects, err)
		if rev != pinned {
			t.Errorf("reconnect reports revision %d, want the pull's %d", rev, pinned)
		}
		if len(reconnects) == 1 {
			writeMonths(t, iom, 1, 1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.rows, "\n") != strings.Join(full.rows, "\n") {
		t.Errorf("resumed pull delivered\n%s\nwant\n%s", strings.Join(got.rows, "\n"), strings.Join(full.rows, "\n"))
	}
	for _, rev := range got.revisions {
		if rev != pinned {
			t.Errorf("message revisions %v, want all %d (the first stream's), so that a pull since it sees the rewritten row", got.revisions, pinned)
			break
		}
	}
	if len(reconnects) != 3 || req.GetResumeToken() != "" {
		t.Errorf("%d reconnects; request changed: %v", len(reconnects), req)
	}
	calls := s.Calls(pullRows)[1:]
	if len(calls) != 4 {
		t.Fatalf("%d streams, want 4", len(calls))
	}
	tokens := make([]string, len(calls))
	for i, c := range calls {
		tokens[i] = c.Request.(*exchangev1.PullDatasetRowsRequest).GetResumeToken()
	}
	if tokens[0] != "" || tokens[1] == "" || tokens[2] != tokens[1] || tokens[3] == tokens[2] || tokens[3] == "" {
		t.Errorf("resume tokens %q", tokens)
	}

	// Since the pull's revision: the rewritten rows only.
	var since pulled
	if err := ilo.Datasets.Pull(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: returnsName, SinceRevision: pinned}, since.add); err != nil {
		t.Fatal(err)
	}
	if len(since.rows) != 3 {
		t.Errorf("since %d: %v", pinned, since.rows)
	}
}

func TestDatasetPullGivesUpAndReturnsErrors(t *testing.T) {
	s, ilo, iom, _ := datasetExchange(t)
	ctx := context.Background()
	writeMonths(t, iom, 1, 2)
	s.BreakPull(0, 0, 0, 0)
	start := time.Now()
	err := ilo.Datasets.Pull(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: returnsName}, func(*exchangev1.PullDatasetRowsResponse) error { return nil })
	if status.Code(err) != codes.Unavailable || len(s.Calls(pullRows)) != 4 {
		t.Errorf("down: %v after %d streams, want UNAVAILABLE after 4", err, len(s.Calls(pullRows)))
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("gave up after %v, want backoff of about 100+200+400ms", d)
	}

	// The last message arrives, then the stream breaks: nothing is
	// missing, so the pull is done.
	s.BreakPull(1)
	var got pulled
	if err := ilo.Datasets.Pull(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: returnsName}, got.add); err != nil || len(got.rows) != 6 {
		t.Errorf("break after the last message: %v, %d rows", err, len(got.rows))
	}

	stop := errors.New("disk full")
	if err := ilo.Datasets.Pull(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: returnsName}, func(*exchangev1.PullDatasetRowsResponse) error { return stop }); err != stop {
		t.Errorf("fn's error: %v", err)
	}
	err = ilo.Datasets.Pull(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/nothing"}, func(*exchangev1.PullDatasetRowsResponse) error { return nil })
	if !client.IsNotFound(err) {
		t.Errorf("missing dataset: %v", err)
	}
	if err := ilo.Datasets.Pull(ctx, nil, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("nil request: %v", err)
	}
}

// rowCollector gathers what WatchRows delivers.
type rowCollector struct {
	mu        sync.Mutex
	rows      []*exchangev1.Row
	revisions []int64
	changed   chan struct{}
}

func newRowCollector() *rowCollector { return &rowCollector{changed: make(chan struct{}, 1)} }

func (c *rowCollector) add(m *exchangev1.WatchDatasetRowsResponse) error {
	c.mu.Lock()
	c.rows = append(c.rows, m.GetRows()...)
	c.revisions = append(c.revisions, m.GetRevision())
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

// waitFor waits until the rows delivered, applied as upserts, equal want.
func (c *rowCollector) waitFor(t *testing.T, want []*exchangev1.Row) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got := applied(c.rows)
		c.mu.Unlock()
		if slices.Equal(got, ids(want)) {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("rows applied:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(ids(want), "\n"))
		}
	}
}

// applied applies rows as upserts keyed as the exchange keys them and
// returns the result, sorted.
func applied(rows []*exchangev1.Row) []string {
	state := map[string]string{}
	for _, r := range rows {
		state[fmt.Sprintf("%s %s %s %s", r.GetContributor(), r.GetPeriod(), r.GetLocation(), r.GetCategories()["sex"])] = rowID(r)
	}
	var out []string
	for _, v := range state {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func ids(rows []*exchangev1.Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, rowID(r))
	}
	slices.Sort(out)
	return out
}

// watchRowsFrom runs WatchRows in the background and returns a function
// that stops it and returns its error.
func watchRowsFrom(t *testing.T, c *client.Client, from int64, fn func(*exchangev1.WatchDatasetRowsResponse) error, opts ...client.WatchOption) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Datasets.WatchRows(ctx, returnsName, from, fn, opts...) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("WatchRows did not return after cancel")
			return nil
		}
	}
}

func TestDatasetWatchRowsResumesWithoutLoss(t *testing.T) {
	s, ilo, iom, unicef := datasetExchange(t)
	ctx := context.Background()
	start := s.Revision()
	writeMonths(t, iom, 1, 3) // three revisions of three rows
	if _, err := unicef.Datasets.Write(ctx, returnsName, upserts(returnsRow("2026-01", "KH-12", "male", 7))); err != nil {
		t.Fatal(err)
	}

	// Two rows a message, so a revision of three rows spans two
	// messages. Stream 1 drops after two messages, in the middle of the
	// second revision; stream 2 after two more, in the middle of the
	// third; stream 3 stays.
	s.SetRowBatch(2)
	s.SetWatchHeartbeat(time.Hour)
	s.BreakRowWatch(2, 2, -1)
	c := newRowCollector()
	var resumed []int64
	stop := watchRowsFrom(t, ilo, start, c.add, client.OnReconnect(func(err error, _ time.Duration, rev int64) {
		if status.Code(err) != codes.Unavailable {
			t.Errorf("reconnect after %v", err)
		}
		resumed = append(resumed, rev)
	}))
	c.waitFor(t, s.DatasetRows(returnsName))

	// Live, a deletion and a rewrite.
	if _, err := iom.Datasets.Write(ctx, returnsName, []*exchangev1.RowWrite{
		{Row: returnsRow("2026-01", "KH-1", "female", 0), Delete: true},
		{Row: returnsRow("2026-02", "KH-12", "female", 99)},
	}); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, s.DatasetRows(returnsName))
	if err := stop(); status.Code(err) != codes.Canceled {
		t.Errorf("WatchRows returned %v after cancel", err)
	}

	var starts []int64
	for _, call := range s.Calls(watchRows) {
		starts = append(starts, call.Request.(*exchangev1.WatchDatasetRowsRequest).GetStartRevision())
	}
	// Stream 1 completed the first revision and began the second;
	// stream 2 resumed after the first, completed the second and began
	// the third; stream 3 resumed after the second.
	if want := []int64{start, start + 1, start + 2}; !slices.Equal(starts, want) || !slices.Equal(resumed, want[1:]) {
		t.Errorf("streams started after %v (reconnects %v), want %v", starts, resumed, want)
	}
	// Only rows of a revision begun when a stream dropped may come twice:
	// one of the second revision, one of the third.
	c.mu.Lock()
	defer c.mu.Unlock()
	type delivery struct {
		row      string
		revision int64
	}
	seen := map[delivery]int{}
	for _, r := range c.rows {
		seen[delivery{rowID(r), r.GetRevision()}]++
	}
	repeats := 0
	for d, n := range seen {
		if n > 1 {
			repeats += n - 1
			if d.revision != start+2 && d.revision != start+3 {
				t.Errorf("row %s of revision %d delivered %d times; only rows of revisions %d and %d may repeat", d.row, d.revision, n, start+2, start+3)
			}
		}
	}
	if repeats != 2 || len(c.rows) != 10+2+repeats {
		t.Errorf("%d rows delivered with %d repeats, want 14 with 2", len(c.rows), repeats)
	}
	for i := 1; i < len(c.revisions); i++ {
		if c.revisions[i] < c.revisions[i-1] {
			t.Errorf("message revisions went back: %v", c.revisions)
		}
	}
}

func TestDatasetWatchRowsFromNowPinsTheRevision(t *testing.T) {
	s, ilo, iom, _ := datasetExchange(t)
	writeMonths(t, iom, 1, 1)
	pinned := s.Revision()
	// The first stream fails at once; while WatchRows waits, rows
	// arrive. Watching "from now" must not miss them.
	s.BreakRowWatch(0)
	c := newRowCollector()
	written := make(chan struct{})
	stop := watchRowsFrom(t, ilo, 0, c.add, client.OnReconnect(func(error, time.Duration, int64) {
		// On WatchRows's goroutine: no t.Fatal here.
		if _, err := iom.Datasets.Write(context.Background(), returnsName, upserts(returnsRow("2026-02", "KH-12", "male", 5))); err != nil {
			t.Error(err)
		}
		close(written)
	}))
	<-written
	var want []*exchangev1.Row
	for _, r := range s.DatasetRows(returnsName) {
		if r.GetPeriod() == "2026-02" {
			want = append(want, r)
		}
	}
	c.waitFor(t, want)
	if err := stop(); status.Code(err) != codes.Canceled {
		t.Errorf("WatchRows returned %v", err)
	}
	pins := 0
	for _, call := range s.Calls(pullRows) {
		if call.Request.(*exchangev1.PullDatasetRowsRequest).GetSinceRevision() == math.MaxInt64 {
			pins++
		}
	}
	if pins != 1 {
		t.Errorf("%d pulls to pin the revision, want 1", pins)
	}
	for _, call := range s.Calls(watchRows) {
		if got := call.Request.(*exchangev1.WatchDatasetRowsRequest).GetStartRevision(); got != pinned {
			t.Errorf("stream started after %d, want the pinned %d", got, pinned)
		}
	}
	if err := ilo.Datasets.WatchRows(context.Background(), returnsName, -1, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative revision: %v", err)
	}
}

func TestDatasetWatchRowsReturnsErrors(t *testing.T) {
	s, ilo, iom, _ := datasetExchange(t)
	ctx := context.Background()
	start := s.Revision()
	writeMonths(t, iom, 1, 1)
	stopErr := errors.New("enough")
	if err := ilo.Datasets.WatchRows(ctx, returnsName, start, func(*exchangev1.WatchDatasetRowsResponse) error { return stopErr }); err != stopErr {
		t.Errorf("fn's error: %v", err)
	}
	if err := ilo.Datasets.WatchRows(ctx, "agencies/ilo/datasets/nothing", start, func(*exchangev1.WatchDatasetRowsResponse) error { return nil }); !client.IsNotFound(err) {
		t.Errorf("missing dataset: %v", err)
	}
	s.SetWatchHeartbeat(20 * time.Millisecond)
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	beats := 0
	err := ilo.Datasets.WatchRows(tctx, returnsName, s.Revision(), func(m *exchangev1.WatchDatasetRowsResponse) error {
		if len(m.GetRows()) == 0 {
			beats++
		}
		return nil
	})
	if status.Code(err) != codes.DeadlineExceeded || beats == 0 {
		t.Errorf("deadline: %v after %d heartbeats", err, beats)
	}
}
