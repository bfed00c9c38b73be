package client

import (
	"context"
	"errors"
	"io"
	"iter"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// MaxRowWrites is the most row writes Write sends in one call, the limit
// the exchange sets on WriteDatasetRowsRequest.writes.
const MaxRowWrites = 10000

// DatasetClient runs joint data collection: agencies define datasets with
// a typed schema (location × period × categories → measures),
// contributors write rows into them, and national offices pull the rows
// whole or incrementally, aggregate them and follow changes.
//
// A dataset is visible to its owner, its contributors and its audience;
// to anyone else it answers NOT_FOUND exactly as if it did not exist,
// except that Aggregate answers members outside the audience when the
// owner made aggregates public (with small cells hidden).
//
// Datasets are named under their owner: names are full resource names
// ("agencies/ilo/datasets/returns"), and DatasetName builds them from the
// owner's agency id and the dataset id. Dataset ids are unique per owner,
// so two agencies may each have a dataset "returns".
type DatasetClient struct {
	rpc exchangev1.DatasetServiceClient
	// link is the connection the calls go over; follow resets its
	// connect backoff when a stream that delivered breaks.
	link backoffResetter
}

// Create defines the dataset d under parent, the caller's own agency
// ("agencies/ilo"), with the given id, and returns it as stored: its name
// is "{parent}/datasets/{id}" and the caller's agency is its owner. An id
// the caller already uses for one of its datasets fails with
// ALREADY_EXISTS; other agencies' datasets never conflict. A parent other
// than the caller's agency fails with PERMISSION_DENIED. Output-only
// fields of d are ignored. The call carries a request id (random unless
// WithRequestID is given) and is retried on UNAVAILABLE, so it never
// creates twice. With ValidateOnly the exchange checks the definition and
// returns what it would store, without storing anything.
func (c *DatasetClient) Create(ctx context.Context, parent, id string, d *exchangev1.Dataset, opts ...CreateOption) (*exchangev1.Dataset, error) {
	s, err := newCreateSettings("CreateDataset", true, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.CreateDataset(ctx, &exchangev1.CreateDatasetRequest{
		Parent:       parent,
		DatasetId:    id,
		Dataset:      d,
		RequestId:    s.requestID,
		ValidateOnly: s.validateOnly,
	})
	if err != nil {
		return nil, err
	}
	return resp.GetDataset(), nil
}

// Get returns the definition of the dataset with the given name, for
// example "agencies/ilo/datasets/returns", with its locks and lock
// history.
func (c *DatasetClient) Get(ctx context.Context, name string) (*exchangev1.Dataset, error) {
	resp, err := c.rpc.GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetDataset(), nil
}

// Datasets iterates over the datasets the caller may read or write, by
// owner id, then dataset id, fetching pages as needed. On error the
// iterator yields the error once and stops.
func (c *DatasetClient) Datasets(ctx context.Context) iter.Seq2[*exchangev1.Dataset, error] {
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Dataset, string, error) {
		resp, err := c.rpc.ListDatasets(ctx, &exchangev1.ListDatasetsRequest{PageToken: token})
		return resp.GetDatasets(), resp.GetNextPageToken(), err
	})
}

// Update changes the definition d.Name to the values in d and returns it
// as stored. d must carry the etag as last read; if the dataset changed
// since, the call fails with ABORTED (reason ETAG_MISMATCH): read it
// again and reapply. paths names the fields to change ("title",
// "schema", "contributors", ...); none means every field that can
// change, so that fields d leaves empty are cleared. The period type
// never changes, and a schema change that could invalidate stored rows is
// refused (INVALID_ARGUMENT naming the field): only new optional
// categories and measures, new allowed values and codes, wider bounds,
// titles and HXL tags are allowed. Owner only; not retried.
func (c *DatasetClient) Update(ctx context.Context, d *exchangev1.Dataset, paths ...string) (*exchangev1.Dataset, error) {
	resp, err := c.rpc.UpdateDataset(ctx, &exchangev1.UpdateDatasetRequest{Dataset: d, UpdateMask: updateMask(paths)})
	if err != nil {
		return nil, err
	}
	return resp.GetDataset(), nil
}

// Write writes (upserts) or deletes up to MaxRowWrites rows of the
// dataset with the given name in one call. A row's key is its period,
// location and category values plus the caller's agency (the exchange
// sets the contributor from the certificate); writing a key again
// replaces the row, and RowWrite.Delete deletes it. Output-only fields of
// the rows are ignored.
//
// Each write is checked against the schema on its own and reported in
// the response at the same index: a rejected write (with its code, such
// as INVALID_ARGUMENT or, for a locked period, FAILED_PRECONDITION, and
// the fields at fault, such as "writes[3].row.values.returned") stores
// nothing of its row, while the valid writes of the call are stored. The
// call as a whole fails only when it cannot be made at all: an unknown
// dataset (NOT_FOUND), a caller who is not a contributor
// (PERMISSION_DENIED), too many writes (INVALID_ARGUMENT). An empty
// writes makes no call.
//
// WriteDatasetRows carries no request id, yet Write is retried on
// UNAVAILABLE: upserts and deletions keyed by row are idempotent by
// nature, so a repeat after a lost answer leaves the rows as one call
// would. The results then describe the repeat: a deletion the first
// attempt made is reported NOT_FOUND (no such row to delete), and a row
// whose period was locked in between is reported FAILED_PRECONDITION
// though the first attempt stored it. A row written again exactly as it
// is stored changes nothing: no new revision, so incremental pulls and
// watches do not see it again, and a repeat stores each row once.
func (c *DatasetClient) Write(ctx context.Context, dataset string, writes []*exchangev1.RowWrite) (*exchangev1.WriteDatasetRowsResponse, error) {
	if len(writes) == 0 {
		return &exchangev1.WriteDatasetRowsResponse{}, nil
	}
	return c.rpc.WriteDatasetRows(ctx, &exchangev1.WriteDatasetRowsRequest{Dataset: dataset, Writes: writes})
}

// Pull streams the rows that req selects (a whole dataset, or only the
// changes since req.SinceRevision with deletions as tombstones; filtered
// by period range, locations, contributors and category values) and
// calls fn with each message, in order, on the caller's goroutine. req is
// not changed.
//
// When the stream breaks (UNAVAILABLE), Pull reconnects (at once when the
// stream had delivered something for 100ms or more, with backoff
// otherwise) and resumes after the last message fn received, with that message's
// resume_token, so that no row is lost or delivered twice. It gives up
// after four attempts in a row that receive nothing and returns the last
// error; a stream that delivers something starts the count again.
//
// Every message fn receives carries the revision of the first message of
// the pull, also after a reconnection (whose stream reports a later
// one): pull again since that revision to get every change made while
// this pull ran, including changes to rows delivered before the break.
//
// Pull returns nil when the last message has been delivered, fn's error
// unchanged when fn fails, a CANCELED or DEADLINE_EXCEEDED status error
// when ctx ends, and any other error from the exchange unchanged.
// Config.Timeout does not bound Pull; ctx does. OnReconnect tells of
// reconnections.
//
// To continue a pull in another process, use ResumeFrom: Pull then
// saves its position (the resume_token of the last message fn handled
// and the revision of the pull's first message) after each message, and
// a later Pull of the same request resumes from it, its messages
// carrying the first message's revision still; a pull that completes
// deletes the saved position. (Without a CursorStore, pass the
// resume_token of the last message handled in req.ResumeToken with the
// other fields unchanged, and keep the revision of the original pull's
// first message.)
func (c *DatasetClient) Pull(ctx context.Context, req *exchangev1.PullDatasetRowsRequest, fn func(*exchangev1.PullDatasetRowsResponse) error, opts ...WatchOption) error {
	if req == nil {
		return status.Error(codes.InvalidArgument, "client: pull: no request")
	}
	cur := &pullCursor{req: proto.CloneOf(req)}
	s := newWatchSettings(opts)
	var keeper *cursorKeeper
	if s.cursors != nil {
		keeper = newCursorKeeper(s, positionPull, PullCursorName(s.cursorName, req))
	}
	p, ok, err := keeper.load()
	if err != nil {
		return err
	}
	if ok {
		cur.req.ResumeToken, cur.started, cur.revision = p.Token, true, p.Revision
	}
	cur.keeper = keeper
	if err := follow(ctx, opts, maxAttempts, c.link, func() (bool, error) { return c.pullOnce(ctx, cur, fn) }, func() int64 { return cur.revision }); err != nil {
		return err
	}
	return keeper.clear()
}

// pullCursor tracks how far a pull has delivered rows.
type pullCursor struct {
	// req is the request to resume with: the caller's, with the
	// resume_token of the last message delivered.
	req *exchangev1.PullDatasetRowsRequest
	// started is set once the first message has arrived, revision then
	// holds its revision.
	started  bool
	revision int64
	// finished is set once the last message (without a resume token)
	// has been delivered.
	finished bool
	// keeper saves the position after each message but the last; nil
	// without ResumeFrom.
	keeper *cursorKeeper
}

// pullOnce runs one stream from the cursor until it ends (nil) or fails,
// and reports whether it delivered anything.
func (c *DatasetClient) pullOnce(ctx context.Context, cur *pullCursor, fn func(*exchangev1.PullDatasetRowsResponse) error) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.PullDatasetRows(ctx, cur.req)
	if err != nil {
		return false, err
	}
	for {
		msg, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return progressed, nil
		case err != nil && cur.finished:
			// Everything arrived; the stream broke on its way out.
			return progressed, nil
		case err != nil:
			return progressed, err
		}
		progressed = true
		if !cur.started {
			cur.started, cur.revision = true, msg.GetRevision()
		} else {
			msg.Revision = cur.revision
		}
		token := msg.GetResumeToken()
		if err := fn(msg); err != nil {
			return progressed, callbackError{err}
		}
		cur.req.ResumeToken, cur.finished = token, token == ""
		if !cur.finished {
			if err := cur.keeper.save(savedPosition{Token: token, Revision: cur.revision}); err != nil {
				return progressed, callbackError{err}
			}
		}
	}
}

// Aggregate totals the integer and decimal measures of the rows req
// selects, grouped by req.GroupBy ("period", "location", "contributor" or
// a category key; none gives one grand total), one cell per group that
// has rows. Cells with a total below req.SuppressBelow are left out and
// counted in SuppressedCells. Members outside the dataset's readers get
// aggregates only when the owner made them public, and then totals of
// rows whose small values were rounded at random to 0 or the
// RoundingBase the response gives, without row counts
// (docs/disclosure.md).
func (c *DatasetClient) Aggregate(ctx context.Context, req *exchangev1.AggregateDatasetRowsRequest) (*exchangev1.AggregateDatasetRowsResponse, error) {
	return c.rpc.AggregateDatasetRows(ctx, req)
}

// Lock approves a period (a label such as "2026-03") of the dataset with
// the given name: from then on no contributor can write or delete its
// rows. It returns the dataset with the lock. A period already locked
// fails with FAILED_PRECONDITION. Owner only; not retried (read the
// dataset again after an UNAVAILABLE error to see whether it took
// effect).
func (c *DatasetClient) Lock(ctx context.Context, dataset, period string) (*exchangev1.Dataset, error) {
	resp, err := c.rpc.LockDatasetPeriod(ctx, &exchangev1.LockDatasetPeriodRequest{Dataset: dataset, Period: period})
	if err != nil {
		return nil, err
	}
	return resp.GetDataset(), nil
}

// Unlock reopens a locked period for reason, which the dataset's lock
// history keeps, and returns the dataset without the lock. A period not
// locked fails with FAILED_PRECONDITION. Owner only; not retried.
func (c *DatasetClient) Unlock(ctx context.Context, dataset, period, reason string) (*exchangev1.Dataset, error) {
	resp, err := c.rpc.UnlockDatasetPeriod(ctx, &exchangev1.UnlockDatasetPeriodRequest{Dataset: dataset, Period: period, Reason: reason})
	if err != nil {
		return nil, err
	}
	return resp.GetDataset(), nil
}

// Completeness reports, for one period, each contributor's rows, the
// locations it has submitted and the expected locations it has not, and
// whether the period is locked.
func (c *DatasetClient) Completeness(ctx context.Context, dataset, period string) (*exchangev1.GetDatasetCompletenessResponse, error) {
	return c.rpc.GetDatasetCompleteness(ctx, &exchangev1.GetDatasetCompletenessRequest{Dataset: dataset, Period: period})
}

// WatchRows follows the row changes of the dataset with the given name
// after fromRevision, then live, and calls fn with each message, in
// order, on the caller's goroutine. A message carries changed rows
// (tombstones for deletions, Deleted set) in revision order, or none: a
// heartbeat the exchange sends when nothing changes for a while. Its
// revision is the last revision it completes: every change up to it has
// been delivered.
//
// fromRevision 0 means from now: WatchRows first reads the current
// revision (with a pull that selects no row) so that a reconnection
// before the first message misses nothing. To follow a pull, pass the
// pull's revision.
//
// When the stream breaks (UNAVAILABLE, or the server ends it), WatchRows
// reconnects (at once when the stream had delivered something for 100ms
// or more; otherwise with backoff, 100ms doubling to 10s, with jitter,
// for as long as ctx allows) and resumes after the highest revision a message
// reported. No change is lost, and rows of revisions delivered
// completely are not delivered again; but the rows of the last revision
// begun may be: the exchange cannot say which of them were sent, since a
// row rewritten meanwhile moves to a later revision. Apply rows as
// upserts keyed by contributor, period, location and categories (as the
// exchange stores them) and a repeat changes nothing.
//
// WatchRows returns when ctx is done (a CANCELED or DEADLINE_EXCEEDED
// status error), when fn returns an error (that error, unchanged), or on
// any other error from the exchange, unchanged. Config.Timeout does not
// bound it; ctx does.
//
// To resume in another process, use ResumeFrom: WatchRows then saves its
// position after each message fn handled, and starts from the saved
// position, if any, instead of fromRevision, as it does when it
// reconnects: no change is lost, and only rows of the last revision
// begun may be delivered again. (Without a CursorStore,
// keep the revision of the last message handled and pass it as
// fromRevision.)
func (c *DatasetClient) WatchRows(ctx context.Context, dataset string, fromRevision int64, fn func(*exchangev1.WatchDatasetRowsResponse) error, opts ...WatchOption) error {
	if fromRevision < 0 {
		return status.Errorf(codes.InvalidArgument, "client: watch rows from revision %d: want 0 (from now) or a revision", fromRevision)
	}
	cur := &rowCursor{done: fromRevision, pinned: fromRevision > 0}
	s := newWatchSettings(opts)
	keeper := newCursorKeeper(s, positionRowWatch, s.cursorName)
	p, ok, err := keeper.load()
	if err != nil {
		return err
	}
	if ok {
		cur.done, cur.high, cur.pinned = p.Done, p.High, true
	}
	cur.keeper = keeper
	fn = savingAfter(keeper, fn, func() savedPosition { return savedPosition{Done: cur.done, High: cur.high} })
	return follow(ctx, opts, 0, c.link, func() (bool, error) { return c.watchRowsOnce(ctx, dataset, cur, fn) }, func() int64 { return cur.done })
}

// rowCursor tracks how far a row watch has delivered changes.
type rowCursor struct {
	// done is the highest revision a message reported complete; a new
	// stream starts after it.
	done int64
	// high is the highest revision of a row delivered. Rows arrive in
	// revision order, so every row of a lower revision was delivered.
	high int64
	// pinned is set once done names a revision ("from now" resolved).
	pinned bool
	// keeper saves the position once "now" is pinned, before any row;
	// nil without ResumeFrom.
	keeper *cursorKeeper
}

// accept drops from msg the rows delivered before and reports whether
// msg is worth delivering: it has rows left, or it is a heartbeat.
func (c *rowCursor) accept(msg *exchangev1.WatchDatasetRowsResponse) bool {
	rows := msg.GetRows()
	kept := rows[:0]
	for _, r := range rows {
		if r.GetRevision() >= c.high {
			kept = append(kept, r)
			c.high = r.GetRevision()
		}
	}
	msg.Rows = kept
	c.done = max(c.done, msg.GetRevision())
	return len(rows) == 0 || len(kept) > 0
}

// watchRowsOnce runs one stream from the cursor until it fails, and
// reports whether it received anything.
func (c *DatasetClient) watchRowsOnce(ctx context.Context, dataset string, cur *rowCursor, fn func(*exchangev1.WatchDatasetRowsResponse) error) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !cur.pinned {
		rev, err := c.currentRevision(ctx, dataset)
		if err != nil {
			return false, err
		}
		cur.done, cur.pinned = rev, true
		if err := cur.keeper.save(savedPosition{Done: cur.done, High: cur.high}); err != nil {
			return false, callbackError{err}
		}
	}
	stream, err := c.rpc.WatchDatasetRows(ctx, &exchangev1.WatchDatasetRowsRequest{Dataset: dataset, StartRevision: cur.done})
	if err != nil {
		return false, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return progressed, err
		}
		progressed = true
		if !cur.accept(msg) {
			continue
		}
		if err := fn(msg); err != nil {
			return progressed, callbackError{err}
		}
	}
}

// currentRevision returns the exchange's current revision as a pull
// reports it: a pull of the changes after the largest revision there can
// be selects no row and costs one short message.
func (c *DatasetClient) currentRevision(ctx context.Context, dataset string) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.PullDatasetRows(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: dataset, SinceRevision: math.MaxInt64, PageSize: 1})
	if err != nil {
		return 0, err
	}
	msg, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return 0, status.Error(codes.Internal, "client: the exchange answered a pull without a message")
	}
	if err != nil {
		return 0, err
	}
	return msg.GetRevision(), nil
}
