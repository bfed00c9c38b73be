package client

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Reconnection backoff of Watch: the first wait, doubled after each failed
// attempt up to the last, with 20% jitter; back to the first once a stream
// delivers something, and counted from that stream's start (follow).
const (
	watchBackoffFirst = retryBackoff
	watchBackoffMax   = 10 * time.Second
)

// WatchOption adjusts Watch, DatasetClient.WatchRows and DatasetClient.Pull.
type WatchOption func(*watchSettings)

// watchSettings are the settings WatchOptions change.
type watchSettings struct {
	onReconnect func(err error, wait time.Duration, revision int64)
	// cursors and cursorName are ResumeFrom's store and name.
	cursors    CursorStore
	cursorName string
}

// OnReconnect makes Watch (and DatasetClient.WatchRows and Pull) call fn
// each time the stream breaks and the call is about to reconnect: err is
// why, wait how long it waits first, and revision the revision it will
// resume after (for Pull, the revision of the pull, 0 before its first
// message). fn runs on the caller's goroutine and should return quickly;
// use it to tell people the stream is reconnecting.
func OnReconnect(fn func(err error, wait time.Duration, revision int64)) WatchOption {
	return func(s *watchSettings) { s.onReconnect = fn }
}

// Watch follows events on the caller's referrals (a referral sent to or by
// it, a change to one it sent or received) after fromRevision, then live,
// and calls fn with each, in order, on the caller's goroutine. Events carry
// referral summaries without identifying details. fn also receives the
// heartbeats (kind REFERRAL_EVENT_KIND_HEARTBEAT, no referral) the exchange
// sends when nothing concerns the caller for a while; their revision says
// how far the watch has got.
//
// fromRevision 0 means from now: Watch first reads the current revision
// (one ListReferrals call for a single summary) so that a reconnection
// before the first event misses nothing. To follow a list, pass the list's
// revision (Snapshot returns it).
//
// When the stream breaks (UNAVAILABLE, or the server ends it), Watch
// reconnects (at once when the stream had delivered something for 100ms or
// more; otherwise with backoff, 100ms doubling to 10s, with jitter, for as
// long as ctx allows) and resumes after the last revision it delivered
// completely, skipping the events of a revision it had begun, so that no
// event is lost and none is delivered twice. Several events can share one
// revision (forwarding a referral changes two); a revision is complete
// once a later one or a heartbeat arrives.
//
// Watch returns when ctx is done (a CANCELED or DEADLINE_EXCEEDED status
// error), when fn returns an error (that error, unchanged), or on any other
// error from the exchange, unchanged. OUT_OF_RANGE means fromRevision, or
// the revision it had reached when it reconnected, is older than the
// change log keeps: list again with Snapshot and watch from its revision.
// Config.Timeout does not bound Watch; ctx does.
//
// With ResumeFrom, Watch keeps its position in a CursorStore after each
// event fn handled, and starts from the saved position, if any, instead of
// fromRevision: a watch restarted in another process resumes after the
// last event handled as a reconnection does, skipping the events of the
// revision it had begun that fn handled.
func (c *ReferralClient) Watch(ctx context.Context, fromRevision int64, fn func(*exchangev1.WatchReferralsResponse) error, opts ...WatchOption) error {
	if fromRevision < 0 {
		return status.Errorf(codes.InvalidArgument, "client: watch from revision %d: want 0 (from now) or a revision", fromRevision)
	}
	cur := &watchCursor{done: fromRevision}
	s := newWatchSettings(opts)
	keeper := newCursorKeeper(s, positionWatch, s.cursorName)
	if err := cur.restore(keeper); err != nil {
		return err
	}
	cur.keeper = keeper
	fn = savingAfter(keeper, fn, cur.position)
	return follow(ctx, opts, 0, c.link, func() (bool, error) { return c.watchOnce(ctx, cur, fn) }, func() int64 { return cur.done })
}

// follow runs once, a stream from where the previous one stopped, until
// it ends (once returns nil), fn fails, ctx ends or the stream fails with
// an error that resumable does not accept; between streams it tells
// OnReconnect how long it waits and the position it resumes after.
//
// A stream that delivered something resumes at once: the link carried it
// a moment ago, so waiting would only lengthen the catch-up. The first
// wait (100ms, with jitter) is counted from the start of that stream, so
// a stream that breaks sooner than that after delivering waits out the
// rest, and streams are never opened more often than every 100ms or so,
// even through a link that breaks each one after its first message. Each
// break after a delivery also resets link's connect backoff, so that a
// connection gRPC had given up on for a while (another replica of
// Config.Addresses) is tried again now rather than when its backoff ends.
// Attempts that deliver nothing wait with backoff: 100ms doubling to 10s,
// with jitter. attempts > 0 gives up after that many streams in a row
// that delivered nothing, returning the last error; 0 never gives up
// while ctx allows. Watch, DatasetClient.Pull, DatasetClient.WatchRows,
// PlanClient.Watch and AuditClient.Watch share it.
func follow(ctx context.Context, opts []WatchOption, attempts int, link backoffResetter, once func() (progressed bool, err error), position func() int64) error {
	var s watchSettings
	for _, o := range opts {
		o(&s)
	}
	wait := watchBackoffFirst
	failures := 0
	for {
		started := time.Now()
		progressed, err := once()
		var fnErr callbackError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &fnErr):
			return fnErr.err
		case ctx.Err() != nil:
			return status.FromContextError(ctx.Err()).Err()
		case !resumable(err):
			return err
		}
		if progressed {
			wait, failures = watchBackoffFirst, 0
			if link != nil {
				link.ResetConnectBackoff()
			}
		}
		if failures++; attempts > 0 && failures >= attempts {
			return err
		}
		pause := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		if progressed {
			// The first wait runs from the start of the stream that
			// delivered; it has usually passed already.
			pause = max(0, pause-time.Since(started))
		} else {
			wait = min(2*wait, watchBackoffMax)
		}
		if s.onReconnect != nil {
			s.onReconnect(err, pause, position())
		}
		if pause == 0 {
			continue
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
}

// backoffResetter is what follow needs of the client's connection
// (*grpc.ClientConn): a way to have it connect again at once.
type backoffResetter interface {
	ResetConnectBackoff()
}

// callbackError carries an error returned by the fn of Watch, Pull or
// WatchRows, so that it is told apart from the stream's errors.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// resumable reports whether a watch that failed with err may reconnect: the
// stream broke (UNAVAILABLE) or the server ended it.
func resumable(err error) bool {
	return errors.Is(err, io.EOF) || status.Code(err) == codes.Unavailable
}

// watchOnce runs one stream from the cursor until it fails, and reports
// whether it delivered anything (an event or a heartbeat).
func (c *ReferralClient) watchOnce(ctx context.Context, cur *watchCursor, fn func(*exchangev1.WatchReferralsResponse) error) (progressed bool, err error) {
	cur.reconnect()
	if cur.done == 0 && cur.partial == 0 {
		// From now: pin "now" to a revision, so that a reconnection does
		// not skip what happened meanwhile. (On an exchange that has never
		// changed the revision stays 0.)
		resp, err := c.rpc.ListReferrals(ctx, &exchangev1.ListReferralsRequest{PageSize: 1})
		if err != nil {
			return false, err
		}
		cur.done = resp.GetRevision()
		if err := cur.keeper.save(cur.position()); err != nil {
			return false, callbackError{err}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{StartRevision: cur.done})
	if err != nil {
		return false, err
	}
	return deliver(cur, stream.Recv, func(ev *exchangev1.WatchReferralsResponse) bool {
		return ev.GetKind() == exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT
	}, fn)
}

// revisioned is an event of a watch stream that carries a revision
// (WatchReferralsResponse, WatchPlansResponse).
type revisioned interface {
	GetRevision() int64
}

// deliver passes the events recv returns through the cursor to fn until
// recv fails, and reports whether the stream delivered anything (an event
// or a heartbeat, which heartbeat tells apart). An error of fn comes back
// as a callbackError. Referral and plan watches share it.
func deliver[E revisioned](cur *watchCursor, recv func() (E, error), heartbeat func(E) bool, fn func(E) error) (progressed bool, err error) {
	for {
		ev, err := recv()
		if err != nil {
			return progressed, err
		}
		progressed = true
		if !cur.advance(ev.GetRevision(), heartbeat(ev)) {
			continue
		}
		if err := fn(ev); err != nil {
			return progressed, callbackError{err}
		}
	}
}

// watchCursor tracks how far a watch has delivered events, so that a new
// stream resumes without losing or repeating any. The exchange sends the
// events of one revision together and in the same order on every stream,
// and a stream started after revision R sends nothing of R.
type watchCursor struct {
	// done is the revision up to which every event was delivered; a new
	// stream starts after it.
	done int64
	// partial is a revision after done some of whose events were
	// delivered (sent of them), and which may have more; 0 if none.
	partial int64
	sent    int
	// skip is how many events of partial a new stream replays that were
	// delivered already.
	skip int
	// keeper saves the position once "now" is pinned, before any event;
	// nil without ResumeFrom.
	keeper *cursorKeeper
}

// advance records an event of revision rev (a heartbeat, when heartbeat
// is set) and reports whether to deliver it.
func (c *watchCursor) advance(rev int64, heartbeat bool) bool {
	if heartbeat {
		if rev < max(c.done, c.partial) {
			return false
		}
		// Every event up to rev has been sent.
		c.done, c.partial, c.sent, c.skip = rev, 0, 0, 0
		return true
	}
	switch {
	case rev <= c.done:
		return false
	case rev == c.partial:
		if c.skip > 0 {
			c.skip--
			return false
		}
		c.sent++
		return true
	default:
		// A new revision: the one begun before is complete.
		if c.partial != 0 {
			c.done = c.partial
		}
		c.partial, c.sent, c.skip = rev, 1, 0
		return true
	}
}

// reconnect prepares the cursor for a new stream, which replays the
// revision begun but perhaps not finished. (Before the first stream it
// changes nothing.)
func (c *watchCursor) reconnect() {
	c.skip = c.sent
}

// restore sets the cursor to the position k saved, if any.
func (c *watchCursor) restore(k *cursorKeeper) error {
	p, ok, err := k.load()
	if ok {
		c.done, c.partial, c.sent = p.Done, p.Partial, p.Sent
	}
	return err
}

// position is the cursor as a saved position.
func (c *watchCursor) position() savedPosition {
	return savedPosition{Done: c.done, Partial: c.partial, Sent: c.sent}
}
