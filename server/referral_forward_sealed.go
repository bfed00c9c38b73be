package server

import (
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// forwardSealed makes child, the referral a forward creates, carry the
// details the forwarding client re-sealed to the new receiver: the blob
// as sent and, of the parent's subject, only the routing attributes. A
// parent sealed end to end can be forwarded only that way, since the
// exchange cannot open its details to pass them on.
func forwardSealed(req *exchangev1.ForwardReferralRequest, parent, child *exchangev1.Referral) error {
	if len(req.GetSealedDetails()) == 0 {
		if len(parent.GetSealedDetails()) > 0 {
			return invalidField("sealed_details", parent.GetName()+" is sealed end to end: re-seal its details to "+req.GetReceiver()+" and send them in sealed_details")
		}
		return nil
	}
	subject := proto.Clone(parent.GetSubject()).(*exchangev1.Subject)
	if subject == nil {
		subject = &exchangev1.Subject{}
	}
	subject.Name, subject.GuardianContact, subject.BirthYear = "", "", 0
	child.Subject, child.SealedDetails = subject, req.GetSealedDetails()
	return store.CheckClientSealed("", child)
}
