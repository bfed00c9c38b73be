package seal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// testBinding is the referral most tests seal for.
var testBinding = Binding{RequestID: "case-2291", Sender: "agencies/ilo", Receiver: "agencies/iom"}

// testDetails stands for a referral's identifying details.
var testDetails = []byte(`{"name":"Ana Example","guardian":"+00 555 0100","notes":"marker-7f3a"}`)

// newRing creates a key ring file in a fresh temporary directory.
func newRing(t testing.TB) *KeyRing {
	t.Helper()
	ring, err := CreateKeyRing(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// sealFor seals testDetails with testBinding to the current keys of rings.
func sealFor(t testing.TB, rings ...*KeyRing) []byte {
	t.Helper()
	var to []Recipient
	for _, r := range rings {
		to = append(to, r.Current().Recipient())
	}
	blob, err := Seal(testDetails, testBinding, to...)
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

func TestSealOpensForReceiverAndSender(t *testing.T) {
	receiver, sender := newRing(t), newRing(t)
	blob := sealFor(t, receiver, sender)
	if !bytes.HasPrefix(blob, []byte("age-encryption.org/v1\n")) {
		t.Fatalf("blob is not a binary age file: %.30q", blob)
	}
	if n := bytes.Count(blob, []byte("\n-> mlkem768x25519 ")); n != 2 {
		t.Errorf("the blob has %d hybrid stanzas; want one for each of the 2 recipients", n)
	}
	if bytes.Contains(blob, []byte("marker-7f3a")) || bytes.Contains(blob, []byte(testBinding.RequestID)) {
		t.Fatal("the blob carries the details or the binding in the clear")
	}
	for name, ring := range map[string]*KeyRing{"receiver": receiver, "sender": sender} {
		// Open with the ring as read back from its file.
		again, err := OpenKeyRing(ring.Path())
		if err != nil {
			t.Fatal(err)
		}
		got, err := Open(blob, testBinding, again)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, testDetails) {
			t.Errorf("%s opened %q, want %q", name, got, testDetails)
		}
	}
}

func TestThirdAgencyCannotOpen(t *testing.T) {
	receiver, sender, third := newRing(t), newRing(t), newRing(t)
	blob := sealFor(t, receiver, sender)
	got, err := Open(blob, testBinding, third)
	if !errors.Is(err, ErrNotRecipient) || got != nil {
		t.Fatalf("a third agency's key ring: got %q, %v; want ErrNotRecipient", got, err)
	}
	if _, err := Open(blob, testBinding, nil); err == nil {
		t.Error("Open with no key ring succeeded")
	}
}

func TestBlobMovedToAnotherReferralIsRefused(t *testing.T) {
	receiver, sender := newRing(t), newRing(t)
	blob := sealFor(t, receiver, sender)
	for name, b := range map[string]Binding{
		"request id": {RequestID: "case-2292", Sender: testBinding.Sender, Receiver: testBinding.Receiver},
		"sender":     {RequestID: testBinding.RequestID, Sender: "agencies/unhcr", Receiver: testBinding.Receiver},
		"receiver":   {RequestID: testBinding.RequestID, Sender: testBinding.Sender, Receiver: "agencies/unhcr"},
		"swapped":    {RequestID: testBinding.RequestID, Sender: testBinding.Receiver, Receiver: testBinding.Sender},
	} {
		got, err := Open(blob, b, receiver)
		if !errors.Is(err, ErrOtherReferral) || got != nil {
			t.Errorf("%s changed: got %q, %v; want ErrOtherReferral", name, got, err)
			continue
		}
		if !strings.Contains(err.Error(), "sealed for another referral") || !strings.Contains(err.Error(), `"case-2291"`) {
			t.Errorf("%s changed: the error does not say which referral the blob is for: %v", name, err)
		}
	}
}

func TestRotationKeepsOldBlobsAndSealsToTheNewKey(t *testing.T) {
	receiver, sender := newRing(t), newRing(t)
	oldKey := receiver.Current().Recipient()
	oldBlob := sealFor(t, receiver, sender)

	// A copy of the ring as it was, holding only the old key.
	oldOnly, err := OpenKeyRing(receiver.Path())
	if err != nil {
		t.Fatal(err)
	}
	newID, err := receiver.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := OpenKeyRing(receiver.Path())
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Current().Recipient() != newID.Recipient() || newID.Recipient() == oldKey {
		t.Fatal("after Rotate the file's current key is not the new key")
	}
	keys := rotated.Keys()
	if len(keys) != 2 || keys[0].Recipient != newID.Recipient() || keys[1].Recipient != oldKey {
		t.Fatalf("keys after rotation = %v; want the new key, then the old", keys)
	}
	if keys[0].Created.Before(keys[1].Created) {
		t.Errorf("the new key was created (%v) before the old one (%v)", keys[0].Created, keys[1].Created)
	}
	if got, err := Open(oldBlob, testBinding, rotated); err != nil || !bytes.Equal(got, testDetails) {
		t.Fatalf("a blob sealed to the old key after rotation: %q, %v", got, err)
	}
	newBlob := sealFor(t, rotated, sender)
	if got, err := Open(newBlob, testBinding, rotated); err != nil || !bytes.Equal(got, testDetails) {
		t.Fatalf("a blob sealed to the new key: %q, %v", got, err)
	}
	if _, err := Open(newBlob, testBinding, oldOnly); !errors.Is(err, ErrNotRecipient) {
		t.Fatalf("the old key alone opens a blob sealed after rotation: %v", err)
	}
}

func TestSealRefusesBadInput(t *testing.T) {
	ring := newRing(t)
	to := ring.Current().Recipient()
	long := strings.Repeat("x", MaxBindingField+1)
	for name, c := range map[string]struct {
		b    Binding
		to   []Recipient
		want string
	}{
		"no request id":    {Binding{Sender: "agencies/a", Receiver: "agencies/b"}, []Recipient{to}, "request id is empty"},
		"no sender":        {Binding{RequestID: "r", Receiver: "agencies/b"}, []Recipient{to}, "sender is empty"},
		"no receiver":      {Binding{RequestID: "r", Sender: "agencies/a"}, []Recipient{to}, "receiver is empty"},
		"long request id":  {Binding{RequestID: long, Sender: "agencies/a", Receiver: "agencies/b"}, []Recipient{to}, "request id is 256 bytes long"},
		"bad UTF-8":        {Binding{RequestID: "r", Sender: "agencies/\xff", Receiver: "agencies/b"}, []Recipient{to}, "sender is not valid UTF-8"},
		"no recipients":    {testBinding, nil, "no recipients"},
		"zero recipient":   {testBinding, []Recipient{to, {}}, "recipient #2 is empty"},
		"many recipients":  {testBinding, []Recipient{to, to, to, to, to, to, to, to, to}, "9 recipients, more than the 8 allowed"},
		"one bad of three": {testBinding, []Recipient{to, to, {}}, "recipient #3 is empty"},
	} {
		blob, err := Seal(testDetails, c.b, c.to...)
		if err == nil || blob != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v; want an error saying %q", name, err, c.want)
		}
	}
	if _, err := Open(sealFor(t, ring), Binding{RequestID: "r", Sender: "agencies/a"}, ring); err == nil || !strings.Contains(err.Error(), "receiver is empty") {
		t.Errorf("Open with an incomplete binding: %v", err)
	}
}

func TestSizeBounds(t *testing.T) {
	ring := newRing(t)
	to := ring.Current().Recipient()
	if _, err := Seal(make([]byte, MaxDetails+1), testBinding, to); !errors.Is(err, ErrTooLarge) {
		t.Errorf("details of MaxDetails+1 bytes: %v; want ErrTooLarge", err)
	}
	// The largest blob Seal makes: MaxDetails of details, the longest
	// binding, MaxRecipients recipients. It fits in MaxBlob and opens.
	long := strings.Repeat("é", MaxBindingField/2) // 254 bytes
	b := Binding{RequestID: long + "x", Sender: long + "y", Receiver: long + "z"}
	rings := []*KeyRing{ring}
	recipients := []Recipient{to}
	for len(recipients) < MaxRecipients {
		r := newRing(t)
		rings = append(rings, r)
		recipients = append(recipients, r.Current().Recipient())
	}
	details := bytes.Repeat([]byte{'d'}, MaxDetails)
	blob, err := Seal(details, b, recipients...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the largest blob Seal makes is %d bytes; MaxBlob is %d", len(blob), MaxBlob)
	if len(blob) > MaxBlob {
		t.Fatalf("the largest sealed blob is %d bytes, more than MaxBlob (%d)", len(blob), MaxBlob)
	}
	if got, err := Open(blob, b, rings[MaxRecipients-1]); err != nil || !bytes.Equal(got, details) {
		t.Fatalf("the largest blob does not open for its last recipient: %v", err)
	}

	if _, err := Open(make([]byte, MaxBlob+1), testBinding, ring); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a blob of MaxBlob+1 bytes: %v; want ErrTooLarge", err)
	}
	// An age file under MaxBlob whose plaintext is larger than any
	// envelope Seal writes, as another implementation might make.
	oversized := ageEncrypt(t, bytes.Repeat([]byte{'x'}, maxEnvelope+1), to)
	if len(oversized) > MaxBlob {
		t.Fatalf("test blob is %d bytes, over MaxBlob", len(oversized))
	}
	if _, err := Open(oversized, testBinding, ring); !errors.Is(err, ErrTooLarge) {
		t.Errorf("an age file holding %d bytes: %v; want ErrTooLarge", maxEnvelope+1, err)
	}
}

func TestTamperedBlobFails(t *testing.T) {
	receiver, sender := newRing(t), newRing(t)
	blob := sealFor(t, receiver, sender)
	// Flip one bit in every byte in turn: the header (stanzas and MAC),
	// the nonce and the encrypted payload.
	for i := range blob {
		tampered := bytes.Clone(blob)
		tampered[i] ^= 0x01
		got, err := Open(tampered, testBinding, receiver)
		if err == nil || got != nil {
			t.Fatalf("a blob with byte %d of %d changed opened: %q", i, len(blob), got)
		}
		if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrNotRecipient) {
			t.Fatalf("byte %d changed: %v; want ErrDamaged or ErrNotRecipient", i, err)
		}
	}
	for _, n := range []int{0, 10, len(blob) / 2, len(blob) - 1} {
		if _, err := Open(blob[:n], testBinding, receiver); !errors.Is(err, ErrDamaged) {
			t.Errorf("a blob cut to %d bytes: %v; want ErrDamaged", n, err)
		}
	}
	if _, err := Open(append(bytes.Clone(blob), 0), testBinding, receiver); !errors.Is(err, ErrDamaged) {
		t.Errorf("a blob with a byte appended: %v; want ErrDamaged", err)
	}
}

func TestOpenRefusesAgeFilesThatAreNotEnvelopes(t *testing.T) {
	ring := newRing(t)
	to := ring.Current().Recipient()
	good := encodeEnvelope(testBinding, testDetails)
	for name, plain := range map[string][]byte{
		"empty":           {},
		"plain details":   testDetails,
		"other magic":     append([]byte("xchgSEAL"), good[8:]...),
		"version 2":       append(append([]byte("xchgseal"), 2), good[9:]...),
		"trailing byte":   append(bytes.Clone(good), 0),
		"details cut":     good[:len(good)-1],
		"binding cut":     good[:12],
		"empty sender":    encodeEnvelope(Binding{RequestID: "case-2291", Receiver: "agencies/iom"}, testDetails),
		"bad UTF-8 field": encodeEnvelope(Binding{RequestID: "case-\xff", Sender: "agencies/ilo", Receiver: "agencies/iom"}, testDetails),
	} {
		got, err := Open(ageEncrypt(t, plain, to), testBinding, ring)
		if !errors.Is(err, ErrDamaged) || got != nil {
			t.Errorf("%s: got %q, %v; want ErrDamaged", name, got, err)
		}
	}
}

// TestEnvelopeLayout pins the byte layout that docs/sealing.md and the
// package documentation give to implementers in other languages.
func TestEnvelopeLayout(t *testing.T) {
	got := encodeEnvelope(Binding{RequestID: "r-1", Sender: "agencies/ab", Receiver: "agencies/cd"}, []byte("hi"))
	want := "" +
		hex.EncodeToString([]byte("xchgseal")) + // magic
		"01" + // version
		"0003" + hex.EncodeToString([]byte("r-1")) +
		"000b" + hex.EncodeToString([]byte("agencies/ab")) +
		"000b" + hex.EncodeToString([]byte("agencies/cd")) +
		"00000002" + hex.EncodeToString([]byte("hi"))
	if hex.EncodeToString(got) != want {
		t.Fatalf("envelope\n got %x\nwant %s", got, want)
	}
	b, details, err := decodeEnvelope(got)
	if err != nil || b.RequestID != "r-1" || b.Sender != "agencies/ab" || b.Receiver != "agencies/cd" || string(details) != "hi" {
		t.Fatalf("decoded %v %q %v", b, details, err)
	}
}

// ageEncrypt encrypts plain to r with the age library alone, as another
// implementation would, without the envelope Seal adds.
func ageEncrypt(t testing.TB, plain []byte, r Recipient) []byte {
	t.Helper()
	ar, err := r.ageRecipient()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, ar)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
