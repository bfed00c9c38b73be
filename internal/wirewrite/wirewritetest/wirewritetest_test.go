package wirewritetest

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestEachLeftOutLeavesOutEachFieldAtEveryDepth: the full message, then one
// copy per field with that field cleared, fields of held messages included.
func TestEachLeftOutLeavesOutEachFieldAtEveryDepth(t *testing.T) {
	full := func() *exchangev1.Change {
		return &exchangev1.Change{Revision: 7, Time: &timestamppb.Timestamp{Seconds: 1, Nanos: 2}, Kind: 1,
			ResourceName: "referrals/x", Resource: &anypb.Any{TypeUrl: "t", Value: []byte{1}}}
	}
	got := EachLeftOut(t, full)
	want := []*exchangev1.Change{
		full(),
		{Time: &timestamppb.Timestamp{Seconds: 1, Nanos: 2}, Kind: 1, ResourceName: "referrals/x", Resource: &anypb.Any{TypeUrl: "t", Value: []byte{1}}},
		{Revision: 7, Kind: 1, ResourceName: "referrals/x", Resource: &anypb.Any{TypeUrl: "t", Value: []byte{1}}},
		{Revision: 7, Time: &timestamppb.Timestamp{Nanos: 2}, Kind: 1, ResourceName: "referrals/x", Resource: &anypb.Any{TypeUrl: "t", Value: []byte{1}}},
		{Revision: 7, Time: &timestamppb.Timestamp{Seconds: 1}, Kind: 1, ResourceName: "referrals/x", Resource: &anypb.Any{TypeUrl: "t", Value: []byte{1}}},
		{Revision: 7, Time: &timestamppb.Timestamp{Seconds: 1, Nanos: 2}, ResourceName: "referrals/x", Resource: &anypb.Any{TypeUrl: "t", Value: []byte{1}}},
		{Revision: 7, Time: &timestamppb.Timestamp{Seconds: 1, Nanos: 2}, Kind: 1, Resource: &anypb.Any{TypeUrl: "t", Value: []byte{1}}},
		{Revision: 7, Time: &timestamppb.Timestamp{Seconds: 1, Nanos: 2}, Kind: 1, ResourceName: "referrals/x"},
		{Revision: 7, Time: &timestamppb.Timestamp{Seconds: 1, Nanos: 2}, Kind: 1, ResourceName: "referrals/x", Resource: &anypb.Any{Value: []byte{1}}},
		{Revision: 7, Time: &timestamppb.Timestamp{Seconds: 1, Nanos: 2}, Kind: 1, ResourceName: "referrals/x", Resource: &anypb.Any{TypeUrl: "t"}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("message %d: %v, want %v", i, got[i], want[i])
		}
	}
}

// TestEachLeftOutRefusesAnIncompleteFullMessage: a field the full message
// leaves unset, and not named as such, fails the test that asked.
func TestEachLeftOutRefusesAnIncompleteFullMessage(t *testing.T) {
	var failed recorder
	EachLeftOut(&failed, func() *timestamppb.Timestamp { return &timestamppb.Timestamp{Seconds: 1} })
	if failed.failures == 0 {
		t.Error("a full message with nanos unset was taken")
	}
	if got := EachLeftOut(t, func() *timestamppb.Timestamp { return &timestamppb.Timestamp{Seconds: 1} }, "google.protobuf.Timestamp.nanos"); len(got) != 2 {
		t.Errorf("with nanos named as unset: %d messages, want 2", len(got))
	}
}

// recorder is a TB that counts its failures and goes on.
type recorder struct{ failures int }

func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.failures++ }
