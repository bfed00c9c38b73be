package fieldfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesOwnerOnlyFile(t *testing.T) {
	path := PathBeside(filepath.Join(t.TempDir(), "agency.crt"))
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("new field file has mode %#o, want 0600", perm)
	}
}

func TestOpenRefusesAFileOthersCanRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Open of a 0644 file = %v, want a refusal that says chmod 600", err)
	}
}

func TestOpenRefusesAFileInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// bbolt's lock is per open file description, so a second Open in the
	// same process meets it as another process would.
	_, err = OpenWithin(path, 100*time.Millisecond)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
}

func TestOpenRefusesAnotherFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("format"), []byte("99")) }); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), `format "99"`) {
		t.Fatalf("Open of a format 99 file = %v, want a refusal naming the format", err)
	}
}
