package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestQuotaRefusesWritesButNotReads(t *testing.T) {
	needsFile(t, "the size limit of the file")
	path := filepath.Join(t.TempDir(), "q.db")
	s := openAt(t, path, Options{MaxSize: 200 << 10})
	ctx := context.Background()
	var refused error
	created := 0
	var rev int64
	for i := 0; i < 10000 && refused == nil; i++ {
		rev = s.Revision()
		_, refused = s.CreateAgency(ctx, secretariat("CreateAgency"), fmt.Sprintf("agency-%05d", i),
			agencyMsg(strings.Repeat("x", 150), []string{"KH"}, nil, "KH-12"))
		if refused == nil {
			created++
		}
	}
	e := wantKind(t, refused, KindResourceExhausted)
	if !strings.Contains(e.Message, "size limit") {
		t.Errorf("message %q", e.Message)
	}
	if s.Revision() != rev {
		t.Fatal("a refused write changed the revision")
	}
	if _, err := s.GetAgency(ctx, "agencies/agency-00000"); err != nil {
		t.Fatalf("reads stop at the quota: %v", err)
	}
	items, _, err := s.ListAgencies(ctx, AgencyFilter{}, Page{Size: 1000})
	if err != nil || len(items) != created {
		t.Fatalf("listed %d of %d agencies: %v", len(items), created, err)
	}
	if n, err := s.VerifyAudit(ctx); err != nil || n != uint64(created) {
		t.Fatalf("audit after the quota: %d %v", n, err)
	}
}

func TestDamagedDatabaseIsRefusedAtOpen(t *testing.T) {
	needsFile(t, "page checks")
	path := filepath.Join(t.TempDir(), "d.db")
	s := openAt(t, path, Options{})
	ctx := context.Background()
	for i := 0; i < 300; i++ {
		mustCreateAgency(t, s, fmt.Sprintf("agency-%03d", i), nil)
	}
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	used := int(st.Size) // the pages in use; the file may be longer
	s.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A disk error: the middle third of the file reads back as zeros
	// (the meta pages at the start stay intact, so bbolt opens it).
	page := os.Getpagesize()
	from, to := used/3/page*page, 2*used/3/page*page
	clear(raw[from:to])
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{CheckOnOpen: true})
	e := wantKind(t, err, KindFailedPrecondition)
	if !strings.Contains(e.Message, "damaged") || !strings.Contains(e.Message, "exchanged restore") {
		t.Errorf("message %q does not say what to do", e.Message)
	}
	_ = ctx
}

func TestBackupIsAConsistentSnapshotWhileWritesGoOn(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		mustCreateAgency(t, s, fmt.Sprintf("before-%03d", i), nil)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // writes continue during the backup
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.CreateAgency(ctx, secretariat("CreateAgency"), fmt.Sprintf("during-%05d", i), agencyMsg("d", nil, nil)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var buf bytes.Buffer
	var snapRev, snapSize int64
	// The backup waits, mid-way, until writes have landed after its
	// snapshot began.
	slow := writerFunc(func(p []byte) (int, error) {
		for s.Revision() < snapRev+20 {
			runtime.Gosched()
		}
		return buf.Write(p)
	})
	if err := s.Backup(ctx, slow, func(rev, size int64) { snapRev, snapSize = rev, size }); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if int64(buf.Len()) != snapSize {
		t.Fatalf("backup is %d bytes, announced %d", buf.Len(), snapSize)
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(restored, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r := openAt(t, restored, Options{CheckOnOpen: true})
	if r.Revision() != snapRev {
		t.Fatalf("restored revision %d, snapshot %d", r.Revision(), snapRev)
	}
	if n, err := r.VerifyAudit(ctx); err != nil || int64(n) != ordinal(snapRev) {
		t.Fatalf("restored audit chain: %d entries, %v (want %d)", n, err, ordinal(snapRev))
	}
	items, _, err := r.ListAgencies(ctx, AgencyFilter{}, Page{Size: 1000})
	if err != nil || int64(len(items)) != ordinal(snapRev) {
		t.Fatalf("restored %d agencies at revision %d: %v", len(items), snapRev, err)
	}
	if s.Revision() < snapRev+20 {
		t.Fatalf("writes stopped during the backup: revision %d, snapshot %d", s.Revision(), snapRev)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestChangeLogHorizon(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		mustCreateAgency(t, s, fmt.Sprintf("a-%02d", i), nil)
	}
	horizon, err := s.CompactChangeLog(ctx, 10)
	if err != nil || horizon != nth(40) {
		t.Fatalf("horizon %d %v", horizon, err)
	}
	if _, err := s.Changes(ctx, nth(39), 100); KindOf(err) != KindOutOfRange {
		t.Fatalf("changes behind the horizon: %v", err)
	}
	got, err := s.Changes(ctx, nth(40), 100)
	if err != nil || len(got) != 10 || got[0].GetRevision() != nth(41) {
		t.Fatalf("changes after the horizon: %d %v", len(got), err)
	}
	st, err := s.Status(ctx)
	if err != nil || st.Compacted != nth(40) || st.Revision != nth(50) || st.AuditSequence != 50 {
		t.Fatalf("status %+v %v", st, err)
	}
	_ = exchangev1.ChangeKind_CHANGE_KIND_CREATED
}

func TestReadOnlyOpenOfABackup(t *testing.T) {
	needsFile(t, "read-only opening of a file")
	s, _ := openTest(t)
	ctx := context.Background()
	mustCreateAgency(t, s, "ilo", nil)
	var buf bytes.Buffer
	if err := s.Backup(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o400); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path, Options{ReadOnly: true, CheckOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.VerifyAudit(ctx); err != nil || n != 1 {
		t.Fatalf("verify %d %v", n, err)
	}
	if _, err := r.CreateAgency(ctx, secretariat("CreateAgency"), "iom", agencyMsg("iom", nil, nil)); err == nil {
		t.Fatal("a read-only store accepted a write")
	}
	other := filepath.Join(t.TempDir(), "other.db")
	os.WriteFile(other, nil, 0o600)
	if _, err := Open(other, Options{ReadOnly: true}); err == nil {
		t.Fatal("an empty file opened as an exchange database")
	}
}

// stopAfter is a context that ends after its Err has been asked n times
// without ending.
type stopAfter struct {
	context.Context
	n int
}

func (c *stopAfter) Err() error {
	if c.n == 0 {
		return context.Canceled
	}
	c.n--
	return nil
}

// TestCompactionGoesInChunks compacts in transactions of a few entries:
// stopped after the first, what it removed stays removed and recorded;
// run again, it finishes.
func TestCompactionGoesInChunks(t *testing.T) {
	defer func(n int) { compactChunk = n }(compactChunk)
	compactChunk = 7
	s, _ := openTest(t)
	ctx := context.Background()
	for i := range 50 {
		mustCreateAgency(t, s, fmt.Sprintf("a-%02d", i), nil)
	}
	if err := s.Compact(&stopAfter{Context: ctx, n: 1}, nth(40)); !errors.Is(err, context.Canceled) {
		t.Fatalf("compaction stopped after one transaction: %v", err)
	}
	if st, err := s.Status(ctx); err != nil || st.Compacted != nth(7) {
		t.Fatalf("after one transaction of 7: status %+v %v", st, err)
	}
	if _, err := s.Changes(ctx, nth(6), 100); KindOf(err) != KindOutOfRange {
		t.Fatalf("changes after 6, compacted to 7: %v", err)
	}
	if got, err := s.Changes(ctx, nth(7), 100); err != nil || len(got) != 43 || got[0].GetRevision() != nth(8) {
		t.Fatalf("changes after 7: %d %v", len(got), err)
	}
	if err := s.Compact(ctx, nth(40)); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Status(ctx); err != nil || st.Compacted != nth(40) {
		t.Fatalf("status %+v %v", st, err)
	}
	if got, err := s.Changes(ctx, nth(40), 100); err != nil || len(got) != 10 || got[0].GetRevision() != nth(41) {
		t.Fatalf("changes after the horizon: %d %v", len(got), err)
	}
	if _, err := s.Changes(ctx, nth(39), 100); KindOf(err) != KindOutOfRange {
		t.Fatalf("changes behind the horizon: %v", err)
	}
}
