package seal

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// fileMode returns the permission bits of path.
func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

// onlyFile fails unless dir holds exactly the one file name: no temporary
// file is left behind.
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v; want only %s", dir, names, name)
	}
}

func TestKeyRingFileIsPrivateAndAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	ring, err := CreateKeyRing(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("a new key ring has mode %04o; want 0600", m)
	}
	onlyFile(t, dir, "keys")
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("a rotated key ring has mode %04o; want 0600", m)
	}
	onlyFile(t, dir, "keys")

	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateKeyRing(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CreateKeyRing over an existing key ring: %v; want fs.ErrExist", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("CreateKeyRing changed an existing key ring")
	}
	onlyFile(t, dir, "keys")
}

func TestKeyRingOpenToOthersIsRefused(t *testing.T) {
	ring := newRing(t)
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o620, 0o602, 0o610, 0o644} {
		if err := os.Chmod(ring.Path(), mode); err != nil {
			t.Fatal(err)
		}
		_, err := OpenKeyRing(ring.Path())
		if !errors.Is(err, ErrFileMode) {
			t.Errorf("mode %04o: %v; want ErrFileMode", mode, err)
			continue
		}
		if !strings.Contains(err.Error(), "chmod 600 "+ring.Path()) {
			t.Errorf("mode %04o: the error does not say how to fix it: %v", mode, err)
		}
	}
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		if err := os.Chmod(ring.Path(), mode); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyRing(ring.Path()); err != nil {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
}

// TestKeyRingIsAnAgeIdentityFile checks the claim that age -d -i with the
// key ring opens a sealed blob: the age library's own identity-file parser
// reads every key, and they decrypt a blob sealed to an old key.
func TestKeyRingIsAnAgeIdentityFile(t *testing.T) {
	receiver, sender := newRing(t), newRing(t)
	blob := sealFor(t, receiver, sender)
	if _, err := receiver.Rotate(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(receiver.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 {
		t.Fatalf("age reads %d identities; want 2", len(ids))
	}
	r, err := age.Decrypt(bytes.NewReader(blob), ids...)
	if err != nil {
		t.Fatal(err)
	}
	env, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	b, details, err := decodeEnvelope(env)
	if err != nil || b != testBinding || !bytes.Equal(details, testDetails) {
		t.Fatalf("age opened %v %q %v", b, details, err)
	}
}

func TestKeyRingRefusesStaleWrites(t *testing.T) {
	ring := newRing(t)
	stale, err := OpenKeyRing(ring.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(ring.Path())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stale.Rotate(); !errors.Is(err, ErrKeyRingChanged) {
		t.Fatalf("Rotate on a key ring changed on disk: %v; want ErrKeyRingChanged", err)
	}
	old := stale.Keys()[0].Recipient.Fingerprint()
	if err := stale.Remove(old); err == nil {
		t.Fatal("Remove on a key ring changed on disk succeeded")
	}
	after, err := os.ReadFile(ring.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a refused write changed the key ring file")
	}
	if len(stale.Keys()) != 1 {
		t.Error("a refused Rotate changed the KeyRing in memory")
	}
}

func TestKeyRingRemove(t *testing.T) {
	receiver, sender := newRing(t), newRing(t)
	oldBlob := sealFor(t, receiver, sender)
	old := receiver.Current().Recipient().Fingerprint()
	if err := receiver.Remove(old); err == nil || !strings.Contains(err.Error(), "current key") {
		t.Fatalf("Remove of the current key: %v; want a refusal", err)
	}
	current, err := receiver.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := receiver.Remove(sender.Current().Recipient().Fingerprint()); err == nil {
		t.Error("Remove of a key the ring does not hold succeeded")
	}
	if err := receiver.Remove(old); err != nil {
		t.Fatal(err)
	}
	again, err := OpenKeyRing(receiver.Path())
	if err != nil {
		t.Fatal(err)
	}
	if keys := again.Keys(); len(keys) != 1 || keys[0].Recipient != current.Recipient() {
		t.Fatalf("after Remove the file holds %v; want only the current key", keys)
	}
	if _, err := Open(oldBlob, testBinding, again); !errors.Is(err, ErrNotRecipient) {
		t.Errorf("a blob sealed to a removed key: %v; want ErrNotRecipient", err)
	}
}

func TestKeyRingRefusesMalformedFiles(t *testing.T) {
	ring := newRing(t)
	if _, err := ring.Rotate(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(ring.Path())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(good), "\n")
	var created, public []int // line indexes
	for i, l := range lines {
		if strings.HasPrefix(l, createdPrefix) {
			created = append(created, i)
		}
		if strings.HasPrefix(l, publicKeyPrefix) {
			public = append(public, i)
		}
	}
	without := func(i int) string {
		return strings.Join(append(append([]string(nil), lines[:i]...), lines[i+1:]...), "\n")
	}
	swappedPublic := append([]string(nil), lines...)
	swappedPublic[public[0]], swappedPublic[public[1]] = lines[public[1]], lines[public[0]]
	twice := append(append([]string(nil), lines...), lines[created[1]:created[1]+3]...)
	for name, c := range map[string]struct{ text, want string }{
		"empty":             {"", "holds no keys"},
		"comments only":     {keyRingIntro, "holds no keys"},
		"no creation time":  {without(created[0]), `no "# created:" line`},
		"bad creation time": {strings.Replace(string(good), createdPrefix+"2", createdPrefix+"x", 1), "not RFC 3339"},
		"wrong public key":  {strings.Join(swappedPublic, "\n"), "does not match the public key"},
		"key twice":         {strings.Join(twice, "\n"), "appears twice"},
		"dangling comment":  {string(good) + createdPrefix + "2026-01-02T03:04:05Z\n", "no key"},
		"classic key":       {string(good) + createdPrefix + "2026-01-02T03:04:05Z\nAGE-SECRET-KEY-1QQQ\n", "neither a comment nor"},
	} {
		if err := os.WriteFile(ring.Path(), []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyRing(ring.Path()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error saying %q", name, err, c.want)
		}
	}
	if _, err := OpenKeyRing(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing key ring: %v; want fs.ErrNotExist", err)
	}
}
