package seal

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
)

// ErrKeyRingChanged is returned (wrapped) by Rotate and Remove when the key
// ring file changed on disk since this KeyRing read it, for example because
// another process rotated it: writing would lose that process's change.
var ErrKeyRingChanged = errors.New("key ring changed on disk since it was opened; open it again")

// KeyRing is an agency's private keys, newest first, in a file of mode
// 0600. The newest is the current key, the one the agency registers and
// partners seal to; the older ones stay so that blobs sealed to them still
// open. A KeyRing is safe for concurrent use; see the package
// documentation for the file format.
type KeyRing struct {
	path string

	mu   sync.Mutex
	keys []ringKey // newest first, never empty
	// digest is SHA-256 of the file as this KeyRing last read or wrote it.
	digest [sha256.Size]byte
}

// ringKey is one key in a KeyRing.
type ringKey struct {
	identity *Identity
	created  time.Time
}

// KeyInfo describes one key of a KeyRing without its private part.
type KeyInfo struct {
	// Recipient is the key's public part.
	Recipient Recipient
	// Created is when the key was made, to the second.
	Created time.Time
}

// Prefixes of the comment lines that describe a key in a key ring file.
const (
	createdPrefix   = "# created: "
	publicKeyPrefix = "# public key: "
)

// keyRingIntro heads every key ring file.
const keyRingIntro = `# The exchange: this agency's encryption keys, newest (current) first.
# Keep this file secret, mode 0600, and backed up; keep an old key until the
# referrals sealed to it are closed. It is an age identity file: age -d -i
# with this file opens a sealed blob.
`

// CreateKeyRing makes a key ring file at path holding one new key. It
// refuses to replace an existing file.
func CreateKeyRing(path string) (*KeyRing, error) {
	id, err := GenerateIdentity()
	if err != nil {
		return nil, err
	}
	r := &KeyRing{path: path, keys: []ringKey{{identity: id, created: timeNow()}}}
	data := r.encode()
	if err := writePrivateFile(path, data, true); err != nil {
		return nil, fmt.Errorf("seal: create key ring: %w", err)
	}
	r.digest = sha256.Sum256(data)
	return r, nil
}

// OpenKeyRing reads the key ring file at path. It refuses a file that the
// group or others can read or write (ErrFileMode), and a file that is not
// a key ring as CreateKeyRing and Rotate write them.
func OpenKeyRing(path string) (*KeyRing, error) {
	data, err := readPrivateFile(path, "key ring")
	if err != nil {
		return nil, err
	}
	keys, err := decodeKeyRing(data)
	if err != nil {
		return nil, fmt.Errorf("seal: key ring %s: %w", path, err)
	}
	return &KeyRing{path: path, keys: keys, digest: sha256.Sum256(data)}, nil
}

// Path returns the key ring's file.
func (r *KeyRing) Path() string {
	return r.path
}

// Current returns the newest key, the one partners should seal to.
func (r *KeyRing) Current() *Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[0].identity
}

// Keys describes every key, newest first.
func (r *KeyRing) Keys() []KeyInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]KeyInfo, len(r.keys))
	for i, k := range r.keys {
		out[i] = KeyInfo{Recipient: k.identity.Recipient(), Created: k.created}
	}
	return out
}

// Rotate makes a new key, puts it first in the ring as the current key and
// keeps the others, then rewrites the file atomically. The agency then
// registers the new key's recipient, and its partners, who pinned the old
// one, must trust the new fingerprint before they seal to it.
func (r *KeyRing) Rotate() (*Identity, error) {
	id, err := GenerateIdentity()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := append([]ringKey{{identity: id, created: timeNow()}}, r.keys...)
	if err := r.replace(keys); err != nil {
		return nil, fmt.Errorf("seal: rotate: %w", err)
	}
	return id, nil
}

// Remove deletes the key whose recipient has fingerprint f from the ring
// and rewrites the file atomically. Blobs sealed only to that key can no
// longer be opened, so remove a key only once the referrals sealed to it
// are closed. Remove refuses the current key and a fingerprint the ring
// does not hold.
func (r *KeyRing) Remove(f Fingerprint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, k := range r.keys {
		if k.identity.Recipient().Fingerprint() != f {
			continue
		}
		if i == 0 {
			return fmt.Errorf("seal: remove: %s is the current key; rotate first", f)
		}
		keys := append(append([]ringKey(nil), r.keys[:i]...), r.keys[i+1:]...)
		if err := r.replace(keys); err != nil {
			return fmt.Errorf("seal: remove: %w", err)
		}
		return nil
	}
	return fmt.Errorf("seal: remove: the key ring holds no key %s", f)
}

// replace writes keys to the file, if the file is still as this KeyRing
// last saw it, and then makes them the ring's keys. r.mu is held.
func (r *KeyRing) replace(keys []ringKey) error {
	onDisk, err := readPrivateFile(r.path, "key ring")
	if err != nil {
		return err
	}
	if sha256.Sum256(onDisk) != r.digest {
		return fmt.Errorf("%s: %w", r.path, ErrKeyRingChanged)
	}
	next := &KeyRing{keys: keys}
	data := next.encode()
	if err := writePrivateFile(r.path, data, false); err != nil {
		return err
	}
	r.keys = keys
	r.digest = sha256.Sum256(data)
	return nil
}

// identities returns every key as an age identity, for Open; none for a
// nil KeyRing.
func (r *KeyRing) identities() []age.Identity {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]age.Identity, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.identity.age
	}
	return out
}

// encode writes the key ring file: the intro, then for each key, newest
// first, a blank line, its creation time, its public key and its secret
// key.
func (r *KeyRing) encode() []byte {
	var b bytes.Buffer
	b.WriteString(keyRingIntro)
	for _, k := range r.keys {
		b.WriteString("\n")
		b.WriteString(createdPrefix + k.created.UTC().Format(time.RFC3339) + "\n")
		b.WriteString(publicKeyPrefix + k.identity.Recipient().String() + "\n")
		b.WriteString(k.identity.SecretKey() + "\n")
	}
	return b.Bytes()
}

// decodeKeyRing reads what encode wrote. Each secret key must follow a
// "# created:" line, and, when a "# public key:" line precedes it, must
// match it; other comments and blank lines are ignored. No key may appear
// twice, and there must be at least one.
func decodeKeyRing(data []byte) ([]ringKey, error) {
	var keys []ringKey
	var created time.Time
	var public string
	seen := map[Fingerprint]bool{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case strings.HasPrefix(line, createdPrefix):
			t, err := time.Parse(time.RFC3339, strings.TrimPrefix(line, createdPrefix))
			if err != nil {
				return nil, fmt.Errorf("line %d: creation time is not RFC 3339: %v", n+1, err)
			}
			created = t
		case strings.HasPrefix(line, publicKeyPrefix):
			public = strings.TrimPrefix(line, publicKeyPrefix)
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			id, err := ParseIdentity(line)
			if err != nil {
				return nil, fmt.Errorf("line %d is neither a comment nor a post-quantum hybrid age secret key", n+1)
			}
			if created.IsZero() {
				return nil, fmt.Errorf("line %d: key has no %q line before it", n+1, strings.TrimSpace(createdPrefix))
			}
			rcpt := id.Recipient()
			if public != "" && public != rcpt.String() {
				return nil, fmt.Errorf("line %d: key does not match the public key before it", n+1)
			}
			if seen[rcpt.Fingerprint()] {
				return nil, fmt.Errorf("line %d: key %s appears twice", n+1, rcpt.Fingerprint())
			}
			seen[rcpt.Fingerprint()] = true
			keys = append(keys, ringKey{identity: id, created: created})
			created, public = time.Time{}, ""
		}
	}
	if !created.IsZero() || public != "" {
		return nil, errors.New("ends with a key's description but no key")
	}
	if len(keys) == 0 {
		return nil, errors.New("holds no keys")
	}
	return keys, nil
}

// timeNow is when a key is made, to the second, in UTC.
func timeNow() time.Time {
	return time.Now().UTC().Truncate(time.Second)
}
