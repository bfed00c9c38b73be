package server

import (
	"fmt"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// A row's key is its period, location and category values (and the
// contributor, which is the caller for every write of a call). Two writes
// of one WriteDatasetRows call with the same key would leave only the
// later one stored while both were reported as accepted; an identical
// repeat would be counted twice. So a write that passes its checks and
// repeats the key of an earlier write of the call that passed them is
// refused in its result, naming the earlier one, whether the two rows
// agree or not, and the counts say what was stored. (An invalid write is
// reported with its own violations and stores nothing, so nothing of it
// could be replaced.) The check is here, in the exchange,
// so that every caller gets it; exchangectl also checks a whole file
// across its calls (rowfile), naming the lines.

// rowKeys remembers the key of each write of one call.
type rowKeys map[string]int

// repeats returns the index of an earlier write of the call with the same
// key as write i, and true; or records write i's key and returns false.
// A write without a row, period or location has no key; its own checks
// refuse it.
func (k rowKeys) repeats(i int, w *exchangev1.RowWrite) (int, bool) {
	r := w.GetRow()
	if r == nil || r.GetPeriod() == "" || r.GetLocation() == "" {
		return 0, false
	}
	key := string(store.RowKey(&exchangev1.Row{Period: r.GetPeriod(), Location: r.GetLocation(), Categories: r.GetCategories()}))
	if first, ok := k[key]; ok {
		return first, true
	}
	k[key] = i
	return 0, false
}

// repeatedKeyViolation is the violation of write i that repeats the key of
// write first.
func repeatedKeyViolation(i, first int) (field, description string) {
	return fmt.Sprintf("writes[%d].row", i),
		fmt.Sprintf("repeats the key (period, location and categories) of writes[%d]; a call may write each key once", first)
}
