package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestStartThreeMembers starts the default cluster, writes through one
// member and reads through another, and logs how long starting took.
func TestStartThreeMembers(t *testing.T) {
	began := time.Now()
	c := Start(t, Options{UnsafeNoFsync: true})
	t.Logf("3 members started in %v", time.Since(began))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.MemberClient(t, 0).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.MemberClient(t, 2).Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("read through member 2: %v %v", resp, err)
	}
	if c.Leader() < 0 {
		t.Fatal("no member is the leader")
	}
}

// TestTLS starts a cluster that requires client certificates: the
// cluster's client config is served, a client without a certificate is not.
func TestTLS(t *testing.T) {
	c := Start(t, Options{Members: 1, UnsafeNoFsync: true, TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	noCert := c.TLS.Config.Clone()
	noCert.Certificates = nil
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: noCert, Logger: zap.NewNop(), DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	if _, err := cli.Get(short, "k"); err == nil {
		t.Fatal("a client without a certificate was served")
	}
}
