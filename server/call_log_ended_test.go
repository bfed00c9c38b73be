package server

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestAWatchEndedByTheClientLogsWhy follows referrals until the client's
// deadline passes, then until the client cancels, and checks that each
// call's line carries that end (DEADLINE_EXCEEDED at Warn, CANCELED at
// Info, as callLogLevel maps them), not OK: the watch itself returns
// nothing when its context ends.
func TestAWatchEndedByTheClientLogsWhy(t *testing.T) {
	x, logs := loggedExchange(t, slog.LevelInfo)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")

	watchUntilEnd := func(ctx context.Context, cancel context.CancelFunc, want codes.Code) {
		t.Helper()
		stream, err := ilo.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if cancel != nil {
			if _, err := stream.Recv(); err != nil { // the start of the stream
				t.Fatal(err)
			}
			cancel()
		}
		for {
			if _, err := stream.Recv(); err != nil {
				if status.Code(err) != want {
					t.Fatalf("the client got %v, want %v", err, want)
				}
				return
			}
		}
	}
	waitForLines := func(n int) []map[string]any {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			lines := callLines(t, logs, "WatchReferrals")
			if len(lines) >= n || time.Now().After(deadline) {
				if len(lines) != n {
					t.Fatalf("%d lines for WatchReferrals, want %d:\n%s", len(lines), n, logs.String())
				}
				return lines
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	watchUntilEnd(ctx, nil, codes.DeadlineExceeded)
	line := waitForLines(1)[0]
	wantValues(t, line, map[string]any{"grpc.code": "DeadlineExceeded", "level": "WARN", "caller": "agency/ilo"})
	if _, ok := line["grpc.request.deadline"]; !ok {
		t.Errorf("the line names no deadline: %v", line)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	watchUntilEnd(ctx, cancel, codes.Canceled)
	wantValues(t, waitForLines(2)[1], map[string]any{"grpc.code": "Canceled", "level": "INFO", "caller": "agency/ilo"})
}
