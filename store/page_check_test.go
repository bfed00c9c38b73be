package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// damagedFile makes a database of 800 agencies and zeroes the root page
// of the agencies bucket, as a failing disk would: a page that opening
// the file does not read, and that every list of agencies reads; it
// returns the file's path.
func damagedFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.db")
	s := openAt(t, path, Options{})
	for i := 0; i < 800; i++ {
		mustCreateAgency(t, s, fmt.Sprintf("agency-%04d", i), nil)
	}
	var root, pageSize int64
	if err := s.viewBolt(t.Context(), func(tx *bolt.Tx) error {
		root, pageSize = int64(tx.Bucket(bucketAgencies).Root()), int64(tx.DB().Info().PageSize)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if root == 0 {
		t.Fatal("the agencies bucket is inline: too small to damage one of its pages")
	}
	s.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, pageSize), root*pageSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheckHoldingWritesRefusesADamagedFile opens a damaged file without
// the check at open, as exchanged now does, and runs the check it runs
// once it listens: the check must name the damage and what to do, and no
// write may succeed after it.
func TestCheckHoldingWritesRefusesADamagedFile(t *testing.T) {
	needsFile(t, "page checks")
	path := damagedFile(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open without the page check: %v", err)
	}
	defer s.Close()
	ctx := context.Background()

	// Before the check, a read that reaches the damage fails with the
	// error of a damaged file instead of crashing the process.
	var readErr error
	for p := (Page{Size: MaxPageSize}); readErr == nil; {
		var next string
		_, next, readErr = s.ListAgencies(ctx, AgencyFilter{}, p)
		if next == "" {
			break
		}
		p.Token = next
	}
	if e := wantKind(t, readErr, KindFailedPrecondition); !strings.Contains(e.Message, "damaged") {
		t.Errorf("a read of the damaged pages: %q, want it to say the file is damaged", e.Message)
	}

	checkErr := s.CheckHoldingWrites(ctx)
	e := wantKind(t, checkErr, KindFailedPrecondition)
	for _, want := range []string{"damaged", "page", "exchanged restore"} {
		if !strings.Contains(strings.ToLower(e.Message), want) {
			t.Errorf("message %q does not say %q", e.Message, want)
		}
	}
	if _, err := s.CreateAgency(ctx, secretariat("CreateAgency"), "after", agencyMsg("after", nil, nil)); err == nil {
		t.Error("a write after the check found damage succeeded")
	}
}

// TestReadRaisesPanicsOutsideBbolt checks that only bbolt's panics on a
// damaged page become errors: a panic of the store's own code inside a
// read is a bug, and still panics.
func TestReadRaisesPanicsOutsideBbolt(t *testing.T) {
	needsFile(t, "bbolt read transactions")
	s, _ := openTest(t)
	defer func() {
		if v := recover(); v != "a bug" {
			t.Errorf("recovered %v, want the store's own panic raised again", v)
		}
	}()
	_ = s.read(func(*bolt.Tx) error { panic("a bug") })
	t.Error("the panic was swallowed")
}
