package main

import (
	"os"
	"testing"
	"time"
)

// TestParseStatCPUAddsUserAndSystemTime reads utime and stime (fields 14
// and 15) past a command name holding spaces and a parenthesis.
func TestParseStatCPUAddsUserAndSystemTime(t *testing.T) {
	stat := "4242 (exch) anged) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 56 0 0 20 0 9 0 100 0 0\n"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := (1234 + 56) * 10 * time.Millisecond; got != want {
		t.Fatalf("parseStatCPU = %v, want %v (utime 1234 + stime 56 ticks)", got, want)
	}
	if _, err := parseStatCPU("4242 exchanged S 1"); err == nil {
		t.Fatal("a stat line without a command name in parentheses was read")
	}
	if _, err := parseStatCPU("4242 (x) S 1 2 3"); err == nil {
		t.Fatal("a short stat line was read")
	}
}

// TestServerProcessCPUGrowsWithWork reads this process's own CPU time before
// and after spinning for 200 ms of CPU.
func TestServerProcessCPUGrowsWithWork(t *testing.T) {
	before, err := serverProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		x++
	}
	after, err := serverProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 50*time.Millisecond {
		t.Fatalf("CPU time grew by %v over 300 ms of spinning (x=%d)", d, x)
	}
}
