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
}

// after returns up to limit events of the log entries after rev, in
// order, and fails as store.Changes does.
func (l *referralEvents) after(ctx context.Context, rev int64, limit int) ([]referralEvent, error) {
	if evs, ok := l.cached(rev, limit); ok {
		return evs, l.store.CheckNotCompacted(ctx, rev)
	}
	l.fill.Lock()
	defer l.fill.Unlock()
	if evs, ok := l.cached(rev, limit); ok { // another stream read them meanwhile
		return evs, l.store.CheckNotCompacted(ctx, rev)
	}
	changes, err := l.store.Changes(ctx, rev, limit)
	if err != nil {
		return nil, err
	}
	evs := make([]referralEvent, 0, len(changes))
	for _, ch := range changes {
		ev, err := l.service.eventOf(ch)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	l.keep(rev, evs)
	return evs, nil
}

// cached returns the events after rev from the cache, when it holds every
// entry after rev and at least one of them.
func (l *referralEvents) cached(rev int64, limit int) ([]referralEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.events)
	if !l.started || rev < l.from || n == 0 || rev >= l.events[n-1].revision {
		return nil, false
	}
	i := sort.Search(n, func(i int) bool { return l.events[i].revision > rev })
	j := min(n, i+limit)
	return l.events[i:j:j], true
}

// keep adds evs, every log entry after rev up to the last of them, to the
// cache: at its end when rev is where the cache ends, in its place when
// rev is past it (or the cache is empty). Entries older than the cache
// (a stream replaying from further back) are not kept, and a read that
// found nothing changes nothing: a new stream starts past the last entry
// (at a safe revision), and must not empty the cache the others share.
func (l *referralEvents) keep(rev int64, evs []referralEvent) {
	if len(evs) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	end := l.from
	if n := len(l.events); n > 0 {
		end = l.events[n-1].revision
	}
	switch {
	case l.started && rev == end:
		l.events = append(l.events, evs...)
	case !l.started || rev > end:
		l.started, l.from, l.events = true, rev, append([]referralEvent(nil), evs...)
	default:
		return
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
