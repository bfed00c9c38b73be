package auditchain

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Seal finds where the fields after hash start by reading the encoding's
// tags; it finds the same place as encoding those fields on their own,
// whichever of them are set, and refuses an encoding that holds a hash.
func TestSealFindsTheFieldsAfterHashInTheEncoding(t *testing.T) {
	ts := timestamppb.New(time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC))
	for _, e := range []*exchangev1.AuditEntry{
		{},
		{Sequence: 7, Revision: 99, Time: ts, Actor: "agencies/ilo", PreviousHash: Genesis},
		{Sequence: 7, Reason: "retention"},
		{Sequence: 7, ActorCertificate: "5f3a9c0e1b2d4f60"},
		{Sequence: 7, Time: ts, Method: "/m", ResourceName: "referrals/x", Reason: "person-request", ActorCertificate: "5f3a"},
	} {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		tail, err := encodedAfterHash(e)
		if err != nil {
			t.Fatal(err)
		}
		at, ok := afterHash(b)
		if !ok || !bytes.Equal(b[at:], tail) {
			t.Errorf("%v: the fields after hash found at %d (%v): %x, encoded on their own: %x", e, at, ok, b[at:], tail)
		}
	}
	withHash, err := proto.MarshalOptions{Deterministic: true}.Marshal(&exchangev1.AuditEntry{Sequence: 1, Hash: Genesis})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := afterHash(withHash); ok {
		t.Error("an encoding that holds a hash was taken for one without")
	}
}
