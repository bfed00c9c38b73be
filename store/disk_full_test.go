package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// smallFileSystem mounts a tmpfs of size bytes on a new directory and
// returns it; it is unmounted when the test ends, after the stores the
// test opens in it are closed. It skips the test where mounting is not
// permitted (not root, or no CAP_SYS_ADMIN in a container).
func smallFileSystem(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v): needs root; TestInjectedFullDisk covers the same answers", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillFileSystem writes a file in dir until the file system is full and
// returns its path.
func fillFileSystem(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 16<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return path
		}
	}
}

// diskFullReferral is referral i from ilo to iom, with notes that let
// the test recognise it after a reopen.
func diskFullReferral(i int) NewReferral {
	r := ruleReferral("agencies/iom", fmt.Sprintf("notes of referral %d ", i)+strings.Repeat("x", 600))
	return NewReferral{RequestID: fmt.Sprintf("df-%d", i), Referral: r}
}

// acknowledged collects the referrals a store acknowledged, by their case
// notes.
type acknowledged map[string]string // name → case notes

// create sends referrals from..to-1 in one batch; it records them when
// acknowledged and returns the error otherwise.
func (a acknowledged) create(t *testing.T, s *Store, from, to int) error {
	t.Helper()
	var batch []NewReferral
	for i := from; i < to; i++ {
		batch = append(batch, diskFullReferral(i))
	}
	res, err := s.CreateReferrals(t.Context(), Op{Actor: "agencies/ilo", Method: "test"}, batch)
	if err != nil {
		return err
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("referral %d: %v", from+i, r.Err)
		}
		a[r.Referral.GetName()] = detailsOf(t, r.Referral).GetCaseNotes()
	}
	return nil
}

// check reads every acknowledged referral back from s, with its notes,
// and verifies the audit chain.
func (a acknowledged) check(t *testing.T, s *Store) {
	t.Helper()
	for name, notes := range a {
		r, err := s.GetReferral(t.Context(), name)
		if err != nil || detailsOf(t, r).GetCaseNotes() != notes {
			t.Fatalf("acknowledged %s: %v (notes %.20q)", name, err, detailsOf(t, r).GetCaseNotes())
		}
	}
	if _, err := s.VerifyAudit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// wantDiskFull fails unless err is the store's answer to a full disk:
// RESOURCE_EXHAUSTED, saying so, with ENOSPC as its cause (for the log).
func wantDiskFull(t *testing.T, err error) {
	t.Helper()
	e := wantKind(t, err, KindResourceExhausted)
	if !strings.Contains(e.Message, "disk is full") || !strings.Contains(e.Message, "nothing of this request was stored") {
		t.Errorf("message %q", e.Message)
	}
	if !isDiskFull(e.Err) {
		t.Errorf("the cause %v is not the file system's", e.Err)
	}
}

// TestFullDiskAnswersResourceExhaustedAndLosesNothing runs a store on a
// real file system that fills up (a 8 MiB tmpfs, as root): once it is
// full, writes fail with RESOURCE_EXHAUSTED saying the disk is full (not
// INTERNAL), are not acknowledged, and change nothing; once space is
// freed, writes succeed again; and after a reopen with a full page check,
// every acknowledged referral is there and the audit chain verifies.
func TestFullDiskAnswersResourceExhaustedAndLosesNothing(t *testing.T) {
	needsFile(t, "a full disk under the file")
	dir := smallFileSystem(t, 8<<20)
	path := filepath.Join(dir, "exchange.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	ack := acknowledged{}
	next := 0
	for range 20 {
		if err := ack.create(t, s, next, next+10); err != nil {
			t.Fatal(err)
		}
		next += 10
	}
	filler := fillFileSystem(t, dir)

	// Writes may still fit in pages the file already has; go on until
	// the disk refuses one, then a few more.
	refused := 0
	for attempt := 0; attempt < 2000 && refused < 20; attempt++ {
		rev := s.Revision()
		err := ack.create(t, s, next, next+10)
		next += 10
		if err == nil {
			continue
		}
		wantDiskFull(t, err)
		if s.Revision() != rev {
			t.Fatal("a refused write moved the revision")
		}
		refused++
	}
	if refused == 0 {
		t.Fatal("the store never ran out of space")
	}
	t.Logf("%d referrals acknowledged; %d batches refused with a full disk", len(ack), refused)
	ack.check(t, s)

	// Space freed: writes go on.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := ack.create(t, s, next, next+10); err != nil {
			t.Fatalf("a write after space was freed: %v", err)
		}
		next += 10
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{CheckOnOpen: true})
	if err != nil {
		t.Fatalf("reopening after the disk was full: %v", err)
	}
	ack.check(t, s)
	listed, _, _, err := s.ListReferrals(t.Context(), ReferralFilter{AgencyID: "ilo"}, Page{Size: MaxPageSize})
	if err != nil || len(listed) != len(ack) {
		t.Errorf("ilo lists %d referrals (%v); %d were acknowledged", len(listed), err, len(ack))
	}
}

// TestInjectedFullDisk gives the store a full disk through its fault hook
// (a transaction failing as a write of the file with ENOSPC would), where
// no file system can be mounted: the same answers as a real full disk,
// and nothing is lost.
func TestInjectedFullDisk(t *testing.T) {
	needsFile(t, "a full disk under the file")
	s, _ := openTest(t)
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	ack := acknowledged{}
	if err := ack.create(t, s, 0, 10); err != nil {
		t.Fatal(err)
	}
	enospc := func() error {
		return fmt.Errorf("writeAt: %w", &fs.PathError{Op: "write", Path: s.Path(), Err: syscall.ENOSPC})
	}
	commitFault.Store(&enospc)
	t.Cleanup(func() { commitFault.Store(nil) })
	before := countsOf(t, s)
	for i := range 5 {
		wantDiskFull(t, ack.create(t, s, 100+10*i, 110+10*i))
	}
	wantDiskFull(t, s.RecordRead(t.Context(), Op{Actor: "agencies/iom", Method: "read"}, "referrals/x"))
	if after := countsOf(t, s); after != before {
		t.Fatalf("refused writes changed the store: %+v, was %+v", after, before)
	}
	commitFault.Store(nil)
	if err := ack.create(t, s, 200, 210); err != nil {
		t.Fatal(err)
	}
	ack.check(t, s)
}

// TestDiskFullIsRecognisedHoweverBboltWrapsIt: ENOSPC and EDQUOT are a
// full disk whether they come as errors (a failed write) or only as text
// (bbolt formats the error of growing the file with %s); other file
// errors stay internal.
func TestDiskFullIsRecognisedHoweverBboltWrapsIt(t *testing.T) {
	needsFile(t, "a full disk under the file")
	for _, c := range []struct {
		err  error
		kind Kind
	}{
		{&fs.PathError{Op: "write", Path: "exchange.db", Err: syscall.ENOSPC}, KindResourceExhausted},
		{&fs.PathError{Op: "write", Path: "exchange.db", Err: syscall.EDQUOT}, KindResourceExhausted},
		{fmt.Errorf("file resize error: %s", &fs.PathError{Op: "truncate", Path: "exchange.db", Err: syscall.ENOSPC}), KindResourceExhausted},
		{fmt.Errorf("file sync error: %s", syscall.EDQUOT), KindResourceExhausted},
		{&fs.PathError{Op: "write", Path: "exchange.db", Err: syscall.EIO}, KindInternal},
	} {
		if got := KindOf(storeError(c.err)); got != c.kind {
			t.Errorf("%v: %v, want %v", c.err, got, c.kind)
		}
	}
}
