package store

import (
	"context"
	"fmt"
	"slices"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store/kv"
)

func TestChangeLogAndAudit(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	sec := Op{Actor: "secretariat", Method: "/alltogether.exchange.v1.DirectoryService/CreateAgency"}
	iomActor := Op{Actor: "agencies/iom", Method: "/alltogether.exchange.v1.DirectoryService/CreateFocalPoint"}

	type change struct {
		kind     exchangev1.ChangeKind
		resource string
	}
	const (
		created = exchangev1.ChangeKind_CHANGE_KIND_CREATED
		updated = exchangev1.ChangeKind_CHANGE_KIND_UPDATED
		deleted = exchangev1.ChangeKind_CHANGE_KIND_DELETED
	)
	var fp1, fp2 string
	steps := []struct {
		name string
		op   Op
		do   func(op Op) error
		want func() []change
	}{
		{"create agency", sec, func(op Op) error {
			_, err := s.CreateAgency(ctx, op, "iom", agencyMsg("IOM", nil, nil))
			return err
		}, func() []change { return []change{{created, "agencies/iom"}} }},
		{"update agency", Op{Actor: "secretariat", Method: "UpdateAgency"}, func(op Op) error {
			_, err := s.UpdateAgency(ctx, op, "agencies/iom", "", func(a *exchangev1.Agency) error { a.ShortName = "IOM"; return nil })
			return err
		}, func() []change { return []change{{updated, "agencies/iom"}} }},
		{"create focal point", iomActor, func(op Op) error {
			fp, err := s.CreateFocalPoint(ctx, op, "iom", focalPoint("Dara", "referrals", date(2024, 1, 1), nil))
			fp1 = fp.GetName()
			return err
		}, func() []change { return []change{{created, fp1}} }},
		{"replace focal point", iomActor, func(op Op) error {
			fp, err := s.CreateFocalPoint(ctx, op, "iom", focalPoint("Sokha", "referrals", date(2025, 1, 1), nil))
			fp2 = fp.GetName()
			return err
		}, func() []change { return []change{{updated, fp1}, {created, fp2}} }},
		{"delete focal point", Op{Actor: "agencies/iom", Method: "DeleteFocalPoint"}, func(op Op) error {
			return s.DeleteFocalPoint(ctx, op, fp1, "")
		}, func() []change { return []change{{deleted, fp1}} }},
		{"record certificate", Op{Actor: "exchange", Method: "IssueCertificate"}, func(op Op) error {
			_, err := s.RecordCertificate(ctx, op, "0a", &exchangev1.Certificate{Subject: "agencies/iom"})
			return err
		}, func() []change { return []change{{created, "certificates/0a"}} }},
		{"revoke certificate", Op{Actor: "secretariat", Method: "RevokeCertificate"}, func(op Op) error {
			_, err := s.RevokeCertificate(ctx, op, "certificates/0a", "lost")
			return err
		}, func() []change { return []change{{updated, "certificates/0a"}} }},
		{"create working group", Op{Actor: "secretariat", Method: "CreateWorkingGroup"}, func(op Op) error {
			_, err := s.CreateWorkingGroup(ctx, op, "cmt", workingGroup("COMMIT", "iom"))
			return err
		}, func() []change { return []change{{created, "workingGroups/cmt"}} }},
	}
	var seq uint64
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			rev := s.Revision()
			if err := st.do(st.op); err != nil {
				t.Fatal(err)
			}
			want := st.want()
			// Every change has a revision of its own, even when one call
			// makes several (naming a focal point ends its predecessor).
			if want := nth(ordinal(rev) + int64(len(want))); s.Revision() != want {
				t.Errorf("Revision() = %d, want %d", s.Revision(), want)
			}
			got, err := s.Changes(ctx, rev, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d changes after revision %d, want %d", len(got), rev, len(want))
			}
			entries, err := s.AuditEntries(ctx, seq, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(want) {
				t.Fatalf("%d audit entries after %d, want %d", len(entries), seq, len(want))
			}
			for i, w := range want {
				ch := got[i]
				if ch.GetRevision() != nth(ordinal(rev)+int64(i)+1) || ch.GetKind() != w.kind || ch.GetResourceName() != w.resource {
					t.Errorf("change %d = rev %d %v %s; want rev %d %v %s", i, ch.GetRevision(), ch.GetKind(), ch.GetResourceName(), nth(ordinal(rev)+int64(i)+1), w.kind, w.resource)
				}
				res, err := ch.GetResource().UnmarshalNew()
				if err != nil {
					t.Errorf("change %d resource: %v", i, err)
				} else if n := res.(interface{ GetName() string }).GetName(); n != w.resource {
					t.Errorf("change %d carries %s, want %s", i, n, w.resource)
				}
				e := entries[i]
				seq++
				if e.GetSequence() != seq || e.GetRevision() != nth(ordinal(rev)+int64(i)+1) || e.GetActor() != st.op.Actor || e.GetMethod() != st.op.Method || e.GetResourceName() != w.resource {
					t.Errorf("audit entry = %v; want sequence %d, revision %d, %s %s %s", e, seq, nth(ordinal(rev)+int64(i)+1), st.op.Actor, st.op.Method, w.resource)
				}
			}
		})
	}

	n, err := s.VerifyAudit(ctx)
	if err != nil || n != seq {
		t.Errorf("VerifyAudit = %d, %v; want %d, nil", n, err, seq)
	}
	headSeq, headHash, err := s.AuditHead(ctx)
	last := allAudit(t, s)[seq-1]
	if err != nil || headSeq != seq || !slices.Equal(headHash, last.GetHash()) {
		t.Errorf("AuditHead = %d, %x, %v; want %d, %x", headSeq, headHash, err, seq, last.GetHash())
	}

	// Reading the log in small pages resumes after the last revision
	// read and never loses a change, even inside a revision that holds
	// two (the focal point replacement).
	all := allChanges(t, s)
	for _, limit := range []int{1, 2, 3} {
		var got []*exchangev1.Change
		after := int64(0)
		for {
			page, err := s.Changes(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].GetRevision()
		}
		if len(got) != len(all) {
			t.Errorf("reading %d at a time gave %d changes, want %d", limit, len(got), len(all))
		}
	}
	if page, _ := s.Changes(ctx, nth(int64(seq)), 10); len(page) != 0 {
		t.Errorf("Changes after the last revision = %d entries", len(page))
	}
}

func TestVerifyAudit(t *testing.T) {
	// setup writes five audit entries.
	setup := func(t *testing.T) *Store {
		s, _ := openTest(t)
		if n, err := s.VerifyAudit(t.Context()); n != 0 || err != nil {
			t.Fatalf("VerifyAudit of an empty chain = %d, %v", n, err)
		}
		for i := range 5 {
			mustCreateAgency(t, s, fmt.Sprintf("agency-%d", i), nil)
		}
		if n, err := s.VerifyAudit(t.Context()); n != 5 || err != nil {
			t.Fatalf("VerifyAudit of a fresh chain = %d, %v; want 5, nil", n, err)
		}
		return s
	}
	tamper := func(t *testing.T, s *Store, fn func(audit, meta kv.Bucket) error) {
		t.Helper()
		if err := s.updateAlone(func(tx kv.Tx) error { return fn(tx.Bucket(bucketAudit), tx.Bucket(bucketMeta)) }); err != nil {
			t.Fatal(err)
		}
	}
	wantBroken := func(t *testing.T, s *Store) {
		t.Helper()
		if n, err := s.VerifyAudit(t.Context()); KindOf(err) != KindFailedPrecondition {
			t.Errorf("VerifyAudit of a tampered chain = %d, %v; want a broken chain", n, err)
		}
	}

	t.Run("every bit of an entry", func(t *testing.T) {
		s := setup(t)
		relaxSync(s) // thousands of tiny transactions; durability is not under test
		var value []byte
		s.view(context.Background(), func(tx kv.Tx) error { value = slices.Clone(tx.Bucket(bucketAudit).Get(u64(3))); return nil })
		for i := range value {
			for bit := range 8 {
				flipped := slices.Clone(value)
				flipped[i] ^= 1 << bit
				tamper(t, s, func(audit, _ kv.Bucket) error { return audit.Put(u64(3), flipped) })
				if _, err := s.VerifyAudit(t.Context()); KindOf(err) != KindFailedPrecondition {
					t.Fatalf("flipping bit %d of byte %d of entry 3 went unnoticed: %v", bit, i, err)
				}
			}
		}
		t.Logf("%d single-bit flips of a %d-byte entry: every one detected", len(value)*8, len(value))
		tamper(t, s, func(audit, _ kv.Bucket) error { return audit.Put(u64(3), value) })
		if _, err := s.VerifyAudit(t.Context()); err != nil {
			t.Errorf("VerifyAudit after restoring the entry: %v", err)
		}
	})

	tests := []struct {
		name string
		fn   func(audit, meta kv.Bucket) error
	}{
		{"middle entry deleted", func(audit, _ kv.Bucket) error { return audit.Delete(u64(3)) }},
		{"first entry deleted", func(audit, _ kv.Bucket) error { return audit.Delete(u64(1)) }},
		{"last entry deleted", func(audit, _ kv.Bucket) error { return audit.Delete(u64(5)) }},
		{"all entries deleted", func(audit, _ kv.Bucket) error {
			for i := range 5 {
				if err := audit.Delete(u64(uint64(i + 1))); err != nil {
					return err
				}
			}
			return nil
		}},
		{"entries swapped", func(audit, _ kv.Bucket) error {
			a, b := slices.Clone(audit.Get(u64(2))), slices.Clone(audit.Get(u64(3)))
			if err := audit.Put(u64(2), b); err != nil {
				return err
			}
			return audit.Put(u64(3), a)
		}},
		{"entry appended", func(audit, _ kv.Bucket) error { return audit.Put(u64(6), slices.Clone(audit.Get(u64(5)))) }},
		{"head moved back", func(_, meta kv.Bucket) error {
			head := slices.Clone(meta.Get(metaAuditHead))
			copy(head, u64(4))
			return meta.Put(metaAuditHead, head)
		}},
		{"head hash changed", func(_, meta kv.Bucket) error {
			head := slices.Clone(meta.Get(metaAuditHead))
			head[len(head)-1] ^= 1
			return meta.Put(metaAuditHead, head)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := setup(t)
			tamper(t, s, tt.fn)
			wantBroken(t, s)
		})
	}
}
