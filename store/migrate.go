package store

import (
	"bytes"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// migrate brings a database written at schema version from up to
// schemaVersion, in the transaction that opens it read-write.
func migrate(tx *bolt.Tx, from uint64) error {
	if from < 2 {
		if err := migrateDatasetNames(tx); err != nil {
			return err
		}
	}
	if from < 3 {
		return dropServerHeldKeys(tx)
	}
	return nil
}

// legacyDatasetPrefix started dataset names in schema version 1, when
// dataset ids were one namespace shared by all agencies.
const legacyDatasetPrefix = "datasets/"

// migrateDatasetNames moves the datasets of schema version 1, named
// "datasets/{id}" and keyed by id, under their owner (version 2): each
// dataset is renamed "agencies/{owner}/datasets/{id}" (with a new etag, as
// its content changed) and its rows, row changes and the request ids that
// created it are rekeyed or repointed. Ids were unique across agencies in
// version 1, so no two datasets meet. The change log and the audit chain
// keep the old names: they are history, and the audit chain's hashes
// cover them.
func migrateDatasetNames(tx *bolt.Tx) error {
	owners := map[string]string{} // dataset id → owner agency id
	var renamed []*exchangev1.Dataset
	ds := tx.Bucket(bucketDatasets)
	err := ds.ForEach(func(k, v []byte) error {
		d := new(exchangev1.Dataset)
		if err := unmarshal(v, d); err != nil {
			return err
		}
		id := string(k)
		owner, ok := strings.CutPrefix(d.GetOwner(), AgencyPrefix)
		if !ok || owner == "" || d.GetName() != legacyDatasetPrefix+id {
			return internal(fmt.Sprintf("cannot move dataset %q (owner %q) under its owner", d.GetName(), d.GetOwner()), nil)
		}
		owners[id] = owner
		d.Name = DatasetName(owner, id)
		setEtag(d)
		renamed = append(renamed, d)
		return nil
	})
	if err != nil {
		return err
	}
	for id := range owners {
		if err := ds.Delete([]byte(id)); err != nil {
			return internal("cannot move a dataset", err)
		}
	}
	for _, d := range renamed {
		b, err := marshal(d)
		if err != nil {
			return err
		}
		if err := ds.Put(datasetKey(d.GetName()), b); err != nil {
			return internal("cannot move a dataset", err)
		}
	}
	// Rows and row changes: dataset id ∅ rest → owner id ∅ dataset id ∅ rest.
	for _, name := range [][]byte{bucketDatasetRows, bucketDatasetRowChanges} {
		if err := rekey(tx.Bucket(name), func(k []byte) ([]byte, error) {
			id, rest, ok := bytes.Cut(k, []byte{sep})
			owner, known := owners[string(id)]
			if !ok || !known {
				return nil, internal(fmt.Sprintf("%s: key of no dataset %q", name, k), nil)
			}
			return append(joinKey(owner, string(id), ""), rest...), nil
		}); err != nil {
			return err
		}
	}
	// Request ids that created a dataset name it.
	requests := tx.Bucket(bucketRequests)
	var repoint [][2][]byte
	err = requests.ForEach(func(k, v []byte) error {
		if id, ok := strings.CutPrefix(string(v), legacyDatasetPrefix); ok {
			if owner, known := owners[id]; known {
				repoint = append(repoint, [2][]byte{bytes.Clone(k), []byte(DatasetName(owner, id))})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, kv := range repoint {
		if err := requests.Put(kv[0], kv[1]); err != nil {
			return internal("cannot update a request record", err)
		}
	}
	return nil
}

// rekey replaces every key k of b by newKey(k), keeping the values. It
// reads every entry before it writes any, so that new keys never meet old
// ones during the walk.
func rekey(b *bolt.Bucket, newKey func(k []byte) ([]byte, error)) error {
	var old, keys, values [][]byte
	err := b.ForEach(func(k, v []byte) error {
		nk, err := newKey(k)
		if err != nil {
			return err
		}
		old, keys, values = append(old, bytes.Clone(k)), append(keys, nk), append(values, bytes.Clone(v))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return internal("cannot rekey "+string(k), err)
		}
	}
	for i, k := range keys {
		if err := b.Put(k, values[i]); err != nil {
			return internal("cannot rekey "+string(k), err)
		}
	}
	return nil
}

// legacyBucketReferralKeys held, up to schema version 2, the data keys
// under which the exchange itself sealed the details of referrals sent
// without sealed_details. Version 3 holds no such key.
var legacyBucketReferralKeys = []byte("referral_keys")

// refuseServerHeldKeys refuses a database, at path, that still holds
// data keys to referrals' details (written before schema version 3): the
// exchange no longer keeps a key that opens identifying details, and
// cannot turn a referral it sealed itself into one its clients sealed.
// An empty or missing referral_keys bucket passes.
func refuseServerHeldKeys(tx *bolt.Tx, path string) error {
	b := tx.Bucket(legacyBucketReferralKeys)
	if b == nil {
		return nil
	}
	n := b.Stats().KeyN
	if n == 0 {
		return nil
	}
	return &Error{Kind: KindFailedPrecondition, Message: fmt.Sprintf(
		"%s holds %d referrals whose identifying details the exchange sealed itself, with data keys kept in the file "+
			"(written before schema version 3): this exchanged holds no key to identifying details and will not open it. "+
			"With the exchanged that wrote it, erase those referrals' details (EraseReferralDetails) and vacuum, "+
			"or have their senders send them again sealed and start a new file; see docs/operations.md", path, n)}
}

// dropServerHeldKeys removes the empty referral_keys bucket of a database
// written before schema version 3 (refuseServerHeldKeys passed).
func dropServerHeldKeys(tx *bolt.Tx) error {
	if tx.Bucket(legacyBucketReferralKeys) == nil {
		return nil
	}
	if err := tx.DeleteBucket(legacyBucketReferralKeys); err != nil {
		return internal("cannot drop the referral_keys bucket", err)
	}
	return nil
}
