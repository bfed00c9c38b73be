package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newRecipient makes a fresh recipient, standing for an agency's key.
func newRecipient(t *testing.T) Recipient {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient()
}

func TestChangedKeyIsRefusedUntilTrusted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins")
	pins, err := OpenPins(path)
	if err != nil {
		t.Fatal(err)
	}
	first, second := newRecipient(t), newRecipient(t)
	if err := pins.Check("agencies/iom", first); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("the pin file has mode %04o; want 0600", m)
	}
	if err := pins.Check("agencies/iom", first); err != nil {
		t.Fatalf("the pinned key again: %v", err)
	}
	// Another agency's first key is pinned on its own.
	if err := pins.Check("agencies/unhcr", second); err != nil {
		t.Fatalf("another agency's first key: %v", err)
	}

	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	err = pins.Check("agencies/iom", second)
	changed, ok := errors.AsType[*KeyChangedError](err)
	if !ok {
		t.Fatalf("a changed key: %v; want *KeyChangedError", err)
	}
	if changed.Agency != "agencies/iom" || changed.Pinned != first.Fingerprint() || changed.Presented != second.Fingerprint() {
		t.Errorf("KeyChangedError = %+v", changed)
	}
	want := "the encryption key of agencies/iom changed from " + first.Fingerprint().String() + " to " + second.Fingerprint().String() +
		"; check with the agency and run `exchangectl keys trust agencies/iom " + second.Fingerprint().String() + "`"
	if err.Error() != want {
		t.Errorf("message\n got %s\nwant %s", err, want)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a refused key changed the pin file")
	}

	// Trusted from another process (another Pins on the same file): the
	// first Pins sees it at once.
	other, err := OpenPins(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Trust("agencies/iom", second.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if err := pins.Check("agencies/iom", second); err != nil {
		t.Fatalf("the trusted key: %v", err)
	}
	if _, ok := errors.AsType[*KeyChangedError](pins.Check("agencies/iom", first)); !ok {
		t.Error("the key replaced by Trust is still accepted")
	}
	list, err := pins.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Agency != "agencies/iom" || list[0].Fingerprint != second.Fingerprint() ||
		list[1].Agency != "agencies/unhcr" || list[1].Fingerprint != second.Fingerprint() || list[0].Since.IsZero() {
		t.Errorf("pins = %+v", list)
	}
}

func TestPinsRefuseBadInputAndFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pins")
	pins, err := OpenPins(path)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecipient(t)
	for _, agency := range []string{"", "agencies/a b", "agencies/a\n", "#agencies/a", strings.Repeat("a", MaxBindingField+1), "agencies/\xff"} {
		if err := pins.Check(agency, r); err == nil {
			t.Errorf("Check(%q) succeeded", agency)
		}
		if err := pins.Trust(agency, r.Fingerprint()); err == nil {
			t.Errorf("Trust(%q) succeeded", agency)
		}
	}
	if err := pins.Check("agencies/a", Recipient{}); err == nil {
		t.Error("Check with the zero Recipient succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused calls created the pin file: %v", err)
	}

	if err := pins.Check("agencies/a", r); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPins(path); !errors.Is(err, ErrFileMode) {
		t.Errorf("OpenPins on a file others can read: %v; want ErrFileMode", err)
	}
	if err := pins.Check("agencies/a", r); !errors.Is(err, ErrFileMode) {
		t.Errorf("Check on a file others can read: %v; want ErrFileMode", err)
	}
	for name, text := range map[string]string{
		"two fields":  "agencies/a " + r.Fingerprint().String() + "\n",
		"bad print":   "agencies/a ABCD 2026-01-02T03:04:05Z\n",
		"bad time":    "agencies/a " + r.Fingerprint().String() + " yesterday\n",
		"twice":       strings.Repeat("agencies/a "+r.Fingerprint().String()+" 2026-01-02T03:04:05Z\n", 2),
		"bad agency":  "agencies/\x01 " + r.Fingerprint().String() + " 2026-01-02T03:04:05Z\n",
		"extra space": "agencies/a  " + r.Fingerprint().String() + " 2026-01-02T03:04:05Z\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenPins(path); err == nil {
			t.Errorf("%s: OpenPins succeeded", name)
		}
	}
	onlyFile(t, dir, "pins")
}
