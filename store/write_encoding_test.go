package store

import (
	"bytes"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/internal/wirewrite/wirewritetest"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestChangeEncodingIsTheMarshallers holds encodeChange to protobuf-go's
// deterministic marshaller: a change-log entry with every field set, the
// same with each field (and each of its time's and resource's) left out in
// turn, and
// the edges of each number. It fails if the entries are not written by
// hand at all.
func TestChangeEncodingIsTheMarshallers(t *testing.T) {
	if !changeWritable {
		t.Fatal("Change no longer has the fields encodeChange writes: update it (and this test) for the new field")
	}
	full := func() *exchangev1.Change {
		return &exchangev1.Change{Revision: 1_733_620_000_123_456, Time: timestamppb.New(time.Date(2026, 12, 8, 1, 2, 3, 4, time.UTC)),
			Kind: exchangev1.ChangeKind_CHANGE_KIND_UPDATED, ResourceName: "referrals/01jx0000000000000000000000",
			Resource: &anypb.Any{TypeUrl: "type.googleapis.com/alltogether.exchange.v1.Referral", Value: bytes.Repeat([]byte{0x0a}, 400)}}
	}
	changes := append([]*exchangev1.Change{
		{},
		{Revision: -1, Time: &timestamppb.Timestamp{Seconds: -1, Nanos: -1}, Kind: -2, Resource: &anypb.Any{}},
		{Revision: math.MaxInt64, Time: &timestamppb.Timestamp{}, ResourceName: "agencies/ກຂ"},
	}, wirewritetest.EachLeftOut(t, full)...)
	for _, c := range changes {
		want, err := deterministic.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeChange(c.Revision, c.Time, c.Kind, c.ResourceName, c.Resource)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%v:\nwritten    %x\nmarshalled %x", c, got, want)
		}
		var back exchangev1.Change
		if err := proto.Unmarshal(got, &back); err != nil || !proto.Equal(&back, c) {
			t.Errorf("%v decodes from what encodeChange wrote as %v (%v)", c, &back, err)
		}
	}
	if _, err := encodeChange(1, nil, 1, "referrals/\xff", nil); err == nil {
		t.Error("encodeChange wrote a resource name that is not UTF-8")
	}
}

// TestReferralsAreStampedAsByReflection: the referral table sets a new
// record's name and times directly (stampNew); the record it prepares is
// the one the reflective path prepares, byte for byte, and its two times
// are separate messages.
func TestReferralsAreStampedAsByReflection(t *testing.T) {
	now := time.Date(2026, 12, 8, 1, 2, 3, 4, time.UTC)
	reflective := referrals
	reflective.stampNew = nil
	if referrals.stampNew == nil {
		t.Fatal("the referral table has no stampNew")
	}
	r := &exchangev1.Referral{Receiver: "agencies/iom", SenderCaseReference: "CASE-1", Urgency: exchangev1.Urgency_URGENCY_URGENT}
	direct, err := referrals.prepare([]byte("01jx"), "referrals/01jx", r, now)
	if err != nil {
		t.Fatal(err)
	}
	viaReflection, err := reflective.prepare([]byte("01jx"), "referrals/01jx", r, now)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(direct.encoded, viaReflection.encoded) || !proto.Equal(direct.value, viaReflection.value) {
		t.Errorf("stamped directly:\n%v\nby reflection:\n%v", direct.value, viaReflection.value)
	}
	v := direct.value
	if v.GetName() != "referrals/01jx" || !v.GetCreateTime().AsTime().Equal(now) || !v.GetUpdateTime().AsTime().Equal(now) || v.GetEtag() == "" {
		t.Errorf("stamped referral: %v", v)
	}
	if v.CreateTime == v.UpdateTime {
		t.Error("create_time and update_time share one message")
	}
}
