package store

import (
	"testing"
	"time"
)

// TestLogTimestampIsMadeOncePerTransaction: the change-log and audit
// entries of a transaction (two for every referral of a batch) share one
// timestamp, the transaction's time, made at first use.
func TestLogTimestampIsMadeOncePerTransaction(t *testing.T) {
	now := time.Date(2026, 12, 7, 17, 30, 0, 123456789, time.UTC)
	w := &writeTx{now: now}
	first := w.logTimestamp()
	if !first.AsTime().Equal(now) {
		t.Fatalf("logTimestamp = %v, want the transaction's time %v", first.AsTime(), now)
	}
	if n := testing.AllocsPerRun(100, func() {
		if w.logTimestamp() != first {
			t.Fatal("logTimestamp made a second timestamp in one transaction")
		}
	}); n != 0 {
		t.Fatalf("logTimestamp allocated %.0f times after its first use, want 0", n)
	}
	if w.timestamp() == first {
		t.Fatal("timestamp, for records that are stored or returned, shares the log entries' timestamp")
	}
}
