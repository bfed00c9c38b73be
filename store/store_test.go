package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store/kv"
)

func TestOpenCreatesFileWithMode0600(t *testing.T) {
	needsFile(t, "the file mode")
	path := filepath.Join(t.TempDir(), "exchange.db")
	s := openAt(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("new database file mode = %v, want 0600", got)
	}

	// A file whose mode was loosened is tightened again on the next Open.
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	openAt(t, path, Options{})
	if fi, err = os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("reopened database file mode = %v, want 0600", got)
	}
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	needsFile(t, "the file lock")
	path := filepath.Join(t.TempDir(), "exchange.db")
	openAt(t, path, Options{})

	const timeout = 300 * time.Millisecond
	type result struct {
		s   *Store
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		s, err := Open(path, Options{LockTimeout: timeout})
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		if r.err == nil {
			r.s.Close()
			t.Fatal("second Open of a locked database succeeded")
		}
		if elapsed := time.Since(start); elapsed > timeout+2*time.Second {
			t.Errorf("second Open failed after %v, want about %v", elapsed, timeout)
		}
		e := wantKind(t, r.err, KindFailedPrecondition)
		if !strings.Contains(e.Message, "another process") {
			t.Errorf("message %q does not mention another process", e.Message)
		}
	case <-time.After(timeout + 10*time.Second):
		t.Fatal("second Open of a locked database hangs")
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	needsFile(t, "reopening a file")
	path := filepath.Join(t.TempDir(), "exchange.db")
	s := openAt(t, path, Options{})
	if err := s.updateAlone(func(tx kv.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaSchemaVersion, u64(schemaVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2, err := Open(path, Options{})
	if err == nil {
		s2.Close()
		t.Fatal("Open accepted a database with a newer schema version")
	}
	e := wantKind(t, err, KindFailedPrecondition)
	if !strings.Contains(e.Message, "newer") {
		t.Errorf("message %q does not say the schema is newer", e.Message)
	}
}

func TestOpenPersistsAcrossReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "exchange.db")
	s := openAt(t, path, Options{})
	if got := s.Revision(); got != 0 {
		t.Fatalf("new store Revision() = %d, want 0", got)
	}
	a := mustCreateAgency(t, s, "iom", agencyMsg("IOM", []string{"KH"}, nil))
	mustCreateAgency(t, s, "ilo", nil)
	rev := s.Revision()
	if all := allChanges(t, s); len(all) != 2 || rev != all[1].GetRevision() {
		t.Fatalf("Revision() = %d after two creates, want the second's", rev)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, Options{})
	if got := s.Revision(); got != rev {
		t.Errorf("Revision() after reopen = %d, want %d", got, rev)
	}
	got, err := s.GetAgency(ctx, "agencies/iom")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, a) {
		t.Errorf("agency after reopen = %v, want %v", got, a)
	}
	// Writing continues the revision sequence and the audit chain.
	mustCreateAgency(t, s, "unicef", nil)
	if got := s.Revision(); got <= rev {
		t.Errorf("Revision() after a write following reopen = %d, want more than %d", got, rev)
	}
	if n, err := s.VerifyAudit(ctx); err != nil || n != 3 {
		t.Errorf("VerifyAudit after reopen = %d, %v; want 3, nil", n, err)
	}
}

func TestOpenOptions(t *testing.T) {
	needsFile(t, "bbolt options")
	tests := []struct {
		name      string
		opt       Options
		wantSize  int
		wantDelay time.Duration
	}{
		{"defaults", Options{}, 256, 0},
		{"set", Options{MaxBatchSize: 8, MaxBatchDelay: 10 * time.Millisecond}, 8, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openAt(t, filepath.Join(t.TempDir(), "exchange.db"), tt.opt)
			if s.commits.MaxBatch() != tt.wantSize || s.commits.Delay() != tt.wantDelay {
				t.Errorf("batch size, delay = %d, %v; want %d, %v", s.commits.MaxBatch(), s.commits.Delay(), tt.wantSize, tt.wantDelay)
			}
			if s.db.NoSync || s.db.NoFreelistSync {
				t.Errorf("NoSync = %v, NoFreelistSync = %v; want both false", s.db.NoSync, s.db.NoFreelistSync)
			}
			if s.db.FreelistType != bolt.FreelistMapType {
				t.Errorf("freelist type = %v, want %v", s.db.FreelistType, bolt.FreelistMapType)
			}
		})
	}
}

func TestClosedStore(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	op := secretariat("Test")
	mustCreateAgency(t, s, "iom", nil)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	keep := func(*exchangev1.Agency) error { return nil }
	calls := map[string]func() error{
		"CreateAgency": func() error { _, err := s.CreateAgency(ctx, op, "ilo", agencyMsg("ILO", nil, nil)); return err },
		"GetAgency":    func() error { _, err := s.GetAgency(ctx, "agencies/iom"); return err },
		"UpdateAgency": func() error { _, err := s.UpdateAgency(ctx, op, "agencies/iom", "", keep); return err },
		"ListAgencies": func() error { _, _, err := s.ListAgencies(ctx, AgencyFilter{}, Page{}); return err },
		"CreateFocalPoint": func() error {
			_, err := s.CreateFocalPoint(ctx, op, "iom", &exchangev1.FocalPoint{Topic: "t", Tenure: &exchangev1.DatePeriod{Start: date(2025, 1, 1)}})
			return err
		},
		"GetFocalPoint": func() error { _, err := s.GetFocalPoint(ctx, "agencies/iom/focalPoints/x"); return err },
		"UpdateFocalPoint": func() error {
			_, err := s.UpdateFocalPoint(ctx, op, "agencies/iom/focalPoints/x", "", func(*exchangev1.FocalPoint) error { return nil })
			return err
		},
		"DeleteFocalPoint":   func() error { return s.DeleteFocalPoint(ctx, op, "agencies/iom/focalPoints/x", "") },
		"ListFocalPoints":    func() error { _, _, err := s.ListFocalPoints(ctx, FocalPointFilter{}, Page{}); return err },
		"CreateWorkingGroup": func() error { _, err := s.CreateWorkingGroup(ctx, op, "wg", &exchangev1.WorkingGroup{}); return err },
		"GetWorkingGroup":    func() error { _, err := s.GetWorkingGroup(ctx, "workingGroups/wg"); return err },
		"UpdateWorkingGroup": func() error {
			_, err := s.UpdateWorkingGroup(ctx, op, "workingGroups/wg", "", func(*exchangev1.WorkingGroup) error { return nil })
			return err
		},
		"DeleteWorkingGroup": func() error { return s.DeleteWorkingGroup(ctx, op, "workingGroups/wg", "") },
		"ListWorkingGroups":  func() error { _, _, err := s.ListWorkingGroups(ctx, "", Page{}); return err },
		"RecordCertificate": func() error {
			_, err := s.RecordCertificate(ctx, op, "01", &exchangev1.Certificate{Subject: "secretariat"})
			return err
		},
		"GetCertificate":    func() error { _, err := s.GetCertificate(ctx, "certificates/01"); return err },
		"RevokeCertificate": func() error { _, err := s.RevokeCertificate(ctx, op, "certificates/01", "r"); return err },
		"ListCertificates":  func() error { _, _, err := s.ListCertificates(ctx, "", Page{}); return err },
		"LookupCaller":      func() error { _, err := s.LookupCaller(ctx, "01", "iom"); return err },
		"Replayed":          func() error { _, _, err := s.Replayed(ctx, Op{RequestID: "r"}); return err },
		"Changes":           func() error { _, err := s.Changes(ctx, 0, 10); return err },
		"AuditEntries":      func() error { _, err := s.AuditEntries(ctx, 0, 10); return err },
		"AuditHead":         func() error { _, _, err := s.AuditHead(ctx); return err },
		"VerifyAudit":       func() error { _, err := s.VerifyAudit(ctx); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantKind(t, call(), KindClosed) })
	}
}

// TestCloseWaitsForWrites closes the store while writes wait for their
// batch to start: Close lets them commit first, and calls after Close fail
// with KindClosed.
func TestCloseWaitsForWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exchange.db")
	const delay = 500 * time.Millisecond
	s := openAt(t, path, Options{MaxBatchDelay: delay})
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateAgency(t.Context(), secretariat("CreateAgency"), fmt.Sprintf("a%02d", i), agencyMsg("A", nil, nil))
		})
	}
	time.Sleep(delay / 5) // the writes are queued, their batch not yet run
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.CreateAgency(t.Context(), secretariat("CreateAgency"), "late", agencyMsg("A", nil, nil))
	wantKind(t, err, KindClosed)
	wg.Wait()

	s = openAt(t, path, Options{})
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d, queued before Close, failed: %v", i, err)
		} else if _, err := s.GetAgency(t.Context(), fmt.Sprintf("agencies/a%02d", i)); err != nil {
			t.Errorf("write %d was acknowledged but is not on disk: %v", i, err)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	s, _ := openTest(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.CreateAgency(ctx, secretariat("CreateAgency"), "iom", agencyMsg("IOM", nil, nil)); err != context.Canceled {
		t.Errorf("CreateAgency with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.GetAgency(ctx, "agencies/iom"); err != context.Canceled {
		t.Errorf("GetAgency with a cancelled context = %v, want context.Canceled", err)
	}
	if s.Revision() != 0 {
		t.Errorf("Revision() = %d after a cancelled write, want 0", s.Revision())
	}
}

// TestGroupCommit writes from many goroutines at once: every write is
// acknowledged, every revision is used exactly once, and the audit chain
// holds.
func TestGroupCommit(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	const writers, each = 64, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%02d-%02d", w, i)
				a, err := s.CreateAgency(ctx, Op{Actor: "agencies/w" + fmt.Sprint(w), Method: "CreateAgency"}, id, agencyMsg(id, []string{"KH"}, nil))
				if err == nil && a.GetName() != AgencyPrefix+id {
					err = fmt.Errorf("CreateAgency(%s) returned %s", id, a.GetName())
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	const total = writers * each
	all := listAll(t, MaxPageSize, func(p Page) ([]*exchangev1.Agency, string, error) {
		return s.ListAgencies(ctx, AgencyFilter{}, p)
	})
	if len(all) != total {
		t.Errorf("%d agencies listed, want %d", len(all), total)
	}
	for w := range writers {
		for i := range each {
			if _, err := s.GetAgency(ctx, fmt.Sprintf("agencies/w%02d-%02d", w, i)); err != nil {
				t.Errorf("GetAgency: %v", err)
			}
		}
	}
	changes := allChanges(t, s)
	if len(changes) != total {
		t.Fatalf("%d changes, want %d", len(changes), total)
	}
	seen := map[string]bool{}
	for i, ch := range changes {
		if ch.GetRevision() != nth(int64(i+1)) {
			t.Fatalf("change %d has revision %d, want %d (revisions must be the first %d, each once)", i, ch.GetRevision(), nth(int64(i+1)), total)
		}
		if seen[ch.GetResourceName()] {
			t.Errorf("%s changed twice", ch.GetResourceName())
		}
		seen[ch.GetResourceName()] = true
	}
	if got := s.Revision(); got != nth(total) {
		t.Errorf("Revision() = %d, want %d", got, nth(total))
	}
	if n, err := s.VerifyAudit(ctx); err != nil || n != total {
		t.Errorf("VerifyAudit = %d, %v; want %d, nil", n, err, total)
	}
	checkIndexes(t, s)
}

// TestGroupCommitWithFailures mixes writes that fail into the batches:
// bbolt then rolls the shared transaction back and runs the functions
// again, so each must leave its result only in variables it sets afresh.
func TestGroupCommitWithFailures(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	const n = 32
	var wg sync.WaitGroup
	uniqueErrs := make([]error, n)
	dupErrs := make([]error, n)
	dupNames := make([]string, n)
	for i := range n {
		wg.Go(func() {
			_, uniqueErrs[i] = s.CreateAgency(ctx, secretariat("CreateAgency"), fmt.Sprintf("u%02d", i), agencyMsg("U", nil, nil))
		})
		wg.Go(func() {
			a, err := s.CreateAgency(ctx, secretariat("CreateAgency"), "dup", agencyMsg(fmt.Sprint(i), nil, nil))
			dupErrs[i], dupNames[i] = err, a.GetName()
		})
	}
	wg.Wait()

	created := 0
	for i := range n {
		if uniqueErrs[i] != nil {
			t.Errorf("create u%02d: %v", i, uniqueErrs[i])
		}
		switch {
		case dupErrs[i] == nil:
			created++
			if dupNames[i] != "agencies/dup" {
				t.Errorf("successful create returned %q", dupNames[i])
			}
		case KindOf(dupErrs[i]) != KindAlreadyExists:
			t.Errorf("duplicate create: %v, want KindAlreadyExists", dupErrs[i])
		case dupNames[i] != "":
			t.Errorf("failed create returned an agency %q", dupNames[i])
		}
	}
	if created != 1 {
		t.Errorf("%d creates of the same id succeeded, want 1", created)
	}
	changes := allChanges(t, s)
	for i, ch := range changes {
		if ch.GetRevision() != nth(int64(i+1)) {
			t.Fatalf("change %d has revision %d, want %d", i, ch.GetRevision(), nth(int64(i+1)))
		}
	}
	if len(changes) != n+1 || s.Revision() != nth(n+1) {
		t.Errorf("%d changes, Revision() = %d; want %d", len(changes), s.Revision(), nth(n+1))
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Error(err)
	}
}

// TestGroupCommitSharesCommits checks that concurrent writes share a
// transaction: eight writes at once cost far fewer page writes (and so
// fsyncs) than eight writes one after another.
func TestGroupCommitSharesCommits(t *testing.T) {
	needsFile(t, "bbolt transaction statistics")
	const n = 8
	pageWrites := func(s *Store, write func(func(i int))) int64 {
		st := s.db.Stats()
		before := st.TxStats.GetWrite()
		write(func(i int) {
			if _, err := s.CreateAgency(t.Context(), secretariat("CreateAgency"), fmt.Sprintf("a%d", i), agencyMsg("A", []string{"KH"}, nil)); err != nil {
				t.Error(err)
			}
		})
		st = s.db.Stats()
		return st.TxStats.GetWrite() - before
	}
	solo := openAt(t, filepath.Join(t.TempDir(), "solo.db"), Options{MaxBatchSize: 1})
	sequential := pageWrites(solo, func(create func(int)) {
		for i := range n {
			create(i)
		}
	})
	grouped := openAt(t, filepath.Join(t.TempDir(), "grouped.db"), Options{MaxBatchSize: n, MaxBatchDelay: 5 * time.Second})
	concurrent := pageWrites(grouped, func(create func(int)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { create(i) })
		}
		wg.Wait()
	})
	t.Logf("page writes: %d for %d concurrent writes, %d for %d sequential ones", concurrent, n, sequential, n)
	if concurrent*2 > sequential {
		t.Errorf("%d concurrent writes cost %d page writes, %d sequential ones %d: commits are not shared", n, concurrent, n, sequential)
	}
}

// TestGroupCommitResultsFromTheCommittedRun checks that when the committer re-runs
// a batch (because one write in it failed), each caller gets the result
// of the run that committed: focal point ids are random, so a result kept
// from a rolled-back run names a focal point that does not exist.
func TestGroupCommitResultsFromTheCommittedRun(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "iom", nil)
	const n = 32
	var wg sync.WaitGroup
	got := make([]*exchangev1.FocalPoint, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			got[i], errs[i] = s.CreateFocalPoint(ctx, secretariat("CreateFocalPoint"), "iom", focalPoint(fmt.Sprint(i), fmt.Sprintf("topic-%d", i), date(2025, 1, 1), nil))
		})
		wg.Go(func() { s.CreateAgency(ctx, secretariat("CreateAgency"), "iom", agencyMsg("dup", nil, nil)) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		stored, err := s.GetFocalPoint(ctx, got[i].GetName())
		if err != nil || !proto.Equal(stored, got[i]) {
			t.Errorf("create %d returned %s, which is stored as %v (%v)", i, got[i].GetName(), stored, err)
		}
	}
}

func TestNewID(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := ""
	seen := map[string]bool{}
	for i := range 1000 {
		id := newID(t0.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 || strings.Trim(id, idAlphabet) != "" {
			t.Fatalf("newID = %q, want 26 characters of %q", id, idAlphabet)
		}
		if id <= prev {
			t.Fatalf("newID %q does not sort after %q, made a millisecond earlier", id, prev)
		}
		if seen[id] {
			t.Fatalf("newID repeated %q", id)
		}
		seen[id] = true
		prev = id
	}
	// In the same millisecond, and when the clock steps back, ids still
	// grow.
	for _, at := range []time.Time{t0.Add(time.Second), t0.Add(time.Second), t0} {
		for range 100 {
			id := newID(at)
			if id <= prev {
				t.Fatalf("newID %q at %v does not sort after %q", id, at, prev)
			}
			prev = id
		}
	}
}

func TestStoreError(t *testing.T) {
	own := &Error{Kind: KindNotFound, Message: "x"}
	disk := errors.New("input/output error")
	tests := []struct {
		name string
		in   error
		kind Kind
	}{
		{"own error passes", own, KindNotFound},
		{"wrapped own error passes", fmt.Errorf("ctx: %w", own), KindNotFound},
		{"database closed", berrors.ErrDatabaseNotOpen, KindClosed},
		{"disk error", disk, KindInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := storeError(tt.in)
			var e *Error
			if !errors.As(got, &e) || e.Kind != tt.kind {
				t.Fatalf("storeError(%v) = %v, want a *Error of kind %v", tt.in, got, tt.kind)
			}
			if !errors.Is(got, tt.in) {
				t.Errorf("storeError(%v) = %v lost its cause", tt.in, got)
			}
		})
	}
	if storeError(nil) != nil {
		t.Error("storeError(nil) != nil")
	}
}

// TestACommitPublishesBeforeItsWritersReturn checks what watchers rely on:
// by the time a write returns, its revision is the store's Revision and the
// channel Changed gave out before it is closed; a write that changes
// nothing closes nothing. Concurrent writes sharing commits publish every
// revision they recorded.
func TestACommitPublishesBeforeItsWritersReturn(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	changed := s.Changed()
	a := mustCreateAgency(t, s, "iom", nil)
	select {
	case <-changed:
	default:
		t.Fatal("a committed change did not close the channel Changed gave out before it")
	}
	if got, want := s.Revision(), nth(1); got != want {
		t.Fatalf("Revision after the first change = %d, want %d", got, want)
	}

	changed = s.Changed()
	if _, err := s.UpdateAgency(ctx, secretariat("UpdateAgency"), a.GetName(), "", func(*exchangev1.Agency) error { return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		t.Fatal("a write that changed nothing woke the watchers")
	default:
	}

	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			changed := s.Changed()
			if _, err := s.CreateAgency(ctx, secretariat("CreateAgency"), fmt.Sprintf("c%02d", i), agencyMsg("C", nil, nil)); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-changed:
			default:
				t.Errorf("write %d returned before its commit woke the watchers", i)
			}
		})
	}
	wg.Wait()
	if got, want := s.Revision(), nth(1+n); got != want {
		t.Errorf("Revision after %d more changes = %d, want %d", n, got, want)
	}
}
