package seal

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// MaxDetails is the most identifying details, in bytes, that Seal seals
// and Open returns: 64 KiB, far more than a name, a guardian's contact
// and case notes need.
const MaxDetails = 64 << 10

// MaxRecipients is the most recipients Seal seals one blob to. A referral
// needs two: the receiver's current key and the sender's own.
const MaxRecipients = 8

// MaxBlob is the largest blob Open reads, in bytes. Seal's largest output,
// MaxDetails of details with the longest binding to MaxRecipients, fits
// within it.
const MaxBlob = 96 << 10

// ErrTooLarge is returned (wrapped) by Seal for details longer than
// MaxDetails or more than MaxRecipients recipients, and by Open for a
// blob longer than MaxBlob or one that holds more than it.
var ErrTooLarge = errors.New("too large")

// ErrNotRecipient is returned (wrapped) by Open when no key in the key ring
// opens the blob: it was sealed to other agencies, or to a key the ring no
// longer holds.
var ErrNotRecipient = errors.New("none of the keys in the key ring opens it")

// ErrDamaged is returned (wrapped) by Open for a blob that is not an age
// file, fails age's authentication (it was altered or cut short), or does
// not hold a sealed referral envelope.
var ErrDamaged = errors.New("damaged or altered")

// ErrOtherReferral is returned (wrapped) by Open for a blob sealed with
// another binding than the one expected: it belongs to another referral,
// sender or receiver and was moved.
var ErrOtherReferral = errors.New("sealed for another referral")

// Seal encrypts details with the binding b to every recipient in to, as a
// binary age file. For a referral, to is the receiver's current key and the
// sender's own, so that both agencies can open it and nobody else. b is
// sealed inside with the details; Open checks it. Seal refuses an invalid
// binding, no recipients, a zero Recipient, more than MaxRecipients
// recipients and more than MaxDetails bytes of details.
func Seal(details []byte, b Binding, to ...Recipient) ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	if len(details) > MaxDetails {
		return nil, fmt.Errorf("seal: details are %d bytes, more than the %d allowed: %w", len(details), MaxDetails, ErrTooLarge)
	}
	if len(to) == 0 {
		return nil, errors.New("seal: no recipients: seal to the receiver's key and the sender's own")
	}
	if len(to) > MaxRecipients {
		return nil, fmt.Errorf("seal: %d recipients, more than the %d allowed: %w", len(to), MaxRecipients, ErrTooLarge)
	}
	recipients := make([]age.Recipient, len(to))
	for i, r := range to {
		if r.IsZero() {
			return nil, fmt.Errorf("seal: recipient #%d is empty", i+1)
		}
		ar, err := r.ageRecipient()
		if err != nil {
			return nil, fmt.Errorf("seal: recipient #%d: %w", i+1, err)
		}
		recipients[i] = ar
	}
	env := encodeEnvelope(b, details)
	var out bytes.Buffer
	out.Grow(len(env) + 256 + 1600*len(to))
	w, err := age.Encrypt(&out, recipients...)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if _, err := w.Write(env); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return out.Bytes(), nil
}

// Open decrypts a blob that Seal wrote with any key in ring and returns the
// details, after checking that the blob was sealed with the binding b. It
// refuses a blob longer than MaxBlob (ErrTooLarge), one no key in the ring
// opens (ErrNotRecipient), one that is damaged or altered (ErrDamaged) and
// one sealed for another referral (ErrOtherReferral).
func Open(blob []byte, b Binding, ring *KeyRing) ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	if len(blob) > MaxBlob {
		return nil, fmt.Errorf("seal: open: blob is %d bytes, more than the %d allowed: %w", len(blob), MaxBlob, ErrTooLarge)
	}
	identities := ring.identities()
	if len(identities) == 0 {
		return nil, errors.New("seal: open: the key ring holds no keys")
	}
	r, err := age.Decrypt(bytes.NewReader(blob), identities...)
	if err != nil {
		if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
			return nil, fmt.Errorf("seal: open: %w (%d keys tried)", ErrNotRecipient, len(identities))
		}
		return nil, fmt.Errorf("seal: open: %w: %v", ErrDamaged, err)
	}
	env, err := io.ReadAll(io.LimitReader(r, int64(maxEnvelope)+1))
	if err != nil {
		return nil, fmt.Errorf("seal: open: %w: %v", ErrDamaged, err)
	}
	if len(env) > maxEnvelope {
		return nil, fmt.Errorf("seal: open: blob holds more than %d bytes: %w", maxEnvelope, ErrTooLarge)
	}
	sealed, details, err := decodeEnvelope(env)
	if err != nil {
		return nil, fmt.Errorf("seal: open: %w", err)
	}
	if sealed != b {
		return nil, fmt.Errorf("seal: open: %w: it is bound to %s, not to %s", ErrOtherReferral, sealed, b)
	}
	return details, nil
}
