package kv

import bolt "go.etcd.io/bbolt"

// Bolt returns tx as a Tx. The wrappers are pointer-shaped, so wrapping
// allocates nothing.
func Bolt(tx *bolt.Tx) Tx { return boltTx{tx} }

// BoltTx returns the bbolt transaction under tx, or nil if tx is not one
// made by Bolt. Only the store's bbolt-specific parts (page accounting,
// scrubbing, checks) use it.
func BoltTx(tx Tx) *bolt.Tx {
	if b, ok := tx.(boltTx); ok {
		return b.tx
	}
	return nil
}

// BoltBucket returns b as a Bucket, or nil if b is nil.
func BoltBucket(b *bolt.Bucket) Bucket {
	if b == nil {
		return nil
	}
	return boltBucket{b}
}

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) Bucket(name []byte) Bucket { return BoltBucket(t.tx.Bucket(name)) }
func (t boltTx) Writable() bool            { return t.tx.Writable() }
func (t boltTx) OnCommit(fn func())        { t.tx.OnCommit(fn) }

type boltBucket struct{ b *bolt.Bucket }

func (b boltBucket) Get(key []byte) []byte                    { return b.b.Get(key) }
func (b boltBucket) Put(key, value []byte) error              { return b.b.Put(key, value) }
func (b boltBucket) Delete(key []byte) error                  { return b.b.Delete(key) }
func (b boltBucket) Cursor() Cursor                           { return b.b.Cursor() }
func (b boltBucket) ForEach(fn func(k, v []byte) error) error { return b.b.ForEach(fn) }

// BoltUpdate returns a function that runs fn in a bbolt write
// transaction of db and commits it, as db.Update does.
func BoltUpdate(db *bolt.DB) func(fn func(Tx) error) error {
	return func(fn func(Tx) error) error {
		return db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
	}
}
