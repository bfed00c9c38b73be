package pki_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/alltogether/exchange/pki"
)

var devHosts = []string{"localhost", "127.0.0.1"}

// devFileList returns the six paths of files with their required modes.
func devFileList(f pki.DevFiles) map[string]os.FileMode {
	return map[string]os.FileMode{
		f.CACert: 0o644, f.CAKey: 0o600,
		f.ServerCert: 0o644, f.ServerKey: 0o600,
		f.SecretariatCert: 0o644, f.SecretariatKey: 0o600,
	}
}

// snapshot returns the contents of all six files.
func snapshot(t *testing.T, f pki.DevFiles) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for p := range devFileList(f) {
		m[p] = readFile(t, p)
	}
	return m
}

// checkDevSet verifies that the six files form a working, consistent set.
func checkDevSet(t *testing.T, f pki.DevFiles) {
	t.Helper()
	for p, mode := range devFileList(f) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	ca, err := pki.LoadCA(f.CACert, f.CAKey)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !ca.Cert.IsCA {
		t.Error("ca.crt is not a CA")
	}
	server := mustParseCertPEM(t, readFile(t, f.ServerCert))
	if _, err := server.Verify(x509.VerifyOptions{Roots: poolOf(ca.Cert), DNSName: "localhost"}); err != nil {
		t.Errorf("server.crt does not verify for localhost: %v", err)
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: poolOf(ca.Cert), DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("server.crt does not verify for 127.0.0.1: %v", err)
	}
	sec := mustParseCertPEM(t, readFile(t, f.SecretariatCert))
	if _, err := sec.Verify(x509.VerifyOptions{Roots: poolOf(ca.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("secretariat.crt does not verify: %v", err)
	}
	if id, err := pki.IdentityFromCert(sec); err != nil || id != pki.Secretariat() {
		t.Errorf("secretariat.crt identity = %+v, %v", id, err)
	}
	if _, err := pki.ClientTLSConfig(f.SecretariatCert, f.SecretariatKey, f.CACert, ""); err != nil {
		t.Errorf("secretariat key does not match its certificate: %v", err)
	}
	if _, err := pki.ServerTLSConfig(f.ServerCert, f.ServerKey, f.CACert); err != nil {
		t.Errorf("server key does not match its certificate: %v", err)
	}
}

func TestDevFilesIn(t *testing.T) {
	f := pki.DevFilesIn("/x/y")
	want := pki.DevFiles{
		Dir:             "/x/y",
		CACert:          "/x/y/ca.crt",
		CAKey:           "/x/y/ca.key",
		ServerCert:      "/x/y/server.crt",
		ServerKey:       "/x/y/server.key",
		SecretariatCert: "/x/y/secretariat.crt",
		SecretariatKey:  "/x/y/secretariat.key",
	}
	if f != want {
		t.Errorf("DevFilesIn = %+v, want %+v", f, want)
	}
}

func TestEnsureDevCreatesThenIsIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "pki")
	files, created, err := pki.EnsureDev(dir, devHosts)
	if err != nil {
		t.Fatalf("first EnsureDev: %v", err)
	}
	if !created {
		t.Fatal("first EnsureDev returned created=false")
	}
	if files != pki.DevFilesIn(dir) {
		t.Errorf("files = %+v, want DevFilesIn(dir)", files)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir has mode %v, want 0700", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"ca.crt", "ca.key", "secretariat.crt", "secretariat.key", "server.crt", "server.key"}; !slices.Equal(names, want) {
		t.Errorf("dir holds %v, want exactly %v (no temporary leftovers)", names, want)
	}
	checkDevSet(t, files)
	before := snapshot(t, files)

	files2, created, err := pki.EnsureDev(dir, []string{"ignored.example"})
	if err != nil {
		t.Fatalf("second EnsureDev: %v", err)
	}
	if created {
		t.Error("second EnsureDev returned created=true")
	}
	if files2 != files {
		t.Errorf("second EnsureDev files = %+v, want %+v", files2, files)
	}
	for p, b := range snapshot(t, files) {
		if !bytes.Equal(b, before[p]) {
			t.Errorf("second EnsureDev changed %s", p)
		}
	}
}

func TestEnsureDevMissingFile(t *testing.T) {
	names := []string{"ca.key", "server.crt", "server.key", "secretariat.crt", "secretariat.key"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			files, _, err := pki.EnsureDev(dir, devHosts)
			if err != nil {
				t.Fatal(err)
			}
			caPEM := readFile(t, files.CACert)
			missing := filepath.Join(dir, name)
			if err := os.Remove(missing); err != nil {
				t.Fatal(err)
			}
			_, created, err := pki.EnsureDev(dir, devHosts)
			wantErrContaining(t, err, missing, "missing")
			if created {
				t.Error("created=true with an error")
			}
			if _, err := os.Stat(missing); !os.IsNotExist(err) {
				t.Errorf("%s was recreated; EnsureDev must not patch an incomplete set", missing)
			}
			if !bytes.Equal(readFile(t, files.CACert), caPEM) {
				t.Error("ca.crt was replaced")
			}
		})
	}
}

func TestEnsureDevRegeneratesWithoutCACert(t *testing.T) {
	dir := t.TempDir()
	files, _, err := pki.EnsureDev(dir, devHosts)
	if err != nil {
		t.Fatal(err)
	}
	oldCA := readFile(t, files.CACert)
	// Simulate a crash before the final rename: everything but ca.crt, plus
	// the temporary directory of the crashed call.
	if err := os.Remove(files.CACert); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".pki-dev-tmp-123")
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, stale, "ca.key", []byte("half"))
	_, created, err := pki.EnsureDev(dir, devHosts)
	if err != nil {
		t.Fatalf("EnsureDev: %v", err)
	}
	if !created {
		t.Error("created=false although ca.crt was missing")
	}
	if bytes.Equal(readFile(t, files.CACert), oldCA) {
		t.Error("expected a new CA")
	}
	checkDevSet(t, files) // all six files belong to the new CA
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary directory %s was not removed (stat error %v)", stale, err)
	}
}

func TestEnsureDevErrors(t *testing.T) {
	t.Run("no hosts", func(t *testing.T) {
		dir := t.TempDir()
		_, _, err := pki.EnsureDev(dir, nil)
		wantErrContaining(t, err, "no hosts")
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("failed EnsureDev left %d entries in dir", len(entries))
		}
	})
	t.Run("bad host", func(t *testing.T) {
		_, _, err := pki.EnsureDev(t.TempDir(), []string{"localhost", "not a host"})
		wantErrContaining(t, err, `"not a host"`)
	})
	t.Run("empty dir", func(t *testing.T) {
		_, _, err := pki.EnsureDev("", devHosts)
		wantErrContaining(t, err, "dir is empty")
	})
	t.Run("ca.crt is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "ca.crt"), 0o700); err != nil {
			t.Fatal(err)
		}
		_, _, err := pki.EnsureDev(dir, devHosts)
		wantErrContaining(t, err, filepath.Join(dir, "ca.crt"), "not a regular file")
	})
}
