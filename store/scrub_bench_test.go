package store

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// scrubCounter is an Observer that counts scrubs and the pages they wrote.
type scrubCounter struct {
	scrubs, pages, failures atomic.Int64
}

func (c *scrubCounter) ObserveWrite(time.Duration, bool) {}
func (c *scrubCounter) ObserveCommit(int)                {}
func (c *scrubCounter) ObserveScrub(_ time.Duration, pages int, err error) {
	c.scrubs.Add(1)
	c.pages.Add(int64(pages))
	if err != nil {
		c.failures.Add(1)
	}
}

// BenchmarkErasure measures EraseReferralDetails, scrub included, on a
// store holding 100,000 referrals (ERASURE_BENCH_REFERRALS sets another
// count): one eraser at a time, eight at once,
// eight at once while four readers read without pause, and, for
// comparison, the erasure without its scrub. It reports milliseconds per
// erasure, scrubs and pages written per erasure, and how much the data
// (bbolt's high-water mark) and the file grew per erasure. Run it with
//
//	go test -run '^$' -bench Erasure -benchtime 400x ./store/
func BenchmarkErasure(b *testing.B) {
	needsFile(b, "the scrub of freed pages")
	dir := b.TempDir()
	path := filepath.Join(dir, "exchange.db")
	obs := &scrubCounter{}
	s, err := Open(path, Options{Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"ilo", "iom"} {
		if _, err := s.CreateAgency(context.Background(), secretariat("CreateAgency"), id, agencyMsg("Agency "+id, nil, nil)); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	count := 100_000
	if n, err := strconv.Atoi(os.Getenv("ERASURE_BENCH_REFERRALS")); err == nil {
		count = n
	}
	refs := plantReferrals(b, s, count, "z")
	st, _ := os.Stat(path)
	b.Logf("%d referrals planted in %v; file %d MiB", count, time.Since(start).Round(time.Millisecond), st.Size()>>20)
	next := atomic.Int64{}
	take := func() planted { return refs[next.Add(1)*97%int64(len(refs))] }
	eraseOp := Op{Actor: "agencies/ilo", Method: "bench", Reason: "person-request"}
	erase := func(b *testing.B, r planted) {
		if _, err := s.EraseReferralDetails(context.Background(), eraseOp, r.name, func(*exchangev1.Referral) error { return nil }); err != nil && KindOf(err) != KindFailedPrecondition {
			b.Error(err)
		}
	}
	unscrubbed := func(b *testing.B, r planted) {
		err := s.update(context.Background(), eraseOp, func(w *writeTx) error {
			_, err := eraseDetails(w, r.name, func(*exchangev1.Referral) error { return nil })
			return err
		})
		if err != nil && KindOf(err) != KindFailedPrecondition {
			b.Error(err)
		}
	}
	hwm := func() int64 {
		var size int64
		s.read(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
		return size
	}
	run := func(name string, erasers, readers int, fn func(*testing.B, planted)) {
		b.Run(name, func(b *testing.B) {
			stop := make(chan struct{})
			var rwg sync.WaitGroup
			for range readers {
				rwg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := s.GetReferral(context.Background(), take().name); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			scrubs0, pages0 := obs.scrubs.Load(), obs.pages.Load()
			hwm0 := hwm()
			st0, _ := os.Stat(path)
			free0 := s.db.Stats()
			b.ResetTimer()
			work := make(chan planted)
			var wg sync.WaitGroup
			for range erasers {
				wg.Go(func() {
					for r := range work {
						fn(b, r)
					}
				})
			}
			for range b.N {
				work <- take()
			}
			close(work)
			wg.Wait()
			b.StopTimer()
			close(stop)
			rwg.Wait()
			st1, _ := os.Stat(path)
			free1 := s.db.Stats()
			n := float64(b.N)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/n, "ms/erasure")
			b.ReportMetric(float64(obs.scrubs.Load()-scrubs0)/n, "scrubs/erasure")
			b.ReportMetric(float64(obs.pages.Load()-pages0)/n, "pages-written/erasure")
			b.ReportMetric(float64(hwm()-hwm0)/n, "data-growth-B/erasure")
			b.ReportMetric(float64(st1.Size()-st0.Size())/n, "file-growth-B/erasure")
			b.Logf("%s: free+pending pages %d → %d; data %d → %d KiB; file %d → %d KiB; failed scrubs %d",
				name, free0.FreePageN+free0.PendingPageN, free1.FreePageN+free1.PendingPageN, hwm0>>10, hwm()>>10, st0.Size()>>10, st1.Size()>>10, obs.failures.Load())
			b.ReportMetric(0, "ns/op")
		})
	}
	run("unscrubbed-one-at-a-time", 1, 0, unscrubbed)
	run("one-at-a-time", 1, 0, erase)
	run("eight-at-once", 8, 0, erase)
	run("eight-at-once-with-readers", 8, 4, erase)
	run("unscrubbed-one-at-a-time-with-readers", 1, 4, unscrubbed)
	run("one-at-a-time-with-readers", 1, 4, erase)
}
