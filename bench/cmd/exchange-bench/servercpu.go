package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alltogether/exchange/bench/loadgen"
)

// clockTicksPerSecond is Linux's USER_HZ, the unit of utime and stime in
// /proc/PID/stat: 100 on every Linux architecture Go supports.
const clockTicksPerSecond = 100

// serverProcessCPU returns the CPU time, user and system, that process pid and
// its threads have used so far, from /proc/PID/stat (fields 14 and 15).
func serverProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime + stime from the text of /proc/PID/stat. The
// command name (field 2) is in parentheses and may hold spaces, so the
// fields are counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat without a command name: %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat with %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicksPerSecond, nil
}

// serverCPU is a server's CPU time over a load run, and the items the
// run completed in all (warm-up included), so that the two cover the
// same span.
type serverCPU struct {
	cpu   time.Duration
	items int64
	// client is the bench's own CPU time over the same span: the load
	// generator and the client library, which share the machine with the
	// server.
	client time.Duration
}

// perItem is the server's CPU time per item, in microseconds; 0 if the
// run completed nothing.
func (s serverCPU) perItem() float64 { return microsPer(s.cpu, s.items) }

// clientPerItem is the bench's own CPU time per item, in microseconds.
func (s serverCPU) clientPerItem() float64 { return microsPer(s.client, s.items) }

// microsPer is d per item in microseconds; 0 for no item.
func microsPer(d time.Duration, items int64) float64 {
	if items == 0 {
		return 0
	}
	return float64(d) / float64(time.Microsecond) / float64(items)
}

// measureServerCPU runs the load generator with op against the server
// process pid and also returns the server's CPU time over the whole run
// (warm-up and window) with every item completed in it. CPU per item is
// what a server costs whatever else shares the machine, where the
// window's rate depends on the load around it. It also returns the
// bench's own CPU time over the run, the clients' share of the machine.
func (b *bench) measureServerCPU(ctx context.Context, pid, workers int, op loadgen.Op) (loadgen.Result, serverCPU, error) {
	var items atomic.Int64
	counted := func(ctx context.Context, w int, seq int64) (int, error) {
		n, err := op(ctx, w, seq)
		if err == nil {
			items.Add(int64(n))
		}
		return n, err
	}
	before, err := serverProcessCPU(pid)
	if err != nil {
		return loadgen.Result{}, serverCPU{}, err
	}
	clientBefore, err := processCPU()
	if err != nil {
		return loadgen.Result{}, serverCPU{}, err
	}
	r, runErr := b.throughput(ctx, workers, counted)
	after, err := serverProcessCPU(pid)
	if runErr != nil {
		return r, serverCPU{}, runErr
	}
	if err != nil {
		return r, serverCPU{}, err
	}
	clientAfter, err := processCPU()
	if err != nil {
		return r, serverCPU{}, err
	}
	return r, serverCPU{cpu: after - before, items: items.Load(), client: clientAfter - clientBefore}, nil
}
