// Package wirewrite writes proto3 fields in protobuf's wire format, for the
// few messages the exchange encodes on every change (an audit entry, a
// change-log entry) without protobuf-go's reflective marshaller. Each
// function writes or measures one field as the deterministic marshaller
// does: a scalar or string field at its zero value is left out, a message
// field is written when it is set, even if empty.
//
// Only code that checks, once, that its message has exactly the fields it
// writes should use it, and its tests should hold its bytes to
// proto.Marshal's: auditchain.Seal and the store's change log do.
package wirewrite

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// VarintLen is the length of a varint field numbered num holding v (an
// int64 or enum passed as uint64(v), sign-extended as protobuf does).
func VarintLen(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

// StringLen is the length of a string field numbered num holding s.
func StringLen(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

// BytesLen is the length of a bytes field numbered num holding v.
func BytesLen(num protowire.Number, v []byte) int {
	if len(v) == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(v))
}

// MessageLen is the length of a message field numbered num whose
// message encodes in n bytes; set says whether the field is set.
func MessageLen(num protowire.Number, n int, set bool) int {
	if !set {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// AppendVarint appends a varint field (see VarintLen).
func AppendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

// AppendString appends a string field.
func AppendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// AppendBytes appends a bytes field.
func AppendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// AppendMessageHeader appends the tag and length of a message field
// whose message, n bytes long, the caller appends next.
func AppendMessageHeader(b []byte, num protowire.Number, n int) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.BytesType), uint64(n))
}

// timestampLen is the length of ts's own encoding (not of a field
// holding it).
func timestampLen(ts *timestamppb.Timestamp) int {
	return VarintLen(1, uint64(ts.GetSeconds())) + VarintLen(2, uint64(int64(ts.GetNanos())))
}

// AppendTimestamp appends a field numbered num holding ts, if ts is set.
func AppendTimestamp(b []byte, num protowire.Number, ts *timestamppb.Timestamp) []byte {
	if ts == nil {
		return b
	}
	b = AppendMessageHeader(b, num, timestampLen(ts))
	b = AppendVarint(b, 1, uint64(ts.Seconds))
	return AppendVarint(b, 2, uint64(int64(ts.Nanos)))
}

// TimestampFieldLen is the length of a field numbered num holding ts, 0
// if ts is not set.
func TimestampFieldLen(num protowire.Number, ts *timestamppb.Timestamp) int {
	return MessageLen(num, timestampLen(ts), ts != nil)
}

// Field is one field a writer writes: its number, its kind and, for a
// message field, the message's full name.
type Field struct {
	Num     protowire.Number
	Kind    protoreflect.Kind
	Message protoreflect.FullName
}

// Matches says md has exactly fields, each singular, outside any oneof and
// (but for messages) without presence, as the functions above write them:
// what a writer checks once before it writes md's messages by hand, so
// that a field added to the .proto makes it fall back to the marshaller
// instead of leaving the field out.
func Matches(md protoreflect.MessageDescriptor, fields []Field) bool {
	if md.Fields().Len() != len(fields) {
		return false
	}
	for _, want := range fields {
		fd := md.Fields().ByNumber(want.Num)
		if fd == nil || fd.Kind() != want.Kind || fd.Cardinality() == protoreflect.Repeated ||
			fd.ContainingOneof() != nil || fd.HasPresence() != (want.Kind == protoreflect.MessageKind) {
			return false
		}
		if want.Kind == protoreflect.MessageKind && fd.Message().FullName() != want.Message {
			return false
		}
	}
	return true
}

// TimestampMatches says Timestamp has the two fields TimestampLen and
// AppendTimestamp write.
func TimestampMatches() bool {
	return Matches((&timestamppb.Timestamp{}).ProtoReflect().Descriptor(), []Field{
		{Num: 1, Kind: protoreflect.Int64Kind},
		{Num: 2, Kind: protoreflect.Int32Kind},
	})
}
