package audit

import (
	"errors"
	"testing"

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
