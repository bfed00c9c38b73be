package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// defaultRowPage is how many rows a pull message carries by default.
const defaultRowPage = 1000

// rowFilter is the part of a pull or aggregate request that selects rows
// beyond the period bounds.
type rowFilter struct {
	locations    []string
	contributors []string
	categories   map[string]string
}

func (f rowFilter) keep(r *exchangev1.Row) bool {
	if len(f.locations) > 0 && !slices.ContainsFunc(f.locations, func(l string) bool { return locationWithin(r.GetLocation(), l) }) {
		return false
	}
	if len(f.contributors) > 0 && !slices.Contains(f.contributors, r.GetContributor()) {
		return false
	}
	for k, v := range f.categories {
		if r.GetCategories()[k] != v {
			return false
		}
	}
	return true
}

// keeper returns keep, or nil when the filter keeps every row (the store
// then need not decode rows for it).
func (f rowFilter) keeper() func(*exchangev1.Row) bool {
	if len(f.locations) == 0 && len(f.contributors) == 0 && len(f.categories) == 0 {
		return nil
	}
	return f.keep
}

// Field numbers of the responses that carry rows as stored.
var (
	pullRowsField      = (&exchangev1.PullDatasetRowsResponse{}).ProtoReflect().Descriptor().Fields().ByName("rows").Number()
	pullTokenField     = (&exchangev1.PullDatasetRowsResponse{}).ProtoReflect().Descriptor().Fields().ByName("resume_token").Number()
	pullRevisionField  = (&exchangev1.PullDatasetRowsResponse{}).ProtoReflect().Descriptor().Fields().ByName("revision").Number()
	watchRowsField     = (&exchangev1.WatchDatasetRowsResponse{}).ProtoReflect().Descriptor().Fields().ByName("rows").Number()
	watchRevisionField = (&exchangev1.WatchDatasetRowsResponse{}).ProtoReflect().Descriptor().Fields().ByName("revision").Number()
)

// pullResponse encodes a PullDatasetRowsResponse around rows that are
// already Row encodings (as the store holds them), in one allocation:
// the message the proto codec would have made of the decoded rows, field
// for field. requestCodec sends it as it is.
func pullResponse(rows [][]byte, token string, revision int64) *encodedMessage {
	size := encodedRowsSize(pullRowsField, rows)
	if token != "" {
		size += protowire.SizeTag(pullTokenField) + protowire.SizeBytes(len(token))
	}
	if revision != 0 {
		size += protowire.SizeTag(pullRevisionField) + protowire.SizeVarint(uint64(revision))
	}
	b := appendEncodedRows(make([]byte, 0, size), pullRowsField, rows)
	if token != "" {
		b = protowire.AppendTag(b, pullTokenField, protowire.BytesType)
		b = protowire.AppendString(b, token)
	}
	if revision != 0 {
		b = protowire.AppendTag(b, pullRevisionField, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(revision))
	}
	return &encodedMessage{bytes: b}
}

// watchRowsResponse encodes a WatchDatasetRowsResponse around rows that
// are already Row encodings, as pullResponse does.
func watchRowsResponse(rows [][]byte, revision int64) *encodedMessage {
	size := encodedRowsSize(watchRowsField, rows)
	if revision != 0 {
		size += protowire.SizeTag(watchRevisionField) + protowire.SizeVarint(uint64(revision))
	}
	b := appendEncodedRows(make([]byte, 0, size), watchRowsField, rows)
	if revision != 0 {
		b = protowire.AppendTag(b, watchRevisionField, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(revision))
	}
	return &encodedMessage{bytes: b}
}

// encodedRowsSize is the size of rows, Row encodings, as a repeated
// message field numbered field.
func encodedRowsSize(field protowire.Number, rows [][]byte) int {
	size := 0
	for _, r := range rows {
		size += protowire.SizeTag(field) + protowire.SizeBytes(len(r))
	}
	return size
}

// appendEncodedRows appends rows, Row encodings, to b as a repeated
// message field numbered field.
func appendEncodedRows(b []byte, field protowire.Number, rows [][]byte) []byte {
	for _, r := range rows {
		b = protowire.AppendTag(b, field, protowire.BytesType)
		b = protowire.AppendBytes(b, r)
	}
	return b
}

// locationWithin reports whether code is area or lies within it: "KH-12"
// and "KH-12.1201" lie within "KH"; "KH-12.1201" within "KH-12".
func locationWithin(code, area string) bool {
	return code == area || strings.HasPrefix(code, area+"-") && len(area) == 2 || strings.HasPrefix(code, area+".")
}

// resumeFingerprint ties a resume token to the request it continues.
func resumeFingerprint(req *exchangev1.PullDatasetRowsRequest) []byte {
	keys := slices.Sorted(maps.Keys(req.GetCategories()))
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%d|%s|%s|%v|%v|", req.GetDataset(), req.GetSinceRevision(), req.GetPeriodFrom(), req.GetPeriodTo(), req.GetLocations(), req.GetContributors())
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s|", k, req.GetCategories()[k])
	}
	sum := sha256.Sum256([]byte(b.String()))
	return sum[:8]
}

// PullDatasetRows streams the rows a reader asked for, a page per message;
// each page is read in its own short transaction, so memory stays bounded
// by the page and no transaction waits on the network. The rows go out as
// the store holds them (pullResponse): a row is decoded only when a filter
// on its location, contributor or categories must judge it, and never
// encoded again.
func (s *datasetService) PullDatasetRows(req *exchangev1.PullDatasetRowsRequest, stream exchangev1.DatasetService_PullDatasetRowsServer) error {
	ctx := stream.Context()
	d, _, err := s.visibleDataset(ctx, req.GetDataset())
	if err != nil {
		return err
	}
	if err := checkPeriodBounds(d, req.GetPeriodFrom(), req.GetPeriodTo()); err != nil {
		return err
	}
	fp := resumeFingerprint(req)
	var after []byte
	if tok := req.GetResumeToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) <= len(fp) || !bytes.Equal(raw[:len(fp)], fp) {
			return invalidField("resume_token", "not valid for this request (it must come from a response to the same request)")
		}
		after = raw[len(fp):]
	}
	limit := int(req.GetPageSize())
	if limit == 0 {
		limit = defaultRowPage
	}
	filter := rowFilter{locations: req.GetLocations(), contributors: req.GetContributors(), categories: req.GetCategories()}
	revision, err := s.store.SafeRevision(ctx) // every row written up to it is in the pages read below
	if err != nil {
		return err
	}
	for {
		page, err := s.store.PullDatasetRows(ctx, store.RowQuery{
			Dataset: d.GetName(), Since: req.GetSinceRevision(), After: after,
			PeriodFrom: req.GetPeriodFrom(), PeriodTo: req.GetPeriodTo(), Keep: filter.keeper(), Limit: limit,
			Encoded: true,
		})
		if err != nil {
			return err
		}
		if page.Next == nil && len(page.Encoded) == 0 && after != nil {
			return nil
		}
		token := ""
		if page.Next != nil {
			token = base64.RawURLEncoding.EncodeToString(append(slices.Clone(fp), page.Next...))
		}
		if len(page.Encoded) > 0 || page.Next == nil {
			if err := stream.SendMsg(pullResponse(page.Encoded, token, revision)); err != nil {
				return err
			}
		}
		if page.Next == nil {
			return nil
		}
		after = page.Next
	}
}

// checkPeriodBounds checks the labels of a period range.
func checkPeriodBounds(d *exchangev1.Dataset, from, to string) error {
	if from != "" {
		if err := checkPeriodLabel("period_from", d, from); err != nil {
			return err
		}
	}
	if to != "" {
		if err := checkPeriodLabel("period_to", d, to); err != nil {
			return err
		}
	}
	if from != "" && to != "" && from > to {
		return invalidField("period_to", "must not be before period_from")
	}
	return nil
}

// AggregateDatasetRows totals integer and decimal measures over the
// selected rows, grouped by the requested dimensions. Readers get exact
// totals and may ask for any threshold. Other members get the public view
// of a dataset that offers one: totals of the rows' values after keyed
// random rounding (see rowRounding), so that every figure published to
// them, under any grouping, filter or number of queries, is a sum of the
// same rounded finest cells; their own suppress_below then applies to
// those rounded totals and cannot lower the protection.
func (s *datasetService) AggregateDatasetRows(ctx context.Context, req *exchangev1.AggregateDatasetRowsRequest) (*exchangev1.AggregateDatasetRowsResponse, error) {
	reader, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	d, err := s.store.GetDataset(ctx, req.GetDataset())
	if err != nil {
		return nil, err
	}
	var rounding *rowRounding // nil for readers: exact totals
	if !readsRows(reader, d) {
		if !d.GetPublicAggregates() {
			return nil, notFound(req.GetDataset())
		}
		if rounding, err = newRowRounding(s.store.PageSecret(), d.GetName(), roundingBaseOf(d)); err != nil {
			return nil, err
		}
	}
	return aggregateRows(ctx, s.store, d, req, rounding)
}

// aggregateRows totals the rows of d that req selects, as
// AggregateDatasetRows does: exactly when rounding is nil, else as the
// public view (every row's values rounded, no row counts, all-zero cells
// absent). Reports use it for the public figures they carry.
func aggregateRows(ctx context.Context, st *store.Store, d *exchangev1.Dataset, req *exchangev1.AggregateDatasetRowsRequest, rounding *rowRounding) (*exchangev1.AggregateDatasetRowsResponse, error) {
	threshold := req.GetSuppressBelow()
	for i, g := range req.GetGroupBy() {
		if g != "period" && g != "location" && g != "contributor" &&
			!slices.ContainsFunc(d.GetSchema().GetCategories(), func(c *exchangev1.Category) bool { return c.GetKey() == g }) {
			return nil, invalidField(fmt.Sprintf("group_by[%d]", i), g+" is not period, location, contributor or a category of the dataset")
		}
	}
	if err := checkPeriodBounds(d, req.GetPeriodFrom(), req.GetPeriodTo()); err != nil {
		return nil, err
	}
	numeric := map[string]bool{}
	for _, m := range d.GetSchema().GetMeasures() {
		numeric[m.GetKey()] = m.GetType() == exchangev1.MeasureType_MEASURE_TYPE_INTEGER || m.GetType() == exchangev1.MeasureType_MEASURE_TYPE_DECIMAL
	}
	type cell struct {
		group map[string]string
		sums  map[string]float64
		rows  int64
	}
	cells := map[string]*cell{}
	filter := rowFilter{locations: req.GetLocations()}
	var after []byte
	for {
		page, err := st.PullDatasetRows(ctx, store.RowQuery{Dataset: d.GetName(), After: after,
			PeriodFrom: req.GetPeriodFrom(), PeriodTo: req.GetPeriodTo(), Keep: filter.keep, Limit: 5000})
		if err != nil {
			return nil, err
		}
		for _, r := range page.Rows {
			group := map[string]string{}
			var key strings.Builder
			for _, g := range req.GetGroupBy() {
				v := groupValue(r, g)
				group[g] = v
				key.WriteString(v + "\x00")
			}
			c := cells[key.String()]
			if c == nil {
				c = &cell{group: group, sums: map[string]float64{}}
				if rounding != nil {
					// Every measure, so that which keys a cell has says
					// nothing about its rows.
					for k, n := range numeric {
						if n {
							c.sums[k] = 0
						}
					}
				}
				cells[key.String()] = c
			}
			c.rows++
			for k, v := range r.GetValues() {
				if numeric[k] {
					value := float64(v.GetIntValue()) + v.GetDecimalValue()
					if rounding != nil {
						value = rounding.round(r, k, value)
					}
					c.sums[k] += value
				}
			}
		}
		if page.Next == nil {
			break
		}
		after = page.Next
	}
	resp := &exchangev1.AggregateDatasetRowsResponse{SuppressionThreshold: threshold}
	if rounding != nil {
		resp.RoundingBase = int32(rounding.base)
	}
	for _, k := range slices.Sorted(maps.Keys(cells)) {
		c := cells[k]
		rows := c.rows
		if rounding != nil {
			// A row's presence is not shown: a cell whose rounded totals
			// are all zero looks like one without rows, and no cell counts
			// its rows (where contributors write only rows with cases, a
			// row's presence alone would say "at least one").
			if allZero(c.sums) {
				continue
			}
			rows = 0
		}
		if threshold > 0 && suppressed(c.sums, float64(threshold)) {
			resp.SuppressedCells++
			continue
		}
		resp.Cells = append(resp.Cells, &exchangev1.AggregateCell{Group: c.group, Sums: c.sums, Rows: rows})
	}
	return resp, nil
}

// allZero reports whether every total of a cell is zero.
func allZero(sums map[string]float64) bool {
	for _, v := range sums {
		if v != 0 {
			return false
		}
	}
	return true
}

// suppressed reports whether a cell shows any total below k (but above
// zero: a zero singles nobody out).
func suppressed(sums map[string]float64, k float64) bool {
	for _, v := range sums {
		if v > 0 && v < k {
			return true
		}
	}
	return false
}

func suppressionOf(d *exchangev1.Dataset) int32 {
	if d.GetSuppressionThreshold() == 0 {
		return defaultSuppression
	}
	return d.GetSuppressionThreshold()
}

func groupValue(r *exchangev1.Row, dim string) string {
	switch dim {
	case "period":
		return r.GetPeriod()
	case "location":
		return r.GetLocation()
	case "contributor":
		return r.GetContributor()
	}
	return r.GetCategories()[dim]
}

// GetDatasetCompleteness reports, for a period, which contributors have
// rows for which locations, and which expected locations they lack.
func (s *datasetService) GetDatasetCompleteness(ctx context.Context, req *exchangev1.GetDatasetCompletenessRequest) (*exchangev1.GetDatasetCompletenessResponse, error) {
	d, _, err := s.visibleDataset(ctx, req.GetDataset())
	if err != nil {
		return nil, err
	}
	if err := checkPeriodLabel("period", d, req.GetPeriod()); err != nil {
		return nil, err
	}
	expected, err := s.expectedContributors(ctx, d)
	if err != nil {
		return nil, err
	}
	submitted := map[string]map[string]bool{}
	rows := map[string]int64{}
	for _, c := range expected {
		submitted[c] = map[string]bool{}
	}
	var after []byte
	for {
		page, err := s.store.PullDatasetRows(ctx, store.RowQuery{Dataset: d.GetName(), After: after, PeriodFrom: req.GetPeriod(), PeriodTo: req.GetPeriod(), Limit: 5000})
		if err != nil {
			return nil, err
		}
		for _, r := range page.Rows {
			if submitted[r.GetContributor()] == nil {
				submitted[r.GetContributor()] = map[string]bool{}
			}
			submitted[r.GetContributor()][r.GetLocation()] = true
			rows[r.GetContributor()]++
		}
		if page.Next == nil {
			break
		}
		after = page.Next
	}
	resp := &exchangev1.GetDatasetCompletenessResponse{
		Locked: slices.ContainsFunc(d.GetLocks(), func(l *exchangev1.PeriodLock) bool { return l.GetPeriod() == req.GetPeriod() }),
	}
	for _, c := range slices.Sorted(maps.Keys(submitted)) {
		entry := &exchangev1.ContributorCompleteness{Contributor: c, Rows: rows[c], SubmittedLocations: slices.Sorted(maps.Keys(submitted[c]))}
		for _, loc := range d.GetExpectedLocations() {
			if !submitted[c][loc] {
				entry.MissingLocations = append(entry.MissingLocations, loc)
			}
		}
		slices.Sort(entry.MissingLocations)
		resp.Contributors = append(resp.Contributors, entry)
	}
	return resp, nil
}

// expectedContributors lists the agencies expected to report: the named
// contributors and the members (not observers) of contributor groups.
func (s *datasetService) expectedContributors(ctx context.Context, d *exchangev1.Dataset) ([]string, error) {
	out := slices.Clone(d.GetContributors())
	for _, name := range d.GetContributorGroups() {
		g, err := s.store.GetWorkingGroup(ctx, name)
		if store.KindOf(err) == store.KindNotFound {
			continue
		} else if err != nil {
			return nil, err
		}
		for _, m := range g.GetMembers() {
			if m.GetRole() != exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER && !slices.Contains(out, m.GetAgency()) {
				out = append(out, m.GetAgency())
			}
		}
	}
	return out, nil
}

// WatchDatasetRows sends row changes after a revision, then follows new
// writes; rows of one revision may span messages, and a message's
// revision is the last revision it completes, so a client resuming from it
// may see some rows again but never misses one.
func (s *datasetService) WatchDatasetRows(req *exchangev1.WatchDatasetRowsRequest, stream exchangev1.DatasetService_WatchDatasetRowsServer) error {
	ctx := stream.Context()
	d, _, err := s.visibleDataset(ctx, req.GetDataset())
	if err != nil {
		return err
	}
	since := req.GetStartRevision()
	current, err := s.store.SafeRevision(ctx)
	if err != nil {
		return err
	}
	if err := checkStartRevision(since, current); err != nil {
		return err
	}
	if since == 0 {
		since = current
	}
	var after []byte
	var sent int64 // the revision of the last row sent
	heartbeat := time.NewTimer(s.server.heartbeat)
	defer heartbeat.Stop()
	for {
		// Re-check before every page: the caller may have been suspended
		// or revoked, or lost access to the dataset (audience narrowed,
		// left a working group) since the watch began.
		if err := s.server.stillAdmitted(ctx); err != nil {
			return err
		}
		if _, _, err := s.visibleDataset(ctx, d.GetName()); err != nil {
			return err
		}
		changed := s.store.Changed()
		page, err := s.store.PullDatasetRows(ctx, store.RowQuery{Dataset: d.GetName(), Since: since, After: after, Limit: defaultRowPage, Encoded: true})
		if err != nil {
			return err
		}
		if n := len(page.Encoded); n > 0 {
			last := new(exchangev1.Row) // the rows go out as stored; only the last is decoded, for its revision
			if err := proto.Unmarshal(page.Encoded[n-1], last); err != nil {
				return err
			}
			sent = last.GetRevision()
			complete := sent
			if page.Next != nil {
				complete = sent - 1 // the last revision may continue on the next page
			}
			if err := stream.SendMsg(watchRowsResponse(page.Encoded, max(complete, since))); err != nil {
				return err
			}
			heartbeat.Reset(s.server.heartbeat)
		}
		if page.Next != nil {
			after = page.Next
			continue
		}
		since, after = max(since, sent), nil
		select {
		case <-ctx.Done():
			return nil
		case <-s.server.stopping:
			return shuttingDown(since)
		case <-changed:
		case <-heartbeat.C:
			if err := stream.Send(&exchangev1.WatchDatasetRowsResponse{Revision: since}); err != nil {
				return err
			}
			heartbeat.Reset(s.server.heartbeat)
		}
	}
}
