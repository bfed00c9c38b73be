// Package agejs installs, for tests, the npm package age-encryption that
// seal/testdata/age-encryption locks, so that tests can run the same
// format's JavaScript implementation against the Go one.
package agejs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Modules returns the node_modules directory holding the npm package
// age-encryption locked by seal/testdata/age-encryption, under
// root/.cache (root is the repository's root), installing it with npm ci
// on first use into a temporary directory renamed into place, so that an
// interrupted or concurrent install never leaves half a cache. It skips
// the test when node or npm is missing.
func Modules(t testing.TB, root string) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("this test runs node with age-encryption, and %s is not on PATH: %v", tool, err)
		}
	}
	src := filepath.Join(root, "seal", "testdata", "age-encryption")
	pkg, err := os.ReadFile(filepath.Join(src, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var locked struct {
		Packages map[string]struct{ Version string }
	}
	if err := json.Unmarshal(lock, &locked); err != nil {
		t.Fatal(err)
	}
	version := locked.Packages["node_modules/age-encryption"].Version
	if version == "" {
		t.Fatal("package-lock.json does not lock age-encryption")
	}
	sum := sha256.Sum256(append(append([]byte(nil), pkg...), lock...))
	cache := filepath.Join(root, ".cache")
	dir := filepath.Join(cache, "age-encryption-"+version+"-"+hex.EncodeToString(sum[:6]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "age-encryption", "package.json")); err == nil {
		return modules
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(cache, "age-encryption-install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for name, data := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--cache", filepath.Join(cache, "npm"))
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci age-encryption@%s: %v\n%s", version, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another run installed it first: use theirs.
		if _, statErr := os.Stat(filepath.Join(modules, "age-encryption", "package.json")); statErr != nil {
			t.Fatal(err)
		}
	}
	return modules
}
