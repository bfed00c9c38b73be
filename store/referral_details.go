package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alltogether/exchange/store/kv"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A referral's identifying details are sealed by its sending agency's
// client (referral_sealed.go); the exchange keeps the blob and no key to
// it. Erasing the details deletes the blob, and a scrub (scrub.go) then
// overwrites every freed page of the file, so that no copy of it is left.

// EraseReferralDetails destroys a referral's identifying details: its
// sealed details are deleted and the referral is marked erased, in
// one transaction that is audited like any change (op.Reason, a code such
// as "person-request", goes into the audit entry). Only the referral's
// agencies and the exchange's retention job may (see UpdateReferral).
// check runs first on the stored referral and may refuse. It returns once
// no page of the file holds the sealed details any more: the
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

// eraseDetails deletes the sealed details of the named
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
	if err := w.tx.Bucket(bucketReferralDetails).Delete([]byte(id)); err != nil {
		return nil, internal("cannot erase referral details", err)
	}
	return r, nil
}

// ClosedReferralsBefore returns up to limit referrals closed (completed,
// rejected or cancelled) before the time whose details are not yet
// erased: those past their retention period.
func (s *Store) ClosedReferralsBefore(ctx context.Context, before time.Time, limit int) ([]string, error) {
	var out []string
	err := s.view(ctx, func(tx kv.Tx) error {
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
