package store

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alltogether/exchange/store/kv"
)

// chainOf opens a store holding n audit entries (agencies created one per
// write).
func chainOf(t *testing.T, n int) *Store {
	t.Helper()
	s, _ := openTest(t)
	relaxSync(s) // many tiny transactions; durability is not under test
	for i := range n {
		mustCreateAgency(t, s, fmt.Sprintf("agency-%d", i), nil)
	}
	return s
}

// flipByte changes one byte in the middle of the stored audit entry seq, as
// a failing disk or a hand with a hex editor would.
func flipByte(t *testing.T, s *Store, seq uint64) {
	t.Helper()
	err := s.updateAlone(func(tx kv.Tx) error {
		v := slices.Clone(tx.Bucket(bucketAudit).Get(u64(seq)))
		v[len(v)/2] ^= 0x20
		return tx.Bucket(bucketAudit).Put(u64(seq), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAuditRecentChecksTheTailAndVerifyAuditTheWhole checks what each
// check catches: a flipped entry older than the recent window is caught by
// the full walk only; one within it, a head that does not match the last
// entry and an entry after the head are caught by both.
func TestVerifyAuditRecentChecksTheTailAndVerifyAuditTheWhole(t *testing.T) {
	const entries, recent = 30, 10
	ctx := t.Context()
	s := chainOf(t, entries)
	if n, err := s.VerifyAuditRecent(ctx, recent); n != recent || err != nil {
		t.Fatalf("recent check of an intact chain = %d, %v; want %d, nil", n, err, recent)
	}
	if n, err := s.VerifyAuditRecent(ctx, 1000); n != entries || err != nil {
		t.Fatalf("recent check of more than the chain = %d, %v; want %d, nil", n, err, entries)
	}
	if _, err := s.VerifyAuditRecent(ctx, 0); KindOf(err) != KindInvalidArgument {
		t.Errorf("recent check of 0 entries = %v", err)
	}
	empty, _ := openTest(t)
	if n, err := empty.VerifyAuditRecent(ctx, recent); n != 0 || err != nil {
		t.Errorf("recent check of an empty chain = %d, %v", n, err)
	}

	t.Run("an entry older than the window", func(t *testing.T) {
		s := chainOf(t, entries)
		flipByte(t, s, 5)
		if _, err := s.VerifyAuditRecent(ctx, recent); err != nil {
			t.Errorf("the recent check read entry 5 of %d: %v", entries, err)
		}
		_, err := s.VerifyAudit(ctx)
		if KindOf(err) != KindFailedPrecondition || !strings.Contains(err.Error(), "at entry 5") {
			t.Errorf("the full walk: %v, want a broken chain at entry 5", err)
		}
	})
	for _, tt := range []struct {
		name   string
		tamper func(t *testing.T, s *Store)
		where  string
	}{
		{"an entry within the window", func(t *testing.T, s *Store) { flipByte(t, s, entries-3) }, "at entry " + strconv.Itoa(entries-3)},
		{"the first entry of the window", func(t *testing.T, s *Store) { flipByte(t, s, entries-recent+1) }, "at entry " + strconv.Itoa(entries-recent+1)},
		{"the head's hash", func(t *testing.T, s *Store) {
			s.updateAlone(func(tx kv.Tx) error {
				head := slices.Clone(tx.Bucket(bucketMeta).Get(metaAuditHead))
				head[len(head)-1] ^= 1
				return tx.Bucket(bucketMeta).Put(metaAuditHead, head)
			})
		}, "recorded head"},
		{"the last entry removed", func(t *testing.T, s *Store) {
			s.updateAlone(func(tx kv.Tx) error { return tx.Bucket(bucketAudit).Delete(u64(entries)) })
		}, "recorded head"},
		{"an entry after the head", func(t *testing.T, s *Store) {
			s.updateAlone(func(tx kv.Tx) error {
				return tx.Bucket(bucketAudit).Put(u64(entries+1), slices.Clone(tx.Bucket(bucketAudit).Get(u64(entries))))
			})
		}, "audit chain broken"},
		{"an entry removed inside the window", func(t *testing.T, s *Store) {
			s.updateAlone(func(tx kv.Tx) error { return tx.Bucket(bucketAudit).Delete(u64(entries - 4)) })
		}, "audit chain broken"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := chainOf(t, entries)
			tt.tamper(t, s)
			for check, verify := range map[string]func() (uint64, error){
				"recent": func() (uint64, error) { return s.VerifyAuditRecent(ctx, recent) },
				"full":   func() (uint64, error) { return s.VerifyAudit(ctx) },
			} {
				if _, err := verify(); KindOf(err) != KindFailedPrecondition || !strings.Contains(err.Error(), tt.where) {
					t.Errorf("%s check: %v, want a broken chain (%q)", check, err, tt.where)
				}
			}
		})
	}
}

// TestVerifyAuditWalksInChunksWhileWritesGoOn verifies a chain in chunks
// of 7 entries while writers append to it: every entry is checked once, a
// flipped entry is still found, and writes are not refused.
func TestVerifyAuditWalksInChunksWhileWritesGoOn(t *testing.T) {
	defer func(n int) { auditVerifyChunk = n }(auditVerifyChunk)
	auditVerifyChunk = 7
	ctx := t.Context()
	s := chainOf(t, 50)
	if n, err := s.VerifyAudit(ctx); n != 50 || err != nil {
		t.Fatalf("chunked walk of 50 entries = %d, %v", n, err)
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.CreateAgency(ctx, secretariat("CreateAgency"), fmt.Sprintf("w%d-%d", w, i), agencyMsg("x", nil, nil)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 20 {
		if n, err := s.VerifyAudit(ctx); err != nil || n < 50 {
			t.Fatalf("chunked walk while writes go on = %d, %v", n, err)
		}
	}
	close(stop)
	wg.Wait()

	flipByte(t, s, 23)
	if _, err := s.VerifyAudit(ctx); KindOf(err) != KindFailedPrecondition || !strings.Contains(err.Error(), "at entry 23") {
		t.Errorf("chunked walk of a chain flipped at entry 23: %v", err)
	}
}

// TestVerifyAuditTimeOnALongChain measures both checks on a long chain
// (EXCHANGE_AUDIT_ENTRIES entries, default 100,000) and how long a write
// waits while the full walk runs. It prints the figures; its only bounds
// are generous.
func TestVerifyAuditTimeOnALongChain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a long chain")
	}
	entries := 100_000
	if v := os.Getenv("EXCHANGE_AUDIT_ENTRIES"); v != "" {
		var err error
		if entries, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	s := openAt(t, filepath.Join(t.TempDir(), "long.db"), Options{})
	relaxSync(s)
	start := time.Now()
	const perTx = 10_000
	for done := 0; done < entries; done += perTx {
		err := s.update(ctx, Op{Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/GetReferral"}, func(w *writeTx) error {
			for i := range min(perTx, entries-done) {
				if err := w.appendAudit(w.currentRevision(), fmt.Sprintf("referrals/01jx%022d", done+i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	strictSync(s)
	st, _ := s.Status(ctx)
	t.Logf("%d audit entries written in %v; file %.0f MiB", entries, time.Since(start).Round(time.Millisecond), float64(st.Size)/(1<<20))

	start = time.Now()
	if n, err := s.VerifyAuditRecent(ctx, 10_000); err != nil || n != min(10_000, uint64(entries)) {
		t.Fatalf("recent check = %d, %v", n, err)
	}
	recent := time.Since(start)

	// A writer goes on while the full walk runs; its writes' latencies are
	// printed, and those of as long a run without the walk.
	writer := func(label string, during func()) (p50, slowest time.Duration, writes int) {
		stop := make(chan struct{})
		var took []time.Duration
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				if _, err := s.CreateAgency(ctx, secretariat("CreateAgency"), fmt.Sprintf("%s-%d", label, i), agencyMsg("x", nil, nil)); err != nil {
					t.Error(err)
					return
				}
				took = append(took, time.Since(t0))
				time.Sleep(time.Millisecond)
			}
		})
		during()
		close(stop)
		wg.Wait()
		slices.Sort(took)
		if len(took) == 0 {
			return 0, 0, 0
		}
		return took[len(took)/2], took[len(took)-1], len(took)
	}
	var n uint64
	var full time.Duration
	walkP50, walkMax, walkWrites := writer("during", func() {
		start := time.Now()
		var err error
		n, err = s.VerifyAudit(ctx)
		full = time.Since(start)
		if err != nil || n < uint64(entries) {
			t.Fatalf("full walk = %d, %v", n, err)
		}
	})
	idleP50, idleMax, idleWrites := writer("idle", func() { time.Sleep(full) })
	t.Logf("recent check of 10,000 entries: %v; full walk of %d entries: %v (%.0f entries/s)",
		recent.Round(time.Microsecond), n, full.Round(time.Millisecond), float64(n)/full.Seconds())
	t.Logf("writes during the walk: %d, p50 %v, slowest %v; as long without it: %d, p50 %v, slowest %v",
		walkWrites, walkP50.Round(time.Microsecond), walkMax.Round(time.Microsecond), idleWrites, idleP50.Round(time.Microsecond), idleMax.Round(time.Microsecond))
	if recent > 10*time.Second {
		t.Errorf("the recent check took %v", recent)
	}
}
