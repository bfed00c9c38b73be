package client

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/seal"
)

// keptRecipient returns the key the field file keeps for receiver, checked
// against its pin as a fetched key is, for sealing while the exchange
// cannot be reached (cause says why it cannot). Without a kept key it
// fails with FAILED_PRECONDITION and a way out: nothing may be queued in
// clear.
func (s *sealer) keptRecipient(receiver string, cause error) (seal.Recipient, error) {
	text, ok, err := s.kept.Recipient(receiver)
	if err != nil {
		return seal.Recipient{}, status.Errorf(codes.Internal, "client: %v", err)
	}
	if !ok {
		return seal.Recipient{}, status.Errorf(codes.FailedPrecondition,
			"client: nothing was sent or queued: the exchange cannot be reached (%s), and this machine has never fetched the encryption key of %s, which the referral's details must be sealed to; "+
				"once the exchange can be reached, fetch it with `exchangectl outbox fetch-keys %s` (or send the referral then)",
			status.Convert(cause).Message(), receiver, receiver)
	}
	r, err := seal.ParseRecipient(text)
	if err != nil {
		return seal.Recipient{}, status.Errorf(codes.DataLoss, "client: the key the field file keeps for %s: %v", receiver, err)
	}
	if err := s.pins.Check(receiver, r); err != nil {
		var changed *seal.KeyChangedError
		if errors.As(err, &changed) {
			return seal.Recipient{}, status.Error(codes.FailedPrecondition, "client: "+changed.Error())
		}
		return seal.Recipient{}, status.Errorf(codes.Internal, "client: %v", err)
	}
	return r, nil
}
