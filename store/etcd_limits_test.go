package store

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store/kv"
)

// TestEtcdTransactionLimit checks what docs/operations.md says of one
// call on etcd: it is one etcd transaction, so a push of rows takes up to
// three operations per row (the row, its change index, the old index
// entry it replaces) and with --max-txn-ops 8192 up to 2,700 rows fit in
// one call; a larger call is refused whole with KindResourceExhausted
// naming the limit, and changes nothing.
func TestEtcdTransactionLimit(t *testing.T) {
	needsEtcd(t)
	if cluster.MaxTxnOps() != 8192 {
		t.Skipf("the figures are for --max-txn-ops 8192, the cluster has %d", cluster.MaxTxnOps())
	}
	s, _ := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "ilo", nil)
	mustCreateAgency(t, s, "unicef", nil)
	if _, err := s.CreateDataset(ctx, Op{Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.DatasetService/CreateDataset"}, "returns",
		&exchangev1.Dataset{Title: "Returns", PeriodType: exchangev1.PeriodType_PERIOD_TYPE_MONTH, Contributors: []string{"agencies/unicef"}}); err != nil {
		t.Fatal(err)
	}
	op := Op{Actor: "agencies/unicef", Method: "/alltogether.exchange.v1.DatasetService/WriteDatasetRows"}
	rows := func(from, n int, value int64) []RowWrite {
		var out []RowWrite
		for i := from; i < from+n; i++ {
			out = append(out, RowWrite{Row: &exchangev1.Row{Period: "2026-03", Location: fmt.Sprintf("L%05d", i), Values: map[string]*exchangev1.Value{"count": {Kind: &exchangev1.Value_IntValue{IntValue: value}}}}})
		}
		return out
	}
	write := func(w []RowWrite) error {
		errs, _, err := s.WriteDatasetRows(ctx, op, "agencies/ilo/datasets/returns", func(*exchangev1.Dataset) error { return nil }, w)
		for _, e := range errs {
			if e != nil {
				t.Fatalf("row refused: %v", e)
			}
		}
		return err
	}
	const fits = 2700
	for _, w := range [][]RowWrite{rows(0, fits/2, 1), rows(fits/2, fits/2, 1), rows(0, fits, 2)} { // the last overwrites every row
		if err := write(w); err != nil {
			t.Fatalf("a call of %d rows: %v", len(w), err)
		}
	}
	before, err := s.ContentHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = write(rows(0, 10_000, 3))
	if e := wantKind(t, err, KindResourceExhausted); !strings.Contains(e.Message, "--max-txn-ops") {
		t.Errorf("the refusal does not name the limit: %v", err)
	}
	if after, _ := s.ContentHash(ctx); !bytes.Equal(after, before) {
		t.Error("a refused call changed the store")
	}
}

// TestReplicasOfAnotherSchemaRefuseTheCluster: an exchanged whose schema
// version differs from the one on the cluster refuses to start on it
// (docs/operations.md, "Upgrades").
func TestReplicasOfAnotherSchemaRefuseTheCluster(t *testing.T) {
	needsEtcd(t)
	prefix := freshPrefix()
	s := openEtcdAt(t, prefix, Options{})
	if err := s.updateAlone(func(tx kv.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaSchemaVersion, u64(schemaVersion+1))
	}); err != nil {
		t.Fatal(err)
	}
	other, err := OpenEtcd(EtcdOptions{Endpoints: cluster.Endpoints(), Prefix: prefix,
		MaxTxnOps: int(cluster.MaxTxnOps()), MaxRequestBytes: int(cluster.MaxRequestBytes())}, Options{})
	if err == nil {
		other.Close()
		t.Fatal("a replica of another schema version opened the cluster's exchange")
	}
	if e := wantKind(t, err, KindFailedPrecondition); !strings.Contains(e.Message, "one version") {
		t.Errorf("the refusal does not say why: %v", err)
	}
}
