// Package loadgen is the load generator of make bench, shared by every
// system the benchmark drives: the exchange and the transport ceiling
// (from exchange-bench), the storage ceiling (in-process, also from
// exchange-bench) and etcd (from etcd-load, in its own module, which
// compiles this very file through a symbolic link). It depends on the
// standard library only, so that both modules build it unchanged.
//
// A run is closed-loop: a fixed number of workers each call the operation
// again as soon as the previous call returns, for a warm-up that is not
// counted, then for the measured duration. Every call's latency is
// recorded; the result reports operations, items (an operation may carry
// many records: a batch of 100 referrals is one operation and 100 items),
// the measured time and latency percentiles.
package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one operation of worker number worker; seq counts the worker's
// calls from 0. It returns how many items (records, rows, events) the call
// carried.
type Op func(ctx context.Context, worker int, seq int64) (items int, err error)

// Result is what one run measured. Its JSON form is what etcd-load prints
// and exchange-bench reads.
type Result struct {
	// Ops counts the operations completed within the measured window.
	Ops int64 `json:"ops"`
	// Items counts the items those operations carried.
	Items int64 `json:"items"`
	// Seconds is the measured window.
	Seconds float64 `json:"seconds"`
	// Errors counts failed operations (any error fails the run as well).
	Errors int64 `json:"errors"`
	// P50Ms and P99Ms are latency percentiles of the measured operations,
	// in milliseconds.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// Extra carries workload-specific figures (peak memory, for example).
	Extra map[string]float64 `json:"extra,omitempty"`
	// Err is the first error, if any.
	Err string `json:"error,omitempty"`
}

// OpsPerSec is the measured operation rate.
func (r Result) OpsPerSec() float64 { return float64(r.Ops) / r.Seconds }

// ItemsPerSec is the measured item rate.
func (r Result) ItemsPerSec() float64 { return float64(r.Items) / r.Seconds }

// Run calls op from workers goroutines, closed-loop, for warmup and then
// for duration, and reports the measured window. It stops at the first
// error and returns it with the result so far.
func Run(ctx context.Context, workers int, warmup, duration time.Duration, op Op) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		ops       atomic.Int64
		items     atomic.Int64
		errCount  atomic.Int64
		firstErr  error
		errOnce   sync.Once
		wg        sync.WaitGroup
	)
	lat := make([][]time.Duration, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int64(0); !stop.Load(); seq++ {
				start := time.Now()
				n, err := op(ctx, w, seq)
				d := time.Since(start)
				if err != nil {
					if stop.Load() && ctx.Err() != nil {
						return // cancelled at the end of the run
					}
					errCount.Add(1)
					errOnce.Do(func() { firstErr = fmt.Errorf("worker %d, call %d: %w", w, seq, err) })
					stop.Store(true)
					cancel()
					return
				}
				// Count a call only if it ran entirely inside the window.
				if measuring.Load() && !stop.Load() {
					ops.Add(1)
					items.Add(int64(n))
					lat[w] = append(lat[w], d)
				}
			}
		}()
	}
	sleep(ctx, warmup)
	measuring.Store(true)
	begin := time.Now()
	sleep(ctx, duration)
	stop.Store(true)
	elapsed := time.Since(begin)
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r := Result{Ops: ops.Load(), Items: items.Load(), Seconds: elapsed.Seconds(), Errors: errCount.Load()}
	r.P50Ms, r.P99Ms = Millis(Percentile(all, 50)), Millis(Percentile(all, 99))
	if firstErr != nil {
		r.Err = firstErr.Error()
		return r, firstErr
	}
	if r.Ops == 0 {
		return r, errors.New("no operation completed within the measured window")
	}
	return r, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Percentile returns the p-th percentile (nearest rank) of ds; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Millis converts a duration to fractional milliseconds.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Encode is the JSON line etcd-load prints.
func (r Result) Encode() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// Decode reads a Result printed by Encode.
func Decode(line []byte) (Result, error) {
	var r Result
	err := json.Unmarshal(line, &r)
	return r, err
}

// FanOut measures how fast events reach many watchers. It starts watchers
// watch streams (each calls ready once it is subscribed, and got(n) for
// every n events it receives), waits until all are ready, then makes
// writes write calls from writers goroutines (each returns how many
// events it caused), and waits until every watcher has received every
// event written. The result counts the events written as Ops, the events
// delivered (written × watchers) as Items, and the time from the first
// write to the last delivery as Seconds; Extra["write_seconds"] is the
// time the writes alone took.
func FanOut(ctx context.Context, watchers, writers, writes int, timeout time.Duration,
	watch func(ctx context.Context, i int, ready func(), got func(n int)) error,
	write func(ctx context.Context, writer int, seq int64) (n int, err error)) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wctx, stopWatchers := context.WithCancel(ctx)
	counts := make([]atomic.Int64, watchers)
	var (
		ready    sync.WaitGroup
		running  sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	ready.Add(watchers)
	for i := range watchers {
		running.Add(1)
		go func() {
			defer running.Done()
			var once sync.Once
			markReady := func() { once.Do(ready.Done) }
			err := watch(wctx, i, markReady, func(n int) { counts[i].Add(int64(n)) })
			if wctx.Err() == nil {
				markReady()
				if err == nil {
					err = errors.New("watch ended early")
				}
				fail(fmt.Errorf("watcher %d: %w", i, err))
			}
		}()
	}
	allReady := make(chan struct{})
	go func() { ready.Wait(); close(allReady) }()
	select {
	case <-allReady:
	case <-ctx.Done():
	}
	var total atomic.Int64
	var calls atomic.Int64
	begin := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				seq := calls.Add(1) - 1
				if seq >= int64(writes) {
					return
				}
				n, err := write(ctx, w, seq)
				if err != nil {
					fail(fmt.Errorf("writer %d: %w", w, err))
					return
				}
				total.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	writeElapsed := time.Since(begin)
	want := total.Load()
	for ctx.Err() == nil {
		done := true
		for i := range counts {
			if counts[i].Load() < want {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	elapsed := time.Since(begin)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("not every watcher got the %d events within %s", want, timeout)
	}
	stopWatchers()
	running.Wait()
	var delivered int64
	for i := range counts {
		delivered += min(counts[i].Load(), want)
	}
	r := Result{Ops: want, Items: delivered, Seconds: elapsed.Seconds(),
		Extra: map[string]float64{"write_seconds": writeElapsed.Seconds()}}
	if firstErr != nil {
		r.Err = firstErr.Error()
		return r, firstErr
	}
	return r, nil
}
