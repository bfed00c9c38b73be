package auditchain

import (
	"bytes"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/internal/wirewrite/wirewritetest"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestSealWritesWhatTheMarshallerWrites holds the entries Seal writes field
// by field to the bytes and hash protobuf-go's deterministic marshaller
// gives (what Verify recomputes): an entry with every field set, the same
// with each field (and each of its time's) left out in turn, and the edges
// of each number (negative revisions and nanos take ten bytes). It fails
// if the writer is not used at all, so that falling back for every entry
// does not pass unseen.
func TestSealWritesWhatTheMarshallerWrites(t *testing.T) {
	if !entryWritable {
		t.Fatal("AuditEntry no longer has the fields sealWritten writes: update it (and this test) for the new field")
	}
	full := func() *exchangev1.AuditEntry {
		return &exchangev1.AuditEntry{Sequence: 1 << 40, Revision: 12345, Time: timestamppb.New(time.Date(2026, 12, 8, 1, 2, 3, 4, time.UTC)),
			Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/BatchCreateReferrals",
			ResourceName: "referrals/01jx0000000000000000000000", PreviousHash: bytes.Repeat([]byte{0xcd}, 32),
			Reason: "person-request", ActorCertificate: "5f3a9c0e1b2d4f60"}
	}
	entries := []*exchangev1.AuditEntry{
		{},
		{Revision: -1, Time: &timestamppb.Timestamp{Seconds: -62135596800, Nanos: -1}},
		{Sequence: math.MaxUint64, Revision: math.MaxInt64, Time: &timestamppb.Timestamp{}},
		{Revision: math.MinInt64, Time: &timestamppb.Timestamp{Nanos: 999_999_999}, Actor: "ກຂ ជ ถ", Reason: string(bytes.Repeat([]byte{'r'}, 300))},
	}
	entries = append(entries, wirewritetest.EachLeftOut(t, full, "alltogether.exchange.v1.AuditEntry.hash")...)
	for _, e := range entries {
		want := proto.Clone(e).(*exchangev1.AuditEntry)
		wantHash, err := Hash(want)
		if err != nil {
			t.Fatal(err)
		}
		want.Hash = wantHash
		wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := sealWritten(e)
		if !ok {
			t.Fatalf("sealWritten declined %v", e)
		}
		if !bytes.Equal(got, wantBytes) || !bytes.Equal(e.Hash, wantHash) {
			t.Errorf("%v:\nwritten %x, hash %x\nmarshalled %x, hash %x", want, got, e.Hash, wantBytes, wantHash)
		}
	}
}

// TestSealLeavesTheUnwritableToTheMarshaller: strings that are not UTF-8
// (which the marshaller refuses) and unknown fields are not written by
// hand, and Seal answers for them as the marshaller does.
func TestSealLeavesTheUnwritableToTheMarshaller(t *testing.T) {
	bad := &exchangev1.AuditEntry{Sequence: 1, Actor: "agencies/\xff"}
	if _, ok := sealWritten(bad); ok {
		t.Error("sealWritten wrote an actor that is not UTF-8")
	}
	if _, err := Seal(bad); err == nil {
		t.Error("Seal accepted an actor that is not UTF-8")
	}
	unknown := &exchangev1.AuditEntry{Sequence: 1}
	unknown.ProtoReflect().SetUnknown(protoreflect.RawFields{0xf8, 0x06, 0x01}) // field 111, varint 1
	if _, ok := sealWritten(unknown); ok {
		t.Error("sealWritten wrote an entry with unknown fields")
	}
	got, err := Seal(unknown)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(got, []byte{0xf8, 0x06, 0x01}) {
		t.Errorf("Seal dropped the unknown field: %x", got)
	}
}
