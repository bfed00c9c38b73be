package store

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/prototext"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestChangeLogKeepsNoIdentifyingDetails plants a marker in a referral's
// identifying details and checks that the change log never holds it, while
// the referral itself does.
func TestChangeLogKeepsNoIdentifyingDetails(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		if _, err := s.CreateAgency(ctx, Op{Actor: "secretariat", Method: "test"}, id, &exchangev1.Agency{DisplayName: id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}); err != nil {
			t.Fatal(err)
		}
	}
	const marker = "MARKER-Dara-4410"
	blob := sealTestDetails(&exchangev1.ReferralDetails{Name: marker, GuardianContact: marker, CaseNotes: marker})
	r := &exchangev1.Referral{
		Receiver: "agencies/iom", SubjectReference: "s-1",
		Service:       &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
		Subject:       &exchangev1.Subject{Nationality: "KH", CurrentLocation: &exchangev1.LocationRef{Country: "KH", Area: marker}},
		SealedDetails: blob,
	}
	res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, []NewReferral{{RequestID: "r1", Referral: r}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if _, err := s.UpdateReferral(ctx, Op{Actor: "agencies/iom", Method: "test"}, res[0].Referral.GetName(), "", func(r *exchangev1.Referral) error {
		r.State = exchangev1.ReferralState_REFERRAL_STATE_RECEIVED
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stored, _ := s.GetReferral(ctx, res[0].Referral.GetName())
	if detailsOf(t, stored).GetName() != marker || stored.GetSubject().GetCurrentLocation().GetArea() != marker {
		t.Fatal("the referral lost its details")
	}
	changes, err := s.Changes(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if strings.Contains(prototext.Format(c), marker) || bytes.Contains(c.GetResource().GetValue(), blob[len(blob)-64:]) {
			t.Fatalf("change %d holds identifying details", c.GetRevision())
		}
	}
}

// TestAppendBucketsArePacked creates referrals in batches, as a busy
// exchange does, and checks that the append-only buckets they grow (the
// change log, the audit chain, the data keys and sealed details) fill their
// leaf pages, where bbolt's default split would leave them half empty.
func TestAppendBucketsArePacked(t *testing.T) {
	needsFile(t, "bbolt's pages")
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		if _, err := s.CreateAgency(ctx, Op{Actor: "secretariat", Method: "test"}, id, &exchangev1.Agency{DisplayName: id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}); err != nil {
			t.Fatal(err)
		}
	}
	blob := sealTestDetails(&exchangev1.ReferralDetails{Name: "n", CaseNotes: strings.Repeat("n", 100)})
	for batch := range 40 {
		items := make([]NewReferral, 50)
		for i := range items {
			items[i] = NewReferral{RequestID: fmt.Sprintf("%04d-%02d", batch, i), Referral: &exchangev1.Referral{
				Receiver: "agencies/iom", SubjectReference: "s-1",
				Service:       &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
				SealedDetails: blob,
			}}
		}
		if _, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, items); err != nil {
			t.Fatal(err)
		}
	}
	err := s.viewBolt(context.Background(), func(tx *bolt.Tx) error {
		for _, b := range appendBuckets {
			st := tx.Bucket(b.name).Stats()
			if st.LeafPageN < 4 {
				continue // too small to say
			}
			fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
			t.Logf("%s: %d leaf pages, %.0f%% full", b.name, st.LeafPageN, 100*fill)
			if fill < b.fill-0.15 {
				t.Errorf("%s: leaf pages %.0f%% full, want about %.0f%%", b.name, 100*fill, 100*b.fill)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBatchedWritesKeepRevisionsAndTheAuditChain creates referrals in
// batches from several goroutines, so that write functions that each
// record many changes share commits with reads that append audit entries.
// A write function keeps the revision and the audit head in memory and
// writes them once when it ends; every change must still have its own
// revision, the chain must verify, and both must survive a reopen.
func TestBatchedWritesKeepRevisionsAndTheAuditChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exchange.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, agencyMsg(id, nil, nil))
	}
	const writers, batches, perBatch = 4, 5, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches*2)
	blob := sealTestDetails(&exchangev1.ReferralDetails{Name: "s"})
	for g := range writers {
		wg.Go(func() {
			for b := range batches {
				var items []NewReferral
				for i := range perBatch {
					items = append(items, NewReferral{RequestID: fmt.Sprintf("g%d-b%d-%d", g, b, i), Referral: &exchangev1.Referral{
						Receiver: "agencies/iom", SubjectReference: "s",
						Service:       &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
						SealedDetails: blob,
					}})
				}
				res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, items)
				if err != nil {
					errs <- err
					return
				}
				for _, r := range res {
					if r.Err != nil {
						errs <- r.Err
					}
				}
				errs <- s.RecordRead(ctx, Op{Actor: "agencies/iom", Method: "read"}, res[0].Referral.GetName())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	const changes = 2 + writers*batches*perBatch // the agencies, then the referrals
	var last int64                               // revisions are commit times: each change's above the one before
	all := allChanges(t, s)
	for i, ch := range all {
		if ch.GetRevision() <= last {
			t.Fatalf("change %d has revision %d, after %d", i, ch.GetRevision(), last)
		}
		last = ch.GetRevision()
	}
	if len(all) != changes {
		t.Fatalf("%d changes, want %d", len(all), changes)
	}
	entries := uint64(changes + writers*batches) // a read is audited, not logged
	if n, err := s.VerifyAudit(ctx); err != nil || n != entries {
		t.Fatalf("VerifyAudit: %d entries, %v; want %d", n, err, entries)
	}
	s.Close()
	s = openAt(t, path, Options{})
	if s.Revision() != last {
		t.Errorf("after reopening, revision %d, want %d", s.Revision(), last)
	}
	if seq, _, err := s.AuditHead(ctx); err != nil || seq != entries {
		t.Errorf("after reopening, audit head %d (%v), want %d", seq, err, entries)
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Error(err)
	}
}
