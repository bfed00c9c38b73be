package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/bench/loadgen"
)

// bench runs the workloads and collects the report.
type bench struct {
	*env
	rep   *report
	procs []interface{ stop() }
}

// track remembers a server so that stopAll ends it.
func (b *bench) track(p interface{ stop() }) { b.procs = append(b.procs, p) }

// stopAll stops every server the current workload started.
func (b *bench) stopAll() {
	for _, p := range b.procs {
		p.stop()
	}
	b.procs = nil
}

// system is one contestant of a round.
type system struct {
	name string
	run  func(ctx context.Context) error
}

// alternate runs every system once per round, in an order that rotates
// from round to round (A B C, B C A, C A B, ...), so that no system
// always runs first or right after the same neighbour.
func (b *bench) alternate(ctx context.Context, round int, systems []system) error {
	for i := range systems {
		s := systems[(i+round)%len(systems)]
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("round %d, %s: %w", round+1, s.name, err)
		}
	}
	return nil
}

// throughput runs the shared load generator in this process.
func (b *bench) throughput(ctx context.Context, workers int, op loadgen.Op) (loadgen.Result, error) {
	return loadgen.Run(ctx, workers, b.opt.warmup, b.opt.duration, op)
}

// show prints one measurement as it is made.
func show(workload, system string, r loadgen.Result, unit string) {
	fmt.Printf("  %-28s %-34s %12s %s (p50 %.2f ms, p99 %.2f ms, %d calls)\n",
		workload, system, num(r.ItemsPerSec()), unit, r.P50Ms, r.P99Ms, r.Ops)
}

// saveResponse writes a captured response for the no-op server.
func saveResponse(dir, name string, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".pb"), b, 0o600)
}

// timed runs fn and returns how long it took.
func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

// Names of the systems in the table.
const (
	sysExchange  = "exchange"
	sysTransport = "no-op gRPC over mTLS (transport ceiling)"
	sysStorage   = "raw bbolt, same group commit (storage ceiling)"
	sysEtcdPut   = "etcd, one put per call"
)

func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
func below(x float64) func(float64) bool   { return func(v float64) bool { return v < x } }
