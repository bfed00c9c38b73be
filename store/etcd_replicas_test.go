package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// These tests run two stores on one etcd cluster and prefix, as two
// exchanged replicas do. They need the etcd pass of the suite
// (-store.engine=etcd, which `make test` runs).

// openReplicas opens two stores on one fresh prefix of the shared cluster.
func openReplicas(t *testing.T) (*Store, *Store) {
	t.Helper()
	needsEtcd(t)
	prefix := freshPrefix()
	return openEtcdAt(t, prefix, Options{}), openEtcdAt(t, prefix, Options{})
}

// TestReplicasShareOneLogAndOneChain: writers on two replicas at once
// make one change log, in revision order with no gaps or duplicates, the
// same on both, and one audit chain that verifies.
func TestReplicasShareOneLogAndOneChain(t *testing.T) {
	a, b := openReplicas(t)
	ctx := t.Context()
	const perReplica, writers = 40, 4
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for r, s := range []*Store{a, b} {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perReplica / writers {
					id := fmt.Sprintf("r%dw%di%d", r, w, i)
					if _, err := s.CreateAgency(ctx, secretariat("CreateAgency"), id, agencyMsg(id, nil, nil)); err != nil {
						errs <- fmt.Errorf("%s: %w", id, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	logA, logB := allChanges(t, a), allChanges(t, b)
	if len(logA) != 2*perReplica || len(logB) != len(logA) {
		t.Fatalf("change logs hold %d and %d entries, want %d", len(logA), len(logB), 2*perReplica)
	}
	for i := range logA {
		if logA[i].GetRevision() != logB[i].GetRevision() || logA[i].GetResourceName() != logB[i].GetResourceName() {
			t.Fatalf("entry %d: %d %s on one replica, %d %s on the other", i,
				logA[i].GetRevision(), logA[i].GetResourceName(), logB[i].GetRevision(), logB[i].GetResourceName())
		}
		if i > 0 && logA[i].GetRevision() <= logA[i-1].GetRevision() {
			t.Fatalf("revision %d after %d", logA[i].GetRevision(), logA[i-1].GetRevision())
		}
	}
	entries := allAudit(t, b)
	for i, e := range entries {
		if e.GetSequence() != uint64(i+1) {
			t.Fatalf("audit entry %d has sequence %d", i, e.GetSequence())
		}
	}
	for _, s := range []*Store{a, b} {
		if n, err := s.VerifyAudit(ctx); err != nil || n != uint64(len(entries)) {
			t.Fatalf("VerifyAudit = %d, %v; want %d entries", n, err, len(entries))
		}
	}
}

// TestWatcherOnOneReplicaSeesTheOthersWrites follows the change log on
// one replica, as WatchReferrals does (Changed, then Changes after the
// last revision read), while both replicas write: it sees every change
// once, in order, and is woken by the other replica's commits.
func TestWatcherOnOneReplicaSeesTheOthersWrites(t *testing.T) {
	a, b := openReplicas(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	start := safeRevision(t, b)
	const total = 60
	seen := make(chan []*exchangev1.Change, 1)
	go func() {
		var got []*exchangev1.Change
		rev := start
		for len(got) < total {
			changed := b.Changed()
			page, err := b.Changes(ctx, rev, 16)
			if err != nil {
				break
			}
			for _, ch := range page {
				got = append(got, ch)
				rev = ch.GetRevision()
			}
			if len(page) > 0 {
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				seen <- got
				return
			}
		}
		seen <- got
	}()
	for i := range total {
		s := a
		if i%3 == 2 {
			s = b
		}
		mustCreateAgency(t, s, fmt.Sprintf("w%03d", i), nil)
	}
	got := <-seen
	want := allChanges(t, a)
	if len(got) != total || len(want) != total {
		t.Fatalf("the watcher saw %d changes, the log holds %d, %d were made", len(got), len(want), total)
	}
	for i := range want {
		if got[i].GetRevision() != want[i].GetRevision() || got[i].GetResourceName() != want[i].GetResourceName() {
			t.Fatalf("change %d: watched %d %s, logged %d %s", i, got[i].GetRevision(), got[i].GetResourceName(), want[i].GetRevision(), want[i].GetResourceName())
		}
	}
}

// TestSafeRevisionHoldsAcrossReplicas: a safe revision handed out by one
// replica bounds from below every change committed afterwards through the
// other, even when that replica's clock is far behind.
func TestSafeRevisionHoldsAcrossReplicas(t *testing.T) {
	needsEtcd(t)
	prefix := freshPrefix()
	ahead, behind := newClock(), newClock()
	ahead.advance(time.Hour)
	a := openEtcdAt(t, prefix, Options{Now: ahead.now})
	b := openEtcdAt(t, prefix, Options{Now: behind.now})
	mustCreateAgency(t, a, "first", nil)
	safe := safeRevision(t, a)
	mustCreateAgency(t, b, "after", nil)
	got, err := a.Changes(t.Context(), safe, 10)
	if err != nil || len(got) != 1 || got[0].GetResourceName() != "agencies/after" || got[0].GetRevision() <= safe {
		t.Fatalf("changes after the safe revision %d: %v %v", safe, got, err)
	}
}

// TestReplicaRetiresCachedCallersOnOthersRevocation: a certificate
// revoked through one replica is refused by the other's cached lookup
// once etcd's watch has delivered the change; docs/operations.md states
// the bound this test checks.
func TestReplicaRetiresCachedCallersOnOthersRevocation(t *testing.T) {
	a, b := openReplicas(t)
	ctx := t.Context()
	mustCreateAgency(t, a, "iom", nil)
	if _, err := a.RecordCertificate(ctx, secretariat("IssueCertificate"), "0a", &exchangev1.Certificate{Subject: "agencies/iom"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the other replica to see the recorded certificate", func() bool {
		c, err := b.LookupCaller(ctx, "0a", "iom")
		return err == nil && c.CertificateRecorded && !c.CertificateRevoked
	})
	started := time.Now()
	if _, err := a.RevokeCertificate(ctx, secretariat("RevokeCertificate"), "certificates/0a", "key-compromise"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, replicaLagBound, "the other replica to refuse the revoked certificate", func() bool {
		c, err := b.LookupCaller(ctx, "0a", "iom")
		return err == nil && c.CertificateRevoked
	})
	t.Logf("the other replica refused the revoked certificate %v after the revocation was acknowledged", time.Since(started))
}

// replicaLagBound is how long a replica may take to apply what another
// committed to its caches; docs/operations.md states it.
const replicaLagBound = 2 * time.Second

// TestRequestIDsHoldAcrossReplicas: a create retried through another
// replica with the same request id returns the first one's result.
func TestRequestIDsHoldAcrossReplicas(t *testing.T) {
	a, b := openReplicas(t)
	mustCreateAgency(t, a, "ilo", nil)
	mustCreateAgency(t, a, "iom", nil)
	first := plantReferrals(t, a, 1, "dup")
	again := plantReferrals(t, b, 1, "dup")
	if first[0].name != again[0].name {
		t.Fatalf("the retry through the other replica created %s besides %s", again[0].name, first[0].name)
	}
	if n := len(allChanges(t, b)); n != 3 {
		t.Fatalf("%d changes, want 3 (two agencies, one referral)", n)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLatestRevisionSeesTheOthersCommitAtOnce: right after a commit
// through one replica, LatestRevision on the other already reaches it,
// without waiting for etcd's watch, so caches rebuilt up to it (the plan
// overlap index) hold every change acknowledged before.
func TestLatestRevisionSeesTheOthersCommitAtOnce(t *testing.T) {
	a, b := openReplicas(t)
	for i := range 20 {
		mustCreateAgency(t, a, fmt.Sprintf("a%02d", i), nil)
		got, err := b.LatestRevision(t.Context())
		if err != nil || got < a.Revision() {
			t.Fatalf("after the commit at %d through one replica, the other's latest revision is %d (%v)", a.Revision(), got, err)
		}
	}
}
