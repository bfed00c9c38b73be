package fieldfile

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketDefinitions keeps the definition of each dataset the field
// office pushed rows to, as last read from the exchange: key the
// dataset's name, value the Dataset message marshalled. Rows are read
// from a file against the dataset's schema, so a push made while the
// exchange cannot be reached reads them against the kept definition and
// queues them.
var bucketDefinitions = []byte("definitions")

// PutDefinition keeps def as the definition of the dataset name,
// replacing any kept before; an unchanged definition costs no commit.
func (f *File) PutDefinition(name string, def []byte) error {
	if kept, _, err := f.Definition(name); err == nil && bytes.Equal(kept, def) {
		return nil
	}
	err := f.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketDefinitions)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), def)
	})
	if err != nil {
		return fmt.Errorf("fieldfile: definitions: %w", err)
	}
	return nil
}

// Definition returns the definition kept for the dataset name, and false
// if none is.
func (f *File) Definition(name string) ([]byte, bool, error) {
	var def []byte
	err := f.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketDefinitions); b != nil {
			def = bytes.Clone(b.Get([]byte(name)))
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("fieldfile: definitions: %w", err)
	}
	return def, def != nil, nil
}
