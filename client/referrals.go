package client

import (
	"bytes"
	"context"
	"fmt"
	"iter"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// MaxReferralBatch is the most referrals BatchCreate sends in one call, the
// limit the exchange sets on BatchCreateReferralsRequest.requests.
const MaxReferralBatch = 500

// ReferralClient sends referrals of people from the caller's agency to
// another, moves them through their states and follows them. Only the
// sending and the receiving agency ever see a referral; to anyone else,
// the secretariat included, it answers NOT_FOUND exactly as if it did not
// exist.
//
// States follow FHIR Task: REQUESTED → RECEIVED (Acknowledge) → ACCEPTED
// (Accept) or REJECTED (Reject); ACCEPTED → IN_PROGRESS (Start) →
// COMPLETED (Complete). The receiver makes these moves; the sender may
// Cancel before completion and RevokeConsent at any time. A verb in the
// wrong state fails with FAILED_PRECONDITION naming the current state, a
// verb by the wrong side with PERMISSION_DENIED.
//
// Names are full resource names ("referrals/01jd…"); ReferralName builds
// them from ids.
type ReferralClient struct {
	rpc exchangev1.ReferralServiceClient
	// link is the connection the calls go over; follow resets its
	// connect backoff when a stream that delivered breaks.
	link backoffResetter
	// sealer, when set (Config.KeyRingFile), seals and opens identifying
	// details in this process (referral_sealing.go).
	sealer *sealer
}

// Create sends the referral r and returns it as stored, with its name and
// state REQUESTED. Output-only fields of r are ignored. The consent must
// cover r's receiver and service, or nothing is stored and the call fails
// with FAILED_PRECONDITION. The call carries a request id (random unless
// WithRequestID is given; use a key from your own case system to make the
// call safe to repeat across processes) and is retried on UNAVAILABLE, so
// it never sends twice. Agencies only.
//
// With a key ring (Config.KeyRingFile) the identifying fields (subject
// name, guardian contact and birth year, case notes) are sealed to the
// receiver's registered key, checked against its pin, and to the
// agency's own, bound to the request id; the referral returned carries
// them back in clear. A receiver that registered no key, or whose key
// changed since it was pinned, is refused with FAILED_PRECONDITION and
// nothing is sent.
func (c *ReferralClient) Create(ctx context.Context, r *exchangev1.Referral, opts ...CreateOption) (*exchangev1.Referral, error) {
	s, err := newCreateSettings("CreateReferral", false, opts)
	if err != nil {
		return nil, err
	}
	sent := r
	if c.sealer != nil {
		if sent, err = c.sealer.seal(ctx, r, s.requestID, map[string]seal.Recipient{}); err != nil {
			return nil, err
		}
	}
	// The exchange need not send back the blob this call sends: it is
	// most of the referral's size, and this client holds it.
	resp, err := c.rpc.CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: sent, RequestId: s.requestID, OmitSentSealedDetails: true})
	if err != nil {
		return nil, err
	}
	created := resp.GetReferral()
	if resp.GetSealedDetailsOmitted() && created != nil {
		created.SealedDetails = bytes.Clone(sent.GetSealedDetails())
	}
	return c.putBack(created, r), nil
}

// putBack gives created, the referral the exchange returned for sent, the
// identifying details the client sealed, in clear, in place of the blob.
func (c *ReferralClient) putBack(created, sent *exchangev1.Referral) *exchangev1.Referral {
	if c.sealer != nil && len(created.GetSealedDetails()) > 0 {
		putDetails(created, detailsOf(proto.CloneOf(sent)))
		created.SealedDetails = nil
	}
	return created
}

// BatchCreate sends up to MaxReferralBatch referrals in one call and
// returns one result per request, in the same order (ReferralPushResult's
// index is the position in reqs). Each request is acknowledged on its own:
// ACCEPTED, DUPLICATE (an earlier request with the same request_id stored
// it; nothing new) or REJECTED with the code, message and fields at fault,
// so one bad record never blocks the rest. A request without a request_id
// gets a random one, which its result reports; reqs and its elements are
// not changed. Because every request then carries an id, the call is
// retried on UNAVAILABLE without creating twice; a retry after a lost
// response reports the referrals stored by the first attempt as
// DUPLICATE. An empty reqs makes no call. Agencies only.
//
// With a key ring each referral is sealed as Create seals it, bound to
// its own request id; if any cannot be sealed (a receiver without a
// registered key, or whose key changed since it was pinned), the call
// fails with that error and nothing is sent.
func (c *ReferralClient) BatchCreate(ctx context.Context, reqs []*exchangev1.CreateReferralRequest) ([]*exchangev1.ReferralPushResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	batch := make([]*exchangev1.CreateReferralRequest, len(reqs))
	keys := map[string]seal.Recipient{}
	for i, r := range reqs {
		if r.GetRequestId() == "" {
			// A shallow copy: the referral is shared, not cloned.
			r = &exchangev1.CreateReferralRequest{Referral: r.GetReferral(), RequestId: NewRequestID()}
		}
		if c.sealer != nil {
			sealed, err := c.sealer.seal(ctx, r.GetReferral(), r.GetRequestId(), keys)
			if err != nil {
				return nil, fmt.Errorf("request %d: %w", i, err)
			}
			r = &exchangev1.CreateReferralRequest{Referral: sealed, RequestId: r.GetRequestId()}
		}
		batch[i] = r
	}
	resp, err := c.rpc.BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: batch})
	if err != nil {
		return nil, err
	}
	return resp.GetResults(), nil
}

// Get returns the referral with the given name, with its identifying
// details: subject and case notes (withheld from the receiver once consent
// is revoked; DetailsWithheld says so). Each read of identifying details is
// recorded in the exchange's audit chain. With a key ring, details sealed
// by the client are opened here and returned in clear, in subject and
// case notes, without the blob; a blob no key of the ring opens, or one
// sealed for another referral, fails with DATA_LOSS.
func (c *ReferralClient) Get(ctx context.Context, name string) (*exchangev1.Referral, error) {
	resp, err := c.rpc.GetReferral(ctx, &exchangev1.GetReferralRequest{Name: name})
	if err != nil {
		return nil, err
	}
	r := resp.GetReferral()
	if c.sealer != nil {
		if err := c.sealer.open(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Referrals iterates over the caller's referrals that match req's filters
// (direction, state, niche, counterparty, updated since, overdue only),
// newest first, as summaries without identifying details; Get returns one
// in full. A nil req lists all. req's page_token is ignored and req is not
// changed. On error the iterator yields the error once and stops.
func (c *ReferralClient) Referrals(ctx context.Context, req *exchangev1.ListReferralsRequest) iter.Seq2[*exchangev1.Referral, error] {
	seq, _ := c.referrals(ctx, req)
	return seq
}

// Snapshot returns every referral Referrals would yield for req and the
// revision to watch from to follow changes after them: the revision the
// first page was read at. A change made while later pages are read may
// show both in the list and as a watch event; none is missed. This is the
// re-list that Watch's OUT_OF_RANGE error asks for.
func (c *ReferralClient) Snapshot(ctx context.Context, req *exchangev1.ListReferralsRequest) (referrals []*exchangev1.Referral, revision int64, err error) {
	seq, rev := c.referrals(ctx, req)
	referrals, err = Collect(seq)
	if err != nil {
		return nil, 0, err
	}
	return referrals, *rev, nil
}

// referrals is Referrals, with a pointer to the revision of the first page
// read, set once that page is fetched.
func (c *ReferralClient) referrals(ctx context.Context, req *exchangev1.ListReferralsRequest) (iter.Seq2[*exchangev1.Referral, error], *int64) {
	if req == nil {
		req = &exchangev1.ListReferralsRequest{}
	}
	req = proto.CloneOf(req)
	rev := new(int64)
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Referral, string, error) {
		req.PageToken = token
		resp, err := c.rpc.ListReferrals(ctx, req)
		if err == nil && token == "" {
			*rev = resp.GetRevision()
		}
		return resp.GetReferrals(), resp.GetNextPageToken(), err
	}), rev
}

// Acknowledge records that the receiver has seen the referral: REQUESTED →
// RECEIVED. etag is the referral's etag as last read, or "" to skip the
// check. Receiver only; not retried (read the referral again after an
// UNAVAILABLE error to see whether it took effect).
func (c *ReferralClient) Acknowledge(ctx context.Context, name, etag string) (*exchangev1.Referral, error) {
	resp, err := c.rpc.AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: name, Etag: etag})
	if err != nil {
		return nil, err
	}
	return resp.GetReferral(), nil
}

// Accept says the receiver will provide the service: RECEIVED → ACCEPTED.
// etag is the etag as last read, or "". Receiver only; not retried.
func (c *ReferralClient) Accept(ctx context.Context, name, etag string) (*exchangev1.Referral, error) {
	resp, err := c.rpc.AcceptReferral(ctx, &exchangev1.AcceptReferralRequest{Name: name, Etag: etag})
	if err != nil {
		return nil, err
	}
	return resp.GetReferral(), nil
}

// Reject says the receiver will not provide the service, for a reason from
// the code list (details are required for REJECTION_REASON_OTHER): RECEIVED
// → REJECTED. etag is the etag as last read, or "". Receiver only; not
// retried.
func (c *ReferralClient) Reject(ctx context.Context, name string, rejection *exchangev1.Rejection, etag string) (*exchangev1.Referral, error) {
	resp, err := c.rpc.RejectReferral(ctx, &exchangev1.RejectReferralRequest{Name: name, Etag: etag, Rejection: rejection})
	if err != nil {
		return nil, err
	}
	return resp.GetReferral(), nil
}

// Start says the receiver is providing the service: ACCEPTED →
// IN_PROGRESS. etag is the etag as last read, or "". Receiver only; not
// retried.
func (c *ReferralClient) Start(ctx context.Context, name, etag string) (*exchangev1.Referral, error) {
	resp, err := c.rpc.StartReferral(ctx, &exchangev1.StartReferralRequest{Name: name, Etag: etag})
	if err != nil {
		return nil, err
	}
	return resp.GetReferral(), nil
}

// Complete records the outcome: IN_PROGRESS → COMPLETED. etag is the etag
// as last read, or "". Receiver only; not retried.
func (c *ReferralClient) Complete(ctx context.Context, name string, outcome *exchangev1.Outcome, etag string) (*exchangev1.Referral, error) {
	resp, err := c.rpc.CompleteReferral(ctx, &exchangev1.CompleteReferralRequest{Name: name, Etag: etag, Outcome: outcome})
	if err != nil {
		return nil, err
	}
	return resp.GetReferral(), nil
}

// Cancel withdraws a referral before completion, for reason (without
// identifying details): any state but REJECTED, COMPLETED and CANCELLED →
// CANCELLED. etag is the etag as last read, or "". Sender only; not
// retried.
func (c *ReferralClient) Cancel(ctx context.Context, name, reason, etag string) (*exchangev1.Referral, error) {
	resp, err := c.rpc.CancelReferral(ctx, &exchangev1.CancelReferralRequest{Name: name, Etag: etag, Reason: reason})
	if err != nil {
		return nil, err
	}
	return resp.GetReferral(), nil
}

// RevokeConsent records that the person withdrew consent, for reason
// (without identifying details): from then on the receiver, and any agency
// it forwarded to, no longer sees the identifying details, and the
// referral cannot be forwarded. The state does not change. Sender only;
// not retried.
func (c *ReferralClient) RevokeConsent(ctx context.Context, name, reason string) (*exchangev1.Referral, error) {
	resp, err := c.rpc.RevokeReferralConsent(ctx, &exchangev1.RevokeReferralConsentRequest{Name: name, Reason: reason})
	if err != nil {
		return nil, err
	}
	return resp.GetReferral(), nil
}

// EraseDetails destroys the referral's identifying details (subject and
// case notes) for good, for example at the person's request: the
// exchange destroys the key they are encrypted with and overwrites the
// pages of its database that held them before it answers. code says why
// and is recorded in the audit chain; note, optional and without
// identifying details, goes into the referral's history, which both
// agencies see. The referral's state and history stay. It returns the
// referral without its details. Sender only; not retried (a second
// erasure answers FAILED_PRECONDITION). UNAVAILABLE with reason
// ERASURE_PENDING means the details are erased but a read that began
// before (a backup) still holds old pages; the exchange overwrites them
// when it ends, with no further call.
func (c *ReferralClient) EraseDetails(ctx context.Context, name string, code exchangev1.ErasureReason, note string) (*exchangev1.Referral, error) {
	resp, err := c.rpc.EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: name, ReasonCode: code, Reason: note})
	if err != nil {
		return nil, err
	}
	return resp.GetReferral(), nil
}

// Forward refers the person of the referral req.Name on to a third agency
// (req.Receiver): a new referral from the caller to that agency, linked to
// this one, with its own consent, which must cover the new receiver and
// service. It returns the new referral. req is not changed. The call
// carries req.RequestId, else the id of WithRequestID, else a random one,
// and is retried on UNAVAILABLE, so it never forwards twice. Receiver
// only, while the referral is RECEIVED, ACCEPTED or IN_PROGRESS.
//
// With a key ring the referral's identifying details are read and opened
// here (Get), then re-sealed, with req.CaseNotes as the new notes, to the
// new receiver's key (checked against its pin) and the caller's own,
// bound to the forward's request id.
func (c *ReferralClient) Forward(ctx context.Context, req *exchangev1.ForwardReferralRequest, opts ...CreateOption) (*exchangev1.Referral, error) {
	if req.GetRequestId() == "" {
		s, err := newCreateSettings("ForwardReferral", false, opts)
		if err != nil {
			return nil, err
		}
		req = proto.CloneOf(req)
		req.RequestId = s.requestID
	}
	if c.sealer != nil {
		parent, err := c.Get(ctx, req.GetName())
		if err != nil {
			return nil, err
		}
		details := detailsOf(parent)
		details.CaseNotes = req.GetCaseNotes()
		blob, err := c.sealer.sealDetails(ctx, details, req.GetRequestId(), req.GetReceiver(), map[string]seal.Recipient{})
		if err != nil {
			return nil, err
		}
		req = proto.CloneOf(req)
		req.CaseNotes, req.SealedDetails = "", blob
	}
	resp, err := c.rpc.ForwardReferral(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.GetReferral(), nil
}

// SuggestRecipients lists the active agencies that declare niche and cover
// the province subdivision (ISO 3166-2, for example "KH-12"), those naming
// the province before those covering its whole country. When none does,
// the response's Gap is true and its Note says so: a gap worth reporting
// to the coordination working group.
func (c *ReferralClient) SuggestRecipients(ctx context.Context, niche exchangev1.Niche, subdivision string) (*exchangev1.SuggestRecipientsResponse, error) {
	return c.rpc.SuggestRecipients(ctx, &exchangev1.SuggestRecipientsRequest{Niche: niche, Subdivision: subdivision})
}

// Statistics counts referrals by state, niche and province: over the
// caller's own referrals for an agency, across the exchange for the
// secretariat. Combinations with no referral are left out. Never contents.
func (c *ReferralClient) Statistics(ctx context.Context) ([]*exchangev1.ReferralCount, error) {
	resp, err := c.rpc.GetReferralStatistics(ctx, &exchangev1.GetReferralStatisticsRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetCounts(), nil
}
