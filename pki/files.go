package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// writeFileSync creates path, which must not exist, with exactly mode perm
// (regardless of umask), writes data and syncs it to stable storage.
func writeFileSync(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("pki: creating %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("pki: closing %s: %w", path, cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("pki: setting mode %v on %s: %w", perm, path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("pki: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pki: syncing %s: %w", path, err)
	}
	return nil
}

// writeFileNoClobber atomically creates path with data and mode perm. It
// writes a temporary file in the same directory and hard-links it into
// place, which fails if path already exists, so an existing file is never
// overwritten and path never holds partial contents.
func writeFileNoClobber(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: creating temporary file for %s: %w", path, err)
	}
	tmpName := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(tmpName)
	if err := os.Remove(tmpName); err != nil {
		return fmt.Errorf("pki: preparing temporary file for %s: %w", path, err)
	}
	if err := writeFileSync(tmpName, data, perm); err != nil {
		return err
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("pki: refusing to overwrite existing file %s", path)
		}
		return fmt.Errorf("pki: creating %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir flushes a directory's entries to stable storage so that renames
// and links survive a crash. It is best effort: some platforms cannot sync
// directories, and the files themselves have already been synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
