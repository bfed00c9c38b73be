package store

import (
	"math/bits"
	"strings"
	"testing"
	"time"
)

// decodeID turns an id back into its 128 bits.
func decodeID(t *testing.T, id string) (hi, lo uint64) {
	t.Helper()
	for _, c := range id {
		v := strings.IndexRune(idAlphabet, c)
		if v < 0 || len(id) != 26 {
			t.Fatalf("%q is not an id", id)
		}
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(v)
	}
	return hi, lo
}

// TestIDsInOneMillisecondAreNotGuessable makes 10,000 ids in the same
// millisecond, as a large batch does: they must be unique and in order
// (so that records still append to their buckets), and no id may follow
// from its neighbour: consecutive ids differ by at least 2^40 and by
// amounts that differ from pair to pair.
func TestIDsInOneMillisecondAreNotGuessable(t *testing.T) {
	at := laterThanEveryID()
	const n = 10_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID(at)
	}
	distinctGaps := map[[2]uint64]bool{}
	var smallest [2]uint64 = [2]uint64{^uint64(0), ^uint64(0)}
	for i := 1; i < n; i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("id %d %q does not sort after %q", i, ids[i], ids[i-1])
		}
		h0, l0 := decodeID(t, ids[i-1])
		h1, l1 := decodeID(t, ids[i])
		lo, borrow := bits.Sub64(l1, l0, 0)
		hi := h1 - h0 - borrow
		if hi == 0 && lo < 1<<40 {
			t.Fatalf("ids %d and %d differ by %d, less than 2^40: the next id follows from the last", i-1, i, lo)
		}
		gap := [2]uint64{hi, lo}
		distinctGaps[gap] = true
		if hi < smallest[0] || hi == smallest[0] && lo < smallest[1] {
			smallest = gap
		}
	}
	if len(distinctGaps) < n-10 {
		t.Errorf("only %d distinct gaps between %d consecutive ids: the steps are predictable", len(distinctGaps), n)
	}
	if ms, _ := decodeID(t, ids[0]); ms>>16 != uint64(at.UnixMilli()) {
		t.Errorf("the first id's time is %d ms, want %d", ms>>16, at.UnixMilli())
	}
	log2 := bits.Len64(smallest[1]) - 1
	if smallest[0] > 0 {
		log2 = 64 + bits.Len64(smallest[0]) - 1
	}
	t.Logf("smallest gap between %d consecutive ids made in one millisecond: about 2^%d", n, log2)
}

// laterThanEveryID returns a time a second after the last id made in this
// process, so that a test's ids start a millisecond of their own whatever
// ran before.
func laterThanEveryID() time.Time {
	lastID.Lock()
	defer lastID.Unlock()
	return time.UnixMilli(int64(lastID.hi>>16) + 1000).UTC()
}

// TestIDsSortByTimeAcrossMilliseconds makes ids over several
// milliseconds, several in each: each carries its millisecond in front
// and sorts after every id of an earlier millisecond.
func TestIDsSortByTimeAcrossMilliseconds(t *testing.T) {
	t0 := laterThanEveryID()
	prev := ""
	for ms := range 200 {
		at := t0.Add(time.Duration(ms) * time.Millisecond)
		for range 1 + ms%7 {
			id := newID(at)
			if id <= prev {
				t.Fatalf("id %q made at +%dms does not sort after %q", id, ms, prev)
			}
			if hi, _ := decodeID(t, id); hi>>16 != uint64(at.UnixMilli()) {
				t.Fatalf("id %q made at +%dms carries %d ms, want %d", id, ms, hi>>16, at.UnixMilli())
			}
			prev = id
		}
	}
}
