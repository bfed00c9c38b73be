package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// CursorStore keeps the positions of pulls and watches by name, so that
// one stopped by a crash or a restart of the process resumes where it
// was. Load returns "" for a name with nothing saved; Save replaces the
// value durably (it has reached the disk when Save returns); Delete
// forgets a name, and forgetting an unknown one is not an error. The
// field office's local file (package client/fieldfile, File.Cursors)
// implements it; values are the client's own and only need keeping as
// they are.
type CursorStore interface {
	Load(name string) (string, error)
	Save(name, value string) error
	Delete(name string) error
}

// ResumeFrom makes DatasetClient.Pull, DatasetClient.WatchRows,
// ReferralClient.Watch and PlanClient.Watch keep their position in store
// under name, and start from the position saved there by an earlier
// call, in this process or an earlier one, instead of from the request's
// start.
//
// A watch from now (fromRevision 0) also saves the revision it pinned as
// "now" before any event arrives, so that a watch restarted before the
// first event still misses nothing from that moment on.
//
// The position is saved after fn has returned nil for a message, before
// the next message is passed to fn; a message fn failed on is not
// counted as handled. So when the process dies, the messages fn had
// handled before the last save are never passed to fn again, and at most
// the one message fn was handling (or had handled, if the process died
// between fn's return and the save) is passed again: delivery across a
// crash is at least once for that one message and exactly once for all
// the others. A caller that must not see it twice saves its own progress
// in the same store inside Save (wrap the store): Save is called with
// the position that includes the message fn just handled.
//
// For Pull the name is only the start of the key: the cursor is kept
// under PullCursorName(name, req), which adds a digest of the request's
// dataset, revision and filters, so that a pull with other filters never
// resumes from another pull's position. A pull that completes deletes
// its cursor: the next pull under the same name and filters starts over
// (pass the revision the pull reported as SinceRevision to get only what
// changed since). For watches, use a name that says what is watched
// ("watch:referrals", "watch:rows:agencies/ilo/datasets/returns",
// "watch:plans?…" with the filters), since a watch's position is kept
// under name as it is and never deleted by the watch.
//
// A saved position wins over the call's own start (the fromRevision of a
// watch, the resume_token of a pull's request): the same code resumes
// after a restart. To start from the call's own start, Delete the name
// (for Pull, PullCursorName(name, req)) first. A value under name that
// is not a position of the same kind of call (a watch's under a pull's
// name) fails the call with an error that names the cursor; nothing is
// changed.
func ResumeFrom(store CursorStore, name string) WatchOption {
	return func(s *watchSettings) { s.cursors, s.cursorName = store, name }
}

// PullCursorName is the key under which Pull with ResumeFrom(store, name)
// keeps the position of a pull of req: name, "?" and the first 16 hex
// digits of the SHA-256 of req without its resume_token, in deterministic
// protobuf binary form.
func PullCursorName(name string, req *exchangev1.PullDatasetRowsRequest) string {
	r := proto.CloneOf(req)
	r.ResumeToken = ""
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		// A request the client could not send either; its digest is of
		// its text form, which still tells requests apart.
		b = []byte(r.String())
	}
	sum := sha256.Sum256(b)
	return name + "?" + hex.EncodeToString(sum[:8])
}

// Kinds of saved positions.
const (
	positionPull     = "pull"
	positionWatch    = "watch"
	positionRowWatch = "row-watch"
)

// savedPosition is a cursor's value: how far a pull or watch had
// delivered messages to fn, as JSON.
type savedPosition struct {
	// Kind is positionPull, positionWatch or positionRowWatch.
	Kind string `json:"kind"`
	// Token and Revision are a pull's resume token and the revision of
	// its first message.
	Token    string `json:"token,omitempty"`
	Revision int64  `json:"revision,omitempty"`
	// Done, Partial and Sent are a watchCursor's fields (for a row watch,
	// Done and High are a rowCursor's).
	Done    int64 `json:"done,omitempty"`
	Partial int64 `json:"partial,omitempty"`
	Sent    int   `json:"sent,omitempty"`
	High    int64 `json:"high,omitempty"`
}

// cursorKeeper loads and saves one call's position in a CursorStore; a
// nil keeper (no ResumeFrom) keeps nothing.
type cursorKeeper struct {
	store CursorStore
	key   string
	kind  string
}

// newCursorKeeper returns the keeper of the settings' cursor for a call
// of kind under key, or nil without ResumeFrom.
func newCursorKeeper(s watchSettings, kind, key string) *cursorKeeper {
	if s.cursors == nil {
		return nil
	}
	return &cursorKeeper{store: s.cursors, key: key, kind: kind}
}

// load returns the saved position, and false when none is saved.
func (k *cursorKeeper) load() (savedPosition, bool, error) {
	if k == nil {
		return savedPosition{}, false, nil
	}
	v, err := k.store.Load(k.key)
	if err != nil || v == "" {
		return savedPosition{}, false, err
	}
	var p savedPosition
	if err := json.Unmarshal([]byte(v), &p); err != nil || p.Kind == "" {
		return savedPosition{}, false, fmt.Errorf("client: cursor %q does not hold a position this client saved; delete it to start over", k.key)
	}
	if p.Kind != k.kind {
		return savedPosition{}, false, fmt.Errorf("client: cursor %q holds the position of a %s, not of a %s; use another name, or delete it to start over", k.key, p.Kind, k.kind)
	}
	return p, true, nil
}

// save saves p under the keeper's key.
func (k *cursorKeeper) save(p savedPosition) error {
	if k == nil {
		return nil
	}
	p.Kind = k.kind
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := k.store.Save(k.key, string(b)); err != nil {
		return fmt.Errorf("client: saving cursor %q: %w", k.key, err)
	}
	return nil
}

// clear deletes the keeper's cursor.
func (k *cursorKeeper) clear() error {
	if k == nil {
		return nil
	}
	if err := k.store.Delete(k.key); err != nil {
		return fmt.Errorf("client: deleting cursor %q: %w", k.key, err)
	}
	return nil
}

// newWatchSettings applies opts.
func newWatchSettings(opts []WatchOption) watchSettings {
	var s watchSettings
	for _, o := range opts {
		o(&s)
	}
	return s
}

// savingAfter returns fn followed by a save of the position save
// computes, for a call that keeps a cursor; fn itself without one.
func savingAfter[M any](k *cursorKeeper, fn func(M) error, position func() savedPosition) func(M) error {
	if k == nil {
		return fn
	}
	return func(m M) error {
		if err := fn(m); err != nil {
			return err
		}
		return k.save(position())
	}
}
