package fieldfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The outbox keeps the writes a field office made that the exchange has
// not yet answered, each as the request that goes on the wire, in the
// order they were made. package client decides what goes in and sends it
// (client.Outbox); this file only keeps it, one bbolt commit per change,
// so that a process killed at any moment loses nothing it reported as
// queued.

var (
	// bucketOutboxByResource indexes the outbox by resource: key
	// resource, 0x00, entry id (8 bytes big endian); no value. The first
	// key of a resource is its oldest entry, the one that must be sent
	// before any later one.
	bucketOutboxByResource = []byte("outbox-by-resource")
	// bucketOutboxDropped records each entry dropped by a person: key
	// the entry id, value the entry as JSON without its request.
	bucketOutboxDropped = []byte("outbox-dropped")
	// bucketOutboxRequests holds each entry's request: key the entry id,
	// value the request as it goes on the wire.
	bucketOutboxRequests = []byte("outbox-requests")
)

// State is where an outbox entry stands.
type State string

const (
	// Pending means the entry waits to be sent: the exchange could not
	// be reached, or an earlier entry for the same resource is still in
	// the outbox.
	Pending State = "pending"
	// Rejected means the exchange answered the entry with an error (or
	// refused some of the records or rows it carried). It stays until a
	// person resolves it and drops it, and holds back later entries for
	// the same resource.
	Rejected State = "rejected"
)

// Entry is one write kept in the outbox.
type Entry struct {
	// ID numbers entries in the order they were made, from 1.
	ID uint64 `json:"id"`
	// Method is the full gRPC method the request is for, for example
	// "/alltogether.exchange.v1.ReferralService/AcceptReferral".
	Method string `json:"method"`
	// Resource is what the write is ordered by: the referral, dataset or
	// agency whose plans it changes. Entries for one resource are sent in
	// ID order, each only once every earlier one has left the outbox.
	Resource string `json:"resource"`
	// Kind says what the write does, for people: "accept", "write 100
	// rows", ...
	Kind string `json:"kind"`
	// Request is the request message, marshalled as it goes on the wire
	// (identifying details sealed when the client seals them). It is kept
	// apart from the rest, as the bytes themselves.
	Request []byte `json:"-"`
	// State is pending or rejected.
	State State `json:"state"`
	// Attempts counts the times the request was sent, or about to be.
	Attempts int `json:"attempts"`
	// Queued is when the entry was made.
	Queued time.Time `json:"queued"`
	// LastAttempt is when it was last sent; zero if never.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// Code is the gRPC status code of the exchange's answer that rejected
	// the entry, for example "FAILED_PRECONDITION"; empty while pending.
	Code string `json:"code,omitempty"`
	// LastError is the last error met sending the entry: why it could not
	// be sent, or the exchange's reason for rejecting it.
	LastError string `json:"last_error,omitempty"`
}

// ErrNoEntry is returned for an entry id the outbox does not hold.
var ErrNoEntry = errors.New("fieldfile: no such outbox entry")

func entryKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func resourceKey(resource string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(resource), 0), id)
}

// Append adds e at the end of the outbox and sets e.ID and e.Queued. It
// returns the id of the oldest entry for the same resource already in
// the outbox (pending or rejected), or 0 if there is none. When there is
// none, e is recorded as being sent (Attempts 1, LastAttempt now), since
// the caller sends it at once: if the process dies before the answer, the
// entry says an attempt may have reached the exchange.
func (f *File) Append(e *Entry) (ahead uint64, err error) {
	if e.Resource == "" || e.Method == "" {
		return 0, errors.New("fieldfile: an outbox entry needs a method and a resource")
	}
	err = f.db.Update(func(tx *bolt.Tx) error {
		idx, err := tx.CreateBucketIfNotExists(bucketOutboxByResource)
		if err != nil {
			return err
		}
		reqs, err := tx.CreateBucketIfNotExists(bucketOutboxRequests)
		if err != nil {
			return err
		}
		out := tx.Bucket(bucketOutbox)
		id, err := out.NextSequence()
		if err != nil {
			return err
		}
		ahead = 0
		prefix := append([]byte(e.Resource), 0)
		if k, _ := idx.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8 {
			ahead = binary.BigEndian.Uint64(k[len(prefix):])
		}
		e.ID, e.Queued, e.State = id, time.Now().UTC(), Pending
		if ahead == 0 {
			e.Attempts, e.LastAttempt = 1, e.Queued
		}
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := out.Put(entryKey(id), v); err != nil {
			return err
		}
		if err := reqs.Put(entryKey(id), e.Request); err != nil {
			return err
		}
		return idx.Put(resourceKey(e.Resource, id), nil)
	})
	if err != nil {
		return 0, fmt.Errorf("fieldfile: outbox: %w", err)
	}
	return ahead, nil
}

// Entries returns every entry of the outbox, oldest first.
func (f *File) Entries() ([]Entry, error) {
	var out []Entry
	err := f.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			e, err := readEntry(tx, k, v)
			if err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("fieldfile: outbox: %w", err)
	}
	return out, nil
}

// Entry returns the entry with the given id, or ErrNoEntry.
func (f *File) Entry(id uint64) (Entry, error) {
	var e Entry
	err := f.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOutbox).Get(entryKey(id))
		if v == nil {
			return fmt.Errorf("%w: %d", ErrNoEntry, id)
		}
		var err error
		e, err = readEntry(tx, entryKey(id), v)
		return err
	})
	return e, err
}

// Update changes the entry with the given id with change, in one commit.
// Its id, method, resource and request stay as they are.
func (f *File) Update(id uint64, change func(*Entry)) error {
	return f.db.Update(func(tx *bolt.Tx) error {
		out := tx.Bucket(bucketOutbox)
		v := out.Get(entryKey(id))
		if v == nil {
			return fmt.Errorf("%w: %d", ErrNoEntry, id)
		}
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		keep := e
		change(&e)
		e.ID, e.Method, e.Resource, e.Request = keep.ID, keep.Method, keep.Resource, keep.Request
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return out.Put(entryKey(id), b)
	})
}

// Remove takes the entry with the given id out of the outbox: the
// exchange has it. Removing an entry that is not there is not an error.
func (f *File) Remove(id uint64) error {
	return f.db.Update(func(tx *bolt.Tx) error { _, err := removeEntry(tx, id); return err })
}

// Drop takes the entry with the given id out of the outbox without
// sending it, for a person who has resolved it another way, and records
// the drop (the entry without its request) in the file. It returns the
// entry dropped, or ErrNoEntry.
func (f *File) Drop(id uint64) (Entry, error) {
	var e Entry
	err := f.db.Update(func(tx *bolt.Tx) error {
		var err error
		if e, err = removeEntry(tx, id); err != nil {
			return err
		}
		if e.ID == 0 {
			return fmt.Errorf("%w: %d", ErrNoEntry, id)
		}
		log, err := tx.CreateBucketIfNotExists(bucketOutboxDropped)
		if err != nil {
			return err
		}
		kept := e
		kept.Request = nil
		b, err := json.Marshal(struct {
			Entry
			Dropped time.Time `json:"dropped"`
		}{kept, time.Now().UTC()})
		if err != nil {
			return err
		}
		return log.Put(entryKey(id), b)
	})
	return e, err
}

// removeEntry deletes the entry id and its index key; it returns the
// entry, or a zero Entry if there was none.
func removeEntry(tx *bolt.Tx, id uint64) (Entry, error) {
	var e Entry
	out := tx.Bucket(bucketOutbox)
	v := out.Get(entryKey(id))
	if v == nil {
		return e, nil
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return e, err
	}
	if err := out.Delete(entryKey(id)); err != nil {
		return e, err
	}
	if reqs := tx.Bucket(bucketOutboxRequests); reqs != nil {
		if err := reqs.Delete(entryKey(id)); err != nil {
			return e, err
		}
	}
	if idx := tx.Bucket(bucketOutboxByResource); idx != nil {
		if err := idx.Delete(resourceKey(e.Resource, id)); err != nil {
			return e, err
		}
	}
	return e, nil
}

// EntriesFor returns the entries for resource, oldest first.
func (f *File) EntriesFor(resource string) ([]Entry, error) {
	var out []Entry
	err := f.db.View(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketOutboxByResource)
		if idx == nil {
			return nil
		}
		prefix := append([]byte(resource), 0)
		c := idx.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) != len(prefix)+8 {
				continue // another resource that starts with this one
			}
			v := tx.Bucket(bucketOutbox).Get(k[len(prefix):])
			if v == nil {
				continue
			}
			e, err := readEntry(tx, k[len(prefix):], v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fieldfile: outbox: %w", err)
	}
	return out, nil
}

// readEntry decodes the entry stored under key k as v, with its request.
func readEntry(tx *bolt.Tx, k, v []byte) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(v, &e); err != nil {
		return e, err
	}
	if reqs := tx.Bucket(bucketOutboxRequests); reqs != nil {
		e.Request = bytes.Clone(reqs.Get(k))
	}
	return e, nil
}
