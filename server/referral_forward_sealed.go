package server

import (
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// forwardSealed makes child, the referral a forward creates, carry the
// details the forwarding client re-sealed to the new receiver: the blob
// as sent and, of the parent's subject, only the routing attributes. A
// referral can be forwarded only that way, since the exchange cannot open
// its details to pass them on.
func forwardSealed(req *exchangev1.ForwardReferralRequest, parent, child *exchangev1.Referral) error {
	if len(req.GetSealedDetails()) == 0 {
		return invalidField("sealed_details", "required: the exchange cannot open the details of "+parent.GetName()+
			"; re-seal them to "+req.GetReceiver()+" and yourself with the agency's key ring (see "+store.SealingDoc+")")
	}
	subject := proto.Clone(parent.GetSubject()).(*exchangev1.Subject)
	if subject == nil {
		subject = &exchangev1.Subject{}
	}
	subject.Name, subject.GuardianContact, subject.BirthYear = "", "", 0
	child.Subject, child.SealedDetails = subject, req.GetSealedDetails()
	return store.CheckClientSealed("", child)
}
