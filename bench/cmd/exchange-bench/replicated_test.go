package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// replicatedRatios are the comparisons the replicated workload prints.
var replicatedRatios = []string{
	"Replicated Create: 2 replicas on etcd / exchange on bbolt",
	"Replicated Create: 2 replicas on etcd / etcd put (3 members)",
	"Replicated batched push: 2 replicas on etcd / exchange on bbolt",
	"Replicated batched push: 2 replicas on etcd / etcd 3 members, txn of 10 puts per call",
	"Replicated batched push: 2 replicas on etcd / etcd put (3 members, same round)",
	"Replicated Create: 2 replicas / 1 replica, both on etcd",
	"Replicated batched push: 2 replicas / 1 replica, both on etcd",
}

// twoReplicas matches what the workload prints after a window through
// two replicas: each replica's committed writes and the calls the etcd
// cluster answered.
var twoReplicas = regexp.MustCompile(`replica 0: ([\d,.]+) writes in [\d,.]+ etcd transactions; replica 1: ([\d,.]+) writes in [\d,.]+ etcd transactions; etcd answered ([\d,.]+) Range and ([\d,.]+) Txn calls`)

// TestBenchReplicated runs the replicated workload alone, built as make
// bench builds it, with fewer clients and batches of 10 so that calls
// through etcd complete within 1 s windows: every ratio gets a non-zero
// figure, both replicas commit writes in every window through two of
// them (the workload fails otherwise, and so does it when its etcd
// members do not form one cluster), and every etcd member and replica
// has exited at the end. The figures mean nothing.
func TestBenchReplicated(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcd and runs etcd clusters; skipped with -short")
	}
	bin := benchBin(t)
	results := filepath.Join(t.TempDir(), "results.md")
	cmd := exec.Command(filepath.Join(bin, "exchange-bench"), "--bin", bin, "--out", results, "--only", "replicated",
		"--rounds", "1", "--warmup", "300ms", "--duration", "1s",
		"--clients", "16", "--batch-clients", "2", "--batch", "10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("exchange-bench: %v\n%s", err, out)
	}
	table, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	ratio := regexp.MustCompile(`^\| [^|]+ \| ([\d.]+)× \| [\d.]+× \| \(context\) \| — \|$`)
	for _, name := range replicatedRatios {
		found := false
		for _, line := range strings.Split(string(table), "\n") {
			if !strings.HasPrefix(line, "| "+name+" | ") {
				continue
			}
			found = true
			m := ratio.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("ratio row without one round's ratio: %s", line)
			} else if v, _ := strconv.ParseFloat(m[1], 64); v <= 0 {
				t.Errorf("ratio row with a zero figure: %s", line)
			}
		}
		if !found {
			t.Errorf("no row for %q in:\n%s", name, table)
		}
	}
	windows := twoReplicas.FindAllStringSubmatch(string(out), -1)
	if len(windows) != 2 { // Create and the batched push, one round
		t.Errorf("%d windows through two replicas reported, want 2:\n%s", len(windows), out)
	}
	for _, w := range windows {
		for i, what := range []string{"replica 0's writes", "replica 1's writes", "etcd Range calls", "etcd Txn calls"} {
			if v, err := strconv.ParseFloat(strings.ReplaceAll(w[i+1], ",", ""), 64); err != nil || v <= 0 {
				t.Errorf("%s = %q in %q, want more than 0", what, w[i+1], w[0])
			}
		}
	}
	for _, unit := range []string{"store writes per committed etcd txn", "etcd Range calls per store write", "etcd Txn calls per committed txn"} {
		if !strings.Contains(string(table), " | "+unit+" | ") {
			t.Errorf("no %q figure in:\n%s", unit, table)
		}
	}
	checkCleanedUp(t, bin, out)
}
