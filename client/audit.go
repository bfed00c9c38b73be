package client

import (
	"context"
	"iter"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store/audit"
)

// AuditClient reads the audit chain.
type AuditClient struct {
	rpc exchangev1.AuditServiceClient
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
	v := audit.NewVerifier()
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
