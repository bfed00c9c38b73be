package clienttest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"math"
	"slices"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// publicRound is what the fake's public aggregate view shows for the value
// v of measure in row r, as the real server does (server/aggregate_rounding.go):
// 0 < |v| < base becomes base (with v's sign) with probability |v|/base and
// 0 otherwise, by a draw keyed on the fake's key, the dataset, the row's
// key, the measure and the value; other values stay as they are.
func publicRound(key []byte, dataset string, r *exchangev1.Row, measure string, v, base float64) float64 {
	size := math.Abs(v)
	if size == 0 || size >= base {
		return v
	}
	mac := hmac.New(sha256.New, key)
	fields := []string{dataset, r.Period, r.Location, r.Contributor}
	for _, k := range slices.Sorted(maps.Keys(r.Categories)) {
		fields = append(fields, k, r.Categories[k])
	}
	for _, f := range append(fields, measure) {
		mac.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		mac.Write([]byte(f))
	}
	mac.Write(binary.BigEndian.AppendUint64(nil, math.Float64bits(v)))
	if float64(binary.BigEndian.Uint64(mac.Sum(nil))>>11)/(1<<53) < size/base {
		return math.Copysign(base, v)
	}
	return 0
}
