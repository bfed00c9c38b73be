package store

import (
	"context"
	"strings"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// CertificatePrefix starts every certificate resource name.
const CertificatePrefix = "certificates/"

var certificates = table[*exchangev1.Certificate]{
	bucket: bucketCertificates,
	newT:   func() *exchangev1.Certificate { return new(exchangev1.Certificate) },
	indexes: func(c *exchangev1.Certificate) []indexEntry {
		return []indexEntry{{bucketCertificateBySubject, joinKey(c.GetSubject(), strings.TrimPrefix(c.GetName(), CertificatePrefix))}}
	},
}

func certificateKey(name string) []byte { return []byte(strings.TrimPrefix(name, CertificatePrefix)) }

// Replayed returns the resource name that an earlier call with the same
// actor, method and request id created, if there was one. Callers use it
// before expensive work that must not be repeated on a retry, such as
// signing a certificate.
func (s *Store) Replayed(ctx context.Context, op Op) (string, bool, error) {
	if op.RequestID == "" {
		return "", false, nil
	}
	var name string
	err := s.view(ctx, func(tx kv.Tx) error {
		if v := tx.Bucket(bucketRequests).Get(requestKey(op.Actor, op.Method, op.RequestID)); v != nil {
			name = string(v)
		}
		return nil
	})
	return name, name != "", err
}

// RecordCertificate stores an issued certificate, named
// "certificates/{serial}". For agency subjects the agency must exist.
func (s *Store) RecordCertificate(ctx context.Context, op Op, serial string, c *exchangev1.Certificate) (*exchangev1.Certificate, error) {
	var out *exchangev1.Certificate
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := certificates.get(w.tx, certificateKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing certificate", err)
			}
			out = got
			return nil
		}
		if strings.HasPrefix(c.GetSubject(), AgencyPrefix) {
			if _, ok, err := agencies.get(w.tx, agencyKey(c.GetSubject())); err != nil {
				return err
			} else if !ok {
				return &Error{Kind: KindNotFound, Resource: c.GetSubject(), Field: "subject", Message: c.GetSubject() + " not found"}
			}
		}
		c = proto.Clone(c).(*exchangev1.Certificate)
		c.State = exchangev1.CertificateState_CERTIFICATE_STATE_ACTIVE
		created, err := certificates.create(w, []byte(serial), CertificatePrefix+serial, c)
		out = created
		return err
	})
	return out, err
}

// RecordSignedCertificate records a certificate that the exchange's CA
// signed outside IssueCertificate: the secretariat's certificate that
// exchanged makes on first start, or one an operator signed with the CA
// offline (`exchanged certs record`). Calls are accepted only with
// certificates the store holds (see LookupCaller), so such a certificate is
// refused until it is recorded.
//
// It is idempotent by serial: a serial already recorded with the same PEM
// changes nothing and returns the record (revoked or not); with another PEM
// it fails with KindAlreadyExists. Unlike RecordCertificate, an agency
// subject need not be in the directory yet: the certificate's calls are
// refused until the agency is created.
func (s *Store) RecordSignedCertificate(ctx context.Context, op Op, serial string, c *exchangev1.Certificate) (*exchangev1.Certificate, error) {
	var out *exchangev1.Certificate
	err := s.update(ctx, op, func(w *writeTx) error {
		existing, ok, err := certificates.get(w.tx, []byte(serial))
		if err != nil {
			return err
		}
		if ok {
			if existing.GetCertificatePem() != c.GetCertificatePem() {
				return &Error{Kind: KindAlreadyExists, Resource: CertificatePrefix + serial,
					Message: CertificatePrefix + serial + " is already recorded with another certificate"}
			}
			out = existing
			return nil
		}
		c = proto.Clone(c).(*exchangev1.Certificate)
		c.State = exchangev1.CertificateState_CERTIFICATE_STATE_ACTIVE
		out, err = certificates.create(w, []byte(serial), CertificatePrefix+serial, c)
		return err
	})
	return out, err
}

// GetCertificate returns the certificate with the given name.
func (s *Store) GetCertificate(ctx context.Context, name string) (*exchangev1.Certificate, error) {
	var out *exchangev1.Certificate
	err := s.view(ctx, func(tx kv.Tx) error {
		c, ok, err := certificates.get(tx, certificateKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		out = c
		return nil
	})
	return out, err
}

// RevokeCertificate marks a certificate revoked with a reason. Revoking a
// revoked certificate fails with KindFailedPrecondition.
func (s *Store) RevokeCertificate(ctx context.Context, op Op, name, reason string) (*exchangev1.Certificate, error) {
	var out *exchangev1.Certificate
	err := s.update(ctx, op, func(w *writeTx) error {
		c, err := certificates.modify(w, certificateKey(name), name, "", func(c *exchangev1.Certificate) error {
			if c.GetState() == exchangev1.CertificateState_CERTIFICATE_STATE_REVOKED {
				return &Error{Kind: KindFailedPrecondition, Resource: name, Message: name + " is already revoked"}
			}
			c.State = exchangev1.CertificateState_CERTIFICATE_STATE_REVOKED
			c.RevokeTime = w.timestamp()
			c.RevokeReason = reason
			return nil
		})
		out = c
		return err
	})
	return out, err
}

// ListCertificates returns one page of certificates in name order; a
// non-empty subject keeps that subject's certificates.
func (s *Store) ListCertificates(ctx context.Context, subject string, p Page) ([]*exchangev1.Certificate, string, error) {
	fp := query("certificates", subject)
	bucket, prefix := bucketCertificates, []byte(nil)
	if subject != "" {
		bucket, prefix = bucketCertificateBySubject, joinKey(subject, "")
	}
	var items []*exchangev1.Certificate
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucket, prefix, p, fp, func(k, _ []byte) (*exchangev1.Certificate, bool, error) {
			return certificates.get(tx, k[len(prefix):])
		})
		return err
	})
	return items, token, err
}

// Caller is what the store knows about a caller's credentials, read in one
// transaction (or from the cache of such reads, see LookupCaller).
type Caller struct {
	// CertificateRecorded is true when the store holds a certificate with
	// the serial: the exchange issued it (RecordCertificate) or recorded it
	// (RecordSignedCertificate). A certificate the store does not hold was
	// not issued by this exchange, even if its CA signed it.
	CertificateRecorded bool
	// CertificateRevoked is true when the certificate's serial is recorded
	// as revoked.
	CertificateRevoked bool
	// Agency is the caller's agency record; nil when the caller is not an
	// agency or the agency is not in the directory. It is shared between
	// calls: read it, never modify it.
	Agency *exchangev1.Agency
}

// callerCacheLimit bounds the callers LookupCaller remembers; past it the
// cache starts afresh. There is one entry per certificate in use.
const callerCacheLimit = 4096

// cachedCaller is a LookupCaller result and the directory generation it
// was read at.
type cachedCaller struct {
	generation uint64
	caller     Caller
}

// LookupCaller reads whether the certificate with the given serial is
// recorded and whether it is revoked and, for a non-empty agencyID, the
// agency's record.
//
// Every call of every agency starts with this lookup, so its result is
// remembered until the directory changes: the generation counts commits
// that changed an agency or a certificate, and is advanced once such a
// commit is durable and visible, before its writer is answered. An entry
// is used only while the generation is the one read before the
// transaction that made it, so a revocation or a suspension applies to
// every call that starts after it is acknowledged, as without the cache;
// so does a certificate newly recorded.
func (s *Store) LookupCaller(ctx context.Context, serial, agencyID string) (Caller, error) {
	generation := s.directoryGeneration.Load()
	key := serial + "\x00" + agencyID
	if e, ok := s.callers.Load(key); ok && e.(cachedCaller).generation == generation {
		if err := ctx.Err(); err != nil {
			return Caller{}, err
		}
		return e.(cachedCaller).caller, nil
	}
	var out Caller
	err := s.view(ctx, func(tx kv.Tx) error {
		c, ok, err := certificates.get(tx, []byte(serial))
		if err != nil {
			return err
		}
		out.CertificateRecorded = ok
		out.CertificateRevoked = ok && c.GetState() == exchangev1.CertificateState_CERTIFICATE_STATE_REVOKED
		if agencyID != "" {
			a, ok, err := agencies.get(tx, []byte(agencyID))
			if err != nil {
				return err
			}
			if ok {
				out.Agency = a
			}
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	if s.cachedCallers.Add(1) > callerCacheLimit {
		s.callers.Clear()
		s.cachedCallers.Store(0)
	}
	s.callers.Store(key, cachedCaller{generation: generation, caller: out})
	return out, nil
}
