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
// delivers something.
const (
	watchBackoffFirst = retryBackoff
	watchBackoffMax   = 10 * time.Second
)

// WatchOption adjusts Watch.
type WatchOption func(*watchSettings)

// watchSettings are the settings WatchOptions change.
type watchSettings struct {
	onReconnect func(err error, wait time.Duration, revision int64)
}

// OnReconnect makes Watch call fn each time the stream breaks and Watch is
// about to reconnect: err is why, wait how long it waits first, and
// revision the revision it will resume after. fn runs on Watch's goroutine
// and should return quickly; use it to tell people the watch is
// reconnecting.
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
// reconnects with backoff (100ms doubling to 10s, with jitter, for as long
// as ctx allows) and resumes after the last revision it delivered
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
// To resume in another process, keep the revision of the last heartbeat,
// or of the last event minus one (and expect to see again the events of
// that event's revision delivered before it).
func (c *ReferralClient) Watch(ctx context.Context, fromRevision int64, fn func(*exchangev1.WatchReferralsResponse) error, opts ...WatchOption) error {
	if fromRevision < 0 {
		return status.Errorf(codes.InvalidArgument, "client: watch from revision %d: want 0 (from now) or a revision", fromRevision)
	}
	var s watchSettings
	for _, o := range opts {
		o(&s)
	}
	cur := &watchCursor{done: fromRevision}
	wait := watchBackoffFirst
	for {
		progressed, err := c.watchOnce(ctx, cur, fn)
		var fnErr callbackError
		switch {
		case errors.As(err, &fnErr):
			return fnErr.err
		case ctx.Err() != nil:
			return status.FromContextError(ctx.Err()).Err()
		case !resumable(err):
			return err
		}
		if progressed {
			wait = watchBackoffFirst
		}
		jittered := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		cur.reconnect()
		if s.onReconnect != nil {
			s.onReconnect(err, jittered, cur.done)
		}
		t := time.NewTimer(jittered)
		select {
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
		wait = min(2*wait, watchBackoffMax)
	}
}

// callbackError carries an error returned by Watch's fn, so that it is
// told apart from the stream's errors.
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
	if cur.done == 0 && cur.partial == 0 {
		// From now: pin "now" to a revision, so that a reconnection does
		// not skip what happened meanwhile. (On an exchange that has never
		// changed the revision stays 0.)
		resp, err := c.rpc.ListReferrals(ctx, &exchangev1.ListReferralsRequest{PageSize: 1})
		if err != nil {
			return false, err
		}
		cur.done = resp.GetRevision()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{StartRevision: cur.done})
	if err != nil {
		return false, err
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return progressed, err
		}
		progressed = true
		if !cur.accept(ev) {
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
}

// accept records ev and reports whether to deliver it.
func (c *watchCursor) accept(ev *exchangev1.WatchReferralsResponse) bool {
	rev := ev.GetRevision()
	if ev.GetKind() == exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
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
// revision begun but perhaps not finished.
func (c *watchCursor) reconnect() {
	c.skip = c.sent
}
