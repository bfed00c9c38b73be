package main

import (
	"runtime/debug"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestParseAckDeadlines(t *testing.T) {
	got, err := parseAckDeadlines("urgent=2h, emergency=30m")
	if err != nil {
		t.Fatal(err)
	}
	if got[exchangev1.Urgency_URGENCY_URGENT] != 2*time.Hour || got[exchangev1.Urgency_URGENCY_EMERGENCY] != 30*time.Minute ||
		got[exchangev1.Urgency_URGENCY_ROUTINE] != 72*time.Hour {
		t.Fatalf("got %v", got)
	}
	for _, bad := range []string{"urgent", "urgent=soon", "urgent=-1h", "unspecified=1h", "later=1h"} {
		if _, err := parseAckDeadlines(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestTuneGC checks the collector's default and that GOGC in the
// environment wins.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("without GOGC the collector's target is %d, want %d", got, defaultGCPercent)
	}
	tuneGC(func(k string) string { return map[string]string{"GOGC": "100"}[k] })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC=100 the collector's target is %d, want 100", got)
	}
}
