package client

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// SetEncryptionKey registers r, the public half of a key in the agency's
// key ring (seal.KeyRing.Current().Recipient()), as the encryption key of
// the agency with the given id, and returns the agency as stored. Only
// the agency itself may: call it with the agency's own certificate. The
// key it replaces stays listed, by fingerprint, in the agency's
// previous_encryption_keys; setting the current key again changes
// nothing, so the call is retried on UNAVAILABLE.
func (d *DirectoryClient) SetEncryptionKey(ctx context.Context, agencyID string, r seal.Recipient) (*exchangev1.Agency, error) {
	if r.IsZero() {
		return nil, status.Error(codes.InvalidArgument, "client: SetEncryptionKey: the key is empty")
	}
	resp, err := d.rpc.SetAgencyEncryptionKey(ctx, &exchangev1.SetAgencyEncryptionKeyRequest{Name: AgencyName(agencyID), Recipient: r.String()})
	if err != nil {
		return nil, err
	}
	return resp.GetAgency(), nil
}

// EncryptionKey returns the current encryption key of the agency with the
// given id, as the directory presents it, checked to be a post-quantum
// age key whose fingerprint is the one the directory shows. It fails with
// FAILED_PRECONDITION when the agency has registered no key yet. Whoever
// runs the directory could present a key of its own: a sender checks the
// key against its pins (seal.Pins.Check) before it seals to it.
func (d *DirectoryClient) EncryptionKey(ctx context.Context, agencyID string) (seal.Recipient, error) {
	a, err := d.GetAgency(ctx, AgencyName(agencyID))
	if err != nil {
		return seal.Recipient{}, err
	}
	return EncryptionKeyOf(a)
}

// EncryptionKeyOf returns the current encryption key of an agency as read
// from the directory (see EncryptionKey).
func EncryptionKeyOf(a *exchangev1.Agency) (seal.Recipient, error) {
	k := a.GetEncryptionKey()
	if k.GetRecipient() == "" {
		return seal.Recipient{}, status.Errorf(codes.FailedPrecondition,
			"client: %s has registered no encryption key yet (the agency runs `exchangectl keys create`)", a.GetName())
	}
	r, err := seal.ParseRecipient(k.GetRecipient())
	if err != nil {
		return seal.Recipient{}, status.Errorf(codes.DataLoss, "client: the encryption key the directory shows for %s: %v", a.GetName(), err)
	}
	if got := r.Fingerprint().String(); got != k.GetFingerprint() {
		return seal.Recipient{}, status.Errorf(codes.DataLoss,
			"client: the directory shows the encryption key of %s with fingerprint %s, but the key's fingerprint is %s", a.GetName(), k.GetFingerprint(), got)
	}
	return r, nil
}
