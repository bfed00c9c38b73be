package clienttest

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// maxPreviousEncryptionKeys bounds an agency's previous_encryption_keys,
// as the real store does.
const maxPreviousEncryptionKeys = 20

// SetAgencyEncryptionKey registers the calling agency's own key: another
// caller is refused, a key that is not a post-quantum age recipient is
// INVALID_ARGUMENT on recipient, the same key again changes nothing, and
// a new key moves the old one's fingerprint and time to the front of
// previous_encryption_keys.
func (d *directoryService) SetAgencyEncryptionKey(ctx context.Context, req *exchangev1.SetAgencyEncryptionKeyRequest) (*exchangev1.SetAgencyEncryptionKeyResponse, error) {
	if callerAgency(ctx) != req.GetName() {
		return nil, statusError(codes.PermissionDenied, "PERMISSION_DENIED", "only the agency itself may set the encryption key of "+req.GetName())
	}
	r, err := seal.ParseRecipient(req.GetRecipient())
	if err != nil {
		return nil, invalid("invalid SetAgencyEncryptionKeyRequest", violation("recipient", strings.TrimPrefix(err.Error(), "seal: ")))
	}
	st := d.state
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.agencies[req.GetName()]
	if !ok {
		return nil, notFound(req.GetName())
	}
	if a.GetEncryptionKey().GetRecipient() != r.String() {
		a = proto.CloneOf(a)
		if cur := a.GetEncryptionKey(); cur != nil {
			replaced := &exchangev1.EncryptionKey{Fingerprint: cur.GetFingerprint(), CreateTime: cur.GetCreateTime()}
			a.PreviousEncryptionKeys = append([]*exchangev1.EncryptionKey{replaced}, a.GetPreviousEncryptionKeys()...)
			a.PreviousEncryptionKeys = a.PreviousEncryptionKeys[:min(len(a.PreviousEncryptionKeys), maxPreviousEncryptionKeys)]
		}
		a.EncryptionKey = &exchangev1.EncryptionKey{Recipient: r.String(), Fingerprint: r.Fingerprint().String(), CreateTime: now()}
		a.UpdateTime = now()
		a.Etag = st.nextEtag()
		st.agencies[req.GetName()] = a
	}
	return &exchangev1.SetAgencyEncryptionKeyResponse{Agency: proto.CloneOf(a)}, nil
}
