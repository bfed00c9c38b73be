package auditchain

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func chain(t *testing.T, n int) []*exchangev1.AuditEntry {
	t.Helper()
	prev := Genesis
	var out []*exchangev1.AuditEntry
	for i := 1; i <= n; i++ {
		e := &exchangev1.AuditEntry{Sequence: uint64(i), Revision: int64(i), Actor: "agencies/ilo", Method: "m", ResourceName: "r", PreviousHash: prev}
		h, err := Hash(e)
		if err != nil {
			t.Fatal(err)
		}
		e.Hash, prev = h, h
		out = append(out, e)
	}
	return out
}

func verify(entries []*exchangev1.AuditEntry) (*Verifier, error) {
	v := NewVerifier()
	for _, e := range entries {
		if err := v.Add(e); err != nil {
			return v, err
		}
	}
	return v, nil
}

func TestVerifierDetectsEveryTamper(t *testing.T) {
	good := chain(t, 5)
	v, err := verify(good)
	if err != nil {
		t.Fatal(err)
	}
	seq, head := v.Head()
	if seq != 5 || v.CheckHead(5, good[4].GetHash()) != nil {
		t.Fatalf("head %d", seq)
	}
	tampers := map[string]func([]*exchangev1.AuditEntry) []*exchangev1.AuditEntry{
		"actor changed":  func(c []*exchangev1.AuditEntry) []*exchangev1.AuditEntry { c[2].Actor = "agencies/iom"; return c },
		"middle removed": func(c []*exchangev1.AuditEntry) []*exchangev1.AuditEntry { return append(c[:2], c[3:]...) },
		"first removed":  func(c []*exchangev1.AuditEntry) []*exchangev1.AuditEntry { return c[1:] },
		"swapped":        func(c []*exchangev1.AuditEntry) []*exchangev1.AuditEntry { c[1], c[2] = c[2], c[1]; return c },
		"hash recomputed": func(c []*exchangev1.AuditEntry) []*exchangev1.AuditEntry {
			c[2].Method = "x"
			c[2].Hash, _ = Hash(c[2])
			return c
		},
	}
	for name, tamper := range tampers {
		t.Run(name, func(t *testing.T) {
			if _, err := verify(tamper(chain(t, 5))); !errors.Is(err, ErrBroken) {
				t.Fatalf("not detected: %v", err)
			}
		})
	}
	t.Run("last removed", func(t *testing.T) {
		v, err := verify(chain(t, 5)[:4])
		if err != nil || !errors.Is(v.CheckHead(5, head), ErrBroken) {
			t.Fatal("a missing last entry is not detected against the head")
		}
	})
}

// TestSealEncodesAsHashAndMarshal checks that Seal's one encoding is the
// hash Hash computes and exactly the deterministic encoding of the entry
// with that hash, for entries with every field set and with fields left
// empty.
func TestSealEncodesAsHashAndMarshal(t *testing.T) {
	full := &exchangev1.AuditEntry{Sequence: 1 << 40, Revision: 12345, Time: timestamppb.New(time.Date(2026, 11, 27, 4, 5, 6, 7, time.UTC)),
		Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/EraseReferralDetails",
		ResourceName: "referrals/01jx0000000000000000000000", PreviousHash: bytes.Repeat([]byte{0xab}, 32), Reason: "person-request",
		ActorCertificate: "5f3a9c0e1b2d4f60"}
	fields := full.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.Name() != "hash" && !full.ProtoReflect().Has(fd) {
			t.Fatalf("the test's full entry leaves field %s empty", fd.Name())
		}
	}
	entries := []*exchangev1.AuditEntry{
		{},
		{Sequence: 1, PreviousHash: Genesis},
		{Reason: "retention"},
		full,
	}
	for _, e := range entries {
		want, err := Hash(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Seal(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.GetHash(), want) {
			t.Errorf("Seal set hash %x, Hash gives %x", e.GetHash(), want)
		}
		marshalled, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, marshalled) {
			t.Errorf("Seal encoded\n%x\nthe entry with its hash encodes as\n%x", got, marshalled)
		}
		if _, err := Seal(e); err == nil {
			t.Error("Seal of an entry that has a hash succeeded")
		}
	}
}

// TestEntriesWithoutReasonKeepTheirHashes checks that the reason field
// (added after the chain had entries) changes nothing for entries without
// one: their encoding, and so their hash, are what they were before it
// existed (the hash below was computed by the code of that time), while a
// reason is covered by the hash.
func TestEntriesWithoutReasonKeepTheirHashes(t *testing.T) {
	old := &exchangev1.AuditEntry{Sequence: 7, Revision: 42, Time: timestamppb.New(time.Date(2026, 11, 27, 4, 5, 6, 7, time.UTC)),
		Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/EraseReferralDetails",
		ResourceName: "referrals/01jx0000000000000000000000", PreviousHash: bytes.Repeat([]byte{0xab}, 32)}
	const before = "636f1990e7dcf2c684b5f272ec8b52187616dac054bfb53fbed2df17837d835e"
	got, err := Hash(old)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%x", got) != before {
		t.Fatalf("an entry without a reason hashes to %x; before the reason field it hashed to %s", got, before)
	}
	withReason := proto.CloneOf(old)
	withReason.Reason = "person-request"
	if h, _ := Hash(withReason); bytes.Equal(h, got) {
		t.Fatal("the reason is not covered by the hash")
	}
	sealed := proto.CloneOf(withReason)
	if _, err := Seal(sealed); err != nil {
		t.Fatal(err)
	}
	sealed.PreviousHash = Genesis
	sealed.Sequence = 1
	sealed.Hash = nil
	if _, err := Seal(sealed); err != nil {
		t.Fatal(err)
	}
	if err := NewVerifier().Add(sealed); err != nil {
		t.Fatalf("an entry with a reason does not verify: %v", err)
	}
	tampered := proto.CloneOf(sealed)
	tampered.Reason = "retention"
	if err := NewVerifier().Add(tampered); !errors.Is(err, ErrBroken) {
		t.Fatalf("a changed reason is not detected: %v", err)
	}
}
