package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestRevisionsAnAgencySeesDoNotDateOthersChanges: the revision of a list
// and of a watch's heartbeat is a time taken during the call (a safe
// revision), not the revision of the last change, which would tell an
// agency when (and, with a counter, how often) other agencies changed
// anything. The revisions of changes are commit times too.
func TestRevisionsAnAgencySeesDoNotDateOthersChanges(t *testing.T) {
	x, _, ilo, _, unicef := threeAgencies(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch, err := unicef.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMicro()
	refer(t, ilo, "iom") // the network's last change; nothing concerns unicef
	last := x.store.Revision()
	t1 := time.Now().UnixMicro()
	if last < before || last > t1 {
		t.Errorf("the referral's revision %d is not its commit time (between %d and %d)", last, before, t1)
	}

	list, err := unicef.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{})
	t2 := time.Now().UnixMicro()
	if err != nil {
		t.Fatal(err)
	}
	if rev := list.GetRevision(); rev < t1 || rev > t2 {
		t.Errorf("list revision %d: want the time of the call, between %d and %d (the last change was %d)", rev, t1, t2, last)
	}

	// The first heartbeat received after t1 may have been made before;
	// the second was made after.
	heartbeats := 0
	for heartbeats < 2 {
		msg, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if msg.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT {
			t.Fatalf("unicef was sent %v", msg)
		}
		if time.Now().UnixMicro() > t1 {
			heartbeats++
		}
		if heartbeats == 2 && msg.GetRevision() < t1 {
			t.Errorf("heartbeat revision %d dates the last change (%d); want a time after %d", msg.GetRevision(), last, t1)
		}
	}
	// A heartbeat's revision resumes a watch like any other.
	if _, err := unicef.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{StartRevision: list.GetRevision()}); err != nil {
		t.Fatal(err)
	}
}

// TestAgenciesAuditPositionsAreHidden: an agency's audit entries come
// without their place in the chain, its page tokens are sealed (the same
// position gives a different token each time, a changed token is refused)
// and survive a restart, and only the secretariat reads the head.
func TestAgenciesAuditPositionsAreHidden(t *testing.T) {
	x, sec, ilo, _, unicef := threeAgencies(t)
	ctx := context.Background()
	for range 3 {
		refer(t, ilo, "iom")
	}
	page := func(c as, token string) *exchangev1.ListAuditEntriesResponse {
		t.Helper()
		resp, err := c.audit().ListAuditEntries(ctx, &exchangev1.ListAuditEntriesRequest{PageSize: 1, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first, again := page(ilo, ""), page(ilo, "")
	if first.GetNextPageToken() == "" || first.GetNextPageToken() == again.GetNextPageToken() {
		t.Errorf("tokens for one position: %q and %q; want two different sealed tokens", first.GetNextPageToken(), again.GetNextPageToken())
	}
	for _, e := range allAuditEntries(t, ilo, 2) {
		if e.GetSequence() != 0 || len(e.GetPreviousHash()) != 0 || len(e.GetHash()) != 32 {
			t.Errorf("ilo is shown entry %d (previous %x) of %s", e.GetSequence(), e.GetPreviousHash(), e.GetResourceName())
		}
	}
	if len(allAuditEntries(t, sec, 2)) < 6 || allAuditEntries(t, sec, 100)[0].GetSequence() != 1 {
		t.Error("the secretariat is not shown the chain's positions")
	}

	tok := first.GetNextPageToken()
	forged := []byte(tok)
	forged[len(forged)/2] ^= 1
	if _, err := ilo.audit().ListAuditEntries(ctx, &exchangev1.ListAuditEntriesRequest{PageToken: string(forged)}); grpcstatus.Code(err) != codes.InvalidArgument {
		t.Errorf("a changed token: %v, want InvalidArgument", err)
	}
	if _, err := unicef.audit().GetAuditHead(ctx, &exchangev1.GetAuditHeadRequest{}); grpcstatus.Code(err) != codes.PermissionDenied {
		t.Errorf("an agency reads the audit head: %v, want PermissionDenied", err)
	}

	x.restart()
	ilo = x.asAgency("ilo")
	next := page(ilo, tok)
	if len(next.GetEntries()) != 1 || next.GetEntries()[0].GetHash() == nil || string(next.GetEntries()[0].GetHash()) == string(first.GetEntries()[0].GetHash()) {
		t.Errorf("after a restart the token gave %v", next.GetEntries())
	}
}
