package store

import (
	"bytes"
	"time"

	"github.com/alltogether/exchange/store/kv"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Every referral is sealed end to end by its sending client: its
// identifying details (name, guardian contact, birth year, case notes)
// travel only in Referral.sealed_details, an age file the exchange cannot
// open, and the exchange refuses a referral without one. The store keeps
// that blob as sent in bucketReferralDetails and holds no key to it. The
// routing attributes left in the subject (sex, age, nationality,
// languages, current location) stay in the record, where the change log
// and lists still withhold them like any detail; erasure deletes the blob
// and clears them.

// AgeHeader is how every age v1 file, and so every sealed_details blob,
// begins.
const AgeHeader = "age-encryption.org/v1\n"

// SealingDoc is where the exchange's refusals of details in clear send a
// client's developer.
const SealingDoc = "docs/sealing.md"

// CheckClientSealed refuses a referral that is not sealed by its client:
// one without sealed_details, one whose blob is not an age v1 file, or one
// that still carries an identifying field in clear. field prefixes the
// field names ("referral"; "" for none, as in a forward's request).
func CheckClientSealed(field string, r *exchangev1.Referral) error {
	// Paths are built only for a refusal: every referral of a batch is
	// checked here twice (server and store), and almost all pass.
	path := func(name string) string {
		if field == "" {
			return name
		}
		return field + "." + name
	}
	if len(r.GetSealedDetails()) == 0 {
		p := path("sealed_details")
		return &Error{Kind: KindInvalidArgument, Field: p,
			Message: p + ": required: the exchange holds no identifying details in clear; seal the name, guardian contact, birth year and case notes with the agency's key ring (see " + SealingDoc + ")"}
	}
	if !bytes.HasPrefix(r.GetSealedDetails(), []byte(AgeHeader)) {
		p := path("sealed_details")
		return &Error{Kind: KindInvalidArgument, Field: p,
			Message: p + ": not an age v1 file (it must begin with \"age-encryption.org/v1\"); seal the details with the client's key ring (see " + SealingDoc + ")"}
	}
	inClear := func(name string) error {
		p := path(name)
		return &Error{Kind: KindInvalidArgument, Field: p,
			Message: p + ": the referral carries sealed_details; send it inside sealed_details, not in clear"}
	}
	s := r.GetSubject()
	switch {
	case s.GetName() != "":
		return inClear("subject.name")
	case s.GetGuardianContact() != "":
		return inClear("subject.guardian_contact")
	case s.GetBirthYear() != 0:
		return inClear("subject.birth_year")
	case r.GetCaseNotes() != "":
		return inClear("case_notes")
	}
	return nil
}

// prepareClientSealed is the end of prepareReferral: the record keeps the
// routing subject and the blob is stored apart as sent.
func prepareClientSealed(id string, r *exchangev1.Referral, forwardedFrom string, now time.Time) (preparedReferral, error) {
	if err := CheckClientSealed("referral", r); err != nil {
		return preparedReferral{}, err
	}
	blob := r.SealedDetails
	r.SealedDetails = nil
	record, err := referrals.prepareOwned([]byte(id), ReferralPrefix+id, r, now)
	if err != nil {
		return preparedReferral{}, err
	}
	// The record is encoded and wrapped for the change log without its
	// blob; from here on only its name and parties are read (for the
	// party index), so it can carry the blob back to the sender without a
	// copy.
	created := record.value
	created.SealedDetails = blob
	return preparedReferral{record: record, details: blob, created: created,
		receiver: r.GetReceiver(), forwardedFrom: forwardedFrom}, nil
}

// storeDetails stores a referral's sealed details.
func storeDetails(tx kv.Tx, id string, sealed []byte) error {
	if err := tx.Bucket(bucketReferralDetails).Put([]byte(id), sealed); err != nil {
		return internal("cannot store the sealed details", err)
	}
	return nil
}

// openDetails puts r's sealed details, unless they were erased, into r's
// sealed_details, unopened.
func openDetails(tx kv.Tx, id string, r *exchangev1.Referral) error {
	if sealed := tx.Bucket(bucketReferralDetails).Get([]byte(id)); sealed != nil {
		r.SealedDetails = bytes.Clone(sealed)
	}
	return nil
}
