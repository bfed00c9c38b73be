package store

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// table describes one kind of record: its bucket, how to make an empty
// value, and the index entries a value has. A record and its index entries
// are always written by the same call, in the same transaction.
type table[T proto.Message] struct {
	bucket  []byte
	newT    func() T
	indexes func(T) []indexEntry
	// logged, when set, encodes what the change log keeps of a value (for
	// example a referral without its identifying details). The change log
	// feeds watchers and outlives deletions, so it keeps no more than
	// watchers need. It is given the value and the value's deterministic
	// encoding. logged may change the value while it runs (to encode it
	// without a copy) but must leave it as it found it; the values it is
	// given are owned by the write making them.
	logged func(v T, encoded []byte) ([]byte, error)
	// stampNew, when set, sets a new value's name and times directly
	// (update_time to a copy of create_time), for the tables a batch
	// writes a record of per item; otherwise prepare sets them by
	// reflection, which cost a referral of the batched push about 0.6 µs.
	stampNew func(v T, name string, created, updated *timestamppb.Timestamp)
}

// forLog wraps for the change log what it keeps of v; encoded is v's own
// encoding, kept whole when the table keeps every field.
func (t table[T]) forLog(v T, encoded []byte) (*anypb.Any, error) {
	if t.logged != nil {
		var err error
		if encoded, err = t.logged(v, encoded); err != nil {
			return nil, err
		}
	}
	return &anypb.Any{TypeUrl: anyTypePrefix + string(v.ProtoReflect().Descriptor().FullName()), Value: encoded}, nil
}

// anyTypePrefix is the prefix anypb.New gives type URLs.
const anyTypePrefix = "type.googleapis.com/"

// indexEntry is one key in a secondary-index bucket; index values are
// empty, the key ends with what finds the record.
type indexEntry struct {
	bucket []byte
	key    []byte
}

// get loads the record at key. The value is copied out of bbolt's memory
// by decoding, so it stays valid after the transaction.
func (t table[T]) get(tx kv.Tx, key []byte) (T, bool, error) {
	var zero T
	v := tx.Bucket(t.bucket).Get(key)
	if v == nil {
		return zero, false, nil
	}
	m := t.newT()
	if err := unmarshal(v, m); err != nil {
		return zero, false, err
	}
	return m, true, nil
}

// put writes v, encoded, at key and moves its index entries from old's (if
// hadOld) to v's.
func (t table[T]) put(w *writeTx, key []byte, old T, hadOld bool, v T, encoded []byte) error {
	if hadOld && t.indexes != nil {
		for _, e := range t.indexes(old) {
			if err := w.tx.Bucket(e.bucket).Delete(e.key); err != nil {
				return internal("cannot update index "+string(e.bucket), err)
			}
		}
	}
	if err := w.tx.Bucket(t.bucket).Put(key, encoded); err != nil {
		return internal("cannot write "+string(t.bucket), err)
	}
	if t.indexes != nil {
		for _, e := range t.indexes(v) {
			if err := w.tx.Bucket(e.bucket).Put(e.key, nil); err != nil {
				return internal("cannot write index "+string(e.bucket), err)
			}
		}
	}
	return nil
}

// remove deletes the record at key and old's index entries.
func (t table[T]) remove(w *writeTx, key []byte, old T) error {
	if t.indexes != nil {
		for _, e := range t.indexes(old) {
			if err := w.tx.Bucket(e.bucket).Delete(e.key); err != nil {
				return internal("cannot update index "+string(e.bucket), err)
			}
		}
	}
	if err := w.tx.Bucket(t.bucket).Delete(key); err != nil {
		return internal("cannot delete from "+string(t.bucket), err)
	}
	return nil
}

// prepared is a new record made ready outside the write transaction:
// named, stamped and encoded, with what the change log keeps of it, so that
// inside the transaction, where writes queue behind one another, only
// storing bytes is left. It is not changed by insert and may be inserted
// again if the transaction is run again.
type prepared[T proto.Message] struct {
	key     []byte
	name    string
	value   T          // the record as stored
	encoded []byte     // value, encoded
	logged  *anypb.Any // what the change log keeps of value
}

// prepare makes a copy of v ready to be stored as a new record named name
// at key, created at now. It touches no transaction.
func (t table[T]) prepare(key []byte, name string, v T, now time.Time) (prepared[T], error) {
	return t.prepareOwned(key, name, proto.Clone(v).(T), now)
}

// prepareOwned is prepare for a v the caller has just made or copied and
// gives up: v itself is stamped and kept, not a copy.
func (t table[T]) prepareOwned(key []byte, name string, v T, now time.Time) (prepared[T], error) {
	ts := timestamppb.New(now)
	if t.stampNew != nil {
		t.stampNew(v, name, ts, &timestamppb.Timestamp{Seconds: ts.Seconds, Nanos: ts.Nanos})
	} else {
		setString(v, "name", name)
		setTime(v, "create_time", ts)
		setTime(v, "update_time", ts)
	}
	encoded, err := stampEtag(v)
	if err != nil {
		return prepared[T]{}, err
	}
	logged, err := t.forLog(v, encoded)
	if err != nil {
		return prepared[T]{}, err
	}
	return prepared[T]{key: key, name: name, value: v, encoded: encoded, logged: logged}, nil
}

// create stores a new record named name at key, stamping its name, times
// and etag, and records the change. It fails with AlreadyExists if a
// record is at key.
func (t table[T]) create(w *writeTx, key []byte, name string, v T) (T, error) {
	p, err := t.prepare(key, name, v, w.now)
	if err != nil {
		var zero T
		return zero, err
	}
	return t.insert(w, p)
}

// insert stores a prepared record and its index entries, records the
// change and remembers the call's request id. It fails with AlreadyExists
// if a record is at its key.
func (t table[T]) insert(w *writeTx, p prepared[T]) (T, error) {
	var zero T
	b := w.tx.Bucket(t.bucket)
	if b.Get(p.key) != nil {
		return zero, alreadyExists(p.name)
	}
	if err := b.Put(p.key, p.encoded); err != nil {
		return zero, internal("cannot write "+string(t.bucket), err)
	}
	if t.indexes != nil {
		for _, e := range t.indexes(p.value) {
			if err := w.tx.Bucket(e.bucket).Put(e.key, nil); err != nil {
				return zero, internal("cannot write index "+string(e.bucket), err)
			}
		}
	}
	if err := w.recordAny(exchangev1.ChangeKind_CHANGE_KIND_CREATED, p.name, p.logged); err != nil {
		return zero, err
	}
	return p.value, w.remember(p.name)
}

// modify applies mutate to a copy of the record at key and stores the
// result. A non-empty etag must match the stored one. Name, create time,
// update time and etag cannot be changed by mutate. When mutate changes
// nothing, modify returns the stored record and writes nothing: no new
// update time, etag, revision, change or audit entry.
func (t table[T]) modify(w *writeTx, key []byte, name, etag string, mutate func(T) error) (T, error) {
	var zero T
	cur, ok, err := t.get(w.tx, key)
	if err != nil {
		return zero, err
	}
	if !ok {
		return zero, notFound(name)
	}
	if etag != "" && etag != getString(cur, "etag") {
		return zero, etagMismatch(name)
	}
	next := proto.Clone(cur).(T)
	if err := mutate(next); err != nil {
		return zero, err
	}
	setString(next, "name", name)
	copyField(next, cur, "create_time")
	copyField(next, cur, "update_time")
	copyField(next, cur, "etag")
	if proto.Equal(next, cur) {
		return cur, nil
	}
	setTime(next, "update_time", w.timestamp())
	encoded, err := stampEtag(next)
	if err != nil {
		return zero, err
	}
	if err := t.put(w, key, cur, true, next, encoded); err != nil {
		return zero, err
	}
	logged, err := t.forLog(next, encoded)
	if err != nil {
		return zero, err
	}
	if err := w.recordAny(exchangev1.ChangeKind_CHANGE_KIND_UPDATED, name, logged); err != nil {
		return zero, err
	}
	return next, nil
}

// delete removes the record at key; a non-empty etag must match.
func (t table[T]) delete(w *writeTx, key []byte, name, etag string) (T, error) {
	var zero T
	cur, ok, err := t.get(w.tx, key)
	if err != nil {
		return zero, err
	}
	if !ok {
		return zero, notFound(name)
	}
	if etag != "" && etag != getString(cur, "etag") {
		return zero, etagMismatch(name)
	}
	if err := t.remove(w, key, cur); err != nil {
		return zero, err
	}
	encoded, err := marshal(cur)
	if err != nil {
		return zero, err
	}
	logged, err := t.forLog(cur, encoded)
	if err != nil {
		return zero, err
	}
	return cur, w.recordAny(exchangev1.ChangeKind_CHANGE_KIND_DELETED, name, logged)
}

// The helpers below read and write the fields every resource shares (name,
// create_time, update_time, etag) by name, so that the generic table works
// for every resource type.

func field(m proto.Message, name string) (protoreflect.Message, protoreflect.FieldDescriptor) {
	r := m.ProtoReflect()
	return r, r.Descriptor().Fields().ByName(protoreflect.Name(name))
}

func setString(m proto.Message, name, v string) {
	if r, fd := field(m, name); fd != nil {
		r.Set(fd, protoreflect.ValueOfString(v))
	}
}

func getString(m proto.Message, name string) string {
	if r, fd := field(m, name); fd != nil {
		return r.Get(fd).String()
	}
	return ""
}

// setTime sets the named timestamp field to a copy of ts (fields never
// share a timestamp, so that changing one cannot change another).
func setTime(m proto.Message, name string, ts *timestamppb.Timestamp) {
	if r, fd := field(m, name); fd != nil {
		r.Set(fd, protoreflect.ValueOfMessage((&timestamppb.Timestamp{Seconds: ts.GetSeconds(), Nanos: ts.GetNanos()}).ProtoReflect()))
	}
}

func copyField(dst, src proto.Message, name string) {
	r, fd := field(dst, name)
	if fd == nil {
		return
	}
	sr := src.ProtoReflect()
	if sr.Has(fd) {
		r.Set(fd, sr.Get(fd))
	} else {
		r.Clear(fd)
	}
}

// setEtag sets the etag to a hash of the record's content, so that it
// changes exactly when the record does and reveals nothing else.
func setEtag(m proto.Message) {
	_, _ = stampEtag(m) // cannot fail for records that were just validated
}

// stampEtag sets m's etag (as setEtag) and returns m's deterministic
// encoding with it. The etag is a hash of the encoding without it, so the
// encoding with it is made by inserting the etag field into those bytes at
// its place in field-number order rather than by encoding m again.
func stampEtag(m proto.Message) ([]byte, error) {
	r, fd := field(m, "etag")
	if fd == nil {
		return marshal(m)
	}
	r.Clear(fd)
	b, err := marshal(m)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	etag := hex.EncodeToString(sum[:8])
	r.Set(fd, protoreflect.ValueOfString(etag))
	field := protowire.AppendString(protowire.AppendTag(nil, fd.Number(), protowire.BytesType), etag)
	out, ok := withField(b, fd.Number(), field)
	if !ok {
		return marshal(m)
	}
	return out, nil
}

// withField returns a copy of the deterministic encoding b, which lacks
// field num, with field (num's tag and value, encoded) inserted at its
// place in field-number order: the deterministic encoding of the message
// with that field set. ok is false if b cannot be parsed.
func withField(b []byte, num protowire.Number, field []byte) ([]byte, bool) {
	at, ok := fieldOffset(b, num)
	if !ok {
		return nil, false
	}
	out := make([]byte, 0, len(b)+len(field))
	out = append(out, b[:at]...)
	out = append(out, field...)
	return append(out, b[at:]...), true
}

// fieldOffset returns where, in the encoding b of a message whose fields
// are in field-number order (as deterministic encodings are), a field
// numbered num belongs: before the first field with a higher number. ok is
// false if b cannot be parsed.
func fieldOffset(b []byte, num protowire.Number) (int, bool) {
	at := 0
	for at < len(b) {
		n, typ, tagLen := protowire.ConsumeTag(b[at:])
		if tagLen < 0 {
			return 0, false
		}
		if n > num {
			return at, true
		}
		valLen := protowire.ConsumeFieldValue(n, typ, b[at+tagLen:])
		if valLen < 0 {
			return 0, false
		}
		at += tagLen + valLen
	}
	return at, true
}
