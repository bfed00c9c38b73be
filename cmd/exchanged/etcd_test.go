package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
	"github.com/alltogether/exchange/store/kv/etcdkv/etcdtest"
)

// TestEtcdFlagsAreChecked: each mistake in the etcd flags is named before
// anything is reached.
func TestEtcdFlagsAreChecked(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(ca, []byte("not a certificate"), 0o600)
	for _, tt := range []struct {
		o    etcdOptions
		want string
	}{
		{etcdOptions{endpoints: []string{"10.0.0.1:2379"}}, "must start with https://"},
		{etcdOptions{endpoints: []string{"https://10.0.0.1:2379"}}, "--etcd-ca"},
		{etcdOptions{endpoints: []string{"https://10.0.0.1:2379"}, ca: ca}, "holds no PEM certificate"},
		{etcdOptions{endpoints: []string{"https://10.0.0.1:2379"}, ca: filepath.Join(t.TempDir(), "missing")}, "--etcd-ca"},
	} {
		if _, err := tt.o.storeOptions(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error saying %q", tt.o, err, tt.want)
		}
	}
	c := etcdtest.Start(t, etcdtest.Options{Members: 1, UnsafeNoFsync: true, TLS: true})
	o := etcdOptions{endpoints: c.Endpoints(), ca: c.TLS.CAFile, cert: c.TLS.CertFile}
	if _, err := o.storeOptions(); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("a certificate without its key: %v", err)
	}
}

// TestOpenStoreOnEtcdOverTLS opens the store as exchanged does, over TLS
// with a client certificate, and a second time as a second replica would.
func TestOpenStoreOnEtcdOverTLS(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3, UnsafeNoFsync: true, TLS: true})
	o := &etcdOptions{endpoints: c.Endpoints(), ca: c.TLS.CAFile, cert: c.TLS.CertFile, key: c.TLS.KeyFile,
		prefix: "/exchange/", maxTxnOps: int(c.MaxTxnOps()), maxRequestBytes: int(c.MaxRequestBytes())}
	a, where, err := openStore(o, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !strings.HasPrefix(where, "etcd https://") {
		t.Errorf("where = %q", where)
	}
	b, _, err := openStore(o, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	if _, err := a.CreateAgency(ctx, store.Op{Actor: "secretariat", Method: "test"}, "ilo", &exchangev1.Agency{DisplayName: "ILO", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetAgency(ctx, "agencies/ilo"); err != nil {
		t.Fatalf("the second replica does not see the first's write: %v", err)
	}
	noCert := &etcdOptions{endpoints: o.endpoints, ca: o.ca, prefix: o.prefix, maxTxnOps: o.maxTxnOps, maxRequestBytes: o.maxRequestBytes}
	if st, _, err := openStore(noCert, t.TempDir(), store.Options{}); err == nil {
		st.Close()
		t.Fatal("a cluster that asks for client certificates let exchanged in without one")
	}
	tooMany := *o
	tooMany.maxTxnOps = int(c.MaxTxnOps()) * 2
	if st, _, err := openStore(&tooMany, t.TempDir(), store.Options{}); err == nil || !strings.Contains(err.Error(), "max-txn-ops") {
		if st != nil {
			st.Close()
		}
		t.Fatalf("--etcd-max-txn-ops above the cluster's: %v", err)
	}
}

// TestRestoreAcrossEngines: a backup of a bbolt file restores into etcd,
// and a backup taken on etcd restores into a file, with the same content.
func TestRestoreAcrossEngines(t *testing.T) {
	ctx := context.Background()
	src, err := store.Open(filepath.Join(t.TempDir(), "live.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ilo", "iom", "unicef"} {
		if _, err := src.CreateAgency(ctx, store.Op{Actor: "secretariat", Method: "test"}, id, &exchangev1.Agency{DisplayName: id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := src.ContentHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	writeBackup(t, src, backup)
	src.Close()

	c := etcdtest.Start(t, etcdtest.Options{Members: 1, UnsafeNoFsync: true})
	o := &etcdOptions{endpoints: c.Endpoints(), prefix: "/exchange/", maxTxnOps: int(c.MaxTxnOps()), maxRequestBytes: int(c.MaxRequestBytes())}
	var out bytes.Buffer
	if err := restore(ctx, &restoreOptions{from: backup, dataDir: t.TempDir(), etcd: o}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "3 audit entries verified") {
		t.Errorf("output %q", out.String())
	}
	if err := restore(ctx, &restoreOptions{from: backup, dataDir: t.TempDir(), etcd: o}, &out); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("restoring over an exchange on etcd without --force: %v", err)
	}
	on, _, err := openStore(o, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := on.ContentHash(ctx); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("content on etcd %x (%v), the backup's %x", got, err, want)
	}
	if _, err := on.CreateAgency(ctx, store.Op{Actor: "secretariat", Method: "test"}, "later", &exchangev1.Agency{DisplayName: "later", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}); err != nil {
		t.Fatal(err)
	}
	if n, err := on.VerifyAudit(ctx); err != nil || n != 4 {
		t.Fatalf("the chain restored on etcd, one entry later: %d, %v", n, err)
	}
	// Back from etcd into a file, replacing what --force replaces.
	again := filepath.Join(t.TempDir(), "from-etcd.db")
	writeBackup(t, on, again)
	want, _ = on.ContentHash(ctx)
	on.Close()
	if err := restore(ctx, &restoreOptions{from: backup, dataDir: t.TempDir(), etcd: o, force: true}, &out); err != nil {
		t.Fatalf("restore --force over etcd: %v", err)
	}
	dataDir := t.TempDir()
	if err := restore(ctx, &restoreOptions{from: again, dataDir: dataDir}, &out); err != nil {
		t.Fatal(err)
	}
	file, err := store.Open(filepath.Join(dataDir, "exchange.db"), store.Options{CheckOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if got, err := file.ContentHash(ctx); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("content restored from etcd %x (%v), etcd's %x", got, err, want)
	}
}

// writeBackup writes st's backup to path.
func writeBackup(t *testing.T, st *store.Store, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := st.Backup(context.Background(), f, nil); err != nil {
		t.Fatal(err)
	}
}
