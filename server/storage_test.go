package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// notesBlob is testDetails with about 1 KiB of case notes, sealed.
var notesBlob = sync.OnceValue(func() []byte {
	d := testDetails()
	d.CaseNotes += strings.Repeat(" more notes", 90)
	return sealTest(d)
})

// batchOfReferrals is a BatchCreateReferrals request of n referrals to
// receiver, each with about 1 KiB of case notes, sealed.
func batchOfReferrals(receiver string, n int) *exchangev1.BatchCreateReferralsRequest {
	req := &exchangev1.BatchCreateReferralsRequest{}
	for range n {
		r := newReferral(receiver)
		r.SealedDetails = notesBlob()
		req.Requests = append(req.Requests, &exchangev1.CreateReferralRequest{Referral: r, RequestId: nextRequestID()})
	}
	return req
}

// accepted returns the names of the referrals a batch stored.
func accepted(resp *exchangev1.BatchCreateReferralsResponse) []string {
	var out []string
	for _, r := range resp.GetResults() {
		if r.GetStatus() == exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED {
			out = append(out, r.GetReferral())
		}
	}
	return out
}

// TestQuotaBoundsTheFileAndReadsOfDetailsGoOn runs an exchange with a 2
// MiB --max-db-size over real mutual TLS and fills it with referrals
// until the quota refuses: the database FILE never passes 2 MiB, the
// refusal is RESOURCE_EXHAUSTED (STORAGE_QUOTA) saying writes are refused
// and reads go on; and they do: the receiver reads identifying details
// (each read audited, in the reserve), lists, and the sender erases
// details, all past the point where writes stopped.
func TestQuotaBoundsTheFileAndReadsOfDetailsGoOn(t *testing.T) {
	const limit = 2 << 20
	x := startExchange(t)
	x.stop()
	// A new database, made under the quota: one grown without it keeps
	// the size it has.
	if err := os.Remove(filepath.Join(x.dir, "exchange.db")); err != nil {
		t.Fatal(err)
	}
	x.serveWithStore(store.Options{MaxSize: limit})
	sec := x.asSecretariat()
	for _, id := range []string{"ilo", "iom"} {
		x.createAgency(sec, id, exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	}
	ilo, iom := x.asAgency("ilo"), x.asAgency("iom")
	ctx := context.Background()
	path := filepath.Join(x.dir, "exchange.db")
	checkFile := func(when string) {
		t.Helper()
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > limit {
			t.Fatalf("%s: exchange.db is %d bytes, past --max-db-size %d", when, info.Size(), limit)
		}
	}

	var names []string
	var refusal error
	for i := 0; i < 1000 && refusal == nil; i++ {
		resp, err := ilo.referrals().BatchCreateReferrals(ctx, batchOfReferrals("iom", 20))
		refusal = err
		names = append(names, accepted(resp)...)
		checkFile("filling")
	}
	st := wantCode(t, refusal, codes.ResourceExhausted)
	if reason(st) != "STORAGE_QUOTA" || !strings.Contains(st.Message(), "size limit") || !strings.Contains(st.Message(), "reads go on") {
		t.Errorf("refusal: %s %q", reason(st), st.Message())
	}
	t.Logf("%d referrals stored under a %d-byte quota", len(names), limit)
	_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()})
	wantCode(t, err, codes.ResourceExhausted)

	for i := range 30 {
		resp, err := iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: names[i]})
		if err != nil {
			t.Fatalf("read %d of identifying details at the quota: %v", i, err)
		}
		if testDetailsOf(t, resp.GetReferral()).GetName() != marker {
			t.Fatalf("read %d came without the details", i)
		}
		checkFile("reading details")
	}
	if _, err := iom.referrals().ListReferrals(ctx, &exchangev1.ListReferralsRequest{}); err != nil {
		t.Fatalf("list at the quota: %v", err)
	}
	for _, name := range names[:5] {
		if _, err := ilo.referrals().EraseReferralDetails(ctx, &exchangev1.EraseReferralDetailsRequest{Name: name, Reason: "erasure requested by the person", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST}); err != nil {
			t.Fatalf("erasure at the quota: %v", err)
		}
		checkFile("erasing")
	}
}

// smallFileSystem mounts a tmpfs of size bytes on a new directory (as
// root) and returns it; the test is skipped where mounting is not
// permitted. It is unmounted when the test ends, after x stops.
func smallFileSystem(t *testing.T, x *exchange, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v): needs root; the store's TestInjectedFullDisk covers the mapping", err)
	}
	t.Cleanup(func() {
		x.stop()
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestFullDiskAnswersResourceExhaustedOverTheAPI serves the exchange from
// a small tmpfs (as root), fills the file system, and creates referrals
// over real mutual TLS: once the disk is full, every refused call gets
// RESOURCE_EXHAUSTED saying the disk is full, never INTERNAL; the server
// logs the cause ("no space left on device") once, not once per call; a
// read of identifying details is refused too (it needs room for its audit
// entry) rather than answered unaudited. Once space is freed, writes
// succeed again, and after a restart every acknowledged referral is there.
func TestFullDiskAnswersResourceExhaustedOverTheAPI(t *testing.T) {
	x := startExchange(t)
	dir := smallFileSystem(t, x, 8<<20)
	x.stop()
	x.dir = dir // a new database on the small file system
	logs := &lockedBuffer{}
	x.serveWith(func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	sec := x.asSecretariat()
	for _, id := range []string{"ilo", "iom"} {
		x.createAgency(sec, id, exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	}
	ilo, iom := x.asAgency("ilo"), x.asAgency("iom")
	ctx := context.Background()

	var acked []string
	for range 5 {
		resp, err := ilo.referrals().BatchCreateReferrals(ctx, batchOfReferrals("iom", 20))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, accepted(resp)...)
	}
	filler := filepath.Join(dir, "filler")
	fill(t, filler)

	refused := 0
	for attempt := 0; attempt < 2000 && refused < 30; attempt++ {
		resp, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()})
		if err == nil {
			acked = append(acked, resp.GetReferral().GetName())
			continue
		}
		st := wantCode(t, err, codes.ResourceExhausted)
		if !strings.Contains(st.Message(), "disk is full") {
			t.Fatalf("message %q", st.Message())
		}
		refused++
	}
	if refused == 0 {
		t.Fatal("the disk never filled")
	}
	// Reads of details go on while their audit entries fit in pages the
	// file already has, and are refused, never answered unaudited, when
	// they do not.
	var readErr error
	reads := 0
	for ; reads < 5000 && readErr == nil; reads++ {
		_, readErr = iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: acked[reads%len(acked)]})
	}
	if st := wantCode(t, readErr, codes.ResourceExhausted); !strings.Contains(st.Message(), "audit entry") {
		t.Errorf("a read of details on a full disk: %q", st.Message())
	}
	refused++
	if n := strings.Count(logs.String(), "no space left on device"); n != 1 {
		t.Errorf("the cause was logged %d times for %d refused calls, want once:\n%s", n, refused, logs.String())
	}
	if strings.Contains(logs.String(), `"msg":"internal error"`) {
		t.Errorf("a full disk was logged as an internal error:\n%s", logs.String())
	}
	t.Logf("%d calls refused with a full disk; %d referrals acknowledged; %d audited reads before one was refused", refused, len(acked), reads)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	resp, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()})
	if err != nil {
		t.Fatalf("a write after space was freed: %v", err)
	}
	acked = append(acked, resp.GetReferral().GetName())
	x.restart()
	iom = x.asAgency("iom")
	for _, name := range acked {
		got, err := iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: name})
		if err != nil || testDetailsOf(t, got.GetReferral()).GetName() != marker {
			t.Fatalf("acknowledged %s after the restart: %v", name, err)
		}
	}
}

// fill writes path until its file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 16<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}
