package rowfile

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A row's key in its dataset is its period, location and the values of
// its categories (and its contributor, which the server takes from the
// certificate of whoever pushes the file, the same for every row). Two
// rows of one file with the same key cannot both be stored: the later
// would replace the earlier, and an identical repeat would be counted
// twice. So a Reader reports a row that repeats the key of an earlier
// row as a LineError naming the earlier line ("repeats the key of line
// 3"), whether the two rows agree or not.
//
// To do so it keeps, for every row read, a digest of its key (the first
// 16 bytes of its SHA-256) and the row's line: a few dozen bytes a row
// (about 60 bytes in all, measured with a million rows), not the rows.
// Two different keys share a digest with probability below 2^-64 even
// for 4 billion rows.

// keyDigest is the digest of a row key.
type keyDigest [16]byte

// seenKeys maps the digest of each key read to the line of its row.
type seenKeys map[keyDigest]int

// digestOf returns the digest of a row's key: period, location, then the
// categories with a value, in key order, each part preceded by its length.
func digestOf(r *exchangev1.Row) keyDigest {
	keys := make([]string, 0, len(r.GetCategories()))
	for k, v := range r.GetCategories() {
		if v != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	h := sha256.New()
	var n [8]byte
	part := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	part(r.GetPeriod())
	part(r.GetLocation())
	for _, k := range keys {
		part(k)
		part(r.GetCategories()[k])
	}
	var d keyDigest
	copy(d[:], h.Sum(nil))
	return d
}

// check returns a LineError when the row on line repeats the key of an
// earlier row, and otherwise remembers its key.
func (s seenKeys) check(r *exchangev1.Row, line int) error {
	d := digestOf(r)
	if first, ok := s[d]; ok {
		return &LineError{Line: line, Err: fmt.Errorf("repeats the key (period, location and categories) of line %d; a file may give each key once", first)}
	}
	s[d] = line
	return nil
}
