package store

import (
	"context"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/encoding/protowire"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// MaxPreviousEncryptionKeys bounds Agency.previous_encryption_keys: past
// it, the oldest key drops off the record (its change stays in the audit
// chain).
const MaxPreviousEncryptionKeys = 20

// SetAgencyEncryptionKey makes key (its recipient and fingerprint, checked
// by the caller) the current encryption key of the agency named name,
// stamped with the transaction's time, and moves the key it replaces to
// the front of previous_encryption_keys without its recipient. Setting
// the current recipient again changes nothing: no revision, change or
// audit entry. The change is recorded like any other change to the agency,
// so the change log, the audit chain and LookupCaller's cache follow it.
func (s *Store) SetAgencyEncryptionKey(ctx context.Context, op Op, name string, key *exchangev1.EncryptionKey) (*exchangev1.Agency, error) {
	var out *exchangev1.Agency
	err := s.update(ctx, op, func(w *writeTx) error {
		a, err := agencies.modify(w, agencyKey(name), name, "", func(a *exchangev1.Agency) error {
			cur := a.GetEncryptionKey()
			if cur.GetRecipient() == key.GetRecipient() {
				return nil
			}
			if cur != nil {
				replaced := &exchangev1.EncryptionKey{Fingerprint: cur.GetFingerprint(), CreateTime: cur.GetCreateTime()}
				a.PreviousEncryptionKeys = append([]*exchangev1.EncryptionKey{replaced}, a.GetPreviousEncryptionKeys()...)
				if len(a.PreviousEncryptionKeys) > MaxPreviousEncryptionKeys {
					a.PreviousEncryptionKeys = a.PreviousEncryptionKeys[:MaxPreviousEncryptionKeys]
				}
			}
			a.EncryptionKey = &exchangev1.EncryptionKey{
				Recipient: key.GetRecipient(), Fingerprint: key.GetFingerprint(), CreateTime: w.timestamp(),
			}
			return nil
		})
		out = a
		return err
	})
	return out, err
}

// CertificateSubject returns the subject of the certificate named name,
// "certificates/{serial}": "agencies/{agency}" or "secretariat". found is
// false when no such certificate is recorded.
func (s *Store) CertificateSubject(ctx context.Context, name string) (subject string, found bool, err error) {
	err = s.view(ctx, func(tx kv.Tx) error {
		v := tx.Bucket(bucketCertificates).Get(certificateKey(name))
		if v == nil {
			return nil
		}
		// Read the subject alone: the record also holds the certificate's
		// PEM, which an audit view asking about many entries has no use for.
		subj, err := certificateSubjectOf(v)
		if err != nil {
			return err
		}
		subject, found = subj, true
		return nil
	})
	return subject, found, err
}

// certificateSubjectField is the field number of Certificate.subject.
var certificateSubjectField = (&exchangev1.Certificate{}).ProtoReflect().Descriptor().Fields().ByName("subject").Number()

// certificateSubjectOf reads the subject from an encoded Certificate
// without decoding the rest of it.
func certificateSubjectOf(b []byte) (string, error) {
	var subject string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", internal("cannot decode a certificate record", protowire.ParseError(n))
		}
		b = b[n:]
		if num == certificateSubjectField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return "", internal("cannot decode a certificate record", protowire.ParseError(m))
			}
			subject = string(v) // the last occurrence wins, as in proto.Unmarshal
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return "", internal("cannot decode a certificate record", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return subject, nil
}
