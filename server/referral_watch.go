package server

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// watchPage is how many change-log entries a watch reads at a time.
const watchPage = 256

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// WatchReferrals replays the change log after the requested revision, then
// follows it live, sending the caller's referral events as summaries. No
// read transaction is held while sending. When nothing concerns the caller
// for a while it sends a heartbeat with a safe revision reached
// (store.SafeRevision: a time, never the revision of a change the caller
// may not see), so a client resumes from there.
func (s *referralService) WatchReferrals(req *exchangev1.WatchReferralsRequest, stream exchangev1.ReferralService_WatchReferralsServer) error {
	ctx := stream.Context()
	caller := CallerFrom(ctx)
	rev := req.GetStartRevision()
	current, err := s.store.SafeRevision(ctx)
	if err != nil {
		return err
	}
	if err := checkStartRevision(rev, current); err != nil {
		return err
	}
	if rev == 0 {
		rev = current
	}
	// rev is how far the log has been read, possibly past changes of
	// other agencies; pos is what the caller may be told: everything up
	// to it has been read, and it is either a revision the caller was
	// sent or a safe revision, so it never dates another agency's change.
	pos := rev
	beat := false // the idle timer fired: send a heartbeat once the log is read
	idle := time.NewTimer(s.heartbeat)
	defer idle.Stop()
	for {
		if err := s.server.stillAdmitted(ctx); err != nil {
			return err
		}
		changed := s.store.Changed()
		var safe int64
		if beat { // the heartbeat carries a safe revision taken before the read below
			var err error
			if safe, err = s.store.SafeRevision(ctx); err != nil {
				return err
			}
		}
		// The events are shared by every stream (referral_watch_events.go);
		// which of them this caller may see is decided here.
		events, err := s.events.after(ctx, rev, watchPage)
		if err != nil {
			return err
		}
		for _, ev := range events {
			rev = ev.revision
			if ev.summary == nil || sideOf(caller, ev.summary) == noSide {
				continue
			}
			if err := stream.SendMsg(s.messageFor(ev)); err != nil {
				return err
			}
			pos = rev
			idle.Reset(s.heartbeat)
		}
		if len(events) >= watchPage {
			continue
		}
		pos = max(pos, safe) // every change up to safe has been read
		if beat {
			if err := stream.Send(&exchangev1.WatchReferralsResponse{Revision: pos, Kind: exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT}); err != nil {
				return err
			}
			beat = false
			idle.Reset(s.heartbeat)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.server.stopping:
			return shuttingDown(pos)
		case <-changed:
		case <-idle.C:
			beat = true
		}
	}
}

// shuttingDown ends a watch when the server stops, so that graceful
// shutdown waits only for calls that finish by themselves; the client
// resumes from the revision reached on another server or after restart.
func shuttingDown(revision int64) error {
	return detailed(codes.Unavailable, fmt.Sprintf("the exchange is shutting down: watch again from revision %d", revision), "SHUTTING_DOWN", "", "", "")
}

// checkStartRevision refuses a watch from a revision the exchange has not
// reached: the watcher would wait there and miss every change until then.
// current is a safe revision (store.SafeRevision).
func checkStartRevision(start, current int64) error {
	if start > current {
		return invalidField("start_revision", fmt.Sprintf("%d is beyond the current revision", start))
	}
	return nil
}
