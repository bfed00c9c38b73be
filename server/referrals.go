package server

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// AckDeadlines is how long a receiver has to acknowledge a referral, per
// urgency, before the referral is flagged overdue.
type AckDeadlines map[exchangev1.Urgency]time.Duration

// DefaultAckDeadlines: 4 hours for an emergency, a day when urgent, three
// days for routine referrals.
var DefaultAckDeadlines = AckDeadlines{
	exchangev1.Urgency_URGENCY_EMERGENCY: 4 * time.Hour,
	exchangev1.Urgency_URGENCY_URGENT:    24 * time.Hour,
	exchangev1.Urgency_URGENCY_ROUTINE:   72 * time.Hour,
}

// referralService implements ReferralService.
type referralService struct {
	exchangev1.UnimplementedReferralServiceServer
	server    *Server
	store     *store.Store
	deadlines AckDeadlines
	now       func() time.Time
	heartbeat time.Duration
	// events is the newest part of the change log, decoded and encoded
	// once for every watch stream (referral_watch_events.go).
	events *referralEvents
}

// Which side of a referral the caller is on.
type side int

const (
	noSide side = iota
	senderSide
	receiverSide
)

func sideOf(c Caller, r *exchangev1.Referral) side {
	switch a := c.AgencyName(); {
	case a == "":
		return noSide
	case a == r.GetSender():
		return senderSide
	case a == r.GetReceiver():
		return receiverSide
	}
	return noSide
}

// view makes r the referral as the caller may see it, and returns it:
// identifying details only in full views, and never to a receiver after
// consent was revoked; the overdue flag computed now. It changes r itself
// rather than a copy (copying every referral returned showed in profiles
// of Create and List): r must be the caller's own, as every referral the
// store returns is (decoded or made for this call, never shared).
func (s *referralService) view(c Caller, r *exchangev1.Referral, full bool) *exchangev1.Referral {
	v := r
	// After consent is revoked only the agency that collected the details
	// keeps them: the sender of an original referral. A forward's sender
	// got them from upstream, and loses them like the receivers.
	revoked := r.GetConsent().GetRevokeTime() != nil &&
		(sideOf(c, r) == receiverSide || r.GetForwardedFrom() != "")
	if !full || revoked {
		v.Subject, v.CaseNotes, v.SealedDetails, v.DetailsWithheld = nil, "", nil, true
	}
	v.Overdue = s.overdue(r)
	return v
}

// overdue reports a referral still waiting for acknowledgement past the
// deadline for its urgency.
func (s *referralService) overdue(r *exchangev1.Referral) bool {
	d, ok := s.deadlines[r.GetUrgency()]
	return ok && r.GetState() == exchangev1.ReferralState_REFERRAL_STATE_REQUESTED &&
		s.now().Sub(r.GetCreateTime().AsTime()) > d
}

// checkNewReferral checks what protovalidate cannot: a real receiver other
// than the sender, known provinces, and consent that covers the receiver
// and the service. field prefixes the field names ("referral").
func checkNewReferral(sender, field string, r *exchangev1.Referral) error {
	if err := checkNoUnknownFields(field, r.ProtoReflect()); err != nil {
		return err
	}
	if r.GetReceiver() == sender {
		return invalidField(field+".receiver", "an agency cannot refer to itself")
	}
	// Field paths are built only for a check that fails: a batch's
	// referrals almost all pass, and each path is an allocation.
	if !locationRefKnown(r.GetLocation()) {
		if err := checkLocationRef(field+".location", r.GetLocation()); err != nil {
			return err
		}
	}
	if err := store.CheckClientSealed(field, r); err != nil {
		return err
	}
	if n := r.GetSubject().GetNationality(); n != "" {
		if _, ok := geo.ISOCountry(n); !ok {
			return checkCountry(field+".subject.nationality", n)
		}
	}
	if loc := r.GetSubject().GetCurrentLocation(); loc != nil && !locationRefKnown(loc) {
		if err := checkLocationRef(field+".subject.current_location", loc); err != nil {
			return err
		}
	}
	if c := r.GetConsent(); !consentCovers(c, r.GetReceiver(), r.GetService().GetNiche()) {
		return checkConsent(field+".consent", c, r.GetReceiver(), r.GetService().GetNiche())
	}
	return nil
}

// consentCovers decides whether checkConsent accepts c, which itself only
// names what failed; it builds no field path.
func consentCovers(c *exchangev1.Consent, receiver string, niche exchangev1.Niche) bool {
	return c.GetReceivingAgency() == receiver && slices.Contains(c.GetServices(), niche)
}

// checkConsent refuses consent that does not cover the receiver and the
// service: FAILED_PRECONDITION, because the request is well formed but the
// person has not agreed to it.
func checkConsent(field string, c *exchangev1.Consent, receiver string, niche exchangev1.Niche) error {
	if consentCovers(c, receiver, niche) {
		return nil
	}
	if c.GetReceivingAgency() != receiver {
		return &store.Error{Kind: store.KindFailedPrecondition, Field: field + ".receiving_agency",
			Message: fmt.Sprintf("%s.receiving_agency: consent covers %s, not the receiver %s; nothing was stored", field, c.GetReceivingAgency(), receiver)}
	}
	if !slices.Contains(c.GetServices(), niche) {
		return &store.Error{Kind: store.KindFailedPrecondition, Field: field + ".services",
			Message: fmt.Sprintf("%s.services: consent does not cover %s; nothing was stored", field, niche)}
	}
	return nil
}

// CreateReferral sends one referral.
func (s *referralService) CreateReferral(ctx context.Context, req *exchangev1.CreateReferralRequest) (*exchangev1.CreateReferralResponse, error) {
	caller := CallerFrom(ctx)
	if err := checkNewReferral(caller.AgencyName(), "referral", req.GetReferral()); err != nil {
		return nil, err
	}
	// The sealed details sent, taken before the store works on the
	// request.
	sent := req.GetReferral().GetSealedDetails()
	// The store keeps the request id itself, in the scope shared with
	// batches; the Op carries none, so it is recorded once. The request
	// was decoded for this call and is not read again but through the
	// result, so the store may change it rather than copy it (Owned).
	results, err := s.store.CreateReferrals(ctx, opFor(ctx, ""), []store.NewReferral{{RequestID: req.GetRequestId(), Referral: req.GetReferral(), Owned: true}})
	if err != nil {
		return nil, err
	}
	if results[0].Err != nil {
		return nil, results[0].Err
	}
	resp := &exchangev1.CreateReferralResponse{Referral: s.view(caller, results[0].Referral, true)}
	if req.GetOmitSentSealedDetails() {
		omitSentSealedDetails(sent, resp)
	}
	return resp, nil
}

// omitSentSealedDetails leaves out of resp the referral's sealed details
// when they are exactly sent, the ones the request carried: a blob is
// most of a referral's size, and the sender holds it already. A
// request_id first used with another referral returns that referral's
// details, as without the option.
func omitSentSealedDetails(sent []byte, resp *exchangev1.CreateReferralResponse) {
	if stored := resp.GetReferral().GetSealedDetails(); len(stored) > 0 && bytes.Equal(stored, sent) {
		resp.Referral.SealedDetails = nil
		resp.SealedDetailsOmitted = true
	}
}

// BatchCreateReferrals validates each referral on its own, stores the
// valid ones in one transaction, and reports each result, listing the
// violations within the batch's budget (batch_violations.go).
func (s *referralService) BatchCreateReferrals(ctx context.Context, req *exchangev1.BatchCreateReferralsRequest) (*exchangev1.BatchCreateReferralsResponse, error) {
	caller := CallerFrom(ctx)
	resp := &exchangev1.BatchCreateReferralsResponse{Results: make([]*exchangev1.ReferralPushResult, len(req.GetRequests()))}
	var items []store.NewReferral
	var positions []int
	seen := map[string]int{}
	budget := newViolationBudget()
	for i, r := range req.GetRequests() {
		res := &exchangev1.ReferralPushResult{Index: int32(i), RequestId: r.GetRequestId()}
		resp.Results[i] = res
		firstOnly := budget.firstOnly()
		report, err := s.server.violations(r, firstOnly)
		if err == nil && report.total > 0 {
			res.Status, res.Code, res.Message = exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED, "INVALID_ARGUMENT", report.message()
			res.Violations, res.UnlistedViolations = budget.list(len(report.kept), report.total, func(j int) (string, string) {
				return report.kept[j].GetField(), report.kept[j].GetDescription()
			})
			res.CheckedToFirstViolation = firstOnly
			continue
		}
		if err == nil {
			err = checkNewReferral(caller.AgencyName(), "referral", r.GetReferral())
		}
		if err == nil {
			if first, dup := seen[r.GetRequestId()]; dup {
				err = invalidField("request_id", fmt.Sprintf("repeats the request_id of request %d in this batch", first))
			}
		}
		if err != nil {
			rejectPush(ctx, s.server, res, err, budget)
			continue
		}
		seen[r.GetRequestId()] = i
		// Owned: as in CreateReferral, the decoded item is not read again.
		items = append(items, store.NewReferral{RequestID: r.GetRequestId(), Referral: r.GetReferral(), Owned: true})
		positions = append(positions, i)
	}
	if len(items) == 0 {
		return resp, nil
	}
	created, err := s.store.CreateReferrals(ctx, opFor(ctx, ""), items)
	if err != nil {
		return nil, err
	}
	for j, c := range created {
		res := resp.Results[positions[j]]
		switch {
		case c.Err != nil:
			rejectPush(ctx, s.server, res, c.Err, budget)
		case c.Duplicate:
			res.Status, res.Referral = exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE, c.Referral.GetName()
		default:
			res.Status, res.Referral = exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED, c.Referral.GetName()
		}
	}
	return resp, nil
}

// rejectPush fills a batch result from the error that refused it, through
// the same error table as every other response, listing its violations
// within the batch's budget.
func rejectPush(ctx context.Context, srv *Server, res *exchangev1.ReferralPushResult, err error, budget *violationBudget) {
	st, _ := status.FromError(toStatus(ctx, srv.log, "BatchCreateReferrals", err))
	res.Status = exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED
	res.Code = codeName(st.Code())
	res.Message = st.Message()
	if found := fieldViolations(st); len(found) > 0 {
		res.Violations, res.UnlistedViolations = budget.list(len(found), len(found), func(i int) (string, string) {
			return found[i].GetField(), found[i].GetDescription()
		})
	}
}

// codeName returns the canonical name of a code, for example
// "INVALID_ARGUMENT".
func codeName(c codes.Code) string {
	name := c.String()
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// GetReferral returns a referral to one of its two agencies; to anyone
// else it does not exist, and the store refuses it by the same path as a
// missing one (GetReferralFor). Reads of identifying details are audited.
func (s *referralService) GetReferral(ctx context.Context, req *exchangev1.GetReferralRequest) (*exchangev1.GetReferralResponse, error) {
	caller := CallerFrom(ctx)
	r, err := s.store.GetReferralFor(ctx, caller.Actor(), req.GetName())
	if err != nil {
		return nil, err
	}
	if sideOf(caller, r) == noSide {
		return nil, notFound(req.GetName())
	}
	v := s.view(caller, r, true)
	if !v.GetDetailsWithheld() && !r.GetDetailsErased() {
		if err := s.store.RecordRead(ctx, opFor(ctx, ""), r.GetName()); err != nil {
			return nil, err
		}
	}
	return &exchangev1.GetReferralResponse{Referral: v}, nil
}

// referralListFingerprint names the filters of a ListReferrals request
// that the store does not see (it binds the agency and the direction
// itself) for its page tokens, each in a part of its own, so that a token
// from one list is refused by a list with any other filter: state, niche,
// counterparty, updated_since (to the nanosecond; unset differs from the
// epoch) and overdue_only.
func referralListFingerprint(req *exchangev1.ListReferralsRequest) string {
	since := "unset"
	if ts := req.GetUpdatedSince(); ts != nil {
		since = fmt.Sprintf("%d.%09d", ts.GetSeconds(), ts.GetNanos())
	}
	return strings.Join([]string{
		"state=" + req.GetState().String(),
		"niche=" + req.GetNiche().String(),
		"counterparty=" + req.GetCounterparty(),
		"updated_since=" + since,
		fmt.Sprintf("overdue_only=%t", req.GetOverdueOnly()),
	}, "\x00")
}

// ListReferrals lists the caller's referrals as summaries.
func (s *referralService) ListReferrals(ctx context.Context, req *exchangev1.ListReferralsRequest) (*exchangev1.ListReferralsResponse, error) {
	caller := CallerFrom(ctx)
	if caller.AgencyName() == "" {
		// The secretariat is party to no referral.
		safe, err := s.store.SafeRevision(ctx)
		if err != nil {
			return nil, err
		}
		return &exchangev1.ListReferralsResponse{Revision: safe}, nil
	}
	since := req.GetUpdatedSince()
	keep := func(r *exchangev1.Referral) bool {
		if req.GetState() != 0 && r.GetState() != req.GetState() {
			return false
		}
		if req.GetNiche() != 0 && r.GetService().GetNiche() != req.GetNiche() {
			return false
		}
		if cp := req.GetCounterparty(); cp != "" && r.GetSender() != cp && r.GetReceiver() != cp {
			return false
		}
		if since != nil && r.GetUpdateTime().AsTime().Before(since.AsTime()) {
			return false
		}
		return !req.GetOverdueOnly() || s.overdue(r)
	}
	items, next, rev, err := s.store.ListReferrals(ctx, store.ReferralFilter{
		AgencyID: caller.Identity.AgencyID,
		Inbox:    req.GetDirection() == exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX,
		Outbox:   req.GetDirection() == exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX,
		Keep:     keep, Fingerprint: referralListFingerprint(req),
	}, store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	resp := &exchangev1.ListReferralsResponse{NextPageToken: next, Revision: rev}
	for _, r := range items {
		resp.Referrals = append(resp.Referrals, s.view(caller, r, false))
	}
	return resp, nil
}
