/*
Package seal encrypts a referral's identifying details so that only the
sending and the receiving agency can read them: not the exchange, not its
operator, not whoever copies its database or a backup. The exchange never
holds a key that opens them. Each agency makes its own key pair, keeps the
private key in a file on its own machine and registers only the public key;
the sending agency's client seals the details to the receiver's key and to
its own, and the exchange stores the sealed blob without being able to read
it.

The package stands on its own: it reads and writes its own files and knows
nothing of the exchange's API. The client and exchangectl use it.

# What is sealed

Whatever bytes the caller passes as details: the fields that identify a
person (name, guardian contact, case notes, exact birth year), encoded by
the caller. Seal takes at most MaxDetails (64 KiB) of them. Routing
attributes that the exchange needs to suggest, count and chase referrals
stay outside the blob; which fields are which is the caller's decision.

# Keys

Keys are age keys (filippo.io/age, https://age-encryption.org): the hybrid,
post-quantum kind, ML-KEM-768 with X25519, so that details collected today
cannot be read once quantum computers can break X25519 alone ("collect now,
decrypt later"). An Identity is the private key, "AGE-SECRET-KEY-PQ-1…"; a
Recipient is the public key, "age1pq1…", almost 2,000 characters long.
GenerateIdentity makes one; ParseIdentity and ParseRecipient read them, and
refuse classic X25519 keys. An Identity's String prints only its
fingerprint, so that logging one by mistake does not leak it.

A Fingerprint is the first 16 bytes of SHA-256 of the recipient's text,
written as eight groups of four hex digits, "AB12-CD34-…-7F90", short
enough to read aloud when two agencies confirm a key over the phone.

# Format

A sealed blob is a standard binary (not armored) age file, version
age-encryption.org/v1, with one mlkem768x25519 stanza for each recipient;
any age implementation that supports hybrid keys opens it (a test opens
blobs with the npm package age-encryption 0.3.1 under node; see
docs/sealing.md). age has no associated data, so the referral the blob
belongs to is sealed inside it, in front of the details. The plaintext is
this envelope; integers are big-endian:

	offset  size  field
	0       8     magic, the ASCII bytes "xchgseal"
	8       1     version, 1
	9       2     length of the request id, n1
	11      n1    request id, UTF-8
	        2     length of the sender's name, n2
	        n2    sender, "agencies/{agency}", UTF-8
	        2     length of the receiver's name, n3
	        n3    receiver, "agencies/{agency}", UTF-8
	        4     length of the details, n4
	        n4    details
	              nothing follows

Each binding field is 1 to MaxBindingField (255) bytes. The encoding is
deterministic: a binding and details have exactly one envelope.

# Binding

A Binding is the referral a blob belongs to: the request id the sending
client chose for it, the sender and the receiver. Open takes the binding
the caller expects, from the referral the blob came with, and refuses a
blob sealed with any other (ErrOtherReferral, "sealed for another
referral"). So whoever stores the blobs cannot move one to another
referral, swap sender and receiver, or show a receiver details meant for
someone else. age authenticates the whole file: a blob altered anywhere,
cut short or lengthened fails with ErrDamaged (or ErrNotRecipient when the
change falls in the caller's own stanza). A blob no key of the caller's
opens fails with ErrNotRecipient.

# Key ring and rotation

An agency's keys live in a key ring file (KeyRing): every private key it
has, newest first; the newest is the current key, the one it registers and
partners seal to. CreateKeyRing makes the file with one key. Rotate makes a
new key, puts it first and keeps the old ones: blobs sealed to an old key
still open, because Open tries every key in the ring. An agency keeps an
old key until every referral sealed to it is closed, and only then removes
it (Remove, which refuses the current key).

The file is an age identity file: blank lines, comments, and for each key a
"# created:" line (RFC 3339, UTC), a "# public key:" line and the secret
key. The age library's identity-file parser reads it (a test checks), and
the age command's -i reads the same format, so age -d -i keyring, with an
age that knows hybrid keys, opens a sealed blob without this package (the
envelope then needs decoding). The file is written atomically (a temporary
file in the same directory, synced, renamed over the old one, and the
directory synced), with mode 0600. OpenKeyRing refuses a file that the
group or others can read or write (ErrFileMode) and names the chmod that
fixes it. Rotate and Remove refuse to write when the file changed on disk
since this KeyRing read it (ErrKeyRingChanged), so that two processes
cannot lose each other's keys; change a key ring from one process at a
time.

# Pinning

A sender seals to the receiver's key as the exchange's directory presents
it. Whoever runs the directory could present a key of their own, so the
client pins each agency's key on first use, as ssh's known_hosts does
(Pins): a pin file, beside the key ring and also of mode 0600, maps an
agency's name to its key's fingerprint and the time it was pinned.
Pins.Check accepts the pinned key, pins a key seen for the first time, and
refuses any other with a *KeyChangedError that names both fingerprints and
the command that accepts the new one. Pins.Trust re-pins an agency after
the sender has confirmed the new fingerprint with the agency itself, by
phone or in person, never through the exchange. An agency that rotates its
key must therefore tell its partners the new fingerprint: until each of
them trusts it, they are refused when they seal to it. Pins reads its file
on every call, so a Trust run in another process counts at once.

# What an agency must keep safe

The key ring file. Whoever copies it reads every referral sealed to the
agency's keys, past and future until the next rotation; whoever deletes it,
with no backup, loses every such referral for good: the exchange cannot
recover them. Keep it mode 0600 on a machine only the agency controls,
back it up encrypted, and never send it over the network, to the exchange
included. The pin file is not secret, but whoever can change it can make
the client trust a swapped key, so it is kept as private as the key ring.
*/
package seal
