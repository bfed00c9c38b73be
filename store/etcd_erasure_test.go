package store

import (
	"bytes"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestErasureOnEtcdLeavesNothingEtcdServes checks what docs/security.md
// says of erasure on etcd: once EraseReferralDetails has answered, etcd
// serves the erased sealed details to no one, neither in the current
// state nor at any revision of its history (which the erasure compacts).
func TestErasureOnEtcdLeavesNothingEtcdServes(t *testing.T) {
	needsEtcd(t)
	s, _ := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "ilo", nil)
	mustCreateAgency(t, s, "iom", nil)
	victims := plantReferrals(t, s, 3, "erase")
	victim, spared := victims[1], victims[2]
	before, err := s.etcdClient.Get(ctx, s.etcdPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	holds := func(r *clientv3.GetResponse, sealed []byte) bool {
		for _, kv := range r.Kvs {
			if bytes.Contains(kv.Value, sealed) {
				return true
			}
		}
		return false
	}
	if !holds(before, victim.sealed) {
		t.Fatal("the planted sealed details are not in etcd to begin with")
	}
	if _, err := s.EraseReferralDetails(ctx, Op{Actor: "agencies/ilo", Method: "EraseReferralDetails"}, victim.name, func(*exchangev1.Referral) error { return nil }); err != nil {
		t.Fatal(err)
	}
	now, err := s.etcdClient.Get(ctx, s.etcdPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if holds(now, victim.sealed) {
		t.Error("etcd still serves the erased sealed details")
	}
	if !holds(now, spared.sealed) {
		t.Error("the erasure took another referral's details")
	}
	old, err := s.etcdClient.Get(ctx, s.etcdPrefix, clientv3.WithPrefix(), clientv3.WithRev(before.Header.Revision))
	if err == nil && holds(old, victim.sealed) {
		t.Fatal("etcd's history still serves the erased sealed details")
	}
	if err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Errorf("a read at the revision before the erasure: %v, want it compacted", err)
	}
}
