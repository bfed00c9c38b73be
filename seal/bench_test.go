package seal

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkSeal measures sealing one referral's details to two recipients,
// the receiver and the sender, as the sending client does per referral.
func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{len(testDetails), 1 << 10} {
		b.Run(fmt.Sprintf("details=%dB", size), func(b *testing.B) {
			receiver, sender := newRing(b), newRing(b)
			to := []Recipient{receiver.Current().Recipient(), sender.Current().Recipient()}
			details := bytes.Repeat([]byte{'d'}, size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Seal(details, testBinding, to...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen measures opening one referral's details sealed to two
// recipients, with a key ring of one key and with one rotated once (whose
// old key opens the blob).
func BenchmarkOpen(b *testing.B) {
	for _, rotated := range []bool{false, true} {
		b.Run(fmt.Sprintf("rotated=%v", rotated), func(b *testing.B) {
			receiver, sender := newRing(b), newRing(b)
			blob := sealFor(b, receiver, sender)
			if rotated {
				if _, err := receiver.Rotate(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Open(blob, testBinding, receiver); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBlobOverhead measures how many bytes sealing adds to the details,
// and checks that it depends on the recipients and the binding, not on the
// details (up to one 64 KiB age chunk).
func TestBlobOverhead(t *testing.T) {
	receiver, sender := newRing(t), newRing(t)
	to := []Recipient{receiver.Current().Recipient(), sender.Current().Recipient()}
	var overhead int
	for i, size := range []int{0, len(testDetails), 1 << 10, 32 << 10} {
		blob, err := Seal(make([]byte, size), testBinding, to...)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			overhead = len(blob) - size
			t.Logf("sealing to 2 recipients with a %d-byte binding adds %d bytes to the details", len(testBinding.RequestID)+len(testBinding.Sender)+len(testBinding.Receiver), overhead)
		} else if len(blob)-size != overhead {
			t.Errorf("%d bytes of details: overhead %d bytes; with none it was %d", size, len(blob)-size, overhead)
		}
	}
	// Each recipient's stanza is a fixed size.
	one, err := Seal(nil, testBinding, to[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("each further recipient adds %d bytes", overhead-len(one))
}
