package client

import (
	"context"
	"iter"

	"github.com/alltogether/exchange/auditchain"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// AuditClient reads the audit chain.
type AuditClient struct {
	rpc exchangev1.AuditServiceClient
	// link is the connection the calls go over; follow resets its
	// connect backoff when a stream that delivered breaks.
	link backoffResetter
}

// Entries iterates over the audit entries the caller may see, in chain
// order: all of them for the secretariat, those about its own resources
// for an agency.
func (c *AuditClient) Entries(ctx context.Context) iter.Seq2[*exchangev1.AuditEntry, error] {
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.AuditEntry, string, error) {
		resp, err := c.rpc.ListAuditEntries(ctx, &exchangev1.ListAuditEntriesRequest{PageSize: 1000, PageToken: token})
		return resp.GetEntries(), resp.GetNextPageToken(), err
	})
}

// Head returns the last entry's sequence number and hash. Only the
// secretariat may ask: the head moves with every agency's changes, so an
// agency gets PERMISSION_DENIED.
func (c *AuditClient) Head(ctx context.Context) (uint64, []byte, error) {
	resp, err := c.rpc.GetAuditHead(ctx, &exchangev1.GetAuditHeadRequest{})
	return resp.GetSequence(), resp.GetHash(), err
}

// Verify reads the whole chain (the secretariat's view) and checks every
// entry and the link to the one before, then that the chain reaches the
// head the server reports. It returns the number of entries verified.
func (c *AuditClient) Verify(ctx context.Context) (uint64, error) {
	seq, hash, err := c.Head(ctx)
	if err != nil {
		return 0, err
	}
	v := auditchain.NewVerifier()
	for e, err := range c.Entries(ctx) {
		if err != nil {
			return 0, err
		}
		if e.GetSequence() > seq {
			break // written after the head was read
		}
		if err := v.Add(e); err != nil {
			return 0, err
		}
	}
	n, _ := v.Head()
	return n, v.CheckHead(seq, hash)
}

// Watch follows, live, the audit entries the caller may see (what Entries
// shows it: all of them for the secretariat; for an agency those about its
// own resources, certificates issued for it and its key changes included,
// without sequence and previous hash), starting after resumeToken, or from
// now when it is empty, and calls fn with each message, in order, on the
// caller's goroutine. A message without entries is the start of a stream
// or a heartbeat the exchange sends when nothing concerns the caller for a
// while; every message carries a resume token.
//
// When the stream breaks (UNAVAILABLE, as when the exchange shuts down, or
// the server ends it), Watch reconnects with backoff like
// ReferralClient.Watch and resumes with the last token it received, so no
// entry is lost and none is delivered twice. OnReconnect's revision is
// always 0: an audit watch's position is its sealed token. To resume in
// another process, keep the resume token of the last message fn accepted.
//
// Watch returns when ctx is done (a CANCELED or DEADLINE_EXCEEDED status
// error), when fn returns an error (that error, unchanged), or on any
// other error from the exchange, unchanged. Config.Timeout does not bound
// Watch; ctx does.
func (c *AuditClient) Watch(ctx context.Context, resumeToken string, fn func(*exchangev1.WatchAuditEntriesResponse) error, opts ...WatchOption) error {
	token := resumeToken
	return follow(ctx, opts, 0, c.link, func() (bool, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.rpc.WatchAuditEntries(ctx, &exchangev1.WatchAuditEntriesRequest{ResumeToken: token})
		if err != nil {
			return false, err
		}
		progressed := false
		for {
			msg, err := stream.Recv()
			if err != nil {
				return progressed, err
			}
			progressed = true
			token = msg.GetResumeToken()
			if err := fn(msg); err != nil {
				return progressed, callbackError{err}
			}
		}
	}, func() int64 { return 0 })
}
