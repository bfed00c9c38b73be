package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store/kv"
)

func contentHash(t *testing.T, s *Store) string {
	t.Helper()
	h, err := s.ContentHash(t.Context())
	if err != nil {
		t.Fatalf("ContentHash: %v", err)
	}
	if len(h) != 32 {
		t.Fatalf("ContentHash is %d bytes, want 32", len(h))
	}
	return hex.EncodeToString(h)
}

// fillStore writes a little of everything.
func fillStore(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	mustCreateAgency(t, s, "ilo", agencyMsg("ILO", []string{"KH"}, []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}, "KH-12"))
	mustCreateAgency(t, s, "iom", nil)
	if _, err := s.CreateWorkingGroup(ctx, secretariat("CreateWorkingGroup"), "un-wg", &exchangev1.WorkingGroup{
		DisplayName: "UN WG", Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP,
		Members: []*exchangev1.Membership{{Agency: "agencies/ilo", Role: exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER}},
	}); err != nil {
		t.Fatal(err)
	}
}

func TestContentHashEqualForEqualContent(t *testing.T) {
	s, _ := openTest(t)
	fillStore(t, s)
	want := contentHash(t, s)

	// A backup has the same content, so the same hash.
	var buf bytes.Buffer
	if err := s.Backup(t.Context(), &buf, nil); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(backup, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := contentHash(t, openAt(t, backup, Options{})); got != want {
		t.Errorf("backup hash %s, original %s", got, want)
	}

	// A compacted copy has another page layout and size but the same
	// content.
	compacted := filepath.Join(t.TempDir(), "compacted.db")
	srcPath := filepath.Join(t.TempDir(), "src.db")
	if err := os.WriteFile(srcPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := bolt.Open(srcPath, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := bolt.Open(compacted, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.Compact(dst, src, 1<<20); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst.Close()
	a, _ := os.Stat(srcPath)
	b, _ := os.Stat(compacted)
	if a.Size() == b.Size() {
		t.Logf("compaction kept the size (%d bytes); the layout comparison is weaker", a.Size())
	}
	if got := contentHash(t, openAt(t, compacted, Options{})); got != want {
		t.Errorf("compacted copy hash %s, original %s", got, want)
	}
}

func TestContentHashChangesWithEveryWrite(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	seen := map[string]string{contentHash(t, s): "empty store"}
	step := func(what string) {
		t.Helper()
		h := contentHash(t, s)
		if before, dup := seen[h]; dup {
			t.Fatalf("after %s the hash is the one after %s", what, before)
		}
		seen[h] = what
	}
	fillStore(t, s)
	step("fill")
	if _, err := s.UpdateAgency(ctx, secretariat("UpdateAgency"), "agencies/iom", "", func(a *exchangev1.Agency) error {
		a.ShortName = "IOM"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	step("update")
	if _, err := s.CreateFocalPoint(ctx, secretariat("CreateFocalPoint"), "ilo", &exchangev1.FocalPoint{
		DisplayName: "Dara", Topic: "referrals", Tenure: &exchangev1.DatePeriod{Start: date(2026, 1, 1)},
	}); err != nil {
		t.Fatal(err)
	}
	step("focal point")
	if _, err := s.CompactChangeLog(ctx, 1); err != nil {
		t.Fatal(err)
	}
	step("change-log compaction")

	// A refused write changes nothing.
	h := contentHash(t, s)
	if _, err := s.CreateAgency(ctx, secretariat("CreateAgency"), "ilo", agencyMsg("again", nil, nil)); KindOf(err) != KindAlreadyExists {
		t.Fatalf("duplicate agency: %v", err)
	}
	if got := contentHash(t, s); got != h {
		t.Fatal("a refused write changed the content hash")
	}
}

func TestContentHashStableAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exchange.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillStore(t, s)
	want := contentHash(t, s)
	if again := contentHash(t, s); again != want {
		t.Fatalf("two reads differ: %s, %s", want, again)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ContentHash(t.Context()); KindOf(err) != KindClosed {
		t.Fatalf("ContentHash on a closed store: %v, want closed", err)
	}
	for i := 0; i < 2; i++ {
		r, err := Open(path, Options{CheckOnOpen: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := contentHash(t, r); got != want {
			t.Errorf("reopen %d: hash %s, want %s", i, got, want)
		}
		r.Close()
	}
}

// TestContentHashEncodingIsUnambiguous writes contents whose plain
// concatenation would be equal and checks their hashes differ.
func TestContentHashEncodingIsUnambiguous(t *testing.T) {
	s, _ := openTest(t)
	put := func(fn func(b kv.Bucket) error) string {
		t.Helper()
		err := s.updateAlone(func(tx kv.Tx) error {
			b := tx.Bucket(bucketRequests)
			c := b.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.First() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
			return fn(b)
		})
		if err != nil {
			t.Fatal(err)
		}
		return contentHash(t, s)
	}
	cases := map[string]func(b kv.Bucket) error{
		"ab=c": func(b kv.Bucket) error { return b.Put([]byte("ab"), []byte("c")) },
		"a=bc": func(b kv.Bucket) error { return b.Put([]byte("a"), []byte("bc")) },
		"x=":   func(b kv.Bucket) error { return b.Put([]byte("x"), nil) },
		"x=,y=z": func(b kv.Bucket) error {
			if err := b.Put([]byte("x"), nil); err != nil {
				return err
			}
			return b.Put([]byte("y"), []byte("z"))
		},
		"x=yz":  func(b kv.Bucket) error { return b.Put([]byte("x"), []byte("yz")) },
		"empty": func(b kv.Bucket) error { return nil },
	}
	seen := map[string]string{}
	for name, fn := range cases {
		h := put(fn)
		if other, dup := seen[h]; dup {
			t.Errorf("%s and %s hash alike", name, other)
		}
		seen[h] = name
		if again := put(fn); again != h {
			t.Errorf("%s: hash not repeatable", name)
		}
	}
}

func TestContentHashHonoursContext(t *testing.T) {
	s, _ := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.ContentHash(ctx); err == nil {
		t.Fatal("ContentHash with a cancelled context succeeded")
	}
}
