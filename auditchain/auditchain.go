// Package auditchain defines the exchange's audit hash chain: how an entry
// is hashed and how a sequence of entries is verified. The store writes the
// chain with it; the client (and so exchangectl) verifies the entries the
// server returns, and exchanged a database or backup file, with the same
// code. It depends on nothing of the exchange's but the generated API
// package, so that a client of the wire API links no storage code.
//
// Each entry's hash is the SHA-256 of its deterministic protobuf encoding
// with the hash field empty; the entry also carries the previous entry's
// hash (32 zero bytes for the first), so that changing, removing or
// reordering any entry breaks every later link, and a recorded head (the
// last sequence number and hash) pins everything before it.
package auditchain

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Genesis is the previous hash of the first entry.
var Genesis = make([]byte, sha256.Size)

// ErrBroken is wrapped by every verification failure.
var ErrBroken = errors.New("audit chain broken")

// Hash returns the chain hash of e: the SHA-256 of its deterministic
// encoding with the hash field empty. e is not changed.
func Hash(e *exchangev1.AuditEntry) ([]byte, error) {
	c := proto.Clone(e).(*exchangev1.AuditEntry)
	c.Hash = nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// Seal sets e's hash (as Hash computes it; e's hash must be empty) and
// returns e's deterministic encoding with it. It encodes e once: the
// deterministic encoding orders fields by number, so the encoding with the
// hash is the encoding without it with the hash field put in before the
// fields numbered after it (reason and actor_certificate), found by
// reading the encoding's tags (afterHash). Encoding those fields again on
// their own to find where they start (encodedAfterHash, still the
// fallback) took about 6% of the store writer's CPU in the server's
// batch benchmark.
func Seal(e *exchangev1.AuditEntry) ([]byte, error) {
	if len(e.GetHash()) != 0 {
		return nil, errors.New("auditchain: Seal of an entry that already has a hash")
	}
	if b, ok := sealWritten(e); ok {
		return b, nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		return nil, err
	}
	var tail []byte
	if at, ok := afterHash(b); ok {
		tail = b[at:]
	} else if tail, err = encodedAfterHash(e); err != nil {
		return nil, err
	}
	if len(tail) == 0 {
		tail = nil
	}
	sum := sha256.Sum256(b)
	e.Hash = sum[:]
	if tail == nil {
		b = protowire.AppendTag(b, hashField, protowire.BytesType)
		return protowire.AppendBytes(b, e.Hash), nil
	}
	head := b[:len(b)-len(tail)]
	out := make([]byte, 0, len(b)+2+len(e.Hash))
	out = append(out, head...)
	out = protowire.AppendTag(out, hashField, protowire.BytesType)
	out = protowire.AppendBytes(out, e.Hash)
	return append(out, tail...), nil
}

// afterHash returns where, in the deterministic encoding b of an entry
// (its fields in number order, no unknown fields), the fields numbered
// after hash start: len(b) when none is set. ok is false when b does not
// parse, or holds hash itself.
func afterHash(b []byte) (int, bool) {
	at := 0
	for at < len(b) {
		n, typ, tagLen := protowire.ConsumeTag(b[at:])
		if tagLen < 0 || n == hashField {
			return 0, false
		}
		if n > hashField {
			return at, true
		}
		valLen := protowire.ConsumeFieldValue(n, typ, b[at+tagLen:])
		if valLen < 0 {
			return 0, false
		}
		at += tagLen + valLen
	}
	return at, true
}

// encodedAfterHash returns the deterministic encoding of e's fields that
// are numbered after hash, or nothing if none is set.
func encodedAfterHash(e *exchangev1.AuditEntry) ([]byte, error) {
	var later *exchangev1.AuditEntry
	e.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() > hashField {
			if later == nil {
				later = &exchangev1.AuditEntry{}
			}
			later.ProtoReflect().Set(fd, v)
		}
		return true
	})
	if later == nil {
		return nil, nil
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(later)
}

// hashField is the field number of AuditEntry.hash.
var hashField = (&exchangev1.AuditEntry{}).ProtoReflect().Descriptor().Fields().ByName("hash").Number()

// Verifier checks entries one after another from the first.
type Verifier struct {
	seq  uint64
	prev []byte
}

// NewVerifier starts before the first entry of a chain.
func NewVerifier() *Verifier { return &Verifier{prev: Genesis} }

// NewVerifierAfter starts after entry seq, whose hash is hash, to verify
// the tail of a chain: the entries up to seq are taken on trust.
func NewVerifierAfter(seq uint64, hash []byte) *Verifier {
	return &Verifier{seq: seq, prev: bytes.Clone(hash)}
}

// Add checks the next entry: its sequence follows, it names the previous
// entry's hash, and its own hash matches its content.
func (v *Verifier) Add(e *exchangev1.AuditEntry) error {
	next := v.seq + 1
	switch {
	case e.GetSequence() != next:
		return fmt.Errorf("%w at entry %d: found sequence %d (an entry is missing or out of order)", ErrBroken, next, e.GetSequence())
	case !bytes.Equal(e.GetPreviousHash(), v.prev):
		return fmt.Errorf("%w at entry %d: previous_hash does not match the entry before it", ErrBroken, next)
	}
	h, err := Hash(e)
	if err != nil {
		return fmt.Errorf("%w at entry %d: cannot encode it: %v", ErrBroken, next, err)
	}
	if !bytes.Equal(h, e.GetHash()) {
		return fmt.Errorf("%w at entry %d: its hash does not match its content", ErrBroken, next)
	}
	v.seq, v.prev = next, h
	return nil
}

// Head returns the sequence number and hash of the last entry added.
func (v *Verifier) Head() (uint64, []byte) { return v.seq, v.prev }

// CheckHead compares the verified chain with a recorded head: the chain
// must reach it with the same hash (entries removed from the end, or a
// chain rewritten after the head was recorded, fail).
func (v *Verifier) CheckHead(seq uint64, hash []byte) error {
	if v.seq != seq || !bytes.Equal(v.prev, hash) {
		return fmt.Errorf("%w: the chain ends at entry %d, but the recorded head is entry %d with another hash (entries were removed or rewritten)", ErrBroken, v.seq, seq)
	}
	return nil
}
