package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// BenchmarkPullMillionRows writes 1,000,000 rows into a dataset (through
// the store, for setup speed) and pulls them all through the real server
// over mTLS, reporting rows/s and the peak growth of the process heap
// during the pull (server and client together: an upper bound for the
// server). Run with -benchtime 1x.
func BenchmarkPullMillionRows(b *testing.B) {
	const total, batch = 1_000_000, 20_000
	x := startExchange(b)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	ilo := x.asAgency("ilo")
	ctx := context.Background()
	if _, err := ilo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "big", Dataset: returnsDataset("agencies/iom")}); err != nil {
		b.Fatal(err)
	}
	provinces := []string{"KH-1", "KH-2", "KH-3", "KH-4", "KH-5", "KH-6", "KH-7", "KH-8", "KH-9", "KH-10", "KH-11", "KH-12"}
	for n := 0; n < total; n += batch {
		writes := make([]store.RowWrite, 0, batch)
		for i := n; i < n+batch; i++ {
			r := row(fmt.Sprintf("%04d-%02d", 2000+i/(12*len(provinces)*2*2)%100, 1+i/(len(provinces)*4)%12), provinces[i/4%len(provinces)],
				[]string{"female", "male"}[i%2], int64(i%97))
			r.Categories["age_group"] = []string{"0-17", "18+"}[i/2%2]
			// Spread rows over years so every key is distinct.
			r.Period = fmt.Sprintf("%04d-%02d", 1000+i/(len(provinces)*4*12), 1+i/(len(provinces)*4)%12)
			writes = append(writes, store.RowWrite{Row: r})
		}
		errs, _, err := x.store.WriteDatasetRows(ctx, store.Op{Actor: "agencies/iom", Method: "bench"}, "agencies/ilo/datasets/big",
			func(*exchangev1.Dataset) error { return nil }, writes)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range errs {
			if e != nil {
				b.Fatal(e)
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runtime.GC()
		base := heapBytes()
		var peak atomic.Uint64
		stop := make(chan struct{})
		go func() {
			for {
				if h := heapBytes(); h > peak.Load() {
					peak.Store(h)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		stream, err := ilo.datasets().PullDatasetRows(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/big", PageSize: 5000})
		if err != nil {
			b.Fatal(err)
		}
		rows := 0
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows += len(msg.GetRows())
		}
		elapsed := time.Since(start)
		close(stop)
		if rows != total {
			b.Fatalf("pulled %d rows, want %d", rows, total)
		}
		b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(peak.Load()-min(base, peak.Load()))/(1<<20), "peak-heap-growth-MiB")
	}
}

// heapBytes reads the bytes of heap objects, live or not yet collected.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
