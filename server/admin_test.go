package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

func (c as) admin() exchangev1.AdminServiceClient { return exchangev1.NewAdminServiceClient(c.conn) }

func TestBackupUnderLoadRestoresTheSnapshot(t *testing.T) {
	x, sec, ilo, iom, _ := threeAgencies(t)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		refer(t, ilo, "iom")
	}
	var wg sync.WaitGroup
	var stop atomic.Bool
	var written atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()}); err != nil {
					t.Error(err)
					return
				}
				written.Add(1)
			}
		}()
	}
	stream, err := sec.admin().Backup(ctx, &exchangev1.BackupRequest{ChunkSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	var snapshot bytes.Buffer
	var revision, size int64
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if revision == 0 {
			revision, size = msg.GetRevision(), msg.GetSize()
		}
		snapshot.Write(msg.GetData())
	}
	stop.Store(true)
	wg.Wait()
	if int64(snapshot.Len()) != size || revision == 0 {
		t.Fatalf("snapshot of %d bytes, announced %d at revision %d", snapshot.Len(), size, revision)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, snapshot.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	restored, err := store.Open(path, store.Options{CheckOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if restored.Revision() != revision {
		t.Fatalf("restored revision %d, snapshot %d", restored.Revision(), revision)
	}
	if _, err := restored.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	// Every referral in the snapshot is in the live store, unchanged.
	var inSnapshot int
	page := store.Page{Size: store.MaxPageSize}
	for {
		items, next, _, err := restored.ListReferrals(ctx, store.ReferralFilter{AgencyID: "iom", Inbox: true}, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range items {
			live, err := x.store.GetReferral(ctx, r.GetName())
			snap, snapErr := restored.GetReferral(ctx, r.GetName())
			if err != nil || snapErr != nil || !proto.Equal(live, snap) || testDetailsOf(t, snap).GetName() != marker {
				t.Fatalf("%s differs between the snapshot and the live store: %v", r.GetName(), err)
			}
			inSnapshot++
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	if inSnapshot < 20 || x.store.Revision() <= revision {
		t.Fatalf("%d referrals in the snapshot; live revision %d, snapshot %d (writes during the backup: %d)",
			inSnapshot, x.store.Revision(), revision, written.Load())
	}

	_, err = iom.admin().GetStorageStatus(ctx, &exchangev1.GetStorageStatusRequest{})
	wantCode(t, err, codes.PermissionDenied)
	st, err := sec.admin().GetStorageStatus(ctx, &exchangev1.GetStorageStatusRequest{})
	if err != nil || st.GetRevision() != x.store.Revision() || len(st.GetAuditHead()) != 32 {
		t.Fatalf("status %v %v", st, err)
	}
}

func TestWritesPastTheQuotaAreRefusedAndReadsGoOn(t *testing.T) {
	x := startExchange(t)
	x.stop()
	x.serveWithStore(store.Options{MaxSize: 256 << 10})
	sec := x.asSecretariat()
	ctx := context.Background()
	var err error
	for i := 0; err == nil && i < 5000; i++ {
		_, err = sec.dir.CreateAgency(ctx, &exchangev1.CreateAgencyRequest{AgencyId: "agency-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26)),
			Agency: &exchangev1.Agency{DisplayName: "An agency with a long enough name to fill pages", Kind: exchangev1.AgencyKind_AGENCY_KIND_NATIONAL_NGO}})
	}
	st := wantCode(t, err, codes.ResourceExhausted)
	if reason(st) != "STORAGE_QUOTA" {
		t.Errorf("reason %q", reason(st))
	}
	if _, err := sec.dir.ListAgencies(ctx, &exchangev1.ListAgenciesRequest{}); err != nil {
		t.Fatalf("reads stopped at the quota: %v", err)
	}
}
