package server

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"maps"
	"math"
	"slices"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// minRoundingBase is the smallest rounding base of a public aggregate view,
// whatever threshold a dataset sets.
const minRoundingBase = 5

// roundingLabel is the HKDF label under which the rounding key is derived
// from the store's page secret; changing it redraws every rounding.
const roundingLabel = "alltogether/exchange: public aggregate rounding v1"

// rowRounding is the disclosure control of the public aggregate view:
// unbiased random rounding to base b of the finest cells (Fellegi,
// "Controlled random rounding", Survey Methodology 1(2), 1975). A finest
// cell is one row's value of one measure. A value v with 0 < |v| < b is
// shown as b (with the sign of v) with probability |v|/b and as 0
// otherwise; 0 and values of magnitude b or more are shown as they are.
// The draw is keyed, not random per call: the same row, measure and value
// always round the same way, so that repeating or overlapping queries
// reveal nothing new, and a changed value is drawn afresh.
type rowRounding struct {
	key     []byte
	dataset string
	base    float64
}

// newRowRounding prepares the rounding of one dataset's rows to base, with
// a key derived from the store's secret.
func newRowRounding(secret []byte, dataset string, base int32) (*rowRounding, error) {
	if len(secret) == 0 {
		return nil, errors.New("public aggregates: the store has no secret to key the rounding (opened read-only?)")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, roundingLabel, sha256.Size)
	if err != nil {
		return nil, err
	}
	return &rowRounding{key: key, dataset: dataset, base: float64(base)}, nil
}

// roundingBaseOf is the base a dataset's public view rounds to: its
// suppression threshold, and never less than minRoundingBase.
func roundingBaseOf(d *exchangev1.Dataset) int32 {
	return max(minRoundingBase, suppressionOf(d))
}

// round returns what the public view shows for the value v of measure in
// row r.
func (rr *rowRounding) round(r *exchangev1.Row, measure string, v float64) float64 {
	size := math.Abs(v)
	if size == 0 || size >= rr.base {
		return v
	}
	if rr.draw(r, measure, v) < size/rr.base {
		return math.Copysign(rr.base, v)
	}
	return 0
}

// draw is uniform in [0, 1) for a (dataset, row key, measure, value) and
// the same every time for the same ones: HMAC-SHA256 under the rounding
// key, its first 53 bits as a fraction.
func (rr *rowRounding) draw(r *exchangev1.Row, measure string, v float64) float64 {
	mac := hmac.New(sha256.New, rr.key)
	field := func(s string) {
		writeLength(mac, len(s))
		mac.Write([]byte(s))
	}
	field(rr.dataset)
	field(r.GetPeriod())
	field(r.GetLocation())
	field(r.GetContributor())
	keys := slices.Sorted(maps.Keys(r.GetCategories()))
	writeLength(mac, len(keys))
	for _, k := range keys {
		field(k)
		field(r.GetCategories()[k])
	}
	field(measure)
	var bits [8]byte
	binary.BigEndian.PutUint64(bits[:], math.Float64bits(v))
	mac.Write(bits[:])
	sum := mac.Sum(nil)
	return float64(binary.BigEndian.Uint64(sum)>>11) / (1 << 53)
}

// writeLength writes n as 8 bytes, so that fields of the MAC input cannot
// run into each other.
func writeLength(h hash.Hash, n int) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
}
