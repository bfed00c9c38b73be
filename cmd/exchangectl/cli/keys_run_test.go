package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

const mSetEncryptionKey = exchangev1.DirectoryService_SetAgencyEncryptionKey_FullMethodName

// keysFixture is a fake exchange with ilo and iom, and ilo's certificate
// files in a directory of their own, where keys create puts the key ring
// by default.
type keysFixture struct {
	*fixture
	certDir string
	ilo     []string // global flags that connect as ilo
}

func newKeysFixture(t *testing.T) *keysFixture {
	f := newFixture(t)
	for _, id := range []string{"ilo", "iom"} {
		f.server.PutAgency(&exchangev1.Agency{Name: "agencies/" + id, DisplayName: strings.ToUpper(id), Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY})
	}
	cfg := f.server.Config(t, "agency/ilo")
	dir := t.TempDir()
	for from, to := range map[string]string{cfg.CertFile: "ilo.crt", cfg.KeyFile: "ilo.key"} {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &keysFixture{fixture: f, certDir: dir, ilo: []string{"--server", f.server.Addr, "--ca", cfg.CAFile,
		"--cert", filepath.Join(dir, "ilo.crt"), "--key", filepath.Join(dir, "ilo.key")}}
}

// asIlo runs exchangectl as ilo in e.
func (f *keysFixture) asIlo(e *testEnv, args ...string) result {
	f.t.Helper()
	return f.runIn(e, append(append([]string{}, f.ilo...), args...)...)
}

// registered returns ilo's agency record on the server.
func (f *keysFixture) registered() *exchangev1.Agency {
	for _, a := range f.server.Agencies() {
		if a.GetName() == "agencies/ilo" {
			return a
		}
	}
	f.t.Fatal("ilo is gone")
	return nil
}

// openRing opens ilo's key ring at path.
func openRing(t *testing.T, path string) *seal.KeyRing {
	t.Helper()
	ring, err := seal.OpenKeyRing(path)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// TestRunKeysCreateRotateShow: keys create writes the key ring (0600)
// beside the certificate and registers its public key, and only that,
// refuses to replace an existing ring; keys show lists the registered key
// and the ring's keys; keys rotate adds a key, keeps the old one and
// registers the new one; the secretariat has no keys.
func TestRunKeysCreateRotateShow(t *testing.T) {
	f := newKeysFixture(t)
	ringPath := filepath.Join(f.certDir, "ilo.age-keys")

	r := f.asIlo(newTestEnv(t), "keys", "create").must(t)
	info, err := os.Stat(ringPath)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key ring %s: %v, mode %v", ringPath, err, info.Mode())
	}
	ring := openRing(t, ringPath)
	first := ring.Current().Recipient()
	if got := f.registered().GetEncryptionKey(); got.GetRecipient() != first.String() {
		t.Fatalf("registered %s, want the ring's key %s", got.GetFingerprint(), first.Fingerprint())
	}
	if !strings.Contains(r.stdout, first.Fingerprint().String()) || !strings.Contains(r.stdout, ringPath) {
		t.Errorf("create output lacks the fingerprint or the path:\n%s", r.stdout)
	}
	secret := ring.Current().SecretKey()
	for _, c := range f.server.Calls(mSetEncryptionKey) {
		wire, _ := proto.Marshal(c.Request)
		if strings.Contains(string(wire), "AGE-SECRET-KEY") || strings.Contains(string(wire), secret[20:40]) {
			t.Fatal("a private key went over the wire")
		}
	}
	if strings.Contains(r.stdout+r.stderr, "AGE-SECRET-KEY") {
		t.Fatal("create printed a private key")
	}

	before, _ := os.ReadFile(ringPath)
	r = f.asIlo(newTestEnv(t), "keys", "create")
	if r.code != ExitConflict || !strings.Contains(r.stderr, "exists") {
		t.Errorf("create over an existing ring: exit %d, stderr %q", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(ringPath); string(after) != string(before) {
		t.Fatal("a second create changed the key ring")
	}

	r = f.asIlo(newTestEnv(t), "keys", "show").must(t)
	if !strings.Contains(r.stdout, first.Fingerprint().String()+" ") || !strings.Contains(r.stdout, "current, registered") {
		t.Errorf("show after create:\n%s", r.stdout)
	}

	r = f.asIlo(newTestEnv(t), "keys", "rotate").must(t)
	ring = openRing(t, ringPath)
	second := ring.Current().Recipient()
	if len(ring.Keys()) != 2 || second == first || ring.Keys()[1].Recipient != first {
		t.Fatalf("after rotate the ring holds %d keys", len(ring.Keys()))
	}
	a := f.registered()
	if a.GetEncryptionKey().GetRecipient() != second.String() || len(a.GetPreviousEncryptionKeys()) != 1 ||
		a.GetPreviousEncryptionKeys()[0].GetFingerprint() != first.Fingerprint().String() {
		t.Errorf("after rotate the directory has %s, previous %v", a.GetEncryptionKey().GetFingerprint(), a.GetPreviousEncryptionKeys())
	}
	if want := "exchangectl keys trust agencies/ilo " + second.Fingerprint().String(); !strings.Contains(r.stdout, want) {
		t.Errorf("rotate does not tell partners what to run (%s):\n%s", want, r.stdout)
	}

	r = f.asIlo(newTestEnv(t), "--json", "keys", "show").must(t)
	var view struct {
		Agency        string `json:"agency"`
		EncryptionKey struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"encryptionKey"`
		PreviousEncryptionKeys []struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"previousEncryptionKeys"`
		KeyRing struct {
			Path   string        `json:"path"`
			Exists bool          `json:"exists"`
			Keys   []ringKeyView `json:"keys"`
		} `json:"keyRing"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &view); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	k := view.KeyRing.Keys
	if view.Agency != "agencies/ilo" || view.EncryptionKey.Fingerprint != second.Fingerprint().String() || len(view.PreviousEncryptionKeys) != 1 ||
		view.KeyRing.Path != ringPath || !view.KeyRing.Exists || len(k) != 2 ||
		!k[0].Current || !k[0].Registered || k[1].Current || k[1].Registered || k[1].Fingerprint != first.Fingerprint().String() {
		t.Errorf("JSON show:\n%s", r.stdout)
	}

	// The secretariat has no keys: a usage error, and no file.
	e := newTestEnv(t)
	r = f.runIn(e, append(append([]string{}, f.flags...), "keys", "create", "--key-ring", "sec.age-keys")...)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "encryption keys belong to agencies") {
		t.Errorf("create as the secretariat: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(e.WorkDir, "sec.age-keys")); err == nil {
		t.Error("create as the secretariat wrote a key ring")
	}
}

// TestRunKeysRegisterAfterAFailedRegistration: when the exchange cannot
// be reached after the ring was rotated, keys rotate exits 7 and says to
// run keys register; keys show then flags the unregistered key, and keys
// register registers it.
func TestRunKeysRegisterAfterAFailedRegistration(t *testing.T) {
	f := newKeysFixture(t)
	e := newTestEnv(t)
	f.asIlo(e, "keys", "create", "--key-ring", "ring/ilo.keys").must(t)
	ringPath := filepath.Join(e.WorkDir, "ring", "ilo.keys")
	registered := f.registered().GetEncryptionKey().GetFingerprint()

	down := status.Error(codes.Unavailable, "exchange down")
	f.server.FailNext(mSetEncryptionKey, down, down, down, down) // every attempt
	r := f.asIlo(newTestEnv(t), "keys", "rotate", "--key-ring", ringPath)
	if r.code != ExitUnavailable || !strings.Contains(r.stderr, "exchangectl keys register") {
		t.Fatalf("rotate with the exchange down: exit %d, stderr %q", r.code, r.stderr)
	}
	ring := openRing(t, ringPath)
	if len(ring.Keys()) != 2 || f.registered().GetEncryptionKey().GetFingerprint() != registered {
		t.Fatalf("after the failed rotation: %d keys in the ring, %s registered", len(ring.Keys()), f.registered().GetEncryptionKey().GetFingerprint())
	}

	r = f.asIlo(newTestEnv(t), "keys", "show", "--key-ring", ringPath).must(t)
	if !strings.Contains(r.stdout, "The current key is not registered") || !strings.Contains(r.stdout, "old, registered") {
		t.Errorf("show with an unregistered current key:\n%s", r.stdout)
	}

	f.asIlo(newTestEnv(t), "keys", "register", "--key-ring", ringPath).must(t)
	if got := f.registered().GetEncryptionKey().GetRecipient(); got != ring.Current().Recipient().String() {
		t.Errorf("after register the directory has %s, want the ring's current key", f.registered().GetEncryptionKey().GetFingerprint())
	}

	r = f.asIlo(newTestEnv(t), "keys", "rotate", "--key-ring", filepath.Join(e.WorkDir, "nowhere.keys"))
	if r.code != ExitNotFound || !strings.Contains(r.stderr, "exchangectl keys create") {
		t.Errorf("rotate without a ring: exit %d, stderr %q", r.code, r.stderr)
	}
	if err := os.Chmod(ringPath, 0o640); err != nil {
		t.Fatal(err)
	}
	r = f.asIlo(newTestEnv(t), "keys", "show", "--key-ring", ringPath)
	if r.code != ExitInvalid || !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("show with a ring readable by the group: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestRunKeysTrustAndPins: keys trust pins a partner's fingerprint in the
// pin file beside the key ring (mode 0600), replacing an older pin, and
// keys pins lists the pins, as a table and as JSON; neither needs the
// exchange.
func TestRunKeysTrustAndPins(t *testing.T) {
	f := newKeysFixture(t)
	pinsPath := filepath.Join(f.certDir, "ilo.age-pins")
	old, next := newTestRecipient(t), newTestRecipient(t)

	f.asIlo(newTestEnv(t), "keys", "trust", "iom", old.Fingerprint().String()).must(t)
	r := f.asIlo(newTestEnv(t), "keys", "trust", "agencies/iom", strings.ToLower(next.Fingerprint().String())).must(t)
	if !strings.Contains(r.stdout, "agencies/iom") || !strings.Contains(r.stdout, next.Fingerprint().String()) || !strings.Contains(r.stdout, pinsPath) {
		t.Errorf("trust output:\n%s", r.stdout)
	}
	info, err := os.Stat(pinsPath)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("pin file %s: %v, mode %v", pinsPath, err, info.Mode())
	}
	pins, err := seal.OpenPins(pinsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := pins.Check("agencies/iom", next); err != nil {
		t.Errorf("the trusted key is refused: %v", err)
	}
	if err := pins.Check("agencies/iom", old); err == nil {
		t.Error("the replaced key is still accepted")
	}
	if len(f.server.Calls(mGetAgency))+len(f.server.Calls(mSetEncryptionKey)) != 0 {
		t.Error("trust called the exchange")
	}

	r = f.asIlo(newTestEnv(t), "keys", "pins").must(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "agencies/iom  "+next.Fingerprint().String()) {
		t.Errorf("pins table:\n%s", r.stdout)
	}
	r = f.asIlo(newTestEnv(t), "--json", "keys", "pins").must(t)
	var list []pinView
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Agency != "agencies/iom" || list[0].Fingerprint != next.Fingerprint().String() {
		t.Errorf("JSON pins (%v):\n%s", err, r.stdout)
	}

	// An explicit --pins needs no certificate; an empty file lists nothing.
	e := newTestEnv(t)
	r = f.runIn(e, "keys", "pins", "--pins", "elsewhere.pins").must(t)
	if r.stdout != "" || !strings.Contains(r.stderr, "No keys pinned") {
		t.Errorf("pins of a new file: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

// newTestRecipient makes a real agency key's public half.
func newTestRecipient(t *testing.T) seal.Recipient {
	t.Helper()
	id, err := seal.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient()
}
