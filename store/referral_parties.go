package store

import (
	"bytes"
	"context"
	"strings"

	"github.com/alltogether/exchange/store/kv"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// ActorExchange is the Op.Actor of the exchange's own jobs (the retention
// job, the first start), which may act on any referral.
const ActorExchange = "exchange"

// Only a referral's two agencies may read or change it. The store decides
// that from the party index, before it reads the record: one seek in
// referrals_by_party for agency ∅ newestFirst(id) ∅, which finds the
// agency's entry if it sent or received the referral. A referral that
// does not exist and one the caller is no party to then take the same
// path (that seek, nothing else) and give the same NotFound, byte for
// byte. Deciding after reading the record, as the server once did, made
// an existing referral answer 17–100 µs slower than a missing one: the
// record was decoded (and for a read its details decrypted) before the
// refusal, which let an agency probe which referral ids exist.

// partyOf returns the agency an actor acts for on a referral, and false
// for the exchange's own jobs, which may act on any. The secretariat, and
// any actor that is not an agency, is party to no referral: its agency id
// is empty, and no index entry has an empty agency.
func partyOf(actor string) (agencyID string, restricted bool) {
	if actor == ActorExchange {
		return "", false
	}
	agencyID, _ = strings.CutPrefix(actor, AgencyPrefix)
	if agencyID == actor {
		return "", true
	}
	return agencyID, true
}

// isParty tells whether the agency sent or received the referral with
// the id, with one seek in the party index.
func isParty(tx kv.Tx, agencyID, id string) bool {
	prefix := joinKey(agencyID, newestFirst(id), "")
	k, _ := tx.Bucket(bucketReferralByParty).Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+1
}

// checkParty returns NotFound for the named referral unless actor may act
// on it: one of its agencies, or the exchange itself. It reads only the
// party index, so that a missing referral and one the actor may not see
// are refused alike.
func checkParty(tx kv.Tx, actor, name string) error {
	agencyID, restricted := partyOf(actor)
	if restricted && (agencyID == "" || !isParty(tx, agencyID, referralID(name))) {
		return notFound(name)
	}
	return nil
}

// IsReferralParty tells whether agencyID sent or received the named
// referral, from the party index alone: the record is not read.
func (s *Store) IsReferralParty(ctx context.Context, agencyID, name string) (bool, error) {
	var party bool
	err := s.view(ctx, func(tx kv.Tx) error {
		party = agencyID != "" && isParty(tx, agencyID, referralID(name))
		return nil
	})
	return party, err
}

// GetReferralFor returns the named referral, identifying details
// included, to reader (an Op.Actor): one of its two agencies, or the
// exchange. To anyone else it does not exist: the answer is the same
// NotFound as for a missing referral, reached the same way, without
// reading the record. Callers still decide which details the reader may
// see.
func (s *Store) GetReferralFor(ctx context.Context, reader, name string) (*exchangev1.Referral, error) {
	var out *exchangev1.Referral
	err := s.view(ctx, func(tx kv.Tx) error {
		if err := checkParty(tx, reader, name); err != nil {
			return err
		}
		var err error
		out, err = readReferral(tx, name)
		return err
	})
	return out, err
}
