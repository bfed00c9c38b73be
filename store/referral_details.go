package store

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A referral's identifying details are sealed by its sending agency's
// client (referral_sealed.go); the exchange keeps the blob and no key to
// it. Erasing the details deletes the blob; Vacuum then rewrites the file
// so that no freed page still holds it.

// EraseReferralDetails destroys a referral's identifying details: its
// sealed details are deleted and the referral is marked erased, in
// one transaction that is audited like any change. Only the referral's
// agencies and the exchange's retention job may (see UpdateReferral).
// check runs first on the stored referral and may refuse. Run Vacuum afterwards so that no freed
// page of the file keeps the blob. Under a size quota it may use the
// reserve (quota.go): it frees more than it writes.
func (s *Store) EraseReferralDetails(ctx context.Context, op Op, name string, check func(*exchangev1.Referral) error) (*exchangev1.Referral, error) {
	var out *exchangev1.Referral
	err := s.updateUsingReserve(ctx, op, func(w *writeTx) error {
		if err := checkParty(w.tx, op.Actor, name); err != nil {
			return err
		}
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
			return err
		}
		if err := w.tx.Bucket(bucketReferralDetails).Delete([]byte(id)); err != nil {
			return internal("cannot erase referral details", err)
		}
		out = r
		return nil
	})
	return out, err
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
