package geo

import (
	"slices"
	"testing"
)

func TestCompareCodesOrdersAsPeopleRead(t *testing.T) {
	codes := []string{"VN-HN", "KH-12", "KH", "", "KH-2", "LA-VT", "KH-10", "LA-VI", "VN-01"}
	slices.SortFunc(codes, CompareCodes)
	want := []string{"", "KH", "KH-2", "KH-10", "KH-12", "LA-VI", "LA-VT", "VN-01", "VN-HN"}
	if !slices.Equal(codes, want) {
		t.Fatalf("sorted %q, want %q", codes, want)
	}
}
