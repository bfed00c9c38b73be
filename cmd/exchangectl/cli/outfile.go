package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// outputFile is a file a command writes because the user named it (with
// --out or -o). What happens to the path depends on what is there, so
// that a command run as root can never turn /dev/null, a pipe or a link
// into a regular file:
//
//   - Nothing, or a regular file: the output goes to a new temporary file
//     in the same directory, mode 0600 (the output is the user's own data
//     from the exchange, readable by them only, whatever the mode of the
//     file it replaces). Only Commit puts it in place: synced, renamed over
//     the path in one step, and the directory synced. Until then the path
//     keeps its old contents, and Abort leaves no temporary file behind.
//   - A device, a FIFO or a socket (/dev/null, /dev/stdout, a named pipe,
//     a shell's process substitution): the output is written through to
//     it as it comes, without creating, truncating or replacing anything.
//     There is nothing to roll back: what was written stays written.
//   - A symbolic link is never replaced: it is followed, as a shell's
//     redirection follows it. A regular file at its end is replaced
//     atomically, as above, in that file's own directory, so the link
//     stays a link to it; a device, FIFO or socket at its end is written
//     through. A link that leads nowhere, or to a directory, is refused:
//     the link's owner did not mean it for this file.
//   - A directory is refused.
type outputFile struct {
	*os.File
	// replace is the regular file the temporary file becomes at Commit;
	// empty when the output is written through.
	replace string
}

// createOutput opens path for output by the rules of outputFile.
func createOutput(path string) (*outputFile, error) {
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return replaceAtomically(path)
	case err != nil:
		return nil, err
	case info.Mode()&fs.ModeSymlink != 0:
		return followLink(path)
	case info.Mode().IsRegular():
		return replaceAtomically(path)
	case info.IsDir():
		return nil, fmt.Errorf("%s is a directory: name a file to write", path)
	}
	return writeThrough(path)
}

// followLink opens the target of the symbolic link at path.
func followLink(path string) (*outputFile, error) {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s is a symbolic link to nothing: not creating a file through it (remove the link, or name its target)", path)
	case err != nil:
		return nil, err
	case info.IsDir():
		return nil, fmt.Errorf("%s is a symbolic link to a directory: name a file to write", path)
	case !info.Mode().IsRegular():
		return writeThrough(path)
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("cannot follow the symbolic link %s: %w", path, err)
	}
	return replaceAtomically(target)
}

// replaceAtomically starts a temporary file beside path.
func replaceAtomically(path string) (*outputFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return &outputFile{File: tmp, replace: path}, nil
}

// writeThrough opens the device, FIFO or socket at path for writing. It
// checks what it opened, in case the path changed since it was looked
// at: a regular file is never written in place.
func writeThrough(path string) (*outputFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|openNoCTTY, 0)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && (info.Mode().IsRegular() || info.IsDir()) {
		err = fmt.Errorf("%s changed while it was being opened; try again", path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &outputFile{File: f}, nil
}

// WrittenThrough reports whether the output goes straight to the path (a
// device, FIFO or socket) rather than replacing it at Commit.
func (o *outputFile) WrittenThrough() bool { return o.replace == "" }

// Commit finishes the output: a temporary file is synced and renamed over
// the file it replaces, and the directory synced so that the rename
// survives a crash; a written-through file is closed.
func (o *outputFile) Commit() error {
	if o.WrittenThrough() {
		return o.Close()
	}
	err := o.Sync()
	if cerr := o.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.Name(), o.replace)
	}
	if err != nil {
		os.Remove(o.Name())
		return err
	}
	if dir, err := os.Open(filepath.Dir(o.replace)); err == nil {
		dir.Sync() // best effort: some file systems cannot sync a directory
		dir.Close()
	}
	return nil
}

// Abort gives the output up: a temporary file is removed (the path keeps
// what it held), a written-through file closed.
func (o *outputFile) Abort() {
	o.Close()
	if !o.WrittenThrough() {
		os.Remove(o.Name())
	}
}
