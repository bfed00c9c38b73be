package auditchain

import (
	"crypto/sha256"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/internal/wirewrite"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The store seals an audit entry for every change it makes. Encoding one
// through protobuf-go's reflective marshaller, then copying it to put the
// hash in, took about 0.8 µs; sealWritten writes the same bytes field by
// field in one buffer. It is used only while AuditEntry has exactly the
// fields it writes (entryWritable, checked once), so a field added to the
// .proto makes Seal fall back to the marshaller rather than leave the
// field out of the hash; tests hold its bytes to the marshaller's.

// entryWritable says AuditEntry (and the Timestamp in it) has exactly the
// fields sealWritten writes.
var entryWritable = wirewrite.TimestampMatches() && wirewrite.Matches(
	(&exchangev1.AuditEntry{}).ProtoReflect().Descriptor(), []wirewrite.Field{
		{Num: 1, Kind: protoreflect.Uint64Kind},                                        // sequence
		{Num: 2, Kind: protoreflect.Int64Kind},                                         // revision
		{Num: 3, Kind: protoreflect.MessageKind, Message: "google.protobuf.Timestamp"}, // time
		{Num: 4, Kind: protoreflect.StringKind},                                        // actor
		{Num: 5, Kind: protoreflect.StringKind},                                        // method
		{Num: 6, Kind: protoreflect.StringKind},                                        // resource_name
		{Num: 7, Kind: protoreflect.BytesKind},                                         // previous_hash
		{Num: hashField, Kind: protoreflect.BytesKind},                                 // hash
		{Num: 9, Kind: protoreflect.StringKind},                                        // reason
		{Num: 10, Kind: protoreflect.StringKind},                                       // actor_certificate
	})

// sealWritten is Seal for an entry it can write: it sets e's hash and
// returns e's deterministic encoding. ok is false, and e unchanged, for
// an entry the marshaller must judge: AuditEntry changed since
// sealWritten was written, unknown fields, or a string that is not UTF-8
// (which the marshaller refuses).
func sealWritten(e *exchangev1.AuditEntry) (encoded []byte, ok bool) {
	if !entryWritable || len(e.ProtoReflect().GetUnknown()) != 0 ||
		!utf8.ValidString(e.Actor) || !utf8.ValidString(e.Method) || !utf8.ValidString(e.ResourceName) ||
		!utf8.ValidString(e.Reason) || !utf8.ValidString(e.ActorCertificate) {
		return nil, false
	}
	hashLen := protowire.SizeTag(hashField) + protowire.SizeBytes(sha256.Size)
	b := make([]byte, 0, hashLen+wirewrite.VarintLen(1, e.Sequence)+wirewrite.VarintLen(2, uint64(e.Revision))+
		wirewrite.TimestampFieldLen(3, e.Time)+wirewrite.StringLen(4, e.Actor)+wirewrite.StringLen(5, e.Method)+
		wirewrite.StringLen(6, e.ResourceName)+wirewrite.BytesLen(7, e.PreviousHash)+
		wirewrite.StringLen(9, e.Reason)+wirewrite.StringLen(10, e.ActorCertificate))
	b = wirewrite.AppendVarint(b, 1, e.Sequence)
	b = wirewrite.AppendVarint(b, 2, uint64(e.Revision))
	b = wirewrite.AppendTimestamp(b, 3, e.Time)
	b = wirewrite.AppendString(b, 4, e.Actor)
	b = wirewrite.AppendString(b, 5, e.Method)
	b = wirewrite.AppendString(b, 6, e.ResourceName)
	b = wirewrite.AppendBytes(b, 7, e.PreviousHash)
	at := len(b)
	b = wirewrite.AppendString(b, 9, e.Reason)
	b = wirewrite.AppendString(b, 10, e.ActorCertificate)
	sum := sha256.Sum256(b)
	// The hash field goes in before reason and actor_certificate, in the
	// room left at the end of the buffer.
	b = b[:len(b)+hashLen]
	copy(b[at+hashLen:], b[at:len(b)-hashLen])
	wirewrite.AppendBytes(b[:at], hashField, sum[:])
	e.Hash = sum[:]
	return b, true
}
