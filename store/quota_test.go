package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// fileSize returns the size of the file at path, as the operator's df
// and ls see it.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// quotaReferral is a referral from ilo to iom with about 1 KiB of case
// notes, so that a quota fills in a few hundred writes.
func quotaReferral(i int) NewReferral {
	r := ruleReferral("agencies/iom", strings.Repeat(fmt.Sprintf("note %d ", i), 128))
	return NewReferral{RequestID: fmt.Sprintf("q-%d", i), Referral: r}
}

// TestQuotaBoundsTheFileAndKeepsAReserve fills a database with a 2 MiB
// quota with real referrals, in batches and from several writers at once,
// and checks after every write that the FILE (os.Stat, not bbolt's data
// size) stays within the quota. Once ordinary writes are refused, with
// RESOURCE_EXHAUSTED and a message that says so, reads of identifying
// details go on (their audit entries use the reserve), erasures go on,
// and when at last the reserve is used up too, the file is still within
// the quota and the refusal says the reserve is gone.
func TestQuotaBoundsTheFileAndKeepsAReserve(t *testing.T) {
	needsFile(t, "the size limit of the file")
	const limit = 2 << 20
	path := filepath.Join(t.TempDir(), "exchange.db")
	writes := &countingObserver{}
	s := openAt(t, path, Options{MaxSize: limit, Observer: writes})
	ctx := t.Context()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	ilo := Op{Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/BatchCreateReferrals"}
	largest := int64(0)
	checkFile := func(when string) {
		t.Helper()
		size := fileSize(t, path)
		largest = max(largest, size)
		if size > limit {
			t.Fatalf("%s: the file is %d bytes, past the quota of %d", when, size, limit)
		}
	}

	// Fill with ordinary writes, four writers at once, until refused.
	var mu sync.Mutex
	var names []string
	var refusal error
	next := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				mu.Lock()
				if refusal != nil || next > 20_000 {
					mu.Unlock()
					return
				}
				batch := make([]NewReferral, 10)
				for i := range batch {
					batch[i] = quotaReferral(next)
					next++
				}
				mu.Unlock()
				res, err := s.CreateReferrals(ctx, ilo, batch)
				mu.Lock()
				if err != nil {
					refusal = err
				}
				for _, r := range res {
					if r.Err == nil && r.Referral != nil {
						names = append(names, r.Referral.GetName())
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	checkFile("after filling")
	e := wantKind(t, refusal, KindResourceExhausted)
	if !strings.Contains(e.Message, "size limit") || !strings.Contains(e.Message, "reads go on") {
		t.Errorf("message %q", e.Message)
	}
	t.Logf("%d referrals stored before the quota refused writes; file %d bytes of %d", len(names), fileSize(t, path), limit)
	if len(names) < 100 {
		t.Fatalf("only %d referrals fit in %d bytes", len(names), limit)
	}
	// Fill what is left below the reserve with the smallest ordinary
	// write there is, the very audit entry a read appends, until five in
	// a row are refused: from then on, the same entry is refused as an
	// ordinary write and accepted as the audit of a read.
	iom := Op{Actor: "agencies/iom", Method: "/alltogether.exchange.v1.ReferralService/GetReferral"}
	ordinaryEntry := func(name string) error {
		return s.update(ctx, iom, func(w *writeTx) error { return w.appendAudit(w.currentRevision(), name) })
	}
	refusedInARow := 0
	for i := 0; i < 100_000 && refusedInARow < 5; i++ {
		rev, seq := s.Revision(), len(allAudit(t, s))
		err := ordinaryEntry(names[i%len(names)])
		checkFile("an ordinary write at the quota")
		if err == nil {
			refusedInARow = 0
			continue
		}
		wantKind(t, err, KindResourceExhausted)
		if s.Revision() != rev || len(allAudit(t, s)) != seq {
			t.Fatal("a refused write changed the revision or the audit chain")
		}
		refusedInARow++
	}
	if refusedInARow < 5 {
		t.Fatal("ordinary writes were not refused at the quota")
	}
	// At the reserve, an ordinary write is refused before it queues for
	// the writer: a flood of them does not hold up the audited reads.
	queued := writes.writes.Load()
	if err := ordinaryEntry(names[0]); KindOf(err) != KindResourceExhausted || writes.writes.Load() != queued {
		t.Errorf("an ordinary write at the reserve: %v, and it went to the writer (%d writes, were %d)", err, writes.writes.Load(), queued)
	}
	if _, err := s.CreateReferrals(ctx, ilo, []NewReferral{quotaReferral(100_000)}); KindOf(err) != KindResourceExhausted {
		t.Fatalf("a referral at the quota: %v", err)
	}

	// Reads of identifying details go on: their audit entries use the
	// reserve, and so do erasures.
	for i := range 50 {
		if err := s.RecordRead(ctx, iom, names[i]); err != nil {
			t.Fatalf("read %d of identifying details at the quota: %v", i, err)
		}
		checkFile("an audited read in the reserve")
	}
	erase := Op{Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/EraseReferralDetails"}
	for _, name := range names[:20] {
		if _, err := s.EraseReferralDetails(ctx, erase, name, func(*exchangev1.Referral) error { return nil }); err != nil {
			t.Fatalf("erasure at the quota: %v", err)
		}
		checkFile("an erasure in the reserve")
	}
	if _, err := s.GetReferral(ctx, names[30]); err != nil {
		t.Fatal(err)
	}

	// Audited reads until the reserve is gone too: the file still stays
	// within the quota, and the refusal says so.
	var readErr error
	reads := 0
	for reads < 100_000 && readErr == nil {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for g := range errs {
			wg.Go(func() { errs[g] = s.RecordRead(ctx, iom, names[(reads+g)%len(names)]) })
		}
		wg.Wait()
		for _, err := range errs {
			if err == nil {
				reads++
			} else if readErr == nil {
				readErr = err
			}
		}
		checkFile("audited reads filling the reserve")
	}
	e = wantKind(t, readErr, KindResourceExhausted)
	if !strings.Contains(e.Message, "including the reserve") {
		t.Errorf("message at the end of the reserve: %q", e.Message)
	}
	t.Logf("%d more audited reads fitted in the reserve; largest file seen %d bytes (quota %d)", reads, largest, limit)
	if n, err := s.VerifyAudit(ctx); err != nil || n == 0 {
		t.Fatalf("the audit chain after the quota: %d entries, %v", n, err)
	}
}

// countingObserver counts the writes that reached the writer.
type countingObserver struct{ writes atomic.Int64 }

func (o *countingObserver) ObserveWrite(time.Duration, bool) { o.writes.Add(1) }
func (o *countingObserver) ObserveCommit(int)                {}

// TestQuotaSmallerThanAnExchangeIsRefused: Open refuses a size limit too
// small to hold an empty exchange, naming the least it takes.
func TestQuotaSmallerThanAnExchangeIsRefused(t *testing.T) {
	needsFile(t, "the size limit of the file")
	_, err := Open(filepath.Join(t.TempDir(), "exchange.db"), Options{MaxSize: MinMaxSize - 1})
	e := wantKind(t, err, KindInvalidArgument)
	if !strings.Contains(e.Message, fmt.Sprint(MinMaxSize)) {
		t.Errorf("message %q", e.Message)
	}
}

// TestQuotaSteps checks the figures docs/operations.md gives: the file
// grows in steps of a 64th of the limit (4 pages at least, 16 MiB at
// most), and the reserve is a 16th of it (two steps at least).
func TestQuotaSteps(t *testing.T) {
	needsFile(t, "the size limit of the file")
	const page = 4096
	for _, c := range []struct {
		limit          int64
		alloc, reserve int64
	}{
		{MinMaxSize, 4 * page, 8 * page},
		{2 << 20, 32 << 10, 128 << 10},
		{32 << 20, 512 << 10, 2 << 20},
		{50 << 30, 16 << 20, 50 << 30 / 16},
	} {
		q := newQuota(c.limit, page)
		if int64(q.alloc) != c.alloc || q.reserve != c.reserve {
			t.Errorf("limit %d: steps of %d and a reserve of %d, want %d and %d", c.limit, q.alloc, q.reserve, c.alloc, c.reserve)
		}
		if q.limit(false) != int(c.limit-c.reserve) || q.limit(true) != int(c.limit) {
			t.Errorf("limit %d: transactions limited to %d and %d", c.limit, q.limit(false), q.limit(true))
		}
	}
}

// TestQuotaKeepsALargerFileFromGrowing opens, under a 2 MiB limit, a
// database whose file grew to 16 MiB without one (bbolt's default steps):
// the limit does not shrink the file, but the pages in use stay within it
// all the same: writes are refused where they would be in a new file,
// and the file never grows.
func TestQuotaKeepsALargerFileFromGrowing(t *testing.T) {
	needsFile(t, "the size limit of the file")
	path := filepath.Join(t.TempDir(), "exchange.db")
	s := openAt(t, path, Options{})
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	s.Close()
	before := fileSize(t, path)
	if before <= 2<<20 {
		t.Fatalf("the file is %d bytes: not larger than the limit to come", before)
	}
	s = openAt(t, path, Options{MaxSize: 2 << 20})
	ilo := Op{Actor: "agencies/ilo", Method: "test"}
	var refused error
	for i := 0; i < 400 && refused == nil; i++ {
		batch := make([]NewReferral, 10)
		for j := range batch {
			batch[j] = quotaReferral(10*i + j)
		}
		_, refused = s.CreateReferrals(t.Context(), ilo, batch)
	}
	wantKind(t, refused, KindResourceExhausted)
	if st, err := s.Status(t.Context()); err != nil || st.Size > 2<<20 {
		t.Errorf("the pages in use reach %d bytes (%v), past the limit", st.Size, err)
	}
	if after := fileSize(t, path); after != before {
		t.Errorf("the file went from %d to %d bytes under a 2 MiB limit", before, after)
	}
}
