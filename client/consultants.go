package client

import (
	"context"
	"iter"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// ConsultantClient keeps the shared roster of consultants and books them.
//
// A consultant is named under the agency that added it
// ("agencies/ilo/consultants/01jd…"), which alone changes or erases it.
// Every agency sees the consultants listed with their consent; the adding
// agency also sees those without consent. An engagement (a booking of some
// weeks) is seen by the agency that booked it and the adding agency, and
// engagements of one consultant never overlap: a booking that would is
// refused with FAILED_PRECONDITION naming the other engagement, its agency
// and its dates. A consultant or engagement the caller may not see answers
// NOT_FOUND exactly as if it did not exist. Agencies only.
type ConsultantClient struct {
	rpc exchangev1.ConsultantServiceClient
}

// Add adds the consultant k under parent, the caller's own agency
// ("agencies/ilo"), and returns it as stored. Without k.Consent the
// consultant is not listed to other agencies. The call carries a request
// id (random unless WithRequestID is given) and is retried on
// UNAVAILABLE, so it never adds twice.
func (c *ConsultantClient) Add(ctx context.Context, parent string, k *exchangev1.Consultant, opts ...CreateOption) (*exchangev1.Consultant, error) {
	s, err := newCreateSettings("CreateConsultant", false, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.CreateConsultant(ctx, &exchangev1.CreateConsultantRequest{Parent: parent, Consultant: k, RequestId: s.requestID})
	if err != nil {
		return nil, err
	}
	return resp.GetConsultant(), nil
}

// Get returns the consultant with the given name.
func (c *ConsultantClient) Get(ctx context.Context, name string) (*exchangev1.Consultant, error) {
	resp, err := c.rpc.GetConsultant(ctx, &exchangev1.GetConsultantRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetConsultant(), nil
}

// Consultants iterates over the consultants the caller may see that match
// req's filters (adding agency as parent, niche, language, province). A
// nil req, or an empty parent, lists those of every agency ("agencies/-").
// req is not changed. On error the iterator yields the error once and
// stops.
func (c *ConsultantClient) Consultants(ctx context.Context, req *exchangev1.ListConsultantsRequest) iter.Seq2[*exchangev1.Consultant, error] {
	if req == nil {
		req = &exchangev1.ListConsultantsRequest{}
	}
	req = proto.CloneOf(req)
	if req.Parent == "" {
		req.Parent = "agencies/-"
	}
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Consultant, string, error) {
		req.PageToken = token
		resp, err := c.rpc.ListConsultants(ctx, req)
		return resp.GetConsultants(), resp.GetNextPageToken(), err
	})
}

// Update replaces the profile and consent of the consultant k.Name with
// those of k; k must carry the etag as last read (ABORTED otherwise).
// Adding agency only; not retried.
func (c *ConsultantClient) Update(ctx context.Context, k *exchangev1.Consultant) (*exchangev1.Consultant, error) {
	resp, err := c.rpc.UpdateConsultant(ctx, &exchangev1.UpdateConsultantRequest{Consultant: k})
	if err != nil {
		return nil, err
	}
	return resp.GetConsultant(), nil
}

// Erase removes the consultant's personal data on their request and
// returns what is left: its name, adding agency and times. Its
// engagements stay. Adding agency only; not retried: erasing again fails
// with FAILED_PRECONDITION. UNAVAILABLE with reason ERASURE_PENDING means
// the erasure is made and the file is being overwritten.
func (c *ConsultantClient) Erase(ctx context.Context, name string) (*exchangev1.Consultant, error) {
	resp, err := c.rpc.EraseConsultant(ctx, &exchangev1.EraseConsultantRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetConsultant(), nil
}

// Engage books the consultant for the caller's agency for e.Period (both
// days included, end required), for e.Niche and e.Purpose. Overlapping
// another engagement fails with FAILED_PRECONDITION naming it. The call
// carries a request id and is retried on UNAVAILABLE, so it never books
// twice.
func (c *ConsultantClient) Engage(ctx context.Context, consultant string, e *exchangev1.Engagement, opts ...CreateOption) (*exchangev1.Engagement, error) {
	s, err := newCreateSettings("CreateEngagement", false, opts)
	if err != nil {
		return nil, err
	}
	resp, err := c.rpc.CreateEngagement(ctx, &exchangev1.CreateEngagementRequest{Parent: consultant, Engagement: e, RequestId: s.requestID})
	if err != nil {
		return nil, err
	}
	return resp.GetEngagement(), nil
}

// Engagements iterates over the consultant's engagements the caller may
// see, oldest booking first.
func (c *ConsultantClient) Engagements(ctx context.Context, consultant string) iter.Seq2[*exchangev1.Engagement, error] {
	return paginate(ctx, func(ctx context.Context, token string) ([]*exchangev1.Engagement, string, error) {
		resp, err := c.rpc.ListEngagements(ctx, &exchangev1.ListEngagementsRequest{Parent: consultant, PageToken: token})
		return resp.GetEngagements(), resp.GetNextPageToken(), err
	})
}

// Engagement returns an engagement the caller may see (its booking or its
// consultant's adding agency); NOT_FOUND otherwise.
func (c *ConsultantClient) Engagement(ctx context.Context, name string) (*exchangev1.Engagement, error) {
	resp, err := c.rpc.GetEngagement(ctx, &exchangev1.GetEngagementRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.GetEngagement(), nil
}

// CancelEngagement cancels an engagement the caller's agency booked and
// that has not ended, freeing its weeks; it stays, with reason and time.
// A non-empty etag must match (ABORTED otherwise). Not retried:
// cancelling again fails with FAILED_PRECONDITION.
func (c *ConsultantClient) CancelEngagement(ctx context.Context, name, reason, etag string) (*exchangev1.Engagement, error) {
	resp, err := c.rpc.CancelEngagement(ctx, &exchangev1.CancelEngagementRequest{Name: name, Reason: reason, Etag: etag})
	if err != nil {
		return nil, err
	}
	return resp.GetEngagement(), nil
}
