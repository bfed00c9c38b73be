package store

import (
	"testing"
	"time"

	"github.com/alltogether/exchange/store/kv/etcdkv/etcdtest"
)

// TestWritesFailFastWithoutQuorum: while the cluster has no quorum a
// write answers KindUnavailable within the commit timeout instead of
// holding its caller (and every writer queued behind it), and writes go
// on once the quorum is back.
func TestWritesFailFastWithoutQuorum(t *testing.T) {
	needsEtcd(t)
	c := etcdtest.Start(t, etcdtest.Options{Members: 3, UnsafeNoFsync: true})
	s, err := OpenEtcd(EtcdOptions{Endpoints: c.Endpoints(), MaxTxnOps: int(c.MaxTxnOps()), MaxRequestBytes: int(c.MaxRequestBytes()),
		CommitTimeout: 500 * time.Millisecond}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCreateAgency(t, s, "before", nil)
	leader := c.Leader()
	stopped := []int{(leader + 1) % 3, (leader + 2) % 3}
	for _, i := range stopped {
		c.StopMember(i)
	}
	start := time.Now()
	_, err = s.CreateAgency(t.Context(), secretariat("CreateAgency"), "during", agencyMsg("during", nil, nil))
	took := time.Since(start)
	wantKind(t, err, KindUnavailable)
	t.Logf("a write without quorum answered %v after %v", KindOf(err), took)
	if took > 5*time.Second {
		t.Errorf("a write without quorum took %v to answer", took)
	}
	for _, i := range stopped {
		c.RestartMember(i)
	}
	waitFor(t, 20*time.Second, "writes to work again", func() bool {
		_, err := s.CreateAgency(t.Context(), secretariat("CreateAgency"), "after", agencyMsg("after", nil, nil))
		return err == nil || KindOf(err) == KindAlreadyExists
	})
}
