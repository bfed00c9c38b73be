package rowfile

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A row's key in its dataset is its period, location and the values of
// its categories, and its contributor. When a file is pushed, the server
// takes the contributor from the certificate of whoever pushes it, the
// same for every row; so two rows of the file with the same period,
// location and categories cannot both be stored: the later would replace
// the earlier, and an identical repeat would be counted twice. RowKeys
// finds such rows, so that a push can report the later line ("repeats
// the key of line 3"), whether the two rows agree or not. (A file pulled
// by a dataset's owner holds rows of several contributors and so may
// repeat keys in this sense; it is for reading, not for pushing as one
// agency.)
//
// RowKeys keeps, for every row checked, a digest of its key (the first
// 16 bytes of its SHA-256) and the row's line: a few dozen bytes a row,
// not the rows. Two different keys share a digest with probability below
// 2^-64 even for 4 billion rows.

// RowKeys remembers the keys of the rows of one file. The zero value is
// not ready; use NewRowKeys. It is not safe for concurrent use.
type RowKeys struct {
	seen map[keyDigest]int
}

// NewRowKeys returns an empty RowKeys.
func NewRowKeys() *RowKeys { return &RowKeys{seen: map[keyDigest]int{}} }

// Check returns a *LineError for line when the row repeats the period,
// location and category values of a row checked before (its contributor
// is not looked at), naming that row's line; otherwise it remembers the
// row's key and line and returns nil.
func (k *RowKeys) Check(r *exchangev1.Row, line int) error {
	d := digestOf(r)
	if first, ok := k.seen[d]; ok {
		return &LineError{Line: line, Err: fmt.Errorf("repeats the key (period, location and categories) of line %d; a file may give each key once", first)}
	}
	k.seen[d] = line
	return nil
}

// keyDigest is the digest of a row key.
type keyDigest [16]byte

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
