package store

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// toVersion2WithKeys turns the closed database at path into one written
// before schema version 3: version 2, with a referral_keys bucket holding
// n data keys, as the exchange kept them when it sealed details itself.
func toVersion2WithKeys(t *testing.T, path string, n int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(metaSchemaVersion, u64(2)); err != nil {
			return err
		}
		b, err := tx.CreateBucket(legacyBucketReferralKeys)
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put([]byte(fmt.Sprintf("referral-%d", i)), make([]byte, 32)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesAFileHoldingDataKeys checks that a database written
// before schema version 3 that still holds the data keys of referrals the
// exchange sealed itself is refused, read-write and read-only, with a
// message naming how many and what to do, and is left unchanged; and
// that one whose referral_keys bucket is empty opens, at version 3,
// without the bucket.
func TestOpenRefusesAFileHoldingDataKeys(t *testing.T) {
	needsFile(t, "old files with server-held keys")
	path := filepath.Join(t.TempDir(), "exchange.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	toVersion2WithKeys(t, path, 3)
	for _, opt := range []Options{{}, {ReadOnly: true}} {
		s, err := Open(path, opt)
		if err == nil {
			s.Close()
			t.Fatalf("Open(ReadOnly %t) opened a file holding data keys", opt.ReadOnly)
		}
		msg := err.Error()
		if KindOf(err) != KindFailedPrecondition || !strings.Contains(msg, "holds 3 referrals") ||
			!strings.Contains(msg, "EraseReferralDetails") || !strings.Contains(msg, "docs/operations.md") {
			t.Errorf("Open(ReadOnly %t): %v", opt.ReadOnly, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(metaSchemaVersion)); v != 2 || tx.Bucket(legacyBucketReferralKeys).Stats().KeyN != 3 {
			t.Errorf("the refused file changed: version %d", v)
		}
		return nil
	})
	db.Close()

	empty := filepath.Join(t.TempDir(), "exchange.db")
	s, err = Open(empty, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	toVersion2WithKeys(t, empty, 0)
	s = openAt(t, empty, Options{})
	s.db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(metaSchemaVersion)); v != 3 || tx.Bucket(legacyBucketReferralKeys) != nil {
			t.Errorf("after Open: version %d, referral_keys bucket %v", v, tx.Bucket(legacyBucketReferralKeys) != nil)
		}
		return nil
	})
}
