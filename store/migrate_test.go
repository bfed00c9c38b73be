package store

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// toVersion1 rewrites a database's datasets into schema version 1's
// layout: keyed and named by dataset id alone, rows and row changes keyed
// under the id, request records naming "datasets/{id}".
func toVersion1(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		ds := tx.Bucket(bucketDatasets)
		var ids []string
		if err := rekey(ds, func(k []byte) ([]byte, error) {
			_, id, _ := bytes.Cut(k, []byte{sep})
			ids = append(ids, string(id))
			return id, nil
		}); err != nil {
			return err
		}
		for _, id := range ids {
			d := new(exchangev1.Dataset)
			if err := unmarshal(ds.Get([]byte(id)), d); err != nil {
				return err
			}
			d.Name = legacyDatasetPrefix + id
			b, err := marshal(d)
			if err != nil {
				return err
			}
			if err := ds.Put([]byte(id), b); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{bucketDatasetRows, bucketDatasetRowChanges} {
			if err := rekey(tx.Bucket(name), func(k []byte) ([]byte, error) {
				_, rest, _ := bytes.Cut(k, []byte{sep}) // drop the owner
				return rest, nil
			}); err != nil {
				return err
			}
		}
		requests := tx.Bucket(bucketRequests)
		var repoint [][2][]byte
		requests.ForEach(func(k, v []byte) error {
			if _, id, ok := SplitDatasetName(string(v)); ok {
				repoint = append(repoint, [2][]byte{bytes.Clone(k), []byte(legacyDatasetPrefix + id)})
			}
			return nil
		})
		for _, kv := range repoint {
			if err := requests.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(metaSchemaVersion, u64(1))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A database of schema version 1, with datasets named "datasets/{id}", is
// moved under the datasets' owners when it is opened: names, rows
// (whole and since a revision), request ids and the audit chain all
// survive, and the freed ids can be used by other agencies.
func TestOpenMovesVersion1DatasetsUnderTheirOwner(t *testing.T) {
	needsFile(t, "migrations of old files")
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "exchange.db")
	s := openAt(t, path, Options{})
	for _, id := range []string{"ilo", "iom", "unicef"} {
		mustCreateAgency(t, s, id, nil)
	}
	dataset := &exchangev1.Dataset{Title: "Returns", PeriodType: exchangev1.PeriodType_PERIOD_TYPE_MONTH, Contributors: []string{"agencies/unicef"}}
	created := map[string]Op{
		"returns":    {Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.DatasetService/CreateDataset", RequestID: "r-1"},
		"returns-kh": {Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.DatasetService/CreateDataset", RequestID: "r-2"},
		"arrivals":   {Actor: "agencies/iom", Method: "/alltogether.exchange.v1.DatasetService/CreateDataset", RequestID: "r-1"},
	}
	for id, op := range created {
		if _, err := s.CreateDataset(ctx, op, id, dataset); err != nil {
			t.Fatal(err)
		}
	}
	write := func(s *Store, name string, location string) {
		t.Helper()
		op := Op{Actor: "agencies/unicef", Method: "/alltogether.exchange.v1.DatasetService/WriteDatasetRows"}
		errs, _, err := s.WriteDatasetRows(ctx, op, name, func(*exchangev1.Dataset) error { return nil },
			[]RowWrite{{Row: &exchangev1.Row{Period: "2026-03", Location: location}}})
		if err != nil || errs[0] != nil {
			t.Fatalf("write to %s: %v %v", name, err, errs)
		}
	}
	write(s, "agencies/ilo/datasets/returns", "KH-1")
	since := s.Revision()
	write(s, "agencies/ilo/datasets/returns", "KH-2")
	write(s, "agencies/ilo/datasets/returns-kh", "KH-3")
	write(s, "agencies/iom/datasets/arrivals", "KH-4")
	headSeq, headHash, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	toVersion1(t, s)
	s.Close()

	s = openAt(t, path, Options{})
	if err := s.db.View(func(tx *bolt.Tx) error {
		if v := binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(metaSchemaVersion)); v != schemaVersion {
			t.Errorf("schema version %d after Open, want %d", v, schemaVersion)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	list, _, err := s.ListDatasets(ctx, func(*exchangev1.Dataset) bool { return true }, "", Page{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(list), []string{"agencies/ilo/datasets/returns", "agencies/ilo/datasets/returns-kh", "agencies/iom/datasets/arrivals"}; !slices.Equal(got, want) {
		t.Fatalf("datasets after the move: %v, want %v", got, want)
	}
	for _, d := range list {
		if err := checkEtag(d); err != nil {
			t.Error(err)
		}
	}
	locations := func(q RowQuery) string {
		t.Helper()
		q.Limit = 100
		page, err := s.PullDatasetRows(ctx, q)
		if err != nil {
			t.Fatalf("pull %s: %v", q.Dataset, err)
		}
		var out []string
		for _, r := range page.Rows {
			out = append(out, r.GetLocation())
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		q    RowQuery
		want string
	}{
		{RowQuery{Dataset: "agencies/ilo/datasets/returns"}, "KH-1,KH-2"},
		{RowQuery{Dataset: "agencies/ilo/datasets/returns", Since: since}, "KH-2"},
		{RowQuery{Dataset: "agencies/ilo/datasets/returns-kh"}, "KH-3"},
		{RowQuery{Dataset: "agencies/iom/datasets/arrivals", Since: 1}, "KH-4"},
	} {
		if got := locations(c.q); got != c.want {
			t.Errorf("%s since %d: rows at %s, want %s", c.q.Dataset, c.q.Since, got, c.want)
		}
	}
	// A retried create finds the moved dataset.
	again, err := s.CreateDataset(ctx, created["arrivals"], "arrivals", dataset)
	if err != nil || again.GetName() != "agencies/iom/datasets/arrivals" {
		t.Errorf("retried create: %v, %v", again.GetName(), err)
	}
	// Rows written after the move join the moved ones; another agency
	// may now use the same id.
	write(s, "agencies/ilo/datasets/returns", "KH-5")
	if got := locations(RowQuery{Dataset: "agencies/ilo/datasets/returns", Since: since}); got != "KH-2,KH-5" {
		t.Errorf("rows since %d after a new write: %s", since, got)
	}
	if _, err := s.CreateDataset(ctx, Op{Actor: "agencies/iom", Method: "create"}, "returns", dataset); err != nil {
		t.Errorf("iom creating returns after the move: %v", err)
	}
	// The audit chain is untouched, and goes on from where it was.
	entries, err := s.AuditEntries(ctx, headSeq-1, 2)
	if err != nil || len(entries) != 2 {
		t.Fatalf("audit entries after %d: %d, %v", headSeq-1, len(entries), err)
	}
	if entries[0].GetSequence() != headSeq || !bytes.Equal(entries[0].GetHash(), headHash) || !bytes.Equal(entries[1].GetPreviousHash(), headHash) {
		t.Errorf("the audit chain changed in the move: entry %d hash %x, next links %x, head was %x",
			entries[0].GetSequence(), entries[0].GetHash(), entries[1].GetPreviousHash(), headHash)
	}
}

// checkEtag fails when d's etag is not the one its content has.
func checkEtag(d *exchangev1.Dataset) error {
	want := proto.CloneOf(d)
	setEtag(want)
	if want.GetEtag() != d.GetEtag() {
		return &Error{Kind: KindInternal, Message: d.GetName() + ": etag " + d.GetEtag() + ", content says " + want.GetEtag()}
	}
	return nil
}
