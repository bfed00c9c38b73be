package store

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// idAlphabet is Crockford's base32 in lower case: no i, l, o, u.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// newID returns a 26-character identifier that sorts by creation time (48
// bits of milliseconds) followed by 80 random bits, like a ULID. Within one
// process ids only grow, like a monotonic ULID: an id made in the same
// millisecond as the last one (or, if the clock stepped back, in an earlier
// one) is the last one plus one. So new records append to the end of their
// buckets instead of landing between siblings made in the same millisecond,
// which would split pages and leave them partly empty.
func newID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	lastID.Lock()
	if ms := hi >> 16; ms <= lastID.hi>>16 {
		// Not a later millisecond: one more than the last id.
		hi, lo = lastID.hi, lastID.lo+1
		if lo == 0 {
			hi++
		}
	}
	lastID.hi, lastID.lo = hi, lo
	lastID.Unlock()
	// 128 bits → 26 base32 characters (130 bits, top two zero).
	out := make([]byte, 26)
	for i := 25; i >= 0; i-- {
		out[i] = idAlphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}

// lastID is the last id newID made, as two 64-bit halves.
var lastID struct {
	sync.Mutex
	hi, lo uint64
}
