package store

import (
	"bytes"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A referral sealed end to end by its sending client carries its
// identifying details (name, guardian contact, birth year, case notes) in
// Referral.sealed_details, an age file the exchange cannot open. The store
// keeps that blob as sent in bucketReferralDetails and, unlike the details
// it seals itself (referral_details.go), no data key: nothing in
// bucketReferralKeys. A stored blob without a key is therefore a
// client-sealed one, returned as sealed_details. The routing attributes
// left in the subject (sex, age, nationality, languages, current
// location) stay in the record, where the change log and lists still
// withhold them like any detail; erasure deletes the blob and clears them.

// AgeHeader is how every age v1 file, and so every sealed_details blob,
// begins.
const AgeHeader = "age-encryption.org/v1\n"

// CheckClientSealed refuses a client-sealed referral that is not sealed:
// one whose blob is not an age v1 file, or that still carries an
// identifying field in clear. field prefixes the field names
// ("referral"; "" for none, as in a forward's request). A referral
// without sealed_details passes.
func CheckClientSealed(field string, r *exchangev1.Referral) error {
	if len(r.GetSealedDetails()) == 0 {
		return nil
	}
	if field != "" {
		field += "."
	}
	if !bytes.HasPrefix(r.GetSealedDetails(), []byte(AgeHeader)) {
		return &Error{Kind: KindInvalidArgument, Field: field + "sealed_details",
			Message: field + "sealed_details: not an age v1 file (it must begin with \"age-encryption.org/v1\"); seal the details with the client's key ring"}
	}
	inClear := func(name string) error {
		return &Error{Kind: KindInvalidArgument, Field: field + name,
			Message: field + name + ": the referral carries sealed_details; send it inside sealed_details, not in clear"}
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

// prepareClientSealed is prepareReferral for a referral whose client
// sealed its details: the record keeps the routing subject, the blob is
// stored apart as sent, and no data key is made.
func prepareClientSealed(id string, r *exchangev1.Referral, blob []byte, forwardedFrom string, now time.Time) (preparedReferral, error) {
	if err := CheckClientSealed("referral", r); err != nil {
		return preparedReferral{}, err
	}
	r.SealedDetails = nil
	record, err := referrals.prepareOwned([]byte(id), ReferralPrefix+id, r, now)
	if err != nil {
		return preparedReferral{}, err
	}
	created := record.value
	created.SealedDetails = blob
	return preparedReferral{record: record, details: sealedDetails{sealed: blob}, created: created,
		receiver: r.GetReceiver(), forwardedFrom: forwardedFrom}, nil
}
