package clienttest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// defaultWatchHeartbeat is how long the fake's watch stays silent before
// it sends a heartbeat, unless SetWatchHeartbeat says otherwise.
const defaultWatchHeartbeat = time.Second

// Syntax checked by the fake, as in the .proto files.
var (
	requestIDPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	agencyNamePattern   = regexp.MustCompile(`^agencies/[a-z][a-z0-9-]{1,38}[a-z0-9]$`)
	referralNamePattern = regexp.MustCompile(`^referrals/[0-9a-z]{26}$`)
)

// referralRequests is the request_id scope shared by CreateReferral and
// BatchCreateReferrals, as on the real server.
const referralRequests = "CreateReferral"

// referralChange is one entry of the fake's change log.
type referralChange struct {
	revision int64
	kind     exchangev1.ReferralEventKind
	referral *exchangev1.Referral
}

// referralService is the fake ReferralService. It keeps the referral
// lifecycle (who may make which move from which state), request ids,
// visibility to the two agencies only, and a change log for watches; it
// checks only the request fields the client and exchangectl tests rely on.
type referralService struct {
	exchangev1.UnimplementedReferralServiceServer
	server *Server
	state  *state
}

// PutReferral stores a copy of r as is (r.Name, r.Sender and r.Receiver
// must be set), replacing any referral of that name, records a change for
// watches, and returns the stored copy with a fresh etag. Tests use it to
// set states and flags (such as Overdue) the fake does not compute.
func (s *Server) PutReferral(r *exchangev1.Referral) *exchangev1.Referral {
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	r = proto.CloneOf(r)
	_, existed := st.referrals[r.Name]
	if r.State == exchangev1.ReferralState_REFERRAL_STATE_UNSPECIFIED {
		r.State = exchangev1.ReferralState_REFERRAL_STATE_REQUESTED
	}
	kind := exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_CREATED
	if existed {
		kind = exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_UPDATED
	}
	st.recordReferral(st.nextRevision(), kind, r)
	return proto.CloneOf(r)
}

// Referrals returns copies of the stored referrals in name order (oldest
// first), with every detail.
func (s *Server) Referrals() []*exchangev1.Referral {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	return sortedValues(s.state.referrals, func(a, b *exchangev1.Referral) int { return cmp.Compare(a.Name, b.Name) })
}

// Revision returns the fake's current revision.
func (s *Server) Revision() int64 {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	return int64(s.state.revision)
}

// CompactChanges drops the change log up to and including revision: a
// watch from an older revision then fails with OUT_OF_RANGE.
func (s *Server) CompactChanges(revision int64) {
	st := s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	st.compacted = max(st.compacted, revision)
	st.changes = slices.DeleteFunc(st.changes, func(c referralChange) bool { return c.revision <= revision })
}

// BreakWatch makes the next len(after) WatchReferrals streams, one number
// each, fail with UNAVAILABLE right after sending that many events
// (heartbeats do not count), as when a connection drops; 0 fails the
// stream at once. A negative number leaves its stream alone.
func (s *Server) BreakWatch(after ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchBreaks = append(s.watchBreaks, after...)
}

// SetWatchHeartbeat sets how long a watch stays silent before the fake
// sends a heartbeat (1s unless set).
func (s *Server) SetWatchHeartbeat(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heartbeat = d
}

// nextRevision returns a new revision. The caller holds mu.
func (st *state) nextRevision() int64 {
	st.revision++
	return int64(st.revision)
}

// recordReferral stores r at revision rev with a fresh etag and appends
// the change for watches. The caller holds mu.
func (st *state) recordReferral(rev int64, kind exchangev1.ReferralEventKind, r *exchangev1.Referral) {
	r.Etag = strconv.FormatInt(rev, 10)
	st.referrals[r.Name] = proto.CloneOf(r)
	st.changes = append(st.changes, referralChange{revision: rev, kind: kind, referral: proto.CloneOf(r)})
	close(st.referralsChanged)
	st.referralsChanged = make(chan struct{})
}

// callerAgency returns "agencies/{id}" for an agency caller, "" for the
// secretariat.
func callerAgency(ctx context.Context) string {
	id, ok := strings.CutPrefix(callerURI(ctx), "spiffe://alltogether/agency/")
	if !ok {
		return ""
	}
	return "agencies/" + id
}

// party reports whether agency is the sender or the receiver of r.
func party(agency string, r *exchangev1.Referral) bool {
	return agency != "" && (r.GetSender() == agency || r.GetReceiver() == agency)
}

// summary is r without identifying details, as lists and watches show it.
func summary(r *exchangev1.Referral) *exchangev1.Referral {
	v := proto.CloneOf(r)
	v.Subject, v.CaseNotes, v.SealedDetails, v.DetailsWithheld = nil, "", nil, true
	return v
}

// full is r as one of its agencies reads it: without identifying details
// for the receiver once consent was revoked.
func full(agency string, r *exchangev1.Referral) *exchangev1.Referral {
	if agency == r.GetReceiver() && r.GetConsent().GetRevokeTime() != nil {
		return summary(r)
	}
	return proto.CloneOf(r)
}

// checkReferral checks a new referral from sender: the fields the tests
// need, the receiver in the directory, and consent covering receiver and
// service. The caller holds mu.
func (st *state) checkReferral(sender, requestID string, r *exchangev1.Referral) error {
	var v []*errdetails.BadRequest_FieldViolation
	if !requestIDPattern.MatchString(requestID) {
		v = append(v, violation("request_id", "value does not match regex pattern `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`"))
	}
	if r == nil {
		v = append(v, violation("referral", "value is required"))
		return invalid("invalid request: "+v[len(v)-1].Field+": "+v[len(v)-1].Description, v...)
	}
	if !agencyNamePattern.MatchString(r.Receiver) {
		v = append(v, violation("referral.receiver", "value does not match regex pattern `^agencies/[a-z][a-z0-9-]{1,38}[a-z0-9]$`"))
	}
	if r.Service.GetNiche() == exchangev1.Niche_NICHE_UNSPECIFIED {
		v = append(v, violation("referral.service.niche", "value must not be in list [0]"))
	}
	if r.Service.GetNeed() == "" {
		v = append(v, violation("referral.service.need", "value length must be at least 1 characters"))
	}
	if r.Urgency == exchangev1.Urgency_URGENCY_UNSPECIFIED {
		v = append(v, violation("referral.urgency", "value must not be in list [0]"))
	}
	if r.SubjectReference == "" {
		v = append(v, violation("referral.subject_reference", "value length must be at least 1 characters"))
	}
	if r.Consent.GetGivenBy() == exchangev1.ConsentGiver_CONSENT_GIVER_UNSPECIFIED {
		v = append(v, violation("referral.consent.given_by", "value must not be in list [0]"))
	}
	if r.Consent.GetGivenTime() == nil {
		v = append(v, violation("referral.consent.given_time", "value is required"))
	}
	if r.Location == nil {
		v = append(v, violation("referral.location", "value is required"))
	}
	if len(v) > 0 {
		msg := "invalid request: " + v[0].Field + ": " + v[0].Description
		if len(v) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(v)-1)
		}
		return invalid(msg, v...)
	}
	if err := checkSealed("referral", r); err != nil {
		return err
	}
	if r.Receiver == sender {
		return fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "referral.receiver", "an agency cannot refer to itself")
	}
	if _, ok := st.agencies[r.Receiver]; !ok {
		return fieldError(codes.NotFound, "NOT_FOUND", "referral.receiver", r.Receiver+" is not in the directory")
	}
	return checkConsent("referral.consent", r.Consent, r.Receiver, r.Service.GetNiche())
}

// checkConsent fails with FAILED_PRECONDITION unless c covers receiver and
// niche.
func checkConsent(field string, c *exchangev1.Consent, receiver string, niche exchangev1.Niche) error {
	if c.GetReceivingAgency() != receiver {
		return fieldError(codes.FailedPrecondition, "FAILED_PRECONDITION", field+".receiving_agency",
			fmt.Sprintf("consent covers %s, not the receiver %s; nothing was stored", c.GetReceivingAgency(), receiver))
	}
	if !slices.Contains(c.GetServices(), niche) {
		return fieldError(codes.FailedPrecondition, "FAILED_PRECONDITION", field+".services",
			fmt.Sprintf("consent does not cover %s; nothing was stored", niche))
	}
	return nil
}

// fieldError is an error about one field, shaped like the real server's:
// "field: description", with a BadRequest naming the field.
func fieldError(code codes.Code, reason, field, description string) error {
	return statusError(code, reason, field+": "+description, &errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{violation(field, description)},
	})
}

// createReferral stores a new referral from sender, or returns the one an
// earlier request with the same id stored. The caller holds mu.
func (st *state) createReferral(sender, requestID string, r *exchangev1.Referral) (created *exchangev1.Referral, duplicate bool, err error) {
	if resp, ok := st.replay(referralRequests, sender+"\x00"+requestID); ok {
		return proto.CloneOf(st.referrals[resp.(*exchangev1.Referral).Name]), true, nil
	}
	if sender == "" {
		return nil, false, statusError(codes.PermissionDenied, "PERMISSION_DENIED", "only agencies send referrals")
	}
	if err := st.checkReferral(sender, requestID, r); err != nil {
		return nil, false, err
	}
	rev := st.nextRevision()
	created = proto.CloneOf(r)
	created.Name = "referrals/" + fmt.Sprintf("01j%023d", rev)
	created.Sender, created.RequestId = sender, requestID
	created.State = exchangev1.ReferralState_REFERRAL_STATE_REQUESTED
	created.History = []*exchangev1.Transition{{Actor: sender, Time: now(), ToState: created.State, Reason: "sent"}}
	created.Rejection, created.Outcome, created.ForwardedFrom, created.ForwardedTo = nil, nil, "", nil
	created.Overdue, created.DetailsWithheld = false, false
	created.CreateTime, created.UpdateTime = now(), now()
	st.recordReferral(rev, exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_CREATED, created)
	st.remember(referralRequests, sender+"\x00"+requestID, &exchangev1.Referral{Name: created.Name})
	return proto.CloneOf(created), false, nil
}

func (f *referralService) CreateReferral(ctx context.Context, req *exchangev1.CreateReferralRequest) (*exchangev1.CreateReferralResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	r, _, err := st.createReferral(callerAgency(ctx), req.RequestId, req.Referral)
	if err != nil {
		return nil, err
	}
	resp := &exchangev1.CreateReferralResponse{Referral: r}
	if req.OmitSentSealedDetails && len(r.SealedDetails) > 0 && bytes.Equal(r.SealedDetails, req.Referral.GetSealedDetails()) {
		r.SealedDetails, resp.SealedDetailsOmitted = nil, true
	}
	return resp, nil
}

func (f *referralService) BatchCreateReferrals(ctx context.Context, req *exchangev1.BatchCreateReferralsRequest) (*exchangev1.BatchCreateReferralsResponse, error) {
	if n := len(req.Requests); n == 0 || n > 500 {
		return nil, invalid("invalid request: requests: must hold 1 to 500 items", violation("requests", fmt.Sprintf("value must contain between 1 and 500 items, got %d", n)))
	}
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	sender := callerAgency(ctx)
	resp := &exchangev1.BatchCreateReferralsResponse{}
	seen := map[string]int{}
	for i, r := range req.Requests {
		res := &exchangev1.ReferralPushResult{Index: int32(i), RequestId: r.RequestId}
		resp.Results = append(resp.Results, res)
		var created *exchangev1.Referral
		var dup bool
		var err error
		if first, ok := seen[r.RequestId]; ok && r.RequestId != "" {
			err = fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "request_id", fmt.Sprintf("repeats the request_id of request %d in this batch", first))
		} else {
			seen[r.RequestId] = i
			created, dup, err = st.createReferral(sender, r.RequestId, r.Referral)
		}
		switch {
		case err != nil:
			s := status.Convert(err)
			res.Status = exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED
			res.Code = codeName(s.Code())
			res.Message = s.Message()
			for _, d := range s.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.FieldViolations {
						res.Violations = append(res.Violations, &exchangev1.FieldViolation{Field: v.Field, Description: v.Description})
					}
				}
			}
		case dup:
			res.Status, res.Referral = exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE, created.Name
		default:
			res.Status, res.Referral = exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED, created.Name
		}
	}
	return resp, nil
}

// codeName returns the canonical name of a code, such as
// "INVALID_ARGUMENT".
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// visible returns the referral name if agency may see it, or NOT_FOUND.
// The caller holds mu.
func (st *state) visible(agency, name string) (*exchangev1.Referral, error) {
	r, ok := st.referrals[name]
	if !ok || !party(agency, r) {
		return nil, notFound(name)
	}
	return r, nil
}

func (f *referralService) GetReferral(ctx context.Context, req *exchangev1.GetReferralRequest) (*exchangev1.GetReferralResponse, error) {
	if !referralNamePattern.MatchString(req.Name) {
		return nil, invalid("invalid request: name: value does not match regex pattern `^referrals/[0-9a-z]{26}$`", violation("name", "value does not match regex pattern `^referrals/[0-9a-z]{26}$`"))
	}
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	r, err := st.visible(agency, req.Name)
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetReferralResponse{Referral: full(agency, r)}, nil
}

func (f *referralService) ListReferrals(ctx context.Context, req *exchangev1.ListReferralsRequest) (*exchangev1.ListReferralsResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	all := sortedValues(st.referrals, func(a, b *exchangev1.Referral) int { return cmp.Compare(b.Name, a.Name) })
	var match []*exchangev1.Referral
	for _, r := range all {
		switch {
		case !party(agency, r),
			req.Direction == exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX && r.Receiver != agency,
			req.Direction == exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX && r.Sender != agency,
			req.State != 0 && r.State != req.State,
			req.Niche != 0 && r.Service.GetNiche() != req.Niche,
			req.Counterparty != "" && r.Sender != req.Counterparty && r.Receiver != req.Counterparty,
			req.UpdatedSince != nil && r.UpdateTime.AsTime().Before(req.UpdatedSince.AsTime()),
			req.OverdueOnly && !r.Overdue:
			continue
		}
		match = append(match, summary(r))
	}
	items, next, err := page(st, match, req.PageToken, req.PageSize)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListReferralsResponse{Referrals: items, NextPageToken: next, Revision: int64(st.revision)}, nil
}

func (f *referralService) WatchReferrals(req *exchangev1.WatchReferralsRequest, stream exchangev1.ReferralService_WatchReferralsServer) error {
	ctx := stream.Context()
	agency := callerAgency(ctx)
	breakAfter, heartbeat := f.server.nextWatch()
	st := f.state
	st.mu.Lock()
	rev := req.StartRevision
	if rev == 0 {
		rev = int64(st.revision)
	}
	if rev < st.compacted {
		st.mu.Unlock()
		return statusError(codes.OutOfRange, "REVISION_COMPACTED", fmt.Sprintf(
			"revision %d has been compacted (the change log starts after %d): list again and watch from the list's revision", rev, st.compacted))
	}
	st.mu.Unlock()
	if breakAfter == 0 {
		return status.Error(codes.Unavailable, "clienttest: watch stream dropped")
	}
	sent := 0
	idle := time.NewTimer(heartbeat)
	defer idle.Stop()
	for {
		st.mu.Lock()
		changed := st.referralsChanged
		var pending []referralChange
		for _, c := range st.changes {
			if c.revision > rev {
				pending = append(pending, c)
			}
		}
		st.mu.Unlock()
		for _, c := range pending {
			rev = c.revision
			if !party(agency, c.referral) {
				continue
			}
			if err := stream.Send(&exchangev1.WatchReferralsResponse{Revision: c.revision, Kind: c.kind, Referral: summary(c.referral)}); err != nil {
				return err
			}
			sent++
			if sent == breakAfter {
				return status.Error(codes.Unavailable, "clienttest: watch stream dropped")
			}
			idle.Reset(heartbeat)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-idle.C:
			if err := stream.Send(&exchangev1.WatchReferralsResponse{Revision: rev, Kind: exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT}); err != nil {
				return err
			}
			idle.Reset(heartbeat)
		}
	}
}

// nextWatch returns the break point (-1 for none) and the heartbeat
// interval of a new watch stream.
func (s *Server) nextWatch() (breakAfter int, heartbeat time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	breakAfter = -1
	if len(s.watchBreaks) > 0 {
		breakAfter, s.watchBreaks = s.watchBreaks[0], s.watchBreaks[1:]
	}
	return breakAfter, cmp.Or(s.heartbeat, defaultWatchHeartbeat)
}

// referralMove is one state verb of the fake: who may use it, from which
// states (nil for any), to which state (0 for none).
type referralMove struct {
	verb     string
	receiver bool
	from     []exchangev1.ReferralState
	to       exchangev1.ReferralState
}

var (
	moveAcknowledge = referralMove{"acknowledge", true, []exchangev1.ReferralState{exchangev1.ReferralState_REFERRAL_STATE_REQUESTED}, exchangev1.ReferralState_REFERRAL_STATE_RECEIVED}
	moveAccept      = referralMove{"accept", true, []exchangev1.ReferralState{exchangev1.ReferralState_REFERRAL_STATE_RECEIVED}, exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED}
	moveReject      = referralMove{"reject", true, []exchangev1.ReferralState{exchangev1.ReferralState_REFERRAL_STATE_RECEIVED}, exchangev1.ReferralState_REFERRAL_STATE_REJECTED}
	moveStart       = referralMove{"start", true, []exchangev1.ReferralState{exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED}, exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS}
	moveComplete    = referralMove{"complete", true, []exchangev1.ReferralState{exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS}, exchangev1.ReferralState_REFERRAL_STATE_COMPLETED}
	moveCancel      = referralMove{"cancel", false, []exchangev1.ReferralState{
		exchangev1.ReferralState_REFERRAL_STATE_REQUESTED, exchangev1.ReferralState_REFERRAL_STATE_RECEIVED,
		exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED, exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS,
	}, exchangev1.ReferralState_REFERRAL_STATE_CANCELLED}
	moveRevoke  = referralMove{"revoke consent on", false, nil, 0}
	moveErase   = referralMove{"erase the details of", false, nil, 0}
	moveForward = referralMove{"forward", true, []exchangev1.ReferralState{
		exchangev1.ReferralState_REFERRAL_STATE_RECEIVED, exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED,
		exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS,
	}, 0}
)

// check decides whether agency may make the move on r now.
func (m referralMove) check(agency string, r *exchangev1.Referral) error {
	side, other := r.Sender, "sender"
	if m.receiver {
		side, other = r.Receiver, "receiver"
	}
	if agency != side {
		return statusError(codes.PermissionDenied, "PERMISSION_DENIED", fmt.Sprintf("only the %s may %s %s", other, m.verb, r.Name))
	}
	if m.from != nil && !slices.Contains(m.from, r.State) {
		return statusError(codes.FailedPrecondition, "FAILED_PRECONDITION", fmt.Sprintf("cannot %s %s: it is %s", m.verb, r.Name, r.State))
	}
	return nil
}

// apply moves r and appends the transition.
func (m referralMove) apply(agency string, r *exchangev1.Referral, reason string) {
	t := &exchangev1.Transition{Actor: agency, Time: now(), FromState: r.State, ToState: r.State, Reason: reason}
	if m.to != 0 {
		t.ToState, r.State = m.to, m.to
	}
	r.History = append(r.History, t)
	r.UpdateTime = now()
}

// move runs a state verb and returns the referral as stored. guard, when
// set, may refuse the move after the verb's own checks; also, when set,
// changes the referral further.
func (f *referralService) move(ctx context.Context, name, etag string, m referralMove, reason string, guard func(*exchangev1.Referral) error, also func(*exchangev1.Referral)) (*exchangev1.Referral, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	stored, err := st.visible(agency, name)
	if err != nil {
		return nil, err
	}
	if err := checkEtag(name, etag, stored.Etag); err != nil {
		return nil, err
	}
	if err := m.check(agency, stored); err != nil {
		return nil, err
	}
	if guard != nil {
		if err := guard(stored); err != nil {
			return nil, err
		}
	}
	r := proto.CloneOf(stored)
	m.apply(agency, r, reason)
	if also != nil {
		also(r)
	}
	st.recordReferral(st.nextRevision(), exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_UPDATED, r)
	return full(agency, r), nil
}

func (f *referralService) AcknowledgeReferral(ctx context.Context, req *exchangev1.AcknowledgeReferralRequest) (*exchangev1.AcknowledgeReferralResponse, error) {
	r, err := f.move(ctx, req.Name, req.Etag, moveAcknowledge, "acknowledged", nil, nil)
	if err != nil {
		return nil, err
	}
	return &exchangev1.AcknowledgeReferralResponse{Referral: r}, nil
}

func (f *referralService) AcceptReferral(ctx context.Context, req *exchangev1.AcceptReferralRequest) (*exchangev1.AcceptReferralResponse, error) {
	r, err := f.move(ctx, req.Name, req.Etag, moveAccept, "accepted", nil, nil)
	if err != nil {
		return nil, err
	}
	return &exchangev1.AcceptReferralResponse{Referral: r}, nil
}

func (f *referralService) RejectReferral(ctx context.Context, req *exchangev1.RejectReferralRequest) (*exchangev1.RejectReferralResponse, error) {
	rej := req.Rejection
	switch {
	case rej.GetReason() == exchangev1.RejectionReason_REJECTION_REASON_UNSPECIFIED:
		return nil, invalid("invalid request: rejection.reason: value must not be in list [0]", violation("rejection.reason", "value must not be in list [0]"))
	case rej.GetReason() == exchangev1.RejectionReason_REJECTION_REASON_OTHER && rej.GetDetails() == "":
		return nil, invalid("invalid request: rejection: details are required when the reason is other", violation("rejection", "details are required when the reason is other"))
	}
	reason := "rejected: " + strings.ToLower(strings.TrimPrefix(rej.GetReason().String(), "REJECTION_REASON_"))
	r, err := f.move(ctx, req.Name, req.Etag, moveReject, reason, nil, func(r *exchangev1.Referral) { r.Rejection = proto.CloneOf(rej) })
	if err != nil {
		return nil, err
	}
	return &exchangev1.RejectReferralResponse{Referral: r}, nil
}

func (f *referralService) StartReferral(ctx context.Context, req *exchangev1.StartReferralRequest) (*exchangev1.StartReferralResponse, error) {
	r, err := f.move(ctx, req.Name, req.Etag, moveStart, "service started", nil, nil)
	if err != nil {
		return nil, err
	}
	return &exchangev1.StartReferralResponse{Referral: r}, nil
}

func (f *referralService) CompleteReferral(ctx context.Context, req *exchangev1.CompleteReferralRequest) (*exchangev1.CompleteReferralResponse, error) {
	if req.Outcome.GetReason() == "" {
		return nil, invalid("invalid request: outcome.reason: value length must be at least 1 characters", violation("outcome.reason", "value length must be at least 1 characters"))
	}
	reason := "completed: unsuccessful"
	if req.Outcome.GetSuccessful() {
		reason = "completed: successful"
	}
	r, err := f.move(ctx, req.Name, req.Etag, moveComplete, reason, nil, func(r *exchangev1.Referral) { r.Outcome = proto.CloneOf(req.Outcome) })
	if err != nil {
		return nil, err
	}
	return &exchangev1.CompleteReferralResponse{Referral: r}, nil
}

func (f *referralService) CancelReferral(ctx context.Context, req *exchangev1.CancelReferralRequest) (*exchangev1.CancelReferralResponse, error) {
	if req.Reason == "" {
		return nil, invalid("invalid request: reason: value length must be at least 1 characters", violation("reason", "value length must be at least 1 characters"))
	}
	r, err := f.move(ctx, req.Name, req.Etag, moveCancel, "cancelled: "+req.Reason, nil, nil)
	if err != nil {
		return nil, err
	}
	return &exchangev1.CancelReferralResponse{Referral: r}, nil
}

func (f *referralService) RevokeReferralConsent(ctx context.Context, req *exchangev1.RevokeReferralConsentRequest) (*exchangev1.RevokeReferralConsentResponse, error) {
	if req.Reason == "" {
		return nil, invalid("invalid request: reason: value length must be at least 1 characters", violation("reason", "value length must be at least 1 characters"))
	}
	alreadyRevoked := func(r *exchangev1.Referral) error {
		if r.GetConsent().GetRevokeTime() != nil {
			return statusError(codes.FailedPrecondition, "FAILED_PRECONDITION", "consent on "+r.Name+" is already revoked")
		}
		return nil
	}
	r, err := f.move(ctx, req.Name, "", moveRevoke, "consent revoked: "+req.Reason, alreadyRevoked, func(r *exchangev1.Referral) {
		if r.Consent == nil {
			r.Consent = &exchangev1.Consent{}
		}
		r.Consent.RevokeTime = now()
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.RevokeReferralConsentResponse{Referral: r}, nil
}

// erasureReasonCodes are the audit codes of the erasure reasons, as the
// real server records them.
var erasureReasonCodes = map[exchangev1.ErasureReason]string{
	exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST:    "person-request",
	exchangev1.ErasureReason_ERASURE_REASON_CONSENT_WITHDRAWN: "consent-withdrawn",
	exchangev1.ErasureReason_ERASURE_REASON_RECORDED_IN_ERROR: "recorded-in-error",
	exchangev1.ErasureReason_ERASURE_REASON_OTHER:             "other",
}

func (f *referralService) EraseReferralDetails(ctx context.Context, req *exchangev1.EraseReferralDetailsRequest) (*exchangev1.EraseReferralDetailsResponse, error) {
	code, ok := erasureReasonCodes[req.ReasonCode]
	switch {
	case req.ReasonCode == exchangev1.ErasureReason_ERASURE_REASON_UNSPECIFIED:
		return nil, invalid("invalid request: reason_code: value must not be in list [0]", violation("reason_code", "value must not be in list [0]"))
	case !ok:
		return nil, invalid("invalid request: reason_code: value must be one of the defined enum values", violation("reason_code", "value must be one of the defined enum values"))
	}
	alreadyErased := func(r *exchangev1.Referral) error {
		if r.GetDetailsErased() {
			return statusError(codes.FailedPrecondition, "FAILED_PRECONDITION", "the details of "+r.Name+" are already erased")
		}
		return nil
	}
	note := "identifying details erased (" + code + ")"
	if req.Reason != "" {
		note += ": " + req.Reason
	}
	r, err := f.move(ctx, req.Name, "", moveErase, note, alreadyErased, func(r *exchangev1.Referral) {
		r.Subject, r.CaseNotes, r.SealedDetails, r.DetailsErased, r.EraseTime = nil, "", nil, true, now()
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.EraseReferralDetailsResponse{Referral: r}, nil
}

func (f *referralService) ForwardReferral(ctx context.Context, req *exchangev1.ForwardReferralRequest) (*exchangev1.ForwardReferralResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	if resp, ok := st.replay("ForwardReferral", agency+"\x00"+req.RequestId); ok {
		return &exchangev1.ForwardReferralResponse{Referral: full(agency, st.referrals[resp.(*exchangev1.Referral).Name])}, nil
	}
	if !requestIDPattern.MatchString(req.RequestId) {
		return nil, invalid("invalid request: request_id: value does not match regex pattern", violation("request_id", "value does not match regex pattern `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`"))
	}
	if req.Service.GetNiche() == 0 || req.Service.GetNeed() == "" || req.Consent == nil {
		return nil, invalid("invalid request: service and consent are required", violation("service", "value is required"))
	}
	if req.Receiver == agency {
		return nil, fieldError(codes.InvalidArgument, "INVALID_ARGUMENT", "receiver", "an agency cannot forward to itself")
	}
	if err := checkConsent("consent", req.Consent, req.Receiver, req.Service.GetNiche()); err != nil {
		return nil, err
	}
	stored, err := st.visible(agency, req.Name)
	if err != nil {
		return nil, err
	}
	if err := moveForward.check(agency, stored); err != nil {
		return nil, err
	}
	if stored.GetConsent().GetRevokeTime() != nil {
		return nil, statusError(codes.FailedPrecondition, "FAILED_PRECONDITION", "consent on "+req.Name+" was revoked; it cannot be forwarded")
	}
	if _, ok := st.agencies[req.Receiver]; !ok {
		return nil, fieldError(codes.NotFound, "NOT_FOUND", "receiver", req.Receiver+" is not in the directory")
	}
	// As on the real server, the forward carries the details re-sealed by
	// the forwarding client, and of the parent's subject only the routing
	// attributes.
	subject := proto.CloneOf(stored.Subject)
	if subject != nil {
		subject.Name, subject.GuardianContact, subject.BirthYear = "", "", 0
	}
	candidate := &exchangev1.Referral{Subject: subject, CaseNotes: req.CaseNotes, SealedDetails: req.SealedDetails}
	if err := checkSealed("", candidate); err != nil {
		return nil, err
	}
	// As on the real server, the parent's change and the new referral
	// share one revision.
	rev := st.nextRevision()
	child := &exchangev1.Referral{
		Name:     "referrals/" + fmt.Sprintf("01j%023d", rev),
		Sender:   agency,
		Receiver: req.Receiver, Service: proto.CloneOf(req.Service), Urgency: cmp.Or(req.Urgency, stored.Urgency),
		SubjectReference: stored.SubjectReference, Subject: subject,
		SealedDetails: req.SealedDetails, RequestId: req.RequestId, Consent: proto.CloneOf(req.Consent), Location: proto.CloneOf(stored.Location),
		State:         exchangev1.ReferralState_REFERRAL_STATE_REQUESTED,
		ForwardedFrom: stored.Name,
		CreateTime:    now(), UpdateTime: now(),
	}
	child.History = []*exchangev1.Transition{{Actor: agency, Time: now(), ToState: child.State, Reason: "forwarded from " + stored.Name}}
	parent := proto.CloneOf(stored)
	moveForward.apply(agency, parent, "forwarded to "+req.Receiver)
	parent.ForwardedTo = append(parent.ForwardedTo, child.Name)
	st.recordReferral(rev, exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_UPDATED, parent)
	st.recordReferral(rev, exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_CREATED, child)
	st.remember("ForwardReferral", agency+"\x00"+req.RequestId, &exchangev1.Referral{Name: child.Name})
	return &exchangev1.ForwardReferralResponse{Referral: proto.CloneOf(child)}, nil
}

func (f *referralService) SuggestRecipients(_ context.Context, req *exchangev1.SuggestRecipientsRequest) (*exchangev1.SuggestRecipientsResponse, error) {
	if req.Niche == 0 {
		return nil, invalid("invalid request: niche: value must not be in list [0]", violation("niche", "value must not be in list [0]"))
	}
	if len(req.Subdivision) < 4 {
		return nil, invalid("invalid request: subdivision: value does not match regex pattern", violation("subdivision", "value does not match regex pattern `^[A-Z]{2}-[A-Z0-9]{1,3}$`"))
	}
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	country := req.Subdivision[:2]
	var province, whole []*exchangev1.Agency
	for _, a := range sortedValues(st.agencies, func(a, b *exchangev1.Agency) int { return cmp.Compare(a.Name, b.Name) }) {
		if a.State != exchangev1.AgencyState_AGENCY_STATE_ACTIVE || !slices.Contains(a.Niches, req.Niche) {
			continue
		}
		switch {
		case slices.ContainsFunc(a.Coverage, func(l *exchangev1.LocationRef) bool { return l.Subdivision == req.Subdivision }):
			province = append(province, a)
		case slices.ContainsFunc(a.Coverage, func(l *exchangev1.LocationRef) bool { return l.Country == country && l.Subdivision == "" }):
			whole = append(whole, a)
		}
	}
	resp := &exchangev1.SuggestRecipientsResponse{Agencies: append(province, whole...)}
	if len(resp.Agencies) == 0 {
		resp.Gap = true
		resp.Note = "no active agency declares " + strings.ToLower(strings.TrimPrefix(req.Niche.String(), "NICHE_")) +
			" covering " + req.Subdivision + ": a gap worth raising with the coordination working group"
	}
	return resp, nil
}

func (f *referralService) GetReferralStatistics(ctx context.Context, _ *exchangev1.GetReferralStatisticsRequest) (*exchangev1.GetReferralStatisticsResponse, error) {
	st := f.state
	st.mu.Lock()
	defer st.mu.Unlock()
	agency := callerAgency(ctx)
	type key struct {
		state    exchangev1.ReferralState
		niche    exchangev1.Niche
		location string
	}
	counts := map[key]int64{}
	for _, r := range st.referrals {
		if agency != "" && !party(agency, r) {
			continue
		}
		loc := cmp.Or(r.Location.GetSubdivision(), r.Location.GetCountry())
		counts[key{r.State, r.Service.GetNiche(), loc}]++
	}
	resp := &exchangev1.GetReferralStatisticsResponse{}
	for k, n := range counts {
		resp.Counts = append(resp.Counts, &exchangev1.ReferralCount{State: k.state, Niche: k.niche, Location: k.location, Count: n})
	}
	slices.SortFunc(resp.Counts, func(a, b *exchangev1.ReferralCount) int {
		return cmp.Or(cmp.Compare(a.Location, b.Location), cmp.Compare(a.Niche, b.Niche), cmp.Compare(a.State, b.State))
	})
	return resp, nil
}
