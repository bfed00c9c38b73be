package store

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A referral's identifying details (subject and case notes) are the most
// sensitive data the exchange holds. They never enter the referral record,
// the change log or the audit chain: they are sealed with AES-256-GCM under
// a data key of their own, kept in bucketReferralKeys, with the referral id
// as additional data (so that a sealed blob cannot be moved to another
// referral). Erasing the details deletes the key and the blob, and a scrub
// (scrub.go) then overwrites every freed page of the file, so that no copy
// of either is left in it.

// sealedDetails are a referral's identifying details sealed under a data
// key of their own, ready to be stored.
type sealedDetails struct {
	key    []byte // the 32-byte AES-256 data key
	sealed []byte // nonce ‖ ciphertext ‖ tag
}

// sealDetails makes a new data key and seals details under it, with the
// referral id as additional data. It touches no transaction, so that the
// work is done before the write queues for its commit.
func sealDetails(id string, details *exchangev1.Referral) (sealedDetails, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return sealedDetails{}, internal("cannot make a data key", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return sealedDetails{}, err
	}
	plain, err := marshal(details)
	if err != nil {
		return sealedDetails{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return sealedDetails{}, internal("cannot make a nonce", err)
	}
	sealed := aead.Seal(nonce, nonce, plain, []byte(id))
	clear(plain)
	return sealedDetails{key: key, sealed: sealed}, nil
}

// storeDetails stores a referral's data key and sealed details.
// A client-sealed referral (referral_sealed.go) has no data key.
func storeDetails(tx *bolt.Tx, id string, d sealedDetails) error {
	if d.key != nil {
		if err := tx.Bucket(bucketReferralKeys).Put([]byte(id), d.key); err != nil {
			return internal("cannot store the data key", err)
		}
	}
	if err := tx.Bucket(bucketReferralDetails).Put([]byte(id), d.sealed); err != nil {
		return internal("cannot store the sealed details", err)
	}
	return nil
}

// openDetails fills r's subject and case notes from the sealed details, if
// they were not erased; a client-sealed blob (no key) goes, unopened, into
// r's sealed_details.
func openDetails(tx *bolt.Tx, id string, r *exchangev1.Referral) error {
	key := tx.Bucket(bucketReferralKeys).Get([]byte(id))
	sealed := tx.Bucket(bucketReferralDetails).Get([]byte(id))
	if key == nil && sealed != nil {
		r.SealedDetails = bytes.Clone(sealed)
		return nil
	}
	if key == nil || sealed == nil {
		return nil // erased (the referral says so) or never had any
	}
	aead, err := newAEAD(key)
	if err != nil {
		return err
	}
	n := aead.NonceSize()
	if len(sealed) < n {
		return internal("sealed details of referrals/"+id+" are truncated", nil)
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(id))
	if err != nil {
		return internal("cannot open the details of referrals/"+id, err)
	}
	var details exchangev1.Referral
	if err := unmarshal(plain, &details); err != nil {
		return err
	}
	clear(plain)
	r.Subject, r.CaseNotes = details.GetSubject(), details.GetCaseNotes()
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, internal("bad data key", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, internal("cannot make the cipher", err)
	}
	return aead, nil
}

// EraseReferralDetails destroys a referral's identifying details: its data
// key and sealed details are deleted and the referral is marked erased, in
// one transaction that is audited like any change (op.Reason, a code such
// as "person-request", goes into the audit entry). Only the referral's
// agencies and the exchange's retention job may (see UpdateReferral).
// check runs first on the stored referral and may refuse. It returns once
// no page of the file holds the key or the sealed details any more: the
// pages the erasure freed, and older copies of them, are overwritten by a
// scrub (scrub.go) before it returns. If a read that began before the
// erasure (a backup) keeps them from being overwritten for
// Options.ScrubWait, or ctx ends first, it returns the erased referral
// with KindUnavailable: the erasure is made and the pages are overwritten
// as soon as that read ends. Under a size quota it may use the reserve
// (quota.go): it frees more than it writes.
func (s *Store) EraseReferralDetails(ctx context.Context, op Op, name string, check func(*exchangev1.Referral) error) (*exchangev1.Referral, error) {
	var out *exchangev1.Referral
	var done erasure
	err := s.updateUsingReserve(ctx, op, func(w *writeTx) error {
		if err := checkParty(w.tx, op.Actor, name); err != nil {
			return err
		}
		r, err := eraseDetails(w, name, check)
		if err != nil {
			return err
		}
		out, done = r, s.erasureIn(w.tx, 1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, s.awaitScrub(ctx, done, "the details of "+name+" are")
}

// EraseDetailsOf erases the identifying details of those of the named
// referrals that still have them, as the retention job does: each erasure
// is a change of its own, audited with op, all in one transaction; then
// one scrub overwrites the pages they freed, as for EraseReferralDetails.
// Referrals already erased or gone are skipped. It returns the names
// erased, and KindUnavailable as EraseReferralDetails does.
func (s *Store) EraseDetailsOf(ctx context.Context, op Op, names []string) ([]string, error) {
	var erased []string
	var done erasure
	err := s.updateUsingReserve(ctx, op, func(w *writeTx) error {
		erased = nil
		for _, name := range names {
			_, err := eraseDetails(w, name, func(r *exchangev1.Referral) error {
				if r.GetDetailsErased() {
					return errSkip
				}
				return nil
			})
			switch {
			case errors.Is(err, errSkip) || KindOf(err) == KindNotFound:
				continue
			case err != nil:
				return err
			}
			erased = append(erased, name)
		}
		done = s.erasureIn(w.tx, len(erased))
		return nil
	})
	if err != nil || len(erased) == 0 {
		return nil, err
	}
	return erased, s.awaitScrub(ctx, done, fmt.Sprintf("the details of %d referrals are", len(erased)))
}

// errSkip makes eraseDetails leave a referral as it is.
var errSkip = errors.New("skip")

// eraseDetails deletes the data key and sealed details of the named
// referral and marks it erased, after check.
func eraseDetails(w *writeTx, name string, check func(*exchangev1.Referral) error) (*exchangev1.Referral, error) {
	id := referralID(name)
	r, err := referrals.modify(w, []byte(id), name, "", func(r *exchangev1.Referral) error {
		if err := check(r); err != nil {
			return err
		}
		if r.GetDetailsErased() {
			return &Error{Kind: KindFailedPrecondition, Resource: name, Message: "the details of " + name + " are already erased"}
		}
		r.DetailsErased, r.EraseTime = true, w.timestamp()
		r.Subject = nil // a client-sealed referral's routing subject
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, b := range [][]byte{bucketReferralKeys, bucketReferralDetails} {
		if err := w.tx.Bucket(b).Delete([]byte(id)); err != nil {
			return nil, internal("cannot erase referral details", err)
		}
	}
	return r, nil
}

// ClosedReferralsBefore returns up to limit referrals closed (completed,
// rejected or cancelled) before the time whose details are not yet
// erased: those past their retention period.
func (s *Store) ClosedReferralsBefore(ctx context.Context, before time.Time, limit int) ([]string, error) {
	var out []string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReferrals).ForEach(func(k, v []byte) error {
			if len(out) == limit {
				return nil
			}
			var r exchangev1.Referral
			if err := unmarshal(v, &r); err != nil {
				return err
			}
			switch r.GetState() {
			case exchangev1.ReferralState_REFERRAL_STATE_COMPLETED, exchangev1.ReferralState_REFERRAL_STATE_REJECTED,
				exchangev1.ReferralState_REFERRAL_STATE_CANCELLED:
				if !r.GetDetailsErased() && r.GetUpdateTime().AsTime().Before(before) {
					out = append(out, r.GetName())
				}
			}
			return nil
		})
	})
	return out, err
}
