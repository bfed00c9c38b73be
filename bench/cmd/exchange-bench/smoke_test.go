package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// built is the directory benchBin builds the binaries into, once for
// every test of the package, and the error of that build.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// TestMain removes the binaries benchBin built, if a test asked for them.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// benchBin returns a directory holding what make bench builds, built by
// the first test that asks: linking etcd and the exchange's binaries
// twice cost the package's tests seconds and bought nothing. The tests
// that run the binaries do not run in parallel (checkCleanedUp looks for
// any process left running from the directory).
func benchBin(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "exchange-bench-bin-"); built.err == nil {
			built.err = buildBench(built.dir)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// buildBench builds into dir what make bench builds: exchanged, this
// program and the no-op server from the main module, etcd and etcd-load
// from the module bench/etcd.
func buildBench(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	for _, b := range []struct {
		dir  string
		args []string
	}{
		{root, []string{"build", "-o", dir + "/", "./cmd/exchanged", "./bench/cmd/exchange-bench", "./bench/cmd/noop-server"}},
		{filepath.Join(root, "bench", "etcd"), []string{"build", "-o", filepath.Join(dir, "etcd"), "go.etcd.io/etcd/server/v3"}},
		{filepath.Join(root, "bench", "etcd"), []string{"build", "-o", dir + "/", "./cmd/etcd-load"}},
	} {
		cmd := exec.Command("go", b.args...)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(b.args, " "), b.dir, err, out)
		}
	}
	return nil
}

// targets are the comparisons that carry the targets; each must
// come out of a run with a verdict.
var targets = []string{
	"Create: exchange / etcd put",
	"Create: exchange / transport ceiling",
	"Batched push: exchange / etcd, txn of 100 puts per call",
	"Batched push: exchange / storage ceiling",
	"Watch fan-out: exchange / etcd",
	"Watch fan-out: exchange / transport ceiling",
	"Start-up, cold page cache",
	"Start-up, warm page cache",
	"Filtered List page, no match / unfiltered (latency)",
	"Filtered List page, 1% match / unfiltered (latency)",
	"Deep List page / first page (latency)",
	"Dataset pull rate",
	"Dataset pull: server Go heap growth",
	"Dataset pull: server anonymous RSS growth",
	"Pull through a link cut every 5,000 rows / unbroken pull (time)",
	"FindOverlaps, warm index",
	"FindOverlaps, first call after a plan changed",
}

// TestBenchRunsEveryWorkload runs the built benchmark, every workload and
// every reference (etcd included) on small data and short windows: the
// figures mean nothing, but every target must get a verdict, every server
// must be stopped and the scratch directory removed. make bench runs the
// same binaries at full size.
func TestBenchRunsEveryWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcd and runs every server; skipped with -short")
	}
	bin := benchBin(t)
	results := filepath.Join(t.TempDir(), "results.md")
	// Every workload but the replicated one, whose calls through etcd
	// outlast so short a window (TestBenchReplicated runs it).
	var only []string
	for _, w := range workloads {
		if w != "replicated" {
			only = append(only, w)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "exchange-bench"), "--bin", bin, "--out", results,
		"--only", strings.Join(only, ","),
		"--rounds", "2", "--warmup", "50ms", "--duration", "200ms",
		"--records", "3000", "--rows", "20000", "--pull-cut-rows", "5000", "--plans", "300", "--etcd-keys", "1000",
		"--watchers", "10", "--watch-writes", "5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("exchange-bench: %v\n%s", err, out)
	}
	table, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	verdict := regexp.MustCompile(`\| (met|\*\*missed\*\*) \|$`)
	for _, name := range targets {
		found := false
		for _, line := range strings.Split(string(table), "\n") {
			if strings.HasPrefix(line, "| "+name+" | ") {
				found = true
				if strings.Count(line, "·") != 1 || !verdict.MatchString(line) {
					t.Errorf("target row without two rounds and a verdict: %s", line)
				}
			}
		}
		if !found {
			t.Errorf("no row for the target %q in:\n%s", name, table)
		}
	}
	// The exchange's CPU per referral, its own and its sending clients',
	// for both write workloads.
	for _, workload := range []string{"Create, 1 per call", "Batched push, 100 per call"} {
		for _, unit := range []string{"µs server CPU per referral", "µs client CPU per referral"} {
			row := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(workload) + ` \| exchange \| ([0-9.,]+) \| ` + regexp.QuoteMeta(unit) + ` \|`).FindSubmatch(table)
			if row == nil || strings.Trim(string(row[1]), "0.,") == "" {
				t.Errorf("no positive %q for %q in:\n%s", unit, workload, table)
			}
		}
	}

	checkCleanedUp(t, bin, out)
}

// checkCleanedUp checks that every server a run of the binaries in bin
// started has exited and that the scratch directory named on the first
// line of its output out is gone.
func checkCleanedUp(t *testing.T, bin string, out []byte) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range procs {
		if path, err := os.Readlink(exe); err == nil && strings.HasPrefix(path, bin+"/") {
			t.Errorf("%s is still running (%s)", path, exe)
		}
	}
	scratch := regexp.MustCompile(`scratch (\S+)`).FindSubmatch(out)
	if scratch == nil {
		t.Fatalf("no scratch directory in the output:\n%s", out)
	}
	if _, err := os.Stat(string(scratch[1])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch directory %s left behind (%v)", scratch[1], err)
	}
}

// TestBenchRefusesWhatItCannotRun checks the errors a mistyped run gets
// before it starts anything.
func TestBenchRefusesWhatItCannotRun(t *testing.T) {
	err := run(options{bin: t.TempDir(), only: map[string]bool{"writes": true, "inbox": true}})
	if err == nil || !strings.Contains(err.Error(), `--only: unknown workload "inbox"`) {
		t.Errorf("run with --only inbox = %v, want it named as unknown", err)
	}
	err = run(options{bin: t.TempDir(), only: map[string]bool{}})
	if err == nil || !strings.Contains(err.Error(), "exchanged") || !strings.Contains(err.Error(), "make bench builds it") {
		t.Errorf("run without binaries = %v, want the missing binary named", err)
	}
}
