package fieldfile

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Limits of a cursor: names are short labels such as
// "watch:referrals"; values are positions (a resume token and a few
// revisions) plus what the caller keeps with them.
const (
	// MaxCursorName is the longest cursor name, in bytes.
	MaxCursorName = 1024
	// MaxCursorValue is the longest cursor value, in bytes.
	MaxCursorValue = 64 << 10
)

// Cursors are the positions of pulls and watches kept in the file, one
// per name ("pull:agencies/ilo/datasets/returns?…", "watch:referrals"),
// so that a pull or watch stopped by a broken link, Ctrl-C or a crash of
// the process resumes where it was instead of starting over. Its methods
// Load, Save and Delete are those of client.CursorStore, so it can be
// passed to client.ResumeFrom.
//
// Each Save is one bbolt transaction, synced to disk before Save returns:
// a position saved is a position kept, whatever happens to the process
// afterwards.
type Cursors struct {
	f *File
}

// Cursor is one saved position.
type Cursor struct {
	// Name is the cursor's name.
	Name string
	// Value is the position as the client saved it.
	Value string
}

// Cursors returns the file's cursors.
func (f *File) Cursors() *Cursors { return &Cursors{f: f} }

// errNoName is returned for an empty cursor name.
var errNoName = errors.New("fieldfile: a cursor needs a name")

func checkCursorName(name string) error {
	switch {
	case name == "":
		return errNoName
	case len(name) > MaxCursorName:
		return fmt.Errorf("fieldfile: cursor name of %d bytes: the limit is %d", len(name), MaxCursorName)
	}
	return nil
}

// Load returns the value saved under name, or "" when there is none.
func (c *Cursors) Load(name string) (string, error) {
	if err := checkCursorName(name); err != nil {
		return "", err
	}
	var value string
	err := c.f.db.View(func(tx *bolt.Tx) error {
		value = string(tx.Bucket(bucketCursors).Get([]byte(name)))
		return nil
	})
	return value, err
}

// Save replaces the value under name with value, durably. An empty value
// is refused: Delete forgets a cursor.
func (c *Cursors) Save(name, value string) error {
	if err := checkCursorName(name); err != nil {
		return err
	}
	switch {
	case value == "":
		return fmt.Errorf("fieldfile: cursor %q: an empty value (use Delete to forget a cursor)", name)
	case len(value) > MaxCursorValue:
		return fmt.Errorf("fieldfile: cursor %q: a value of %d bytes: the limit is %d", name, len(value), MaxCursorValue)
	}
	return c.f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).Put([]byte(name), []byte(value))
	})
}

// Delete forgets the cursor name; forgetting one that does not exist is
// not an error.
func (c *Cursors) Delete(name string) error {
	if err := checkCursorName(name); err != nil {
		return err
	}
	return c.f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).Delete([]byte(name))
	})
}

// List returns every saved cursor, in name order.
func (c *Cursors) List() ([]Cursor, error) {
	var out []Cursor
	err := c.f.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).ForEach(func(k, v []byte) error {
			out = append(out, Cursor{Name: string(k), Value: string(v)})
			return nil
		})
	})
	return out, err
}
