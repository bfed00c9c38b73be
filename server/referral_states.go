package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// referralMove is one state verb: which side may use it, from which
// states, to which state.
type referralMove struct {
	verb string
	side side
	from []exchangev1.ReferralState
	to   exchangev1.ReferralState
}

var (
	moveAcknowledge = referralMove{"acknowledge", receiverSide, states(exchangev1.ReferralState_REFERRAL_STATE_REQUESTED), exchangev1.ReferralState_REFERRAL_STATE_RECEIVED}
	moveAccept      = referralMove{"accept", receiverSide, states(exchangev1.ReferralState_REFERRAL_STATE_RECEIVED), exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED}
	moveReject      = referralMove{"reject", receiverSide, states(exchangev1.ReferralState_REFERRAL_STATE_RECEIVED), exchangev1.ReferralState_REFERRAL_STATE_REJECTED}
	moveStart       = referralMove{"start", receiverSide, states(exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED), exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS}
	moveComplete    = referralMove{"complete", receiverSide, states(exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS), exchangev1.ReferralState_REFERRAL_STATE_COMPLETED}
	moveCancel      = referralMove{"cancel", senderSide, states(
		exchangev1.ReferralState_REFERRAL_STATE_REQUESTED, exchangev1.ReferralState_REFERRAL_STATE_RECEIVED,
		exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED, exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS,
	), exchangev1.ReferralState_REFERRAL_STATE_CANCELLED}
	// Forwarding and revoking consent change no state; they are events in
	// history with their own rules.
	moveForward = referralMove{"forward", receiverSide, states(
		exchangev1.ReferralState_REFERRAL_STATE_RECEIVED, exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED,
		exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS,
	), 0}
	moveRevokeConsent = referralMove{"revoke consent on", senderSide, nil, 0}
	moveErase         = referralMove{"erase the details of", senderSide, nil, 0}
)

func states(s ...exchangev1.ReferralState) []exchangev1.ReferralState { return s }

func (sd side) name() string {
	if sd == senderSide {
		return "sender"
	}
	return "receiver"
}

// check decides whether the caller may make the move on r now.
func (m referralMove) check(c Caller, r *exchangev1.Referral) error {
	switch got := sideOf(c, r); {
	case got == noSide:
		return notFound(r.GetName())
	case got != m.side:
		return permissionDenied(fmt.Sprintf("only the %s may %s %s", m.side.name(), m.verb, r.GetName()))
	}
	if m.from != nil && !slices.Contains(m.from, r.GetState()) {
		var allowed []string
		for _, st := range m.from {
			allowed = append(allowed, st.String())
		}
		return &store.Error{Kind: store.KindFailedPrecondition, Resource: r.GetName(), Message: fmt.Sprintf(
			"cannot %s %s: it is %s (allowed from %s)", m.verb, r.GetName(), r.GetState(), strings.Join(allowed, ", "))}
	}
	return nil
}

// apply moves r to the move's state and records the transition.
func (m referralMove) apply(c Caller, r *exchangev1.Referral, now func() *exchangev1.Transition, reason string) {
	t := now()
	t.Actor, t.FromState, t.Reason = c.AgencyName(), r.GetState(), reason
	t.ToState = r.GetState()
	if m.to != 0 {
		t.ToState = m.to
		r.State = m.to
	}
	r.History = append(r.History, t)
}

// move runs a state verb on the referral. The store refuses a referral
// the caller is no party to before it compares the etag or reads the
// record, exactly as it refuses a missing one.
func (s *referralService) move(ctx context.Context, name, etag string, m referralMove, reason string, also func(*exchangev1.Referral)) (*exchangev1.Referral, error) {
	caller := CallerFrom(ctx)
	r, err := s.store.UpdateReferral(ctx, opFor(ctx, ""), name, etag, func(r *exchangev1.Referral) error {
		if err := m.check(caller, r); err != nil {
			return err
		}
		m.apply(caller, r, s.transitionNow, reason)
		if also != nil {
			also(r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Verbs answer with a summary: identifying details come only from
	// GetReferral, where each read is audited.
	return s.view(caller, r, false), nil
}

func (s *referralService) transitionNow() *exchangev1.Transition {
	return &exchangev1.Transition{Time: timestamp(s.now())}
}

// AcknowledgeReferral: REQUESTED → RECEIVED, by the receiver.
func (s *referralService) AcknowledgeReferral(ctx context.Context, req *exchangev1.AcknowledgeReferralRequest) (*exchangev1.AcknowledgeReferralResponse, error) {
	r, err := s.move(ctx, req.GetName(), req.GetEtag(), moveAcknowledge, "acknowledged", nil)
	if err != nil {
		return nil, err
	}
	return &exchangev1.AcknowledgeReferralResponse{Referral: r}, nil
}

// AcceptReferral: RECEIVED → ACCEPTED, by the receiver.
func (s *referralService) AcceptReferral(ctx context.Context, req *exchangev1.AcceptReferralRequest) (*exchangev1.AcceptReferralResponse, error) {
	r, err := s.move(ctx, req.GetName(), req.GetEtag(), moveAccept, "accepted", nil)
	if err != nil {
		return nil, err
	}
	return &exchangev1.AcceptReferralResponse{Referral: r}, nil
}

// RejectReferral: RECEIVED → REJECTED with a coded reason, by the
// receiver.
func (s *referralService) RejectReferral(ctx context.Context, req *exchangev1.RejectReferralRequest) (*exchangev1.RejectReferralResponse, error) {
	reason := "rejected: " + strings.ToLower(strings.TrimPrefix(req.GetRejection().GetReason().String(), "REJECTION_REASON_"))
	r, err := s.move(ctx, req.GetName(), req.GetEtag(), moveReject, reason, func(r *exchangev1.Referral) {
		r.Rejection = req.GetRejection()
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.RejectReferralResponse{Referral: r}, nil
}

// StartReferral: ACCEPTED → IN_PROGRESS, by the receiver.
func (s *referralService) StartReferral(ctx context.Context, req *exchangev1.StartReferralRequest) (*exchangev1.StartReferralResponse, error) {
	r, err := s.move(ctx, req.GetName(), req.GetEtag(), moveStart, "service started", nil)
	if err != nil {
		return nil, err
	}
	return &exchangev1.StartReferralResponse{Referral: r}, nil
}

// CompleteReferral: IN_PROGRESS → COMPLETED with the outcome, by the
// receiver.
func (s *referralService) CompleteReferral(ctx context.Context, req *exchangev1.CompleteReferralRequest) (*exchangev1.CompleteReferralResponse, error) {
	reason := "completed: unsuccessful"
	if req.GetOutcome().GetSuccessful() {
		reason = "completed: successful"
	}
	r, err := s.move(ctx, req.GetName(), req.GetEtag(), moveComplete, reason, func(r *exchangev1.Referral) {
		r.Outcome = req.GetOutcome()
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.CompleteReferralResponse{Referral: r}, nil
}

// CancelReferral withdraws a referral before completion, by the sender.
func (s *referralService) CancelReferral(ctx context.Context, req *exchangev1.CancelReferralRequest) (*exchangev1.CancelReferralResponse, error) {
	r, err := s.move(ctx, req.GetName(), req.GetEtag(), moveCancel, "cancelled: "+req.GetReason(), nil)
	if err != nil {
		return nil, err
	}
	return &exchangev1.CancelReferralResponse{Referral: r}, nil
}

// RevokeReferralConsent withholds identifying details from the receiver
// (and from agencies it forwarded to) from now on, by the sender.
func (s *referralService) RevokeReferralConsent(ctx context.Context, req *exchangev1.RevokeReferralConsentRequest) (*exchangev1.RevokeReferralConsentResponse, error) {
	caller := CallerFrom(ctx)
	r, err := s.store.RevokeReferralConsent(ctx, opFor(ctx, ""), req.GetName(), func(r *exchangev1.Referral) error {
		if err := moveRevokeConsent.check(caller, r); err != nil {
			return err
		}
		if r.GetConsent().GetRevokeTime() != nil {
			return &store.Error{Kind: store.KindFailedPrecondition, Resource: r.GetName(), Message: "consent on " + r.GetName() + " is already revoked"}
		}
		moveRevokeConsent.apply(caller, r, s.transitionNow, "consent revoked: "+req.GetReason())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.RevokeReferralConsentResponse{Referral: s.view(caller, r, false)}, nil
}

// ForwardReferral refers the person on to a third agency, by the receiver:
// a new referral linked to this one, with its own consent.
func (s *referralService) ForwardReferral(ctx context.Context, req *exchangev1.ForwardReferralRequest) (*exchangev1.ForwardReferralResponse, error) {
	caller := CallerFrom(ctx)
	if err := checkNoUnknownFields("", req.ProtoReflect()); err != nil {
		return nil, err
	}
	if req.GetReceiver() == caller.AgencyName() {
		return nil, invalidField("receiver", "an agency cannot forward to itself")
	}
	if err := checkConsent("consent", req.GetConsent(), req.GetReceiver(), req.GetService().GetNiche()); err != nil {
		return nil, err
	}
	parent, err := s.store.GetReferralFor(ctx, caller.Actor(), req.GetName())
	if err != nil {
		return nil, err
	}
	if sideOf(caller, parent) == noSide {
		return nil, notFound(req.GetName())
	}
	child := &exchangev1.Referral{
		Receiver: req.GetReceiver(), Service: req.GetService(), Urgency: req.GetUrgency(),
		SubjectReference: parent.GetSubjectReference(), Subject: parent.GetSubject(),
		CaseNotes: req.GetCaseNotes(), Consent: req.GetConsent(), Location: parent.GetLocation(),
	}
	if child.Urgency == 0 {
		child.Urgency = parent.GetUrgency()
	}
	if err := forwardSealed(req, parent, child); err != nil {
		return nil, err
	}
	created, err := s.store.ForwardReferral(ctx, opFor(ctx, ""), req.GetName(), req.GetRequestId(), func(p *exchangev1.Referral) error {
		if err := moveForward.check(caller, p); err != nil {
			return err
		}
		if p.GetConsent().GetRevokeTime() != nil {
			return &store.Error{Kind: store.KindFailedPrecondition, Resource: p.GetName(), Message: "consent on " + p.GetName() + " was revoked; it cannot be forwarded"}
		}
		moveForward.apply(caller, p, s.transitionNow, "forwarded to "+req.GetReceiver())
		return nil
	}, child)
	if err != nil {
		return nil, err
	}
	return &exchangev1.ForwardReferralResponse{Referral: s.view(caller, created, false)}, nil
}

// erasureReasonCodes are the codes the audit chain records for the
// reasons to erase a referral's details (AuditEntry.reason); the
// retention job records store.ErasureRetention.
var erasureReasonCodes = map[exchangev1.ErasureReason]string{
	exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST:    "person-request",
	exchangev1.ErasureReason_ERASURE_REASON_CONSENT_WITHDRAWN: "consent-withdrawn",
	exchangev1.ErasureReason_ERASURE_REASON_RECORDED_IN_ERROR: "recorded-in-error",
	exchangev1.ErasureReason_ERASURE_REASON_OTHER:             "other",
}

// EraseReferralDetails destroys a referral's identifying details for good,
// by the sender; the store deletes their key in a change audited with the
// reason's code, and overwrites the freed pages that held them before it
// answers. The free-text reason goes into the referral's history only.
func (s *referralService) EraseReferralDetails(ctx context.Context, req *exchangev1.EraseReferralDetailsRequest) (*exchangev1.EraseReferralDetailsResponse, error) {
	caller := CallerFrom(ctx)
	code, ok := erasureReasonCodes[req.GetReasonCode()]
	if !ok {
		return nil, invalidField("reason_code", "must be one of the erasure reasons")
	}
	op := opFor(ctx, "")
	op.Reason = code
	note := "identifying details erased (" + code + ")"
	if req.GetReason() != "" {
		note += ": " + req.GetReason()
	}
	r, err := s.store.EraseReferralDetails(ctx, op, req.GetName(), func(r *exchangev1.Referral) error {
		if err := moveErase.check(caller, r); err != nil {
			return err
		}
		moveErase.apply(caller, r, s.transitionNow, note)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.EraseReferralDetailsResponse{Referral: s.view(caller, r, false)}, nil
}
