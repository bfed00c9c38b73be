package server

import (
	"time"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// auditWatchPage is how many audit entries an audit watch reads at a time;
// after each page it checks again that the caller is still admitted and
// that the call goes on, so a wake-up's work is bounded however far behind
// the watch is.
const auditWatchPage = 256

// WatchAuditEntries follows the audit chain from the position a resume
// token holds (empty: the current head), sending the caller what
// ListAuditEntries would show it, redacted the same way, each message
// with a sealed token to resume after it. The first message carries only
// a token, so that a client that reconnects before any entry arrives
// misses nothing. It wakes at every commit, but sends an agency nothing
// for entries that do not concern it; heartbeats come from its own idle
// timer alone, and their tokens are sealed with a new nonce each time, so
// that neither their timing nor their content reveals other agencies'
// activity. No read transaction is held while sending.
func (a *auditService) WatchAuditEntries(req *exchangev1.WatchAuditEntriesRequest, stream exchangev1.AuditService_WatchAuditEntriesServer) error {
	ctx := stream.Context()
	caller := CallerFrom(ctx)
	var after uint64
	if tok := req.GetResumeToken(); tok != "" {
		var ok bool
		if after, ok = a.openToken(tok); !ok {
			return invalidField("resume_token", "not a token from a previous audit watch or audit list")
		}
	} else {
		head, _, err := a.store.AuditHead(ctx)
		if err != nil {
			return err
		}
		after = head
	}
	if err := stream.Send(&exchangev1.WatchAuditEntriesResponse{ResumeToken: a.sealToken(after)}); err != nil {
		return err
	}
	idle := time.NewTimer(a.heartbeat)
	defer idle.Stop()
	beat := false // the idle timer fired: send a heartbeat once the chain is read
	for {
		if err := a.server.stillAdmitted(ctx); err != nil {
			return err
		}
		changed := a.store.Changed()
		entries, err := a.store.AuditEntries(ctx, after, auditWatchPage)
		if err != nil {
			return err
		}
		// A new filter per page: its cache of referral and certificate
		// lookups stays bounded however long the watch lasts.
		about := a.aboutCaller(ctx, caller)
		var visible []*exchangev1.AuditEntry
		for _, e := range entries {
			after = e.GetSequence()
			if caller.IsSecretariat() {
				visible = append(visible, e)
			} else if about(e) {
				e.Sequence, e.PreviousHash = 0, nil
				visible = append(visible, e)
			}
		}
		if len(visible) > 0 {
			if err := stream.Send(&exchangev1.WatchAuditEntriesResponse{Entries: visible, ResumeToken: a.sealToken(after)}); err != nil {
				return err
			}
			beat = false
			idle.Reset(a.heartbeat)
		}
		if len(entries) >= auditWatchPage {
			continue
		}
		if beat {
			if err := stream.Send(&exchangev1.WatchAuditEntriesResponse{ResumeToken: a.sealToken(after)}); err != nil {
				return err
			}
			beat = false
			idle.Reset(a.heartbeat)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.server.stopping:
			return detailed(codes.Unavailable, "the exchange is shutting down: watch again with the last resume token", "SHUTTING_DOWN", "", "", "")
		case <-changed:
		case <-idle.C:
			beat = true
		}
	}
}
