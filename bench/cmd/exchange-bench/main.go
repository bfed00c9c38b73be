// Command exchange-bench is make bench: it measures the exchange against
// references measured in the same run and prints side-by-side ratios,
// never a bare time as a verdict. BENCHMARKS.md explains the workloads, the
// references and how to read the table.
//
// Every system is a separate process on 127.0.0.1 with a fresh data
// directory (the storage ceiling excepted: it is raw bbolt inside this
// process), driven by the same load generator (package loadgen) with the
// same payloads, concurrency and connection count. Rounds alternate the
// systems (the order rotates each round) and the table shows each round
// and the medians.
//
//	exchange-bench --bin bin/bench [--rounds 3] [--duration 5s] [--only create,batch,...]
//
// --bin must hold exchanged, noop-server, etcd and etcd-load (make bench
// builds them there).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	bin, work, out, cpuprofile string
	serverProfile              string        // directory for exchanged's CPU profiles
	serverProfileFor           time.Duration // how long each of them lasts
	keep                       bool
	rounds                     int
	warmup, duration           time.Duration
	conns, clients             int
	batchClients, batch        int
	watchers, watchWrites      int
	records, rows, plans       int
	etcdKeys                   int
	pullPage                   int
	pullCutRows                int // rows' worth of bytes after which pull-broken's link is cut
	only                       map[string]bool
}

// workloads in the order they run.
var workloads = []string{"writes", "replicated", "watch", "startup", "reads", "filtered", "pull", "pull-broken", "overlaps"}

// want reports whether the run includes the workload.
func (b *bench) want(w string) bool { return len(b.opt.only) == 0 || b.opt.only[w] }

func main() {
	var o options
	var only string
	flag.StringVar(&o.bin, "bin", "bin/bench", "directory holding exchanged, noop-server, etcd and etcd-load")
	flag.StringVar(&o.work, "work", "", "scratch directory (default: a new one under $TMPDIR, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch directory (data directories and server logs)")
	flag.StringVar(&o.out, "out", "", "also write the tables to this file")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of this process (load generator and storage ceiling) to the file")
	flag.StringVar(&o.serverProfile, "server-cpuprofile", "", "save a CPU profile of every exchanged the bench starts into this directory, from its start for --server-profile-for")
	flag.DurationVar(&o.serverProfileFor, "server-profile-for", 0, "how long each server profile lasts (0: --warmup plus --duration, one write window)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per workload (systems alternate within each)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each measured window (not counted)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured window of each throughput measurement")
	flag.IntVar(&o.conns, "conns", 4, "connections each client opens (all systems)")
	flag.IntVar(&o.clients, "clients", 64, "concurrent clients of the unary workloads (Create, Get, List)")
	flag.IntVar(&o.batchClients, "batch-clients", 8, "concurrent clients of the batched push")
	flag.IntVar(&o.batch, "batch", 100, "referrals per batched push")
	flag.IntVar(&o.watchers, "watchers", 100, "watch streams of the fan-out")
	flag.IntVar(&o.watchWrites, "watch-writes", 50, "batches written per fan-out round (events = batches × --batch)")
	flag.IntVar(&o.records, "records", 1_000_000, "referrals in the database of the read and start-up workloads")
	flag.IntVar(&o.rows, "rows", 1_000_000, "rows of the pulled dataset")
	flag.IntVar(&o.plans, "plans", 10_000, "plans of the FindOverlaps workload")
	flag.IntVar(&o.etcdKeys, "etcd-keys", 100_000, "keys preloaded into etcd for its Get and range references")
	flag.IntVar(&o.pullPage, "pull-page", 0, "rows per pulled message (0: the server's default)")
	flag.IntVar(&o.pullCutRows, "pull-cut-rows", 100_000, "pull-broken cuts its link after the bytes of this many rows, on each connection")
	flag.StringVar(&only, "only", "", "comma-separated workloads to run, of "+strings.Join(workloads, ","))
	flag.Parse()
	o.only = map[string]bool{}
	for _, w := range strings.Split(only, ",") {
		if w = strings.TrimSpace(w); w != "" {
			o.only[w] = true
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "exchange-bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	for w := range o.only {
		if !slices.Contains(workloads, w) {
			return fmt.Errorf("--only: unknown workload %q (want %s)", w, strings.Join(workloads, ", "))
		}
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	o.bin = bin
	for _, b := range []string{"exchanged", "noop-server", "etcd", "etcd-load"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%s: %w (make bench builds it)", b, err)
		}
	}
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "exchange-bench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.work, 0o700); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(o.work)
	}
	if err := os.MkdirAll(filepath.Join(o.work, "logs"), 0o700); err != nil {
		return err
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, err := newEnv(o, o.work)
	if err != nil {
		return err
	}
	b := &bench{env: e, rep: &report{}}
	defer b.stopAll()
	start := time.Now()
	fmt.Printf("exchange-bench: %d rounds of %s (+%s warm-up), %d clients on %d connections; scratch %s\n",
		o.rounds, o.duration, o.warmup, o.clients, o.conns, o.work)
	steps := []struct {
		names []string
		run   func(context.Context) error
	}{
		{[]string{"writes"}, b.writes},
		{[]string{"replicated"}, b.replicated}, // two replicas on a 3-member etcd cluster
		{[]string{"watch"}, b.watch},
		{[]string{"startup", "reads", "filtered"}, b.startupAndReads}, // one seeded database
		{[]string{"pull", "pull-broken"}, b.pulls},                    // one seeded dataset
		{[]string{"overlaps"}, b.overlaps},
	}
	for _, step := range steps {
		if !slices.ContainsFunc(step.names, b.want) {
			continue
		}
		name := strings.Join(step.names, " and ")
		t := time.Now()
		fmt.Printf("\n== %s\n", name)
		if err := step.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		b.stopAll()
		fmt.Printf("== %s done in %s\n", name, time.Since(t).Round(time.Second))
	}
	b.rep.note("Machine: %s; Go %s; GOMAXPROCS %d. Run took %s.", machine(), runtime.Version(), runtime.GOMAXPROCS(0), time.Since(start).Round(time.Second))
	fmt.Println()
	b.rep.write(os.Stdout)
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		b.rep.write(f)
		if err := f.Close(); err != nil {
			return err
		}
	}
	if names := b.rep.unjudged(); len(names) > 0 {
		return fmt.Errorf("no figures to judge these targets on (a fault of the benchmark): %s", strings.Join(names, "; "))
	}
	return nil
}

// machine describes the CPU: count and model from /proc/cpuinfo.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d × %s", runtime.NumCPU(), model)
}
