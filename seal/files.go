package seal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrFileMode is returned (wrapped) when a key ring or pin file can be
// read or written by the group or by others.
var ErrFileMode = errors.New("open to group or others")

// maxFile bounds what readPrivateFile reads: a key ring of a thousand keys
// or pins for ten thousand agencies is well under it.
const maxFile = 4 << 20

// readPrivateFile reads a file that only its owner may read or write. It
// checks the mode of the file it opened, not of the path, so that the file
// cannot be swapped between the check and the read. what names the file
// in errors ("key ring", "pin file").
func readPrivateFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: %s: %w", what, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: %s: %w", what, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: %s %s is not a regular file", what, path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("seal: %s %s has mode %04o, %w; run chmod 600 %s", what, path, perm, ErrFileMode, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("seal: %s: %w", what, err)
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("seal: %s %s is larger than %d bytes", what, path, maxFile)
	}
	return data, nil
}

// writePrivateFile replaces path with data atomically: it writes a
// temporary file (mode 0600) in the same directory, syncs it, renames it
// over path and syncs the directory, so that a crash leaves either the old
// file or the new one, never a mix. With create it refuses to replace an
// existing file (the temporary file is linked, not renamed, to path).
func writePrivateFile(path string, data []byte, create bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if create {
		if err := os.Link(tmp.Name(), path); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s: %w", path, fs.ErrExist)
			}
			return err
		}
	} else if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
