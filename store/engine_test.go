package store

import (
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/alltogether/exchange/store/kv/etcdkv/etcdtest"
)

// The store's suite runs on either engine: a bbolt file (the default) or,
// with -store.engine=etcd (or EXCHANGE_STORE_ENGINE=etcd), a three-member
// etcd cluster the suite starts on loopback, each test under a prefix of
// its own. `make test` runs both. Tests of what only a bbolt file has
// (its pages, size limit, scrub, checks) skip on etcd with needsFile.
var engine = flag.String("store.engine", engineDefault(), "the engine the suite runs on: bbolt or etcd")

func engineDefault() string {
	if v := os.Getenv("EXCHANGE_STORE_ENGINE"); v != "" {
		return v
	}
	return "bbolt"
}

// cluster is the suite's etcd cluster on the etcd pass; nil on bbolt.
var cluster *etcdtest.Cluster

func TestMain(m *testing.M) {
	flag.Parse()
	switch *engine {
	case "bbolt":
		os.Exit(m.Run())
	case "etcd":
		c, err := etcdtest.StartMain(etcdtest.Options{Members: 3, UnsafeNoFsync: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "starting the etcd cluster:", err)
			os.Exit(2)
		}
		cluster = c
		code := m.Run()
		c.Stop()
		os.Exit(code)
	default:
		fmt.Fprintf(os.Stderr, "-store.engine=%s: want bbolt or etcd\n", *engine)
		os.Exit(2)
	}
}

// onEtcd reports whether the suite runs on etcd.
func onEtcd() bool { return cluster != nil }

// needsFile skips a test of what only a bbolt file has.
func needsFile(t testing.TB, what string) {
	t.Helper()
	if onEtcd() {
		t.Skip("a bbolt file's own: " + what)
	}
}

// needsEtcd skips a test that needs the etcd pass.
func needsEtcd(t testing.TB) {
	t.Helper()
	if !onEtcd() {
		t.Skip("runs on the etcd pass of the suite (-store.engine=etcd)")
	}
}

var prefixes atomic.Int64

// freshPrefix returns a prefix no test has used in this run.
func freshPrefix() string { return fmt.Sprintf("/test/%d/", prefixes.Add(1)) }

// openEtcdAt opens a store on the suite's cluster under prefix and closes
// it when the test ends.
func openEtcdAt(t testing.TB, prefix string, opt Options) *Store {
	t.Helper()
	s, err := OpenEtcd(EtcdOptions{Endpoints: cluster.Endpoints(), Prefix: prefix,
		MaxTxnOps: int(cluster.MaxTxnOps()), MaxRequestBytes: int(cluster.MaxRequestBytes())}, opt)
	if err != nil {
		t.Fatalf("OpenEtcd(%s): %v", prefix, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
