package geo

import (
	"cmp"
	"strconv"
	"strings"
)

// CompareCodes orders location codes as people read them: by country,
// then by number when both subdivisions are numbers (KH-2 before KH-12),
// else by code; "" (no place) first. It suits slices.SortFunc.
func CompareCodes(a, b string) int {
	ca, na, _ := strings.Cut(a, "-")
	cb, nb, _ := strings.Cut(b, "-")
	if c := cmp.Compare(ca, cb); c != 0 || a == "" || b == "" {
		return cmp.Or(c, cmp.Compare(a, b))
	}
	x, errA := strconv.Atoi(na)
	y, errB := strconv.Atoi(nb)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return cmp.Compare(a, b)
}
