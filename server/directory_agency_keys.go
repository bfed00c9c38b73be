package server

import (
	"context"
	"fmt"
	"strings"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// SetAgencyEncryptionKey registers the caller's own encryption key. The
// access rule admits agencies only; here another agency's record is
// refused, before anything is read, so that the answer does not depend on
// whether the named agency exists. The key must be an age post-quantum
// hybrid recipient: seal.ParseRecipient refuses classic X25519 keys and
// anything else, and gives the key in the form that is stored and
// fingerprinted. A private key sent by mistake is refused without being
// quoted in the error.
func (d *directoryService) SetAgencyEncryptionKey(ctx context.Context, req *exchangev1.SetAgencyEncryptionKeyRequest) (*exchangev1.SetAgencyEncryptionKeyResponse, error) {
	caller := CallerFrom(ctx)
	if caller.AgencyName() != req.GetName() {
		return nil, permissionDenied(fmt.Sprintf("%s may not set the encryption key of %s; only the agency itself may", caller.Actor(), req.GetName()))
	}
	if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(req.GetRecipient())), "AGE-SECRET-KEY-") {
		// Say so without quoting it: the error is logged, and part of a
		// private key must not end up in a log.
		return nil, invalidField("recipient", "this is a private key (AGE-SECRET-KEY-…): register the public key (age1pq1…) and keep the private key to the agency")
	}
	r, err := seal.ParseRecipient(req.GetRecipient())
	if err != nil {
		return nil, invalidField("recipient", strings.TrimPrefix(err.Error(), "seal: "))
	}
	a, err := d.store.SetAgencyEncryptionKey(ctx, opFor(ctx, ""), req.GetName(), &exchangev1.EncryptionKey{
		Recipient: r.String(), Fingerprint: r.Fingerprint().String(),
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.SetAgencyEncryptionKeyResponse{Agency: a}, nil
}
