package server

// One decoding and one encoding of each referral event for every watcher.
//
// Every WatchReferrals stream follows the same change log. Read by each
// stream on its own, each entry was decoded once per watcher and its
// summary encoded once per watcher: with 100 watchers of one agency, 100
// decodings and 100 encodings of the same bytes, two thirds of the
// server's CPU in the fan-out benchmark. So the streams share the newest
// entries of the log (referralEvents): the first stream to need an entry
// reads it from the store, decodes it and encodes the event it makes, and
// every other stream sends those bytes as they are (encodedMessage).
//
// What a stream may see is decided for each stream as before: an event is
// sent only to the referral's sender and receiver (sideOf), and what is
// shared is the summary every party gets (view without full: no
// identifying details, details_withheld set), the same for both. Only the
// overdue flag depends on when the event is sent, so a shared event whose
// flag changed since it was encoded is encoded again for that stream.
//
// The cache holds every log entry after its first revision up to its last
// one, without gaps: it grows only by a read of the store that starts
// where it ends, so a stream served from it misses nothing the store
// would have given it. A stream further behind reads the store itself. The
// compacted horizon is checked in the store on every page served from
// memory, so that a stream behind it fails as before (KindOutOfRange).
//
// The cache may also stop short of the store: it grows only when a stream
// asks past its end, and a commit that no stream was awake to read is in
// the store alone. A stream waits for the next commit after a page that
// is not full, so such a page must hold every change committed before the
// stream asked (the store's Revision then). A page from the cache is
// served only when it is full or the cache is known complete up to that
// revision; otherwise the stream first reads the missing entries into the
// cache. Served short, a watcher waited until its next heartbeat (30 s by
// default) for a change already committed.

import (
	"context"
	"sort"
	"sync"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// maxCachedWatchEvents is how many of the newest change-log entries the
// watch streams share: 16 pages of watchPage, a few MiB of summaries.
const maxCachedWatchEvents = 16 * watchPage

// encodedMessage is a response already encoded, which requestCodec sends
// as it is: one encoding shared by every stream that sends it. Its bytes
// are never changed.
type encodedMessage struct {
	bytes []byte
}

// buffer is the message's bytes for gRPC, which frees nothing it did not
// allocate (a SliceBuffer's Free does nothing).
func (m *encodedMessage) buffer() mem.BufferSlice { return mem.BufferSlice{mem.SliceBuffer(m.bytes)} }

// referralEvent is one change-log entry as WatchReferrals sends it.
type referralEvent struct {
	revision int64
	// summary is the referral as every party to it sees it in a watch,
	// nil when the entry is not a referral's. Shared: never changed.
	summary *exchangev1.Referral
	kind    exchangev1.ReferralEventKind
	overdue bool            // the flag encoded in message
	message *encodedMessage // the WatchReferralsResponse
}

// referralEvents is the newest part of the change log, decoded and
// encoded once for every watch stream.
type referralEvents struct {
	store   *store.Store
	service *referralService // view and overdue
	fill    sync.Mutex       // one stream reads the store for the cache at a time

	mu sync.Mutex
	// events holds, in revision order, every log entry with a revision
	// after from, up to the last one's; none when !started.
	started bool
	from    int64
	events  []referralEvent
	// complete is a revision up to which the store had no entry after the
	// last event when the cache last read it: every log entry after from
	// up to max(complete, the last event's revision) is in events.
	complete int64
}

// after returns up to limit events of the log entries after rev, in
// order, and fails as store.Changes does. A page of fewer than limit
// events holds every entry committed before the call: the caller took the
// store's Changed channel before calling, and waits on it next.
func (l *referralEvents) after(ctx context.Context, rev int64, limit int) ([]referralEvent, error) {
	latest := l.store.Revision() // every change committed before the call is at or below it
	if evs, ok := l.cached(rev, limit, latest); ok {
		return evs, l.store.CheckNotCompacted(ctx, rev)
	}
	l.fill.Lock()
	defer l.fill.Unlock()
	if evs, ok := l.cached(rev, limit, latest); ok { // another stream read them meanwhile
		return evs, l.store.CheckNotCompacted(ctx, rev)
	}
	if end, ok := l.extendsFrom(rev); ok {
		// rev is in the cache, which stops short of the store: read on
		// from the cache's end, for this stream and the others.
		if err := l.extend(ctx, end, limit); err != nil {
			return nil, err
		}
		if evs, ok := l.cached(rev, limit, latest); ok {
			return evs, l.store.CheckNotCompacted(ctx, rev)
		}
	}
	read := l.store.Revision()
	changes, err := l.store.Changes(ctx, rev, limit)
	if err != nil {
		return nil, err
	}
	evs, err := l.eventsOf(changes)
	if err != nil {
		return nil, err
	}
	l.keep(rev, evs, len(evs) < limit, read)
	return evs, nil
}

// cached returns the events after rev from the cache, when it holds every
// entry after rev (from its first revision on) and either limit of them
// or every one up to latest.
func (l *referralEvents) cached(rev int64, limit int, latest int64) ([]referralEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.events)
	if !l.started || rev < l.from || n == 0 {
		return nil, false
	}
	i := sort.Search(n, func(i int) bool { return l.events[i].revision > rev })
	j := min(n, i+limit)
	if j-i < limit && max(l.complete, l.events[n-1].revision) < latest {
		return nil, false // the store may hold entries after the cache's end
	}
	return l.events[i:j:j], true
}

// extendsFrom reports where the cache ends when it holds every entry
// after rev up to its end, so that reading on from there serves rev.
func (l *referralEvents) extendsFrom(rev int64) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.events)
	if !l.started || rev < l.from || n == 0 {
		return 0, false
	}
	end := l.events[n-1].revision
	return end, rev <= max(end, l.complete)
}

// extend reads up to limit log entries after end, where the cache ends,
// into the cache. Only a holder of fill calls it, so the cache still ends
// at end.
func (l *referralEvents) extend(ctx context.Context, end int64, limit int) error {
	read := l.store.Revision() // a read begun after this sees every change up to it
	changes, err := l.store.Changes(ctx, end, limit)
	if err != nil {
		return err
	}
	evs, err := l.eventsOf(changes)
	if err != nil {
		return err
	}
	l.keep(end, evs, len(evs) < limit, read)
	return nil
}

// eventsOf makes the events of change-log entries.
func (l *referralEvents) eventsOf(changes []*exchangev1.Change) ([]referralEvent, error) {
	evs := make([]referralEvent, 0, len(changes))
	for _, ch := range changes {
		ev, err := l.service.eventOf(ch)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// keep adds evs, every log entry after rev up to the last of them, to the
// cache: at its end when rev is where the cache ends, in its place when
// rev is past it (or the cache is empty). all says the read found every
// entry after rev that was committed up to read (it returned fewer than
// it asked for). Entries older than the cache (a stream replaying from
// further back) are not kept, and a read that found nothing adds nothing:
// a new stream starts past the last entry (at a safe revision), and must
// not empty the cache the others share; a read from the cache's end that
// found nothing still tells how far the cache is complete.
func (l *referralEvents) keep(rev int64, evs []referralEvent, all bool, read int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	end := l.from
	if n := len(l.events); n > 0 {
		end = l.events[n-1].revision
	}
	switch {
	case len(evs) == 0:
		if all && l.started && rev == end {
			l.complete = max(l.complete, read)
		}
		return
	case l.started && rev == end:
		l.events = append(l.events, evs...)
	case !l.started || rev > end:
		l.started, l.from, l.events, l.complete = true, rev, append([]referralEvent(nil), evs...), 0
	default:
		return
	}
	if all {
		l.complete = max(l.complete, read)
	}
	if over := len(l.events) - maxCachedWatchEvents; over > 0 {
		l.from = l.events[over-1].revision
		l.events = append([]referralEvent(nil), l.events[over:]...)
	}
}

// eventOf makes the event a change-log entry sends: for a referral, its
// summary (view without full) and that summary's encoding.
func (s *referralService) eventOf(ch *exchangev1.Change) (referralEvent, error) {
	ev := referralEvent{revision: ch.GetRevision()}
	r := new(exchangev1.Referral)
	if !ch.GetResource().MessageIs(r) {
		return ev, nil
	}
	if err := ch.GetResource().UnmarshalTo(r); err != nil {
		return referralEvent{}, err
	}
	ev.kind = exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_UPDATED
	if ch.GetKind() == exchangev1.ChangeKind_CHANGE_KIND_CREATED {
		ev.kind = exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_CREATED
	}
	// A summary is the same for every caller (view strips what only a
	// full view shows, whoever asks), so no caller is needed here.
	ev.summary = s.view(Caller{}, r, false)
	ev.overdue = ev.summary.GetOverdue()
	b, err := proto.Marshal(&exchangev1.WatchReferralsResponse{Revision: ev.revision, Kind: ev.kind, Referral: ev.summary})
	if err != nil {
		return referralEvent{}, err
	}
	ev.message = &encodedMessage{bytes: b}
	return ev, nil
}

// messageFor returns what to send for ev now: its shared encoding, or,
// when the referral became overdue (or stopped being so) since, a
// response of its own with the flag as it is now.
func (s *referralService) messageFor(ev referralEvent) any {
	if s.overdue(ev.summary) == ev.overdue {
		return ev.message
	}
	r := proto.Clone(ev.summary).(*exchangev1.Referral)
	r.Overdue = !ev.overdue
	return &exchangev1.WatchReferralsResponse{Revision: ev.revision, Kind: ev.kind, Referral: r}
}
