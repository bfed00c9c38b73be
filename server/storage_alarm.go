package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/alltogether/exchange/store"
)

// storageAlarmEvery is how often, at most, the log repeats that storage
// is exhausted while refusals go on.
const storageAlarmEvery = time.Minute

// storageAlarm logs that the store refused a call for lack of storage (a
// full disk, a disk quota, or the database's size limit): the first
// refusal at once, with its cause, then at most one line a minute saying
// how many more there were. When a disk filled up, clients used to make
// the server log the same cause for each of some 17,000 refused calls.
// Every refusal still gets its call-log line; this is the one line that
// carries the cause.
type storageAlarm struct {
	mu         sync.Mutex
	last       time.Time // when the alarm last logged; zero before the first
	suppressed int       // refusals since then, not logged
}

// storageAlarms holds one alarm per logger, so that each server (tests run
// several in one process) logs its own first refusal.
var storageAlarms sync.Map // *slog.Logger → *storageAlarm

// raiseStorageAlarm records a refusal for lack of storage on log's alarm
// and logs it if it is the first in storageAlarmEvery.
func raiseStorageAlarm(ctx context.Context, log *slog.Logger, method string, e *store.Error) {
	v, _ := storageAlarms.LoadOrStore(log, &storageAlarm{})
	a := v.(*storageAlarm)
	now := time.Now()
	a.mu.Lock()
	if !a.last.IsZero() && now.Sub(a.last) < storageAlarmEvery {
		a.suppressed++
		a.mu.Unlock()
		return
	}
	before := a.suppressed
	a.last, a.suppressed = now, 0
	a.mu.Unlock()
	attrs := []any{"method", method, "refusal", e.Message, "refused_since_last_line", before}
	if e.Err != nil {
		attrs = append(attrs, "cause", e.Err.Error())
	}
	log.ErrorContext(ctx, "storage exhausted: writes are refused", attrs...)
}
