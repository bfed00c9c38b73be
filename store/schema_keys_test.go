package store

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestKeysAreByteForByteTheLayoutsOnDisk: the key builders that were
// rewritten to allocate once build exactly the bytes of the former ones
// (strings.Join with the separator; revision and four zero bytes; the
// referral's party key from joinKey and newestFirst), which every stored
// database holds.
func TestKeysAreByteForByteTheLayoutsOnDisk(t *testing.T) {
	for _, parts := range [][]string{
		nil, {""}, {"a"}, {"agencies/ilo", "/alltogether.exchange.v1.ReferralService/CreateReferral", "req-1"},
		{"iom", "01JXYZ", ""}, {"", "", ""}, {"café", "ünïcode"},
	} {
		want := []byte(strings.Join(parts, string(rune(sep))))
		if got := joinKey(parts...); !bytes.Equal(got, want) {
			t.Errorf("joinKey(%q) = %q, want %q", parts, got, want)
		}
	}
	for _, rev := range []int64{0, 1, 255, 1 << 40, 1<<63 - 1} {
		want := append(u64(uint64(rev)), u32(0)...)
		if got := changeKey(rev); !bytes.Equal(got, want) {
			t.Errorf("changeKey(%d) = %x, want %x", rev, got, want)
		}
	}
	for _, id := range []string{newID(time.Now()), newID(time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)), "0", "zz", "-_x"} {
		reversed := []byte(id)
		for i, c := range reversed {
			if j := strings.IndexByte(idAlphabet, c); j >= 0 {
				reversed[i] = idAlphabet[len(idAlphabet)-1-j]
			}
		}
		if got := newestFirst(id); got != string(reversed) {
			t.Errorf("newestFirst(%q) = %q, want %q", id, got, reversed)
		}
		for _, side := range []byte{sideSender, sideReceiver} {
			want := append([]byte(strings.Join([]string{"ilo", string(reversed), ""}, string(rune(sep)))), side)
			if got := referralPartyKey("ilo", id, side); !bytes.Equal(got, want) {
				t.Errorf("referralPartyKey(ilo, %q, %d) = %q, want %q", id, side, got, want)
			}
		}
	}
}
