package seal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"filippo.io/age"
)

// Identity is an agency's private encryption key: an age hybrid identity
// (ML-KEM-768 + X25519). Whoever holds it opens every blob sealed to its
// Recipient, so it never leaves the agency. Its String method does not
// reveal it; SecretKey does, for writing it to the agency's key ring.
type Identity struct {
	age *age.HybridIdentity
}

// Recipient is an agency's public encryption key, the one it registers in
// the exchange's directory: an age hybrid recipient, "age1pq1…". Two
// Recipients are == when they are the same key. The zero Recipient is not
// a key; Seal refuses it.
type Recipient struct {
	text string // canonical "age1pq1…", checked by ParseRecipient
}

// Fingerprint is a short, fixed-size name for a Recipient that people can
// compare over the phone: the first 16 bytes of SHA-256 of the recipient's
// "age1pq1…" text. Its String groups it as eight groups of four hex digits.
type Fingerprint [16]byte

// GenerateIdentity makes a new hybrid identity from the system's random
// source.
func GenerateIdentity() (*Identity, error) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		return nil, fmt.Errorf("seal: generate identity: %w", err)
	}
	return &Identity{age: id}, nil
}

// ParseIdentity reads an identity from its "AGE-SECRET-KEY-PQ-1…" text, as
// SecretKey writes it and as age-keygen -pq and other age implementations
// write hybrid identities. It refuses classic X25519 identities
// ("AGE-SECRET-KEY-1…"), which are not safe against a future quantum
// computer.
func ParseIdentity(s string) (*Identity, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "AGE-SECRET-KEY-1") {
		return nil, errors.New("seal: identity is a classic X25519 age key; the exchange needs a post-quantum hybrid key (AGE-SECRET-KEY-PQ-1…)")
	}
	id, err := age.ParseHybridIdentity(s)
	if err != nil {
		// age's message may quote the input; an identity is secret, so
		// say what is wrong without repeating it.
		return nil, errors.New("seal: identity is not a post-quantum hybrid age key (AGE-SECRET-KEY-PQ-1…)")
	}
	return &Identity{age: id}, nil
}

// SecretKey returns the identity's "AGE-SECRET-KEY-PQ-1…" text. It is the
// private key: write it only to the agency's key ring.
func (i *Identity) SecretKey() string {
	return i.age.String()
}

// Recipient returns the public key that goes with the identity.
func (i *Identity) Recipient() Recipient {
	return Recipient{text: i.age.Recipient().String()}
}

// String names the identity by its recipient's fingerprint, so that
// printing or logging an Identity by mistake does not leak the private key.
func (i *Identity) String() string {
	return "seal identity " + i.Recipient().Fingerprint().String()
}

// GoString is String, for the same reason, under %#v.
func (i *Identity) GoString() string {
	return i.String()
}

// ParseRecipient reads a recipient from its "age1pq1…" text. It refuses
// classic X25519 recipients ("age1…" without "pq1"), which are not safe
// against a future quantum computer, and anything else.
func ParseRecipient(s string) (Recipient, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(strings.ToLower(s), "age1pq1") {
		if strings.HasPrefix(strings.ToLower(s), "age1") {
			return Recipient{}, errors.New("seal: recipient is not a post-quantum hybrid age key (age1pq1…): classic X25519 keys are refused")
		}
		// The text is not quoted: it may be a secret key pasted in error.
		if strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-") {
			return Recipient{}, errors.New("seal: this is a secret key, not a recipient: keep it to yourself and give the public key (age1pq1…)")
		}
		return Recipient{}, errors.New("seal: recipient is not an age key (age1pq1…)")
	}
	r, err := age.ParseHybridRecipient(s)
	if err != nil {
		return Recipient{}, fmt.Errorf("seal: recipient %q is not a valid post-quantum hybrid age key", abbreviate(s))
	}
	return Recipient{text: r.String()}, nil
}

// String returns the recipient's "age1pq1…" text, the form it is
// registered and pinned in.
func (r Recipient) String() string {
	return r.text
}

// IsZero reports whether r is the zero Recipient, which is no key.
func (r Recipient) IsZero() bool {
	return r.text == ""
}

// Fingerprint returns the recipient's fingerprint.
func (r Recipient) Fingerprint() Fingerprint {
	sum := sha256.Sum256([]byte(r.text))
	var f Fingerprint
	copy(f[:], sum[:len(f)])
	return f
}

// String writes the fingerprint as eight groups of four upper-case hex
// digits joined by hyphens, "AB12-CD34-…", which is one word on a command
// line and easy to read aloud.
func (f Fingerprint) String() string {
	h := strings.ToUpper(hex.EncodeToString(f[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(h[i : i+4])
	}
	return b.String()
}

// ParseFingerprint reads a fingerprint as String writes it. Case does not
// matter, and hyphens, colons and spaces between digits are ignored, so a
// fingerprint read aloud and typed in groups parses too; it must have
// exactly 32 hex digits.
func ParseFingerprint(s string) (Fingerprint, error) {
	var digits strings.Builder
	for _, c := range s {
		switch {
		case c == '-' || c == ':' || c == ' ':
		case ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F'):
			digits.WriteRune(c)
		default:
			return Fingerprint{}, fmt.Errorf("seal: fingerprint %q: %q is not a hex digit", abbreviate(s), c)
		}
	}
	var f Fingerprint
	if digits.Len() != 2*len(f) {
		return Fingerprint{}, fmt.Errorf("seal: fingerprint %q has %d hex digits, want %d", abbreviate(s), digits.Len(), 2*len(f))
	}
	if _, err := hex.Decode(f[:], []byte(digits.String())); err != nil {
		return Fingerprint{}, fmt.Errorf("seal: fingerprint %q: %v", abbreviate(s), err)
	}
	return f, nil
}

// abbreviate shortens s for an error message: a hybrid recipient is almost
// 2,000 characters long.
func abbreviate(s string) string {
	const limit = 40
	r := []rune(s)
	if len(r) <= limit {
		return s
	}
	return string(r[:limit]) + "…"
}

// parsedRecipients remembers the age form of recently used recipients.
// Parsing a hybrid key expands its ML-KEM-768 matrix, which takes about
// 60 µs; without it Seal would pay that for every recipient of every
// referral. A Recipient itself stays a plain string, so that == compares
// keys. A parsed recipient is immutable and safe to share.
var parsedRecipients struct {
	sync.Mutex
	byText map[string]*age.HybridRecipient
}

// maxParsedRecipients bounds parsedRecipients; an agency seals to a few
// dozen partners.
const maxParsedRecipients = 256

// ageRecipient returns r for age.Encrypt.
func (r Recipient) ageRecipient() (*age.HybridRecipient, error) {
	parsedRecipients.Lock()
	ar, ok := parsedRecipients.byText[r.text]
	parsedRecipients.Unlock()
	if ok {
		return ar, nil
	}
	ar, err := age.ParseHybridRecipient(r.text)
	if err != nil {
		return nil, err
	}
	parsedRecipients.Lock()
	defer parsedRecipients.Unlock()
	if len(parsedRecipients.byText) >= maxParsedRecipients || parsedRecipients.byText == nil {
		parsedRecipients.byText = make(map[string]*age.HybridRecipient)
	}
	parsedRecipients.byText[r.text] = ar
	return ar, nil
}
