package fieldfile

import (
	"errors"
	"time"
)

// CursorLockWait is how long each Load, Save and Delete of PathCursors
// waits for another process to let go of the file (a command writing
// through the outbox holds it for that command) before it fails with
// ErrInUse.
const CursorLockWait = 10 * time.Second

// PathCursors are the cursors of the field file at a path, opening the
// file for each Load, Save and Delete and closing it before returning, so
// that a watch or pull that runs all day holds the file only for the
// moment it reads or saves its position, and short commands can use the
// file in between. Each open makes Open's checks (mode 0600, format).
// Like Cursors, it is a client.CursorStore, and each Save has reached the
// disk when it returns.
//
// The methods of one PathCursors may be called from one goroutine at a
// time; a process should not also hold the file open (Open) while it uses
// them, since each call then waits for that process itself and fails
// after CursorLockWait.
type PathCursors struct {
	path string
	wait time.Duration
}

// CursorsAt returns the cursors of the field file at path. It does not
// open the file: the first Load, Save or Delete does, and reports a file
// it refuses.
func CursorsAt(path string) *PathCursors {
	return &PathCursors{path: path, wait: CursorLockWait}
}

// Path is the file's path.
func (c *PathCursors) Path() string { return c.path }

// with opens the file, runs fn on its cursors and closes it.
func (c *PathCursors) with(fn func(*Cursors) error) error {
	f, err := OpenWithin(c.path, c.wait)
	if err != nil {
		return err
	}
	err = fn(f.Cursors())
	return errors.Join(err, f.Close())
}

// Load returns the value saved under name, or "" when there is none.
func (c *PathCursors) Load(name string) (string, error) {
	var value string
	err := c.with(func(cs *Cursors) (err error) {
		value, err = cs.Load(name)
		return err
	})
	return value, err
}

// Save replaces the value under name with value, durably; see
// Cursors.Save.
func (c *PathCursors) Save(name, value string) error {
	return c.with(func(cs *Cursors) error { return cs.Save(name, value) })
}

// Delete forgets the cursor name; see Cursors.Delete.
func (c *PathCursors) Delete(name string) error {
	return c.with(func(cs *Cursors) error { return cs.Delete(name) })
}
