package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/store"
)

// TestStorageAlarmLogsOnceAMinute: the first refusal for lack of storage
// is logged at once with its cause; the next ones within a minute are
// only counted, and the first line after the minute says how many there
// were.
func TestStorageAlarmLogsOnceAMinute(t *testing.T) {
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	refusal := &store.Error{Kind: store.KindResourceExhausted, Message: "the exchange's disk is full", Err: errNoSpace{}}
	for range 10 {
		raiseStorageAlarm(context.Background(), log, "CreateReferral", refusal)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), `"cause":"no space left on device"`) {
		t.Fatalf("after 10 refusals, %d lines:\n%s", n, logs.String())
	}
	v, _ := storageAlarms.Load(log)
	a := v.(*storageAlarm)
	a.mu.Lock()
	a.last = a.last.Add(-storageAlarmEvery - time.Second)
	a.mu.Unlock()
	raiseStorageAlarm(context.Background(), log, "CreateReferral", refusal)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"refused_since_last_line":9`) {
		t.Fatalf("a minute later:\n%s", logs.String())
	}
}

// errNoSpace is a cause whose text is the system's.
type errNoSpace struct{}

func (errNoSpace) Error() string { return "no space left on device" }
