package ui

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestReferralBoxOrder checks the order of the inbox and outbox: overdue
// first, then by state in lifecycle order, then the latest update first;
// and the counts by state.
func TestReferralBoxOrder(t *testing.T) {
	at := func(min int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2026, 11, 1, 0, min, 0, 0, time.UTC))
	}
	ref := func(id string, state exchangev1.ReferralState, overdue bool, updated int) *exchangev1.Referral {
		return &exchangev1.Referral{Name: "referrals/" + id, Sender: "agencies/ilo", State: state, Overdue: overdue, UpdateTime: at(updated)}
	}
	const (
		requested  = exchangev1.ReferralState_REFERRAL_STATE_REQUESTED
		inProgress = exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS
		completed  = exchangev1.ReferralState_REFERRAL_STATE_COMPLETED
	)
	box := referralBoxOf([]*exchangev1.Referral{
		ref("completed", completed, false, 9),
		ref("requested-old", requested, false, 1),
		ref("in-progress", inProgress, false, 5),
		ref("overdue", requested, true, 0),
		ref("requested-new", requested, false, 3),
	}, inboxActions, (*exchangev1.Referral).GetSender)
	var got []string
	for _, r := range box.Rows {
		got = append(got, r.ID)
	}
	want := []string{"overdue", "requested-new", "requested-old", "in-progress", "completed"}
	if len(got) != len(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
	if box.Overdue != 1 {
		t.Errorf("overdue count %d, want 1", box.Overdue)
	}
	wantCounts := []referralCount{{State: "requested", Count: 3}, {State: "in-progress", Count: 1}, {State: "completed", Count: 1}}
	if len(box.ByState) != len(wantCounts) {
		t.Fatalf("counts %+v, want %+v", box.ByState, wantCounts)
	}
	for i := range wantCounts {
		if box.ByState[i] != wantCounts[i] {
			t.Errorf("counts %+v, want %+v", box.ByState, wantCounts)
		}
	}
	if a := box.Rows[0].Actions; len(a) != 1 || a[0] != "acknowledge" {
		t.Errorf("actions of a requested referral in the inbox: %v, want [acknowledge]", a)
	}
	if box.Rows[0].Details != "sealed" {
		t.Errorf("details %q, want sealed", box.Rows[0].Details)
	}
}
