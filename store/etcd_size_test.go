package store

import (
	"context"
	"testing"
)

// TestEtcdBytesPerReferral measures what one referral (its record, sealed
// details, indexes, change-log and audit entries) costs in etcd's
// database once history is compacted and the member defragmented, the
// figure docs/operations.md sizes a cluster by; it fails if a referral
// costs more than the 4 KiB the docs allow for.
func TestEtcdBytesPerReferral(t *testing.T) {
	needsEtcd(t)
	s, _ := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "ilo", nil)
	mustCreateAgency(t, s, "iom", nil)
	size := func() int64 {
		t.Helper()
		if err := s.etcd.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		ep := s.etcdClient.Endpoints()[0]
		if _, err := s.etcdClient.Defragment(context.Background(), ep); err != nil {
			t.Fatal(err)
		}
		st, err := s.etcdClient.Status(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		return st.DbSizeInUse
	}
	const n = 4000
	before := size()
	plantReferrals(t, s, n, "size")
	per := float64(size()-before) / n
	t.Logf("one referral takes %.0f bytes of etcd's database", per)
	if per > 4096 {
		t.Errorf("one referral takes %.0f bytes, more than the 4 KiB docs/operations.md sizes by", per)
	}
}
