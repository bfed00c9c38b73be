package client

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// coveredWrite is how the outbox keeps and sends one method's writes.
type coveredWrite struct {
	// kind says what a request does, for people.
	kind func(proto.Message) string
	// resource is what the request's writes are ordered by.
	resource func(proto.Message) string
	// newRequest and newReply make empty messages of the method's types.
	newRequest, newReply func() proto.Message
	// target, for a referral state verb, reports whether the referral
	// shows the change made, by self.
	target func(r *exchangev1.Referral, self string) bool
	// problems lists what the exchange refused in a successful answer
	// (records, rows or plans), given that the request may have been
	// made before (resent).
	problems func(req, reply proto.Message, resent bool) []string
}

// coveredWrites are the methods whose calls go through the outbox.
var coveredWrites = map[string]coveredWrite{}

func init() {
	noProblems := func(proto.Message, proto.Message, bool) []string { return nil }
	byName := func(m proto.Message) string { return m.(interface{ GetName() string }).GetName() }
	verb := func(method, kind string, newReq, newReply func() proto.Message, to exchangev1.ReferralState) {
		coveredWrites[method] = coveredWrite{
			kind:       func(proto.Message) string { return kind },
			resource:   byName,
			newRequest: newReq, newReply: newReply,
			target:   madeTransition(to),
			problems: noProblems,
		}
	}
	verb(exchangev1.ReferralService_AcknowledgeReferral_FullMethodName, "acknowledge",
		func() proto.Message { return new(exchangev1.AcknowledgeReferralRequest) },
		func() proto.Message { return new(exchangev1.AcknowledgeReferralResponse) }, exchangev1.ReferralState_REFERRAL_STATE_RECEIVED)
	verb(exchangev1.ReferralService_AcceptReferral_FullMethodName, "accept",
		func() proto.Message { return new(exchangev1.AcceptReferralRequest) },
		func() proto.Message { return new(exchangev1.AcceptReferralResponse) }, exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED)
	verb(exchangev1.ReferralService_RejectReferral_FullMethodName, "reject",
		func() proto.Message { return new(exchangev1.RejectReferralRequest) },
		func() proto.Message { return new(exchangev1.RejectReferralResponse) }, exchangev1.ReferralState_REFERRAL_STATE_REJECTED)
	verb(exchangev1.ReferralService_StartReferral_FullMethodName, "start",
		func() proto.Message { return new(exchangev1.StartReferralRequest) },
		func() proto.Message { return new(exchangev1.StartReferralResponse) }, exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS)
	verb(exchangev1.ReferralService_CompleteReferral_FullMethodName, "complete",
		func() proto.Message { return new(exchangev1.CompleteReferralRequest) },
		func() proto.Message { return new(exchangev1.CompleteReferralResponse) }, exchangev1.ReferralState_REFERRAL_STATE_COMPLETED)
	verb(exchangev1.ReferralService_CancelReferral_FullMethodName, "cancel",
		func() proto.Message { return new(exchangev1.CancelReferralRequest) },
		func() proto.Message { return new(exchangev1.CancelReferralResponse) }, exchangev1.ReferralState_REFERRAL_STATE_CANCELLED)
	coveredWrites[exchangev1.ReferralService_RevokeReferralConsent_FullMethodName] = coveredWrite{
		kind:       func(proto.Message) string { return "revoke consent" },
		resource:   byName,
		newRequest: func() proto.Message { return new(exchangev1.RevokeReferralConsentRequest) },
		newReply:   func() proto.Message { return new(exchangev1.RevokeReferralConsentResponse) },
		// Only the sender revokes, so a revoked consent on its own
		// referral is its revocation.
		target:   func(r *exchangev1.Referral, self string) bool { return r.GetConsent().GetRevokeTime() != nil },
		problems: noProblems,
	}
	coveredWrites[exchangev1.ReferralService_ForwardReferral_FullMethodName] = coveredWrite{
		kind: func(m proto.Message) string {
			return "forward to " + m.(*exchangev1.ForwardReferralRequest).GetReceiver()
		},
		resource:   byName,
		newRequest: func() proto.Message { return new(exchangev1.ForwardReferralRequest) },
		newReply:   func() proto.Message { return new(exchangev1.ForwardReferralResponse) },
		problems:   noProblems,
	}
	coveredWrites[exchangev1.ReferralService_CreateReferral_FullMethodName] = coveredWrite{
		kind: func(m proto.Message) string {
			return "create referral to " + m.(*exchangev1.CreateReferralRequest).GetReferral().GetReceiver()
		},
		// A new referral has no name until the exchange stores it; its
		// request id stands for it.
		resource: func(m proto.Message) string {
			return "new referral " + m.(*exchangev1.CreateReferralRequest).GetRequestId()
		},
		newRequest: func() proto.Message { return new(exchangev1.CreateReferralRequest) },
		newReply:   func() proto.Message { return new(exchangev1.CreateReferralResponse) },
		problems:   noProblems,
	}
	coveredWrites[exchangev1.ReferralService_BatchCreateReferrals_FullMethodName] = coveredWrite{
		kind: func(m proto.Message) string {
			return fmt.Sprintf("create %d referrals", len(m.(*exchangev1.BatchCreateReferralsRequest).GetRequests()))
		},
		resource: func(m proto.Message) string {
			reqs := m.(*exchangev1.BatchCreateReferralsRequest).GetRequests()
			if len(reqs) == 0 {
				return "new referrals"
			}
			return "new referrals " + reqs[0].GetRequestId()
		},
		newRequest: func() proto.Message { return new(exchangev1.BatchCreateReferralsRequest) },
		newReply:   func() proto.Message { return new(exchangev1.BatchCreateReferralsResponse) },
		problems: func(_, reply proto.Message, _ bool) []string {
			var out []string
			for _, r := range reply.(*exchangev1.BatchCreateReferralsResponse).GetResults() {
				if r.GetStatus() == exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED {
					out = append(out, fmt.Sprintf("request %s: %s %s%s", r.GetRequestId(), r.GetCode(), r.GetMessage(), violationText(r.GetViolations())))
				}
			}
			return out
		},
	}
	coveredWrites[exchangev1.DatasetService_WriteDatasetRows_FullMethodName] = coveredWrite{
		kind: func(m proto.Message) string {
			return fmt.Sprintf("write %d rows", len(m.(*exchangev1.WriteDatasetRowsRequest).GetWrites()))
		},
		resource:   func(m proto.Message) string { return m.(*exchangev1.WriteDatasetRowsRequest).GetDataset() },
		newRequest: func() proto.Message { return new(exchangev1.WriteDatasetRowsRequest) },
		newReply:   func() proto.Message { return new(exchangev1.WriteDatasetRowsResponse) },
		problems: func(req, reply proto.Message, resent bool) []string {
			writes := req.(*exchangev1.WriteDatasetRowsRequest).GetWrites()
			var out []string
			for _, r := range reply.(*exchangev1.WriteDatasetRowsResponse).GetResults() {
				if r.GetAccepted() {
					continue
				}
				i := int(r.GetIndex())
				// A deletion resent after a lost answer finds the row
				// deleted by the first attempt: done, as asked.
				if resent && r.GetCode() == "NOT_FOUND" && i < len(writes) && writes[i].GetDelete() {
					continue
				}
				out = append(out, fmt.Sprintf("writes[%d]: %s%s", i, r.GetCode(), violationText(r.GetViolations())))
			}
			return out
		},
	}
	coveredWrites[exchangev1.PlanService_ApplyPlans_FullMethodName] = coveredWrite{
		kind: func(m proto.Message) string {
			return fmt.Sprintf("apply %d plans", len(m.(*exchangev1.ApplyPlansRequest).GetPlans()))
		},
		resource:   func(m proto.Message) string { return "plans of " + m.(*exchangev1.ApplyPlansRequest).GetParent() },
		newRequest: func() proto.Message { return new(exchangev1.ApplyPlansRequest) },
		newReply:   func() proto.Message { return new(exchangev1.ApplyPlansResponse) },
		problems: func(_, reply proto.Message, _ bool) []string {
			var out []string
			for _, r := range reply.(*exchangev1.ApplyPlansResponse).GetResults() {
				if r.GetAction() == exchangev1.PlanApplyAction_PLAN_APPLY_ACTION_CONFLICT {
					out = append(out, fmt.Sprintf("plan %s: conflict: %s", r.GetExternalId(), r.GetMessage()))
				}
			}
			return out
		},
	}
}

// madeTransition reports whether a referral's history shows a change to
// state to by self.
func madeTransition(to exchangev1.ReferralState) func(*exchangev1.Referral, string) bool {
	return func(r *exchangev1.Referral, self string) bool {
		for _, t := range r.GetHistory() {
			if t.GetActor() == self && t.GetToState() == to && t.GetFromState() != to {
				return true
			}
		}
		return false
	}
}

// violationText lists field violations after a message.
func violationText(vs []*exchangev1.FieldViolation) string {
	s := ""
	for _, v := range vs {
		s += fmt.Sprintf("; %s: %s", v.GetField(), v.GetDescription())
	}
	return s
}
