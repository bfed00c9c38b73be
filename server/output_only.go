package server

// Output-only lists in requests.
//
// Some resources carry lists that only the exchange writes: a referral's
// history and forwarded_to, a dataset's locks and lock_history, an
// agency's previous encryption keys. A client
// may send back a resource it read, so requests may carry them, and the
// exchange ignores them there (AIP-203: output-only fields are ignored on
// input). Ignored after decoding, they still cost their decoding, their
// validation and, for a referral, a copy when it is stored: a 3 MB batch
// of 500 referrals each carrying 1000 empty transitions and 1000 empty
// names (both within their bounds) made the exchange allocate 148 MiB,
// its heap growing by about 120 MiB, for lists it then threw away.
//
// The server codec therefore drops them from a request's bytes before it
// decodes them (withoutOutputOnlyLists), wherever they are: in a request's
// resource, in the items of a batch, in a message sent in several parts.
// That costs one pass over the bytes of the messages that can hold them,
// and one copy of the request (smaller than the request) when it carries
// any. Their bounds (max_items) stay, and the scan before decoding checks
// them first: a list over its bound, which the exchange never sends,
// refuses the whole request by name, even inside a batch item.

import (
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// outputOnlyLists names the lists of request messages that only the
// exchange writes and that requests may carry back. A test holds this set
// to the .proto files: every repeated field or map whose comment says
// "Output only" is here.
var outputOnlyLists = map[protoreflect.FullName]bool{
	"alltogether.exchange.v1.Referral.history":      true,
	"alltogether.exchange.v1.Referral.forwarded_to": true,
	"alltogether.exchange.v1.Dataset.locks":         true,
	"alltogether.exchange.v1.Dataset.lock_history":  true,
	// The keys an agency replaced (SetAgencyEncryptionKey keeps them).
	"alltogether.exchange.v1.Agency.previous_encryption_keys": true,
}

// outputOnlyFields says, for one message type, what
// withoutOutputOnlyLists does with each field of its encoding, by number:
// copy it, drop it (an output-only list) or go into it (a message field,
// singular, list or map, whose messages can hold an output-only list).
type outputOnlyFields struct {
	// actions holds the action for each field number below its length;
	// fields numbered beyond are copied.
	actions []outputOnlyAction
	// into holds the message type of each field gone into, by number.
	into []protoreflect.MessageDescriptor
}

// outputOnlyAction is what withoutOutputOnlyLists does with a field.
type outputOnlyAction uint8

const (
	copyField outputOnlyAction = iota
	dropField
	enterField
)

// action returns what to do with the field numbered num.
func (f *outputOnlyFields) action(num protowire.Number) outputOnlyAction {
	if int(num) < len(f.actions) {
		return f.actions[num]
	}
	return copyField
}

// holds says whether a message of the type can carry an output-only list.
func (f *outputOnlyFields) holds() bool { return len(f.actions) > 0 }

// outputOnlyCache holds each message type's outputOnlyFields, read once
// from its descriptor: protoreflect.FullName to *outputOnlyFields.
var outputOnlyCache sync.Map

// outputOnlyOf returns the outputOnlyFields of a message type.
func outputOnlyOf(md protoreflect.MessageDescriptor) *outputOnlyFields {
	if f, ok := outputOnlyCache.Load(md.FullName()); ok {
		return f.(*outputOnlyFields)
	}
	f := &outputOnlyFields{}
	set := func(num protowire.Number, a outputOnlyAction, into protoreflect.MessageDescriptor) {
		for int(num) >= len(f.actions) {
			f.actions = append(f.actions, copyField)
			f.into = append(f.into, nil)
		}
		f.actions[num], f.into[num] = a, into
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.Number() > maxIndexedNumber:
			// The exchange's messages number their fields from 1 on, a few
			// dozen at most; a test holds the output-only lists to it.
		case outputOnlyLists[fd.FullName()]:
			set(fd.Number(), dropField, nil)
		case fd.Kind() == protoreflect.MessageKind && reachesOutputOnly(fd.Message(), map[protoreflect.FullName]bool{}):
			// A map's field is a list of entry messages, whose value is
			// field 2: going into the entries reaches the values.
			set(fd.Number(), enterField, fd.Message())
		}
	}
	outputOnlyCache.Store(md.FullName(), f)
	return f
}

// reachesOutputOnly says whether a message of type md can carry an
// output-only list, in itself or in a message it carries; seen holds the
// types already looked at on this search.
func reachesOutputOnly(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if outputOnlyLists[fd.FullName()] ||
			fd.Kind() == protoreflect.MessageKind && reachesOutputOnly(fd.Message(), seen) {
			return true
		}
	}
	return false
}

// withoutOutputOnlyLists returns b, an encoding of a message of type md,
// without the output-only lists it carries at any depth: b itself when it
// carries none, else a new encoding that decodes to the same message with
// those lists empty. Bytes that are not a valid encoding are returned as
// they are, for decoding to refuse.
func withoutOutputOnlyLists(b []byte, md protoreflect.MessageDescriptor) []byte {
	fields := outputOnlyOf(md)
	if !fields.holds() {
		return b
	}
	size, found, ok := strippedSize(b, fields)
	if !found || !ok {
		return b
	}
	return appendStripped(make([]byte, 0, size), b, fields)
}

// strippedSize returns the size of b without its output-only lists, and
// whether it carries any; ok is false when b is not a valid encoding.
func strippedSize(b []byte, fields *outputOnlyFields) (size int, found, ok bool) {
	for len(b) > 0 {
		num, typ, field, value, n := nextWireField(b)
		if n < 0 {
			return 0, false, false
		}
		b = b[n:]
		switch fields.action(num) {
		case dropField:
			found = true
		case enterField:
			if typ != protowire.BytesType {
				size += len(field)
				continue
			}
			inner, innerFound, innerOK := strippedSize(value, outputOnlyOf(fields.into[num]))
			if !innerOK {
				return 0, false, false
			}
			found = found || innerFound
			size += protowire.SizeTag(num) + protowire.SizeBytes(inner)
		default:
			size += len(field)
		}
	}
	return size, found, true
}

// appendStripped appends b without its output-only lists to out; b was
// checked by strippedSize.
func appendStripped(out, b []byte, fields *outputOnlyFields) []byte {
	for len(b) > 0 {
		num, typ, field, value, n := nextWireField(b)
		b = b[n:]
		switch a := fields.action(num); {
		case a == dropField:
		case a == enterField && typ == protowire.BytesType:
			inner := outputOnlyOf(fields.into[num])
			size, _, _ := strippedSize(value, inner)
			out = protowire.AppendTag(out, num, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(size))
			out = appendStripped(out, value, inner)
		default:
			out = append(out, field...)
		}
	}
	return out
}

// nextWireField reads the first field of b: its number and wire type, its
// whole encoding (tag included) and, for a length-delimited field, its
// value; n is the length of field, or negative when b does not start
// with a valid field.
func nextWireField(b []byte) (num protowire.Number, typ protowire.Type, field, value []byte, n int) {
	num, typ, tagLen := protowire.ConsumeTag(b)
	if tagLen < 0 {
		return 0, 0, nil, nil, tagLen
	}
	var valueLen int
	if typ == protowire.BytesType {
		value, valueLen = protowire.ConsumeBytes(b[tagLen:])
	} else {
		valueLen = protowire.ConsumeFieldValue(num, typ, b[tagLen:])
	}
	if valueLen < 0 {
		return 0, 0, nil, nil, valueLen
	}
	n = tagLen + valueLen
	return num, typ, b[:n], value, n
}
