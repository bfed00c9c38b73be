package seal

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Binding names the referral a blob belongs to. Seal puts it inside the
// encrypted envelope with the details, and Open refuses a blob whose
// binding is not the one the caller expects, so that a blob cannot be
// moved to another referral, sender or receiver.
type Binding struct {
	// RequestID is the referral's idempotency key, chosen by the sending
	// agency's client before the exchange names the referral.
	RequestID string
	// Sender is the sending agency's name, "agencies/{agency}".
	Sender string
	// Receiver is the receiving agency's name, "agencies/{agency}".
	Receiver string
}

// EnvelopeVersion is the version of the envelope format that this package
// writes and reads.
const EnvelopeVersion = 1

// MaxBindingField is the longest a Binding field may be, in bytes of UTF-8.
const MaxBindingField = 255

// envelopeMagic starts every envelope.
const envelopeMagic = "xchgseal"

// envelopeFixed is the size of an envelope without its variable parts:
// magic, version, three 2-byte lengths and one 4-byte length.
const envelopeFixed = len(envelopeMagic) + 1 + 3*2 + 4

// maxEnvelope is the largest envelope Seal writes and Open reads.
const maxEnvelope = envelopeFixed + 3*MaxBindingField + MaxDetails

// String writes the binding for messages: request id, sender → receiver.
func (b Binding) String() string {
	return fmt.Sprintf("request id %q from %s to %s", b.RequestID, b.Sender, b.Receiver)
}

// validate checks every field, naming the first one at fault.
func (b Binding) validate() error {
	for _, f := range []struct{ name, value string }{
		{"request id", b.RequestID}, {"sender", b.Sender}, {"receiver", b.Receiver},
	} {
		switch {
		case f.value == "":
			return fmt.Errorf("seal: binding %s is empty", f.name)
		case len(f.value) > MaxBindingField:
			return fmt.Errorf("seal: binding %s is %d bytes long, more than %d", f.name, len(f.value), MaxBindingField)
		case !utf8.ValidString(f.value):
			return fmt.Errorf("seal: binding %s is not valid UTF-8", f.name)
		}
	}
	return nil
}

// encodeEnvelope lays out a binding and details as docs/sealing.md and the
// package documentation describe: the magic "xchgseal", the version byte,
// the request id, sender and receiver each after a big-endian uint16
// length, then the details after a big-endian uint32 length, and nothing
// after them. The caller has validated b and bounded details.
func encodeEnvelope(b Binding, details []byte) []byte {
	out := make([]byte, 0, envelopeFixed+len(b.RequestID)+len(b.Sender)+len(b.Receiver)+len(details))
	out = append(out, envelopeMagic...)
	out = append(out, EnvelopeVersion)
	for _, s := range []string{b.RequestID, b.Sender, b.Receiver} {
		out = binary.BigEndian.AppendUint16(out, uint16(len(s)))
		out = append(out, s...)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(details)))
	return append(out, details...)
}

// decodeEnvelope reads what encodeEnvelope wrote. It refuses another
// magic or version, a length that runs past the end, fields that
// validate refuses, and bytes after the details. The details it returns
// are a slice of env.
func decodeEnvelope(env []byte) (Binding, []byte, error) {
	if len(env) < len(envelopeMagic) || string(env[:len(envelopeMagic)]) != envelopeMagic {
		return Binding{}, nil, fmt.Errorf("%w: not a sealed referral envelope (no %q magic)", ErrDamaged, envelopeMagic)
	}
	rest := env[len(envelopeMagic):]
	if len(rest) < 1 || rest[0] != EnvelopeVersion {
		return Binding{}, nil, fmt.Errorf("%w: envelope version is not %d", ErrDamaged, EnvelopeVersion)
	}
	rest = rest[1:]
	var fields [3]string
	for i := range fields {
		if len(rest) < 2 {
			return Binding{}, nil, fmt.Errorf("%w: envelope ends inside its binding", ErrDamaged)
		}
		n := int(binary.BigEndian.Uint16(rest))
		if len(rest) < 2+n {
			return Binding{}, nil, fmt.Errorf("%w: envelope ends inside its binding", ErrDamaged)
		}
		fields[i] = string(rest[2 : 2+n])
		rest = rest[2+n:]
	}
	b := Binding{RequestID: fields[0], Sender: fields[1], Receiver: fields[2]}
	if err := b.validate(); err != nil {
		return Binding{}, nil, fmt.Errorf("%w: envelope: %v", ErrDamaged, err)
	}
	if len(rest) < 4 {
		return Binding{}, nil, fmt.Errorf("%w: envelope ends before the details' length", ErrDamaged)
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(n) != uint64(len(rest)) {
		return Binding{}, nil, fmt.Errorf("%w: envelope says %d bytes of details but holds %d", ErrDamaged, n, len(rest))
	}
	return b, rest, nil
}
