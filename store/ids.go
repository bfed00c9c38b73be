package store

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"sync"
	"time"
)

// idAlphabet is Crockford's base32 in lower case: no i, l, o, u.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// newID returns a 26-character identifier: 48 bits of milliseconds, then
// an 80-bit part that is random but, within one process, only grows.
//
// The time in front keeps ids in creation order at millisecond
// granularity, so that new records append to the end of their buckets
// (see appendBuckets) instead of splitting pages. Within a millisecond the
// order matters as much (a batch makes hundreds of ids in one), so an id
// made in the same millisecond as the last one (or, if the clock stepped
// back, in an earlier one) is the last one plus idStep plus a uniform
// random 64-bit number: ids still only grow, but no id can be worked out
// from a neighbour, which was possible when each was its predecessor plus
// one (an agency that created a referral could name the referrals made
// just before and after it). Guessing a neighbour takes about 2^63 tries.
//
// The first id of a millisecond starts at a random 79-bit value (the top
// bit of the 80 left clear), which leaves room for about 2^79/2^63 = 65,536
// ids in the same millisecond before the sum carries into the time part;
// a carry only makes the id look a millisecond later, and ids go on
// growing.
//
// Uniqueness: within the process every id is strictly greater than the
// one before, so two cannot be equal. Across restarts, ids of a later
// millisecond are greater than every earlier one; and a new record is
// never stored over an existing key (table.insert refuses with
// AlreadyExists), so even a collision of 79 random bits could not
// overwrite anything.
func newID(now time.Time) string {
	var r [18]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	// hi: 48 bits of milliseconds, then the top 16 of the 80-bit part;
	// lo: the low 64 bits of the 80-bit part.
	hi := uint64(now.UnixMilli())<<16 | uint64(binary.BigEndian.Uint16(r[:2])&0x7fff)
	lo := binary.BigEndian.Uint64(r[2:10])
	step := binary.BigEndian.Uint64(r[10:18])
	lastID.Lock()
	if hi>>16 <= lastID.hi>>16 {
		// Not a later millisecond: the last id plus a random step.
		var carry uint64
		lo, carry = bits.Add64(lastID.lo, idStep, 0)
		hi = lastID.hi + carry
		lo, carry = bits.Add64(lo, step, 0)
		hi += carry
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

// idStep is the least distance between two ids made in the same
// millisecond; the random part of the step comes on top of it, so that
// neighbours are never close however the random numbers fall.
const idStep = 1 << 40

// lastID is the last id newID made, as two 64-bit halves.
var lastID struct {
	sync.Mutex
	hi, lo uint64
}
