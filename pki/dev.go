package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Fixed file names of a development PKI directory.
const (
	devCACertName          = "ca.crt"
	devCAKeyName           = "ca.key"
	devServerCertName      = "server.crt"
	devServerKeyName       = "server.key"
	devSecretariatCertName = "secretariat.crt"
	devSecretariatKeyName  = "secretariat.key"
)

// Validity periods of the development PKI.
const (
	devCAValidity   = 10 * 365 * 24 * time.Hour
	devLeafValidity = 365 * 24 * time.Hour
	devCACommonName = "alltogether exchange development CA"
)

// devTempPattern names the temporary directory EnsureDev writes a new set
// into before renaming it into place.
const devTempPattern = ".pki-dev-tmp-*"

// DevFiles holds the paths of a development PKI: a CA, a server certificate
// and a secretariat client certificate, each with its private key.
type DevFiles struct {
	// Dir is the directory that holds all the files.
	Dir string
	// CACert is the CA certificate, Dir/ca.crt.
	CACert string
	// CAKey is the CA private key, Dir/ca.key.
	CAKey string
	// ServerCert is the server certificate, Dir/server.crt.
	ServerCert string
	// ServerKey is the server private key, Dir/server.key.
	ServerKey string
	// SecretariatCert is the secretariat client certificate,
	// Dir/secretariat.crt.
	SecretariatCert string
	// SecretariatKey is the secretariat private key, Dir/secretariat.key.
	SecretariatKey string
}

// DevFilesIn returns the fixed file paths of a development PKI in dir:
// ca.crt, ca.key, server.crt, server.key, secretariat.crt and
// secretariat.key. It does not touch the file system.
func DevFilesIn(dir string) DevFiles {
	return DevFiles{
		Dir:             dir,
		CACert:          filepath.Join(dir, devCACertName),
		CAKey:           filepath.Join(dir, devCAKeyName),
		ServerCert:      filepath.Join(dir, devServerCertName),
		ServerKey:       filepath.Join(dir, devServerKeyName),
		SecretariatCert: filepath.Join(dir, devSecretariatCertName),
		SecretariatKey:  filepath.Join(dir, devSecretariatKeyName),
	}
}

// all returns the six file paths, with the CA certificate last: its presence
// marks a complete set, so it is always written last.
func (f DevFiles) all() []string {
	return []string{f.CAKey, f.ServerCert, f.ServerKey, f.SecretariatCert, f.SecretariatKey, f.CACert}
}

// devMu serializes EnsureDev within one process.
var devMu sync.Mutex

// EnsureDev makes sure dir holds a complete development PKI and returns its
// paths. The directory is created with mode 0700 if needed.
//
// If dir/ca.crt exists, EnsureDev checks that all six files exist and returns
// created=false (or an error naming the first missing file); hosts are then
// ignored. Otherwise it creates a CA valid for 10 years, a server certificate
// for hosts (DNS names or IP addresses) valid for 1 year, and a secretariat
// client certificate valid for 1 year, and returns created=true. Keys are
// written with mode 0600 and certificates with 0644.
//
// The new files are written and synced under a temporary directory inside dir
// and then renamed into place with ca.crt last, so a crash never leaves a set
// that looks complete but is not; a later call replaces any leftovers. Calls
// within one process are serialized; concurrent calls from several processes
// on the same directory are not supported.
func EnsureDev(dir string, hosts []string) (DevFiles, bool, error) {
	if dir == "" {
		return DevFiles{}, false, errors.New("pki: EnsureDev: dir is empty")
	}
	devMu.Lock()
	defer devMu.Unlock()

	files := DevFilesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return DevFiles{}, false, fmt.Errorf("pki: EnsureDev: creating directory: %w", err)
	}
	exists, err := regularFileExists(files.CACert)
	if err != nil {
		return DevFiles{}, false, fmt.Errorf("pki: EnsureDev: %w", err)
	}
	if exists {
		for _, f := range files.all() {
			ok, err := regularFileExists(f)
			if err != nil {
				return DevFiles{}, false, fmt.Errorf("pki: EnsureDev: %w", err)
			}
			if !ok {
				return DevFiles{}, false, fmt.Errorf("pki: EnsureDev: development PKI in %s is incomplete: %s is missing (delete %s to regenerate the whole set)", dir, f, files.CACert)
			}
		}
		return files, false, nil
	}

	if err := createDev(files, hosts); err != nil {
		return DevFiles{}, false, err
	}
	return files, true, nil
}

// regularFileExists reports whether path exists and is a regular file; an
// existing non-regular file is an error.
func regularFileExists(path string) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s exists but is not a regular file", path)
	}
	return true, nil
}

// createDev generates a fresh development PKI and installs it as files.
func createDev(files DevFiles, hosts []string) error {
	ca, err := NewCA(devCACommonName, devCAValidity)
	if err != nil {
		return fmt.Errorf("%w (creating the development CA in %s)", err, files.Dir)
	}
	caKeyPEM, err := encodeKeyPEM(ca.Key)
	if err != nil {
		return fmt.Errorf("pki: EnsureDev: encoding CA key: %w", err)
	}
	serverCert, serverKey, err := ca.IssueServer(hosts, devLeafValidity)
	if err != nil {
		return fmt.Errorf("%w (creating the development server certificate in %s)", err, files.Dir)
	}
	secCert, secKey, err := ca.IssueClient(Secretariat(), devLeafValidity)
	if err != nil {
		return fmt.Errorf("%w (creating the development secretariat certificate in %s)", err, files.Dir)
	}

	// Remove temporary directories left by an earlier crashed call.
	stale, _ := filepath.Glob(filepath.Join(files.Dir, devTempPattern))
	for _, d := range stale {
		_ = os.RemoveAll(d)
	}
	tmpDir, err := os.MkdirTemp(files.Dir, devTempPattern)
	if err != nil {
		return fmt.Errorf("pki: EnsureDev: creating temporary directory: %w", err)
	}
	defer os.RemoveAll(tmpDir)

	type entry struct {
		final string
		data  []byte
		perm  os.FileMode
	}
	// Order matters: ca.crt is installed last.
	entries := []entry{
		{files.CAKey, caKeyPEM, 0o600},
		{files.ServerCert, serverCert, 0o644},
		{files.ServerKey, serverKey, 0o600},
		{files.SecretariatCert, secCert, 0o644},
		{files.SecretariatKey, secKey, 0o600},
		{files.CACert, ca.CertPEM, 0o644},
	}
	for _, e := range entries {
		if err := writeFileSync(filepath.Join(tmpDir, filepath.Base(e.final)), e.data, e.perm); err != nil {
			return fmt.Errorf("pki: EnsureDev: %w", err)
		}
	}
	for i, e := range entries {
		if i == len(entries)-1 {
			// Make the other five renames durable before the marker.
			syncDir(files.Dir)
		}
		if err := os.Rename(filepath.Join(tmpDir, filepath.Base(e.final)), e.final); err != nil {
			return fmt.Errorf("pki: EnsureDev: installing %s: %w", e.final, err)
		}
	}
	syncDir(files.Dir)
	return nil
}
