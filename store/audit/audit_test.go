package audit

import (
	"bytes"
	"errors"
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
	entries := []*exchangev1.AuditEntry{
		{},
		{Sequence: 1, PreviousHash: Genesis},
		{Sequence: 1 << 40, Revision: 12345, Time: timestamppb.New(time.Date(2026, 11, 27, 4, 5, 6, 7, time.UTC)),
			Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/CreateReferral",
			ResourceName: "referrals/01jx0000000000000000000000", PreviousHash: bytes.Repeat([]byte{0xab}, 32)},
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
