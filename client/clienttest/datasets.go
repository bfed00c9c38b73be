package clienttest

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// defaultRowBatch is how many rows a pull or watch message of the fake
// carries when the request asks for the default, unless SetRowBatch says
// otherwise. It is the real server's default.
const defaultRowBatch = 1000

// Syntax checked by the fake, as in the .proto files and the server.
var (
	datasetIDPattern    = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}[a-z0-9]$`)
	datasetNamePattern  = regexp.MustCompile(`^agencies/[a-z][a-z0-9-]{1,38}[a-z0-9]/datasets/[a-z][a-z0-9-]{1,62}[a-z0-9]$`)
	locationCodePattern = regexp.MustCompile(`^[A-Z]{2}(-[A-Z0-9]{1,3}(\.[A-Za-z0-9-]{1,16})?)?$`)
	periodForms         = map[exchangev1.PeriodType]*regexp.Regexp{
		exchangev1.PeriodType_PERIOD_TYPE_MONTH:       regexp.MustCompile(`^\d{4}-(0[1-9]|1[0-2])$`),
		exchangev1.PeriodType_PERIOD_TYPE_QUARTER:     regexp.MustCompile(`^\d{4}-Q[1-4]$`),
		exchangev1.PeriodType_PERIOD_TYPE_YEAR:        regexp.MustCompile(`^\d{4}$`),
		exchangev1.PeriodType_PERIOD_TYPE_FISCAL_YEAR: regexp.MustCompile(`^FY\d{4}$`),
	}
)

// datasetMutable are the fields UpdateDataset may change, as on the real
// server.
var datasetMutable = []string{"title", "description", "contributors", "contributor_groups", "audience",
	"public_aggregates", "suppression_threshold", "schema", "expected_locations"}

// datasetService is the fake DatasetService. It keeps definitions with
// request ids, etags and owner-only changes; rows with upserts, deletions
// as tombstones, locked periods and a per-row check against the schema
// (period form, location syntax, categories and their values, measures,
// their types, bounds, codes and required ones); pulls with filters,
// incremental pulls and resume tokens; aggregates with suppression;
// completeness; and row watches. A WriteDatasetRows call stores all its
// rows at one revision (the real server gives each row its own; the API
// allows both), so that watches see revisions spanning messages.
//
// Readers are the owner, the contributors (named agencies; contributor
// groups are not resolved) and the audience (all members or named
// agencies); to anyone else a dataset is NOT_FOUND.
type datasetService struct {
	exchangev1.UnimplementedDatasetServiceServer
	server *Server
	state  *state
}

// fakeDataset is a dataset and its rows, by row key.
type fakeDataset struct {
	def  *exchangev1.Dataset
	rows map[string]*exchangev1.Row
}

// PutDataset stores a copy of d as is (d.Name and d.Owner must be set),
// replacing the definition of that name but keeping its rows, and returns
// the stored copy with a fresh etag.
func (s *Server) PutDataset(d *exchangev1.Dataset) *exchangev1.Dataset {
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	d = proto.CloneOf(d)
	d.Etag = st.nextEtag()
	if fd := st.datasets[d.Name]; fd != nil {
		fd.def = d
	} else {
		st.datasets[d.Name] = &fakeDataset{def: d, rows: map[string]*exchangev1.Row{}}
	}
	return proto.CloneOf(d)
}

// Datasets returns copies of the stored definitions in name order.
func (s *Server) Datasets() []*exchangev1.Dataset {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	out := make([]*exchangev1.Dataset, 0, len(s.state.datasets))
	for _, fd := range s.state.datasets {
		out = append(out, proto.CloneOf(fd.def))
	}
	slices.SortFunc(out, func(a, b *exchangev1.Dataset) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// DatasetRows returns copies of the rows of the dataset with the given
// name in row key order (period, location, categories, contributor),
// tombstones of deleted rows included.
func (s *Server) DatasetRows(name string) []*exchangev1.Row {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	fd := s.state.datasets[name]
	if fd == nil {
		return nil
	}
	var out []*exchangev1.Row
	for _, k := range slices.Sorted(maps.Keys(fd.rows)) {
		out = append(out, proto.CloneOf(fd.rows[k]))
	}
	return out
}

// SetRowBatch sets how many rows a pull or watch message carries when the
// request asks for the default (1000 unless set), so that tests can see
// many messages with few rows.
func (s *Server) SetRowBatch(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rowBatch = n
}

// BreakPull makes the next len(after) PullDatasetRows streams, one
// number each, fail with UNAVAILABLE right after sending that many
// messages, as when a connection drops; 0 fails the stream at once. A
// negative number leaves its stream alone. Streams that only pin the
// revision (since the largest revision, as WatchRows does) are not
// counted.
func (s *Server) BreakPull(after ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pullBreaks = append(s.pullBreaks, after...)
}

// BreakRowWatch makes the next len(after) WatchDatasetRows streams, one
// number each, fail with UNAVAILABLE right after sending that many
// messages with rows (heartbeats do not count); 0 fails the stream at
// once. A negative number leaves its stream alone. SetWatchHeartbeat
// also sets the heartbeat of row watches.
func (s *Server) BreakRowWatch(after ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rowWatchBreaks = append(s.rowWatchBreaks, after...)
}

// nextBreak pops the break point of the next stream from queue (-1 for
// none) and returns it with the heartbeat interval and the rows per
// message.
func (s *Server) nextBreak(queue *[]int) (breakAfter int, heartbeat time.Duration, batch int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	breakAfter = -1
	if len(*queue) > 0 {
		breakAfter, *queue = (*queue)[0], (*queue)[1:]
	}
	return breakAfter, cmp.Or(s.heartbeat, defaultWatchHeartbeat), cmp.Or(s.rowBatch, defaultRowBatch)
}

// datasetsChangedNow wakes the row watches. The caller holds mu.
func (st *state) datasetsChangedNow() {
	close(st.datasetsChanged)
	st.datasetsChanged = make(chan struct{})
}

// readsRows reports whether agency may read d's rows.
func readsRows(agency string, d *exchangev1.Dataset) bool {
	if agency == "" {
		return false
	}
	return contributes(agency, d) || d.GetAudience().GetAllMembers() || slices.Contains(d.GetAudience().GetAgencies(), agency)
}

// contributes reports whether agency may write d's rows.
func contributes(agency string, d *exchangev1.Dataset) bool {
	return agency != "" && (agency == d.GetOwner() || slices.Contains(d.GetContributors(), agency))
}

// checkDatasetName fails with INVALID_ARGUMENT unless name is a dataset
// name.
func checkDatasetName(field, name string) error {
	if !datasetNamePattern.MatchString(name) {
		return fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", field, "value does not match regex pattern `"+datasetNamePattern.String()+"`")
	}
	return nil
}

// readable returns the dataset name if agency may read it, or NOT_FOUND.
// The caller holds mu.
func (st *state) readable(agency, field, name string) (*fakeDataset, error) {
	if err := checkDatasetName(field, name); err != nil {
		return nil, err
	}
	fd := st.datasets[name]
	if fd == nil || !readsRows(agency, fd.def) {
		return nil, notFound(name)
	}
	return fd, nil
}

// checkDefinition checks the fields of a definition the tests rely on.
func checkDefinition(d *exchangev1.Dataset) error {
	var v []*errdetails.BadRequest_FieldViolation
	if d == nil {
		return invalid("invalid request: dataset: value is required", violation("dataset", "value is required"))
	}
	if n := len([]rune(d.Title)); n == 0 || n > 200 {
		v = append(v, violation("dataset.title", "value length must be between 1 and 200 characters"))
	}
	if _, ok := periodForms[d.PeriodType]; !ok {
		v = append(v, violation("dataset.period_type", "value must be a defined period type other than 0"))
	}
	if d.Schema == nil {
		v = append(v, violation("dataset.schema", "value is required"))
	} else {
		if d.Schema.LocationLevel == exchangev1.AdminLevel_ADMIN_LEVEL_UNSPECIFIED {
			v = append(v, violation("dataset.schema.location_level", "value must not be in list [0]"))
		}
		if len(d.Schema.Measures) == 0 {
			v = append(v, violation("dataset.schema.measures", "value must contain at least 1 item(s)"))
		}
		for i, m := range d.Schema.Measures {
			if m.Type == exchangev1.MeasureType_MEASURE_TYPE_UNSPECIFIED {
				v = append(v, violation(fmt.Sprintf("dataset.schema.measures[%d].type", i), "value must not be in list [0]"))
			}
		}
	}
	for i, c := range d.Contributors {
		if !agencyNamePattern.MatchString(c) {
			v = append(v, violation(fmt.Sprintf("dataset.contributors[%d]", i), "value does not match regex pattern `^agencies/[a-z][a-z0-9-]{1,38}[a-z0-9]$`"))
		}
	}
	if len(v) == 0 {
		return nil
	}
	return invalid("invalid request: "+v[0].Field+": "+v[0].Description, v...)
}

func (f *datasetService) CreateDataset(ctx context.Context, req *exchangev1.CreateDatasetRequest) (*exchangev1.CreateDatasetResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	scope := "CreateDataset\x00" + agency
	if resp, ok := st.replay(scope, req.RequestId); ok && !req.ValidateOnly {
		return proto.Clone(resp).(*exchangev1.CreateDatasetResponse), nil
	}
	if agency == "" {
		return nil, statusError(codes.PermissionDenied, "PERMISSION_DENIED", "only agencies define datasets")
	}
	if !agencyNamePattern.MatchString(req.Parent) {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "parent", "value does not match regex pattern `"+agencyNamePattern.String()+"`")
	}
	if err := ownParent(agency, req.Parent); err != nil {
		return nil, err
	}
	if !datasetIDPattern.MatchString(req.DatasetId) {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "dataset_id", "value does not match regex pattern `^[a-z][a-z0-9-]{1,62}[a-z0-9]$`")
	}
	if req.RequestId != "" && !requestIDPattern.MatchString(req.RequestId) {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "request_id", "value does not match regex pattern `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`")
	}
	if err := checkDefinition(req.Dataset); err != nil {
		return nil, err
	}
	d := proto.CloneOf(req.Dataset)
	d.Name, d.Owner = agency+"/datasets/"+req.DatasetId, agency
	d.Locks, d.LockHistory, d.Etag, d.CreateTime, d.UpdateTime = nil, nil, "", nil, nil
	if req.ValidateOnly {
		return &exchangev1.CreateDatasetResponse{Dataset: d}, nil
	}
	if _, ok := st.datasets[d.Name]; ok {
		return nil, alreadyExists(d.Name)
	}
	d.Etag = st.nextEtag()
	d.CreateTime, d.UpdateTime = now(), now()
	st.datasets[d.Name] = &fakeDataset{def: d, rows: map[string]*exchangev1.Row{}}
	resp := &exchangev1.CreateDatasetResponse{Dataset: proto.CloneOf(d)}
	st.remember(scope, req.RequestId, resp)
	return resp, nil
}

func (f *datasetService) GetDataset(ctx context.Context, req *exchangev1.GetDatasetRequest) (*exchangev1.GetDatasetResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	fd, err := st.readable(callerAgency(ctx), "name", req.Name)
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetDatasetResponse{Dataset: proto.CloneOf(fd.def)}, nil
}

func (f *datasetService) ListDatasets(ctx context.Context, req *exchangev1.ListDatasetsRequest) (*exchangev1.ListDatasetsResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	var match []*exchangev1.Dataset
	for _, name := range slices.SortedFunc(maps.Keys(st.datasets), byOwnerThenID) {
		if d := st.datasets[name].def; readsRows(agency, d) {
			match = append(match, proto.CloneOf(d))
		}
	}
	items, next, err := page(st, match, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListDatasetsResponse{Datasets: items, NextPageToken: next}, nil
}

// byOwnerThenID orders dataset names "agencies/{owner}/datasets/{id}" as
// the exchange lists them: by owner, then by id (not by the whole name,
// which would put "agencies/wfp-kh/..." before "agencies/wfp/...").
func byOwnerThenID(a, b string) int {
	ownerA, idA, _ := strings.Cut(strings.TrimPrefix(a, "agencies/"), "/datasets/")
	ownerB, idB, _ := strings.Cut(strings.TrimPrefix(b, "agencies/"), "/datasets/")
	return cmp.Or(cmp.Compare(ownerA, ownerB), cmp.Compare(idA, idB))
}

func (f *datasetService) UpdateDataset(ctx context.Context, req *exchangev1.UpdateDatasetRequest) (*exchangev1.UpdateDatasetResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	in := req.Dataset
	if in.GetName() == "" {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "dataset.name", "required: the name of the dataset to update")
	}
	agency := callerAgency(ctx)
	fd, err := st.readable(agency, "dataset.name", in.Name)
	if err != nil {
		return nil, err
	}
	if err := checkDefinition(in); err != nil {
		return nil, err
	}
	if err := checkEtag(in.Name, in.Etag, fd.def.Etag); err != nil {
		return nil, err
	}
	if fd.def.Owner != agency {
		return nil, statusError(codes.PermissionDenied, "PERMISSION_DENIED", "only the owner "+fd.def.Owner+" may change "+in.Name)
	}
	if in.PeriodType != fd.def.PeriodType || in.FiscalYearStartMonth != fd.def.FiscalYearStartMonth {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "dataset.period_type", "the period type of a dataset cannot change")
	}
	d := proto.CloneOf(fd.def)
	if err := applyMask(d, in, req.UpdateMask, datasetMutable); err != nil {
		return nil, err
	}
	d.Etag, d.UpdateTime = st.nextEtag(), now()
	fd.def = d
	return &exchangev1.UpdateDatasetResponse{Dataset: proto.CloneOf(d)}, nil
}

// rowKey is the key of a row: period, location, categories (sorted by
// key) and contributor, so that keys sort as the real store's rows do,
// period first.
func rowKey(r *exchangev1.Row) string {
	var b strings.Builder
	b.WriteString(r.Period + "\x00" + r.Location + "\x00")
	for _, k := range slices.Sorted(maps.Keys(r.Categories)) {
		if v := r.Categories[k]; v != "" {
			b.WriteString(k + "=" + v + "\x00")
		}
	}
	b.WriteString("\x00" + r.Contributor)
	return b.String()
}

// rowViolations checks a row against the schema, fields prefixed by
// field ("writes[3].row"), sorted by field.
func rowViolations(field string, d *exchangev1.Dataset, row *exchangev1.Row, deleting bool) []*exchangev1.FieldViolation {
	var out []*exchangev1.FieldViolation
	add := func(f, msg string) { out = append(out, &exchangev1.FieldViolation{Field: f, Description: msg}) }
	if row == nil {
		add(field, "value is required")
		return out
	}
	// Like the real server, these repeat the field in the description.
	if !periodForms[d.PeriodType].MatchString(row.Period) {
		add(field+".period", fmt.Sprintf("%s.period: %q is not a period of this dataset", field, row.Period))
	}
	if !locationCodePattern.MatchString(row.Location) {
		add(field+".location", fmt.Sprintf("%s.location: %q is not a location code", field, row.Location))
	}
	cats := d.GetSchema().GetCategories()
	for k, v := range row.Categories {
		i := slices.IndexFunc(cats, func(c *exchangev1.Category) bool { return c.Key == k })
		switch {
		case i < 0:
			add(field+".categories."+k, "no such category in the schema")
		case v != "" && !slices.Contains(cats[i].Values, v):
			add(field+".categories."+k, fmt.Sprintf("%q is not an allowed value (%v)", v, cats[i].Values))
		}
	}
	for _, c := range cats {
		if c.Required && row.Categories[c.Key] == "" {
			add(field+".categories."+c.Key, "required")
		}
	}
	if !deleting {
		measures := d.GetSchema().GetMeasures()
		for k, v := range row.Values {
			i := slices.IndexFunc(measures, func(m *exchangev1.Measure) bool { return m.Key == k })
			if i < 0 {
				add(field+".values."+k, "no such measure in the schema")
				continue
			}
			if msg := valueViolation(measures[i], v); msg != "" {
				add(field+".values."+k, msg)
			}
		}
		for _, m := range measures {
			if _, ok := row.Values[m.Key]; m.Required && !ok {
				add(field+".values."+m.Key, "required")
			}
		}
	}
	slices.SortFunc(out, func(a, b *exchangev1.FieldViolation) int { return cmp.Compare(a.Field, b.Field) })
	return out
}

// valueViolation says what is wrong with a value for a measure, or "".
func valueViolation(m *exchangev1.Measure, v *exchangev1.Value) string {
	bounds := func(x float64) string {
		if m.Min != nil && x < *m.Min {
			return "must be at least " + strconv.FormatFloat(*m.Min, 'g', -1, 64)
		}
		if m.Max != nil && x > *m.Max {
			return "must be at most " + strconv.FormatFloat(*m.Max, 'g', -1, 64)
		}
		return ""
	}
	switch x := v.GetKind().(type) {
	case *exchangev1.Value_IntValue:
		if m.Type == exchangev1.MeasureType_MEASURE_TYPE_INTEGER {
			return bounds(float64(x.IntValue))
		}
	case *exchangev1.Value_DecimalValue:
		if m.Type == exchangev1.MeasureType_MEASURE_TYPE_DECIMAL {
			return bounds(x.DecimalValue)
		}
	case *exchangev1.Value_TextValue:
		if m.Type == exchangev1.MeasureType_MEASURE_TYPE_TEXT {
			return ""
		}
	case *exchangev1.Value_DateValue:
		if m.Type == exchangev1.MeasureType_MEASURE_TYPE_DATE {
			return ""
		}
	case *exchangev1.Value_BoolValue:
		if m.Type == exchangev1.MeasureType_MEASURE_TYPE_BOOLEAN {
			return ""
		}
	case *exchangev1.Value_CodeValue:
		if m.Type == exchangev1.MeasureType_MEASURE_TYPE_CODE {
			if !slices.Contains(m.Codes, x.CodeValue) {
				return fmt.Sprintf("%q is not in the code list", x.CodeValue)
			}
			return ""
		}
	}
	return "must be a " + strings.ToLower(strings.TrimPrefix(m.Type.String(), "MEASURE_TYPE_")) + " value"
}

func (f *datasetService) WriteDatasetRows(ctx context.Context, req *exchangev1.WriteDatasetRowsRequest) (*exchangev1.WriteDatasetRowsResponse, error) {
	if n := len(req.Writes); n == 0 || n > 10000 {
		return nil, invalid("invalid request: writes: must hold 1 to 10000 items", violation("writes", fmt.Sprintf("value must contain between 1 and 10000 items, got %d", n)))
	}
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	fd, err := st.readable(agency, "dataset", req.Dataset)
	if err != nil {
		return nil, err
	}
	d := fd.def
	if !contributes(agency, d) {
		return nil, statusError(codes.PermissionDenied, "PERMISSION_DENIED", agency+" is not a contributor to "+d.Name)
	}
	locked := map[string]bool{}
	for _, l := range d.Locks {
		locked[l.Period] = true
	}
	resp := &exchangev1.WriteDatasetRowsResponse{}
	var rev int64
	for i, w := range req.Writes {
		res := &exchangev1.RowWriteResult{Index: int32(i)}
		resp.Results = append(resp.Results, res)
		field := fmt.Sprintf("writes[%d].row", i)
		reject := func(code, f, msg string) {
			res.Code = code
			res.Violations = append(res.Violations, &exchangev1.FieldViolation{Field: f, Description: msg})
		}
		if v := rowViolations(field, d, w.Row, w.Delete); len(v) > 0 {
			res.Code, res.Violations = "INVALID_ARGUMENT", v
			continue
		}
		row := &exchangev1.Row{Contributor: agency, Period: w.Row.Period, Location: w.Row.Location, Categories: w.Row.Categories, Values: w.Row.Values}
		row = proto.CloneOf(row)
		if locked[row.Period] {
			reject("FAILED_PRECONDITION", field+".period", "period "+row.Period+" is locked")
			continue
		}
		key := rowKey(row)
		old := fd.rows[key]
		if w.Delete && (old == nil || old.Deleted) {
			reject("NOT_FOUND", field, "no such row to delete")
			continue
		}
		if rev == 0 {
			rev = st.nextRevision()
		}
		if w.Delete {
			row = &exchangev1.Row{Contributor: agency, Period: old.Period, Location: old.Location, Categories: old.Categories, Deleted: true}
		}
		row.Revision, row.UpdateTime = rev, now()
		fd.rows[key] = row
		res.Accepted = true
	}
	for _, r := range resp.Results {
		if r.Accepted {
			resp.Accepted++
		} else {
			resp.Rejected++
		}
	}
	resp.Revision = rev
	if rev != 0 {
		st.datasetsChangedNow()
	}
	return resp, nil
}

// sortedRows returns copies of fd's rows: the current ones (no
// tombstones) in key order when since is 0, else the ones changed after
// since (tombstones included) in revision order, then key order. Each
// comes with its position, the key a resume token continues after. The
// caller holds mu.
func (fd *fakeDataset) sortedRows(since int64) (rows []*exchangev1.Row, positions []string) {
	type entry struct {
		pos string
		row *exchangev1.Row
	}
	var all []entry
	for k, r := range fd.rows {
		switch {
		case since == 0 && !r.Deleted:
			all = append(all, entry{k, r})
		case since > 0 && r.Revision > since:
			all = append(all, entry{fmt.Sprintf("%020d\x00%s", r.Revision, k), r})
		}
	}
	slices.SortFunc(all, func(a, b entry) int { return cmp.Compare(a.pos, b.pos) })
	for _, e := range all {
		rows, positions = append(rows, proto.CloneOf(e.row)), append(positions, e.pos)
	}
	return rows, positions
}

// rowFilter selects rows as a pull or aggregate request does.
type rowFilter struct {
	from, to     string
	locations    []string
	contributors []string
	categories   map[string]string
}

func (f rowFilter) keep(r *exchangev1.Row) bool {
	switch {
	case f.from != "" && r.Period < f.from, f.to != "" && r.Period > f.to:
		return false
	case len(f.locations) > 0 && !slices.ContainsFunc(f.locations, func(l string) bool {
		return r.Location == l || strings.HasPrefix(r.Location, l+"-") && len(l) == 2 || strings.HasPrefix(r.Location, l+".")
	}):
		return false
	case len(f.contributors) > 0 && !slices.Contains(f.contributors, r.Contributor):
		return false
	}
	for k, v := range f.categories {
		if r.Categories[k] != v {
			return false
		}
	}
	return true
}

func (f *datasetService) PullDatasetRows(req *exchangev1.PullDatasetRowsRequest, stream exchangev1.DatasetService_PullDatasetRowsServer) error {
	ctx := stream.Context()
	st := f.state
	st.mu.Lock()
	fd, err := st.readable(callerAgency(ctx), "dataset", req.Dataset)
	if err != nil {
		st.mu.Unlock()
		return err
	}
	revision := int64(st.revision)
	all, positions := fd.sortedRows(req.SinceRevision)
	st.mu.Unlock()

	after := ""
	if req.ResumeToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(req.ResumeToken)
		if err != nil {
			return fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "resume_token", "not valid for this request")
		}
		after = string(raw)
	}
	filter := rowFilter{from: req.PeriodFrom, to: req.PeriodTo, locations: req.Locations, contributors: req.Contributors, categories: req.Categories}
	var rows []*exchangev1.Row
	var pos []string
	for i, r := range all {
		if positions[i] > after && filter.keep(r) {
			rows, pos = append(rows, r), append(pos, positions[i])
		}
	}
	queue := &f.server.pullBreaks
	if req.SinceRevision == math.MaxInt64 {
		queue = new([]int) // WatchRows pinning "now": not a pull that tests break
	}
	breakAfter, _, batch := f.server.nextBreak(queue)
	if req.PageSize > 0 {
		batch = int(req.PageSize)
	}
	if breakAfter == 0 {
		return status.Error(codes.Unavailable, "clienttest: pull stream dropped")
	}
	if len(rows) == 0 && after != "" {
		return nil // nothing after the token: the previous stream sent the end
	}
	sent := 0
	for start := 0; start < len(rows) || start == 0; start += batch {
		end := min(start+batch, len(rows))
		token := ""
		if end < len(rows) {
			token = base64.RawURLEncoding.EncodeToString([]byte(pos[end-1]))
		}
		if err := stream.Send(&exchangev1.PullDatasetRowsResponse{Rows: rows[start:end], ResumeToken: token, Revision: revision}); err != nil {
			return err
		}
		if sent++; sent == breakAfter {
			return status.Error(codes.Unavailable, "clienttest: pull stream dropped")
		}
		if end == len(rows) {
			break
		}
	}
	return nil
}

func (f *datasetService) AggregateDatasetRows(ctx context.Context, req *exchangev1.AggregateDatasetRowsRequest) (*exchangev1.AggregateDatasetRowsResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	if err := checkDatasetName("dataset", req.Dataset); err != nil {
		return nil, err
	}
	fd := st.datasets[req.Dataset]
	if fd == nil || agency == "" || !readsRows(agency, fd.def) && !fd.def.PublicAggregates {
		return nil, notFound(req.Dataset)
	}
	d := fd.def
	threshold := req.SuppressBelow
	var base float64 // the public view's rounding base; 0 for readers
	if !readsRows(agency, d) {
		base = float64(max(5, cmp.Or(d.SuppressionThreshold, 5)))
	}
	for i, g := range req.GroupBy {
		if g != "period" && g != "location" && g != "contributor" &&
			!slices.ContainsFunc(d.GetSchema().GetCategories(), func(c *exchangev1.Category) bool { return c.Key == g }) {
			return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", fmt.Sprintf("group_by[%d]", i), g+" is not period, location, contributor or a category of the dataset")
		}
	}
	numeric := map[string]bool{}
	for _, m := range d.GetSchema().GetMeasures() {
		numeric[m.Key] = m.Type == exchangev1.MeasureType_MEASURE_TYPE_INTEGER || m.Type == exchangev1.MeasureType_MEASURE_TYPE_DECIMAL
	}
	cells := map[string]*exchangev1.AggregateCell{}
	filter := rowFilter{from: req.PeriodFrom, to: req.PeriodTo, locations: req.Locations}
	rows, _ := fd.sortedRows(0)
	for _, r := range rows {
		if !filter.keep(r) {
			continue
		}
		group := map[string]string{}
		var key strings.Builder
		for _, g := range req.GroupBy {
			v := map[string]string{"period": r.Period, "location": r.Location, "contributor": r.Contributor}[g]
			if v == "" {
				v = r.Categories[g]
			}
			group[g] = v
			key.WriteString(v + "\x00")
		}
		c := cells[key.String()]
		if c == nil {
			c = &exchangev1.AggregateCell{Group: group, Sums: map[string]float64{}}
			if base > 0 {
				for k, n := range numeric {
					if n {
						c.Sums[k] = 0
					}
				}
			}
			cells[key.String()] = c
		}
		c.Rows++
		for k, v := range r.Values {
			if numeric[k] {
				value := float64(v.GetIntValue()) + v.GetDecimalValue()
				if base > 0 {
					value = publicRound(st.roundingKey, d.Name, r, k, value, base)
				}
				c.Sums[k] += value
			}
		}
	}
	resp := &exchangev1.AggregateDatasetRowsResponse{SuppressionThreshold: threshold, RoundingBase: int32(base)}
	for _, k := range slices.Sorted(maps.Keys(cells)) {
		c := cells[k]
		if base > 0 {
			// Outsiders see neither row counts nor cells whose rounded
			// totals are all 0.
			if !slices.ContainsFunc(slices.Collect(maps.Values(c.Sums)), func(v float64) bool { return v != 0 }) {
				continue
			}
			c.Rows = 0
		}
		if threshold > 0 && slices.ContainsFunc(slices.Collect(maps.Values(c.Sums)), func(v float64) bool { return v > 0 && v < float64(threshold) }) {
			resp.SuppressedCells++
			continue
		}
		resp.Cells = append(resp.Cells, c)
	}
	return resp, nil
}

// changeLock locks or unlocks a period. The caller holds mu.
func (st *state) changeLock(agency, name, period string, lock bool, reason string) (*exchangev1.Dataset, error) {
	fd, err := st.readable(agency, "dataset", name)
	if err != nil {
		return nil, err
	}
	d := proto.CloneOf(fd.def)
	if !periodForms[d.PeriodType].MatchString(period) {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "period", fmt.Sprintf("%q is not a period of this dataset", period))
	}
	if !lock && reason == "" {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "reason", "value length must be at least 1 characters")
	}
	if d.Owner != agency {
		return nil, statusError(codes.PermissionDenied, "PERMISSION_DENIED", "only the owner "+d.Owner+" may lock or unlock periods of "+d.Name)
	}
	i := slices.IndexFunc(d.Locks, func(l *exchangev1.PeriodLock) bool { return l.Period == period })
	switch {
	case lock && i >= 0:
		return nil, fieldError(codes.FailedPrecondition, "FAILED_PRECONDITION", "period", "period "+period+" is already locked")
	case !lock && i < 0:
		return nil, fieldError(codes.FailedPrecondition, "FAILED_PRECONDITION", "period", "period "+period+" is not locked")
	case lock:
		d.Locks = append(d.Locks, &exchangev1.PeriodLock{Period: period, LockedBy: agency, LockTime: now()})
		slices.SortFunc(d.Locks, func(a, b *exchangev1.PeriodLock) int { return cmp.Compare(a.Period, b.Period) })
	default:
		d.Locks = slices.Delete(d.Locks, i, i+1)
	}
	d.LockHistory = append(d.LockHistory, &exchangev1.PeriodLockEvent{Period: period, Locked: lock, Actor: agency, Time: now(), Reason: reason})
	d.Etag, d.UpdateTime = st.nextEtag(), now()
	fd.def = d
	return proto.CloneOf(d), nil
}

func (f *datasetService) LockDatasetPeriod(ctx context.Context, req *exchangev1.LockDatasetPeriodRequest) (*exchangev1.LockDatasetPeriodResponse, error) {
	f.state.mu.Lock()
	defer f.state.mu.Unlock()
	d, err := f.state.changeLock(callerAgency(ctx), req.Dataset, req.Period, true, "")
	if err != nil {
		return nil, err
	}
	return &exchangev1.LockDatasetPeriodResponse{Dataset: d}, nil
}

func (f *datasetService) UnlockDatasetPeriod(ctx context.Context, req *exchangev1.UnlockDatasetPeriodRequest) (*exchangev1.UnlockDatasetPeriodResponse, error) {
	f.state.mu.Lock()
	defer f.state.mu.Unlock()
	d, err := f.state.changeLock(callerAgency(ctx), req.Dataset, req.Period, false, req.Reason)
	if err != nil {
		return nil, err
	}
	return &exchangev1.UnlockDatasetPeriodResponse{Dataset: d}, nil
}

func (f *datasetService) GetDatasetCompleteness(ctx context.Context, req *exchangev1.GetDatasetCompletenessRequest) (*exchangev1.GetDatasetCompletenessResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	fd, err := st.readable(callerAgency(ctx), "dataset", req.Dataset)
	if err != nil {
		return nil, err
	}
	d := fd.def
	if !periodForms[d.PeriodType].MatchString(req.Period) {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "period", fmt.Sprintf("%q is not a period of this dataset", req.Period))
	}
	submitted := map[string]map[string]bool{}
	rows := map[string]int64{}
	for _, c := range d.Contributors {
		submitted[c] = map[string]bool{}
	}
	current, _ := fd.sortedRows(0)
	for _, r := range current {
		if r.Period != req.Period {
			continue
		}
		if submitted[r.Contributor] == nil {
			submitted[r.Contributor] = map[string]bool{}
		}
		submitted[r.Contributor][r.Location] = true
		rows[r.Contributor]++
	}
	resp := &exchangev1.GetDatasetCompletenessResponse{
		Locked: slices.ContainsFunc(d.Locks, func(l *exchangev1.PeriodLock) bool { return l.Period == req.Period }),
	}
	for _, c := range slices.Sorted(maps.Keys(submitted)) {
		entry := &exchangev1.ContributorCompleteness{Contributor: c, Rows: rows[c], SubmittedLocations: slices.Sorted(maps.Keys(submitted[c]))}
		for _, loc := range d.ExpectedLocations {
			if !submitted[c][loc] {
				entry.MissingLocations = append(entry.MissingLocations, loc)
			}
		}
		slices.Sort(entry.MissingLocations)
		resp.Contributors = append(resp.Contributors, entry)
	}
	return resp, nil
}

func (f *datasetService) WatchDatasetRows(req *exchangev1.WatchDatasetRowsRequest, stream exchangev1.DatasetService_WatchDatasetRowsServer) error {
	ctx := stream.Context()
	st := f.state
	st.mu.Lock()
	_, err := st.readable(callerAgency(ctx), "dataset", req.Dataset)
	since := req.StartRevision
	if since == 0 {
		since = int64(st.revision)
	}
	st.mu.Unlock()
	if err != nil {
		return err
	}
	breakAfter, heartbeat, batch := f.server.nextBreak(&f.server.rowWatchBreaks)
	if breakAfter == 0 {
		return status.Error(codes.Unavailable, "clienttest: watch stream dropped")
	}
	sent := 0
	idle := time.NewTimer(heartbeat)
	defer idle.Stop()
	for {
		st.mu.Lock()
		changed := st.datasetsChanged
		var rows []*exchangev1.Row
		if fd := st.datasets[req.Dataset]; fd != nil {
			rows, _ = fd.sortedRows(since)
		}
		st.mu.Unlock()
		for start := 0; start < len(rows); start += batch {
			end := min(start+batch, len(rows))
			chunk := rows[start:end]
			// The revision this message completes: its last row's,
			// unless more rows of that revision follow.
			complete := chunk[len(chunk)-1].Revision
			if end < len(rows) && rows[end].Revision == complete {
				complete--
			}
			if err := stream.Send(&exchangev1.WatchDatasetRowsResponse{Rows: chunk, Revision: max(complete, since)}); err != nil {
				return err
			}
			if sent++; sent == breakAfter {
				return status.Error(codes.Unavailable, "clienttest: watch stream dropped")
			}
			idle.Reset(heartbeat)
		}
		if len(rows) > 0 {
			since = rows[len(rows)-1].Revision
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-idle.C:
			if err := stream.Send(&exchangev1.WatchDatasetRowsResponse{Revision: since}); err != nil {
				return err
			}
			idle.Reset(heartbeat)
		}
	}
}
