package seal

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/internal/agejs"
)

// The interop tests run the npm package age-encryption under node, so that
// an agency whose case system is not written in Go knows it can open and
// make sealed blobs. The package and its dependencies are pinned by
// testdata/age-encryption/package-lock.json and installed once into the
// repository's ignored .cache directory, keyed by version and lock file.

// decryptScript prints the plaintext of an age file, the envelope, for the
// Go side to decode. The identity comes in the environment.
const decryptScript = `import { readFile } from "node:fs/promises";
import { Decrypter } from "age-encryption";
const decrypter = new Decrypter();
decrypter.addIdentity(process.env.AGE_IDENTITY);
process.stdout.write(await decrypter.decrypt(await readFile(process.argv[2])));
`

func TestNodeOpensSealedBlobs(t *testing.T) {
	scripts := nodeScripts(t)
	receiver, sender := newRing(t), newRing(t)
	oldBlob := sealFor(t, receiver, sender)
	// Rotate, so that the documented script must find the old key among
	// several in the key ring file.
	if _, err := receiver.Rotate(); err != nil {
		t.Fatal(err)
	}
	newBlob := sealFor(t, receiver, sender)
	dir := filepath.Dir(scripts["open-sealed.mjs"])
	oldFile, newFile := filepath.Join(dir, "old.age"), filepath.Join(dir, "new.age")
	writeFile(t, oldFile, oldBlob)
	writeFile(t, newFile, newBlob)

	// The raw plaintext, decrypted by node with an identity string, is an
	// envelope the Go side decodes.
	start := time.Now()
	env, stderr, err := runNode(t, []string{"AGE_IDENTITY=" + sender.Current().SecretKey()}, scripts["decrypt.mjs"], oldFile)
	if err != nil {
		t.Fatalf("node could not decrypt a sealed blob: %v\n%s", err, stderr)
	}
	t.Logf("node decrypted a blob in %v (process start included)", time.Since(start).Round(time.Millisecond))
	b, details, err := decodeEnvelope(env)
	if err != nil || b != testBinding || !bytes.Equal(details, testDetails) {
		t.Fatalf("the envelope node decrypted decodes to %v %q, %v", b, details, err)
	}

	// The script docs/sealing.md gives opens both blobs with the key ring
	// file, before and after rotation, and prints the details.
	args := []string{testBinding.RequestID, testBinding.Sender, testBinding.Receiver}
	for name, blobFile := range map[string]string{"sealed before rotation": oldFile, "sealed after rotation": newFile} {
		out, stderr, err := runNode(t, nil, scripts["open-sealed.mjs"], append([]string{receiver.Path(), blobFile}, args...)...)
		if err != nil || !bytes.Equal(out, testDetails) {
			t.Errorf("open-sealed.mjs, %s: printed %q, %v\n%s", name, out, err, stderr)
		}
	}
	out, stderr, err := runNode(t, nil, scripts["open-sealed.mjs"], sender.Path(), newFile, "case-9999", testBinding.Sender, testBinding.Receiver)
	if err == nil || len(out) > 0 || !strings.Contains(string(stderr), "sealed for another referral") {
		t.Errorf("open-sealed.mjs with another referral's binding: printed %q, %v\n%s", out, err, stderr)
	}
	third := newRing(t)
	if out, _, err := runNode(t, nil, scripts["open-sealed.mjs"], append([]string{third.Path(), newFile}, args...)...); err == nil || len(out) > 0 {
		t.Errorf("open-sealed.mjs opened a blob with a third agency's key ring: %q", out)
	}
}

func TestNodeSealsBlobsGoOpens(t *testing.T) {
	scripts := nodeScripts(t)
	receiver, sender := newRing(t), newRing(t)
	dir := filepath.Dir(scripts["seal-for-exchange.mjs"])
	detailsFile, blobFile := filepath.Join(dir, "details"), filepath.Join(dir, "blob.age")
	writeFile(t, detailsFile, testDetails)
	_, stderr, err := runNode(t, nil, scripts["seal-for-exchange.mjs"], detailsFile, blobFile,
		testBinding.RequestID, testBinding.Sender, testBinding.Receiver,
		receiver.Current().Recipient().String(), sender.Current().Recipient().String())
	if err != nil {
		t.Fatalf("seal-for-exchange.mjs: %v\n%s", err, stderr)
	}
	blob, err := os.ReadFile(blobFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, ring := range map[string]*KeyRing{"receiver": receiver, "sender": sender} {
		got, err := Open(blob, testBinding, ring)
		if err != nil || !bytes.Equal(got, testDetails) {
			t.Errorf("the %s opened a blob node sealed: %q, %v", name, got, err)
		}
	}
	other := Binding{RequestID: testBinding.RequestID, Sender: testBinding.Sender, Receiver: "agencies/unhcr"}
	if _, err := Open(blob, other, receiver); !errors.Is(err, ErrOtherReferral) {
		t.Errorf("a blob node sealed, opened for another referral: %v; want ErrOtherReferral", err)
	}
}

// nodeScripts installs age-encryption if it is not yet in the cache, and
// writes the two scripts of docs/sealing.md and decryptScript into a
// temporary directory whose node_modules is the cache's. It returns their
// paths by file name. It skips the test when node or npm is missing.
func nodeScripts(t *testing.T) map[string]string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the interop test needs node and npm, and %s is not on PATH: %v", tool, err)
		}
	}
	modules := agejs.Modules(t, repoRoot(t))
	dir := t.TempDir()
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{"decrypt.mjs": filepath.Join(dir, "decrypt.mjs")}
	writeFile(t, scripts["decrypt.mjs"], []byte(decryptScript))
	for name, code := range docScripts(t) {
		scripts[name] = filepath.Join(dir, name)
		writeFile(t, scripts[name], []byte(code))
	}
	for _, name := range []string{"open-sealed.mjs", "seal-for-exchange.mjs"} {
		if scripts[name] == "" {
			t.Fatalf("docs/sealing.md has no js block starting // %s:", name)
		}
	}
	return scripts
}

// docScripts returns the js code blocks of docs/sealing.md by the file name
// their first line gives ("// open-sealed.mjs: …").
func docScripts(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "sealing.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)```js\n(// ([a-z-]+\\.mjs):.*?)```").FindAllStringSubmatch(string(doc), -1) {
		out[m[2]] = m[1]
	}
	return out
}

// runNode runs a node script with extra environment variables and returns
// its standard output and standard error.
func runNode(t *testing.T, env []string, script string, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

// repoRoot returns the repository's root: the directory above this
// package's, which holds go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("%s is not the repository root: %v", root, err)
	}
	return root
}

// writeFile writes data to path, mode 0600.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
