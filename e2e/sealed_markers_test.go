package e2e

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestMarkersInFindsWhatThePatternFinds checks the attacker test's fast
// marker scan against the regular expression it stands for, over bytes
// that hold markers of every kind and field at the edges of the buffer,
// next to each other, inside binary noise and cut short.
func TestMarkersInFindsWhatThePatternFinds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := [][]byte{
		[]byte("SEALED-0001-NAME"), []byte("PLAIN-0042-GUARD"), []byte("CONTROL-0999-REF"),
		[]byte("SEALED-1234-NOTE"), []byte("CONTROL-0007-GUARD"),
		[]byte("SEALED-01-NAME"), []byte("PLAIN-0042-GUAR"), []byte("CONTROL-0999"), []byte("SEALED-"),
		[]byte("SEALEDSEALED-0002-NOTE"), []byte("PLAIN-PLAIN-0003-REF"), []byte("-0004-NAME"),
	}
	for round := range 200 {
		var b bytes.Buffer
		for range rng.IntN(40) {
			if rng.IntN(3) == 0 {
				noise := make([]byte, rng.IntN(20))
				for i := range noise {
					noise[i] = byte(rng.IntN(256))
				}
				b.Write(noise)
			}
			b.Write(pieces[rng.IntN(len(pieces))])
		}
		want := map[string]bool{}
		for _, m := range markerPattern.FindAll(b.Bytes(), -1) {
			want[string(m)] = true
		}
		got := map[string]bool{}
		markersIn(got, b.Bytes())
		if !maps.Equal(got, want) {
			t.Fatalf("round %d: markersIn found %v, the pattern finds %v in %q", round, got, want, b.Bytes())
		}
	}
	// And the whole of a marker at the very end of the input.
	got := map[string]bool{}
	markersIn(got, []byte("xxCONTROL-0007-GUARD"))
	if !got["CONTROL-0007-GUARD"] || len(got) != 1 {
		t.Fatalf("markersIn found %v at the end of the input, want CONTROL-0007-GUARD", got)
	}
}
