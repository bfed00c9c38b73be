package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/alltogether/exchange/store/kv"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// planted is a referral whose sealed details carry markers unique to it,
// with its sealed details as stored (the agency's key, which the
// exchange never holds, opens them).
type planted struct {
	name    string
	markers []string // the subject's name, the guardian's contact, the case notes
	sealed  []byte
}

// plantReferrals creates n referrals from ilo to iom (the agencies must
// exist) whose sealed details carry unique markers, and reads back each
// one's sealed details as stored.
func plantReferrals(t testing.TB, s *Store, n int, tag string) []planted {
	t.Helper()
	ctx := context.Background()
	out := make([]planted, 0, n)
	var markers [][]string
	for start := 0; start < n; start += 500 {
		var batch []NewReferral
		for i := start; i < min(n, start+500); i++ {
			id := fmt.Sprintf("%s%06d", tag, i)
			batch = append(batch, NewReferral{RequestID: "req-" + id, Referral: &exchangev1.Referral{
				Receiver: "agencies/iom", SubjectReference: "s-" + id,
				Service: &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "shelter"},
				SealedDetails: sealTestDetails(&exchangev1.ReferralDetails{
					Name: "NAME-" + id + "-Chanthy", GuardianContact: "GUARDIAN-" + id + "-aunt +855 12 345 678",
					CaseNotes: "NOTES-" + id + ": found at the border crossing, speaks Khmer",
				}),
			}})
			markers = append(markers, []string{"NAME-" + id + "-Chanthy", "GUARDIAN-" + id + "-aunt +855 12 345 678", "NOTES-" + id + ": found at the border crossing, speaks Khmer"})
		}
		res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			out = append(out, planted{name: r.Referral.GetName(), markers: markers[start+i]})
		}
	}
	err := s.view(ctx, func(tx kv.Tx) error {
		for i := range out {
			id := []byte(referralID(out[i].name))
			out[i].sealed = bytes.Clone(tx.Bucket(bucketReferralDetails).Get(id))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// scan searches the raw bytes of a database file as an offline scanner
// would, and returns what of each planted referral it recovers: its
// markers in clear, and its sealed details (which the agencies' keys
// open). It looks at every offset of the file once, for the first 16
// bytes of every needle.
func scan(t *testing.T, path string, refs []planted) (markers, sealed map[string]bool) {
	t.Helper()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type needle struct {
		b     []byte
		found map[string]bool
		name  string
	}
	markers, sealed = map[string]bool{}, map[string]bool{}
	index := map[[16]byte][]needle{}
	// starts has a bit for each value of a needle's first three bytes: the
	// index is looked up only at the offsets where one may begin, which
	// under the race detector made the scan several times faster (each
	// lookup of 16 bytes is checked as a memory access).
	starts := make([]uint64, 1<<24/64)
	first3 := func(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
	add := func(b []byte, found map[string]bool, name string) {
		if len(b) < 16 {
			t.Fatalf("needle %q is shorter than 16 bytes", b)
		}
		k := [16]byte(b[:16])
		index[k] = append(index[k], needle{b, found, name})
		v := first3(b)
		starts[v>>6] |= 1 << (v & 63)
	}
	for _, r := range refs {
		for _, m := range r.markers {
			add([]byte(m), markers, r.name)
		}
		// The whole sealed value, or 32 bytes of its first stanza's random
		// material, or its last 32 bytes alone (a copy cut by a page
		// boundary); every blob starts with the same age header.
		add(r.sealed, sealed, r.name)
		add(r.sealed[64:96], sealed, r.name)
		add(r.sealed[len(r.sealed)-32:], sealed, r.name)
	}
	for i := 0; i+16 <= len(file); i++ {
		if v := first3(file[i:]); starts[v>>6]&(1<<(v&63)) == 0 {
			continue
		}
		for _, n := range index[[16]byte(file[i:i+16])] {
			if bytes.HasPrefix(file[i:], n.b) {
				n.found[n.name] = true
			}
		}
	}
	return markers, sealed
}

// TestErasureLeavesNothingInTheFile plants 2,000 referrals with markers,
// reads some, erases 300 of them (one at a time, and eight at once through
// the store as concurrent calls do), and searches the raw file as an
// offline scanner would: no marker is ever in clear (so neither the change
// log nor the audit chain holds details), and of the erased referrals the
// sealed details are nowhere, in live or in freed pages (the agencies'
// keys would open them). The other referrals still open, and their sealed
// details are in the file (the scanner would find them). It scans again
// after a reopen.
func TestErasureLeavesNothingInTheFile(t *testing.T) {
	needsFile(t, "the scrub of freed pages")
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	start := time.Now()
	refs := plantReferrals(t, s, 2000, "m")
	t.Logf("planted 2000 referrals in %v", time.Since(start))
	for i := 0; i < len(refs); i += 97 {
		if got, err := s.GetReferral(ctx, refs[i].name); err != nil || detailsOf(t, got).GetName() != refs[i].markers[0] {
			t.Fatalf("GetReferral(%s) = %v, %v", refs[i].name, got, err)
		}
	}
	if _, sealed := scan(t, s.Path(), refs); len(sealed) != len(refs) {
		t.Fatalf("the scanner finds %d of %d sealed details before any erasure", len(sealed), len(refs))
	}

	erase := func(r planted, reason string) {
		t.Helper()
		op := Op{Actor: "agencies/ilo", Method: "/alltogether.exchange.v1.ReferralService/EraseReferralDetails", Reason: reason}
		if _, err := s.EraseReferralDetails(ctx, op, r.name, func(*exchangev1.Referral) error { return nil }); err != nil {
			t.Errorf("erase %s: %v", r.name, err)
		}
	}
	erased := map[string]bool{}
	start = time.Now()
	for i := 0; i < 1000; i += 7 { // 143 erasures, one at a time
		erase(refs[i], "person-request")
		erased[refs[i].name] = true
	}
	t.Logf("143 erasures one at a time: %v", time.Since(start))
	start = time.Now()
	var wg sync.WaitGroup
	work := make(chan planted)
	for range 8 { // 157 more, by eight erasers at once
		wg.Go(func() {
			for r := range work {
				erase(r, "consent-withdrawn")
			}
		})
	}
	for k := range 157 {
		r := refs[1000+6*k]
		erased[r.name] = true
		work <- r
	}
	close(work)
	wg.Wait()
	t.Logf("157 erasures by eight erasers at once: %v", time.Since(start))
	if len(erased) != 300 {
		t.Fatalf("the test erased %d referrals, want 300", len(erased))
	}

	check := func(when string) {
		t.Helper()
		markers, sealed := scan(t, s.Path(), refs)
		if len(markers) > 0 {
			t.Errorf("%s: the markers of %d referrals are in the file in clear", when, len(markers))
		}
		recovered := 0
		for _, r := range refs {
			if !erased[r.name] {
				if !sealed[r.name] {
					t.Errorf("%s: the sealed details of %s, not erased, are not found: the scanner is blind", when, r.name)
				}
				continue
			}
			if sealed[r.name] {
				recovered++
			}
		}
		t.Logf("%s: erased referrals whose sealed details the file still holds: %d of %d", when, recovered, len(erased))
		if recovered > 0 {
			t.Errorf("%s: %d of %d erased referrals left their sealed details in the file", when, recovered, len(erased))
		}
		for _, r := range refs {
			got, err := s.GetReferral(ctx, r.name)
			switch {
			case err != nil:
				t.Fatalf("%s: GetReferral(%s): %v", when, r.name, err)
			case erased[r.name]:
				if got.GetSubject() != nil || got.GetSealedDetails() != nil || !got.GetDetailsErased() {
					t.Fatalf("%s: %s still shows details after erasure", when, r.name)
				}
			default:
				// Opened once: each open costs milliseconds under -race.
				if d := detailsOf(t, got); d.GetName() != r.markers[0] || d.GetCaseNotes() != r.markers[2] {
					t.Fatalf("%s: the details of %s, not erased, do not open: %v", when, r.name, got)
				}
			}
		}
	}
	check("after the erasures")
	if st, err := s.Status(ctx); err != nil || st.UnscrubbedErasures != 0 {
		t.Errorf("Status after the erasures: %+v, %v; want no unscrubbed erasure", st, err)
	}
	if err := s.read(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if isScratchBucket(name) {
				t.Errorf("scratch bucket %s left after the scrub", name)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{})
	check("after a reopen")
}

// holdRead opens a read transaction through the store, lets it run fn
// while the transaction is open, and keeps it open until release is
// called; it returns once fn has run.
func holdRead(t *testing.T, s *Store, fn func(tx *bolt.Tx)) (release func(check func(tx *bolt.Tx))) {
	t.Helper()
	began := make(chan struct{})
	next := make(chan func(tx *bolt.Tx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.read(func(tx *bolt.Tx) error {
			fn(tx)
			close(began)
			if check := <-next; check != nil {
				check(tx)
			}
			return nil
		})
	}()
	<-began
	var once sync.Once
	release = func(check func(tx *bolt.Tx)) {
		once.Do(func() {
			next <- check
			<-done
		})
	}
	t.Cleanup(func() { release(nil) }) // before the store closes, if the test stops early
	return release
}

// TestErasureWaitsForOlderReadsAndSparesThem holds a read transaction
// open, begun before an erasure, that has read the referral's key and
// sealed details. The erasure commits at once (the referral shows erased
// to new reads) but is not answered while the read is open: the pages the
// read may still see are neither reused nor overwritten. The read still
// opens the details and its whole snapshot checks out; once it ends, the
// erasure is answered and the file holds neither key nor details.
func TestErasureWaitsForOlderReadsAndSparesThem(t *testing.T) {
	needsFile(t, "the scrub of freed pages")
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	if s.opt.ScrubWait != 30*time.Second {
		t.Errorf("ScrubWait defaults to %v; the docs say 30 seconds", s.opt.ScrubWait)
	}
	refs := plantReferrals(t, s, 300, "w")
	victim := refs[150]
	var snapshot []byte
	release := holdRead(t, s, func(tx *bolt.Tx) {
		var r exchangev1.Referral
		if err := openDetails(kv.Bolt(tx), referralID(victim.name), &r); err != nil || detailsOf(t, &r).GetName() != victim.markers[0] {
			t.Errorf("before the erasure the read opens %v, %v", &r, err)
		}
		snapshot = digestOf(t, tx)
	})
	answered := make(chan error, 1)
	go func() {
		_, err := s.EraseReferralDetails(ctx, Op{Actor: "agencies/ilo", Method: "test", Reason: "person-request"}, victim.name, func(*exchangev1.Referral) error { return nil })
		answered <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if got, err := s.GetReferral(ctx, victim.name); err == nil && got.GetDetailsErased() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the erasure did not commit")
		}
	}
	// More writes, which would like to reuse the freed pages.
	plantReferrals(t, s, 300, "x")
	select {
	case err := <-answered:
		t.Fatalf("the erasure was answered (%v) while a read begun before it was open", err)
	case <-time.After(200 * time.Millisecond):
	}
	release(func(tx *bolt.Tx) {
		var r exchangev1.Referral
		if err := openDetails(kv.Bolt(tx), referralID(victim.name), &r); err != nil || detailsOf(t, &r).GetName() != victim.markers[0] || detailsOf(t, &r).GetCaseNotes() != victim.markers[2] {
			t.Errorf("after the erasure committed, the older read opens %v, %v", &r, err)
		}
		if !bytes.Equal(digestOf(t, tx), snapshot) {
			t.Error("the older read's snapshot changed under it")
		}
	})
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the erasure was not answered after the older read ended")
	}
	if _, sealed := scan(t, s.Path(), []planted{victim}); len(sealed) > 0 {
		t.Error("after the answer the file holds the erased referral's sealed details")
	}
}

// TestErasureDuringABackup streams a backup that has begun before an
// erasure and stalls half-way. The erasure, with a short ScrubWait,
// answers KindUnavailable saying that the details are erased and the
// pages will be overwritten when the read ends; Status counts it as
// unscrubbed. The backup then completes as a sound snapshot from before
// the erasure, and the exchange overwrites the pages by itself.
func TestErasureDuringABackup(t *testing.T) {
	needsFile(t, "the scrub of freed pages")
	s := openAt(t, filepath.Join(t.TempDir(), "exchange.db"), Options{ScrubWait: 100 * time.Millisecond})
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	refs := plantReferrals(t, s, 300, "b")
	victim := refs[7]

	pr, pw := io.Pipe()
	backupPath := filepath.Join(t.TempDir(), "backup.db")
	copied := make(chan error, 1)
	go func() {
		f, err := os.Create(backupPath)
		if err != nil {
			copied <- err
			return
		}
		_, err = io.Copy(f, pr)
		f.Close()
		copied <- err
	}()
	stalled := make(chan struct{})
	stall := &stallingWriter{w: pw, after: 64 << 10, stalled: stalled, resume: make(chan struct{})}
	var resumeOnce sync.Once
	resume := func() { resumeOnce.Do(func() { close(stall.resume) }) }
	t.Cleanup(resume) // before the store closes, if the test stops early
	backedUp := make(chan error, 1)
	go func() {
		err := s.Backup(ctx, stall, nil)
		pw.CloseWithError(err)
		backedUp <- err
	}()
	<-stalled

	_, err := s.EraseReferralDetails(ctx, Op{Actor: "agencies/ilo", Method: "test", Reason: "person-request"}, victim.name, func(*exchangev1.Referral) error { return nil })
	if e := wantKind(t, err, KindUnavailable); !bytes.Contains([]byte(e.Message), []byte("a read that began before the erasure")) {
		t.Errorf("the message does not say why: %s", e.Message)
	}
	if got, err := s.GetReferral(ctx, victim.name); err != nil || !got.GetDetailsErased() || got.GetSubject() != nil {
		t.Fatalf("the erasure is not made: %v %v", got, err)
	}
	if st, _ := s.Status(ctx); st.UnscrubbedErasures != 1 {
		t.Errorf("Status counts %d unscrubbed erasures during the backup, want 1", st.UnscrubbedErasures)
	}
	resume()
	if err := <-backedUp; err != nil {
		t.Fatal(err)
	}
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	b := openAt(t, backupPath, Options{ReadOnly: true, CheckOnOpen: true})
	if got, err := b.GetReferral(ctx, victim.name); err != nil || detailsOf(t, got).GetName() != victim.markers[0] {
		t.Errorf("the backup, begun before the erasure, holds %v, %v", got, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := s.Status(ctx); st.UnscrubbedErasures == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pages were not overwritten after the backup ended")
		}
	}
	if _, sealed := scan(t, s.Path(), []planted{victim}); len(sealed) > 0 {
		t.Error("after the backup ended the file still holds the erased referral's key or sealed details")
	}
}

// digestOf hashes every bucket, key and value a read transaction sees.
func digestOf(t *testing.T, tx *bolt.Tx) []byte {
	t.Helper()
	h := sha256.New()
	if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error { return hashBucket(h, name, kv.BoltBucket(b)) }); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

// stallingWriter passes writes through until after bytes, then waits for
// resume.
type stallingWriter struct {
	w       io.Writer
	after   int
	n       int
	stalled chan struct{} // closed when it stalls
	resume  chan struct{}
	done    bool // it has stalled
}

func (s *stallingWriter) Write(p []byte) (int, error) {
	if s.n >= s.after && !s.done {
		s.done = true
		close(s.stalled)
		<-s.resume
	}
	s.n += len(p)
	return s.w.Write(p)
}

// TestRetentionErasureAndOpenScrub erases through EraseDetailsOf (the
// retention job's call) and checks the file, and that Open overwrites the
// freed pages a process left behind (here: pages freed by an erasure made
// with the scrub skipped, as older versions did).
func TestRetentionErasureAndOpenScrub(t *testing.T) {
	needsFile(t, "the scrub of freed pages")
	s, _ := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, nil)
	}
	refs := plantReferrals(t, s, 500, "r")
	var names []string
	for _, r := range refs[:50] {
		names = append(names, r.name)
	}
	erased, err := s.EraseDetailsOf(ctx, Op{Actor: "exchange", Method: "exchanged/retention", Reason: ErasureRetention}, append(names, names[0]))
	if err != nil || len(erased) != 50 {
		t.Fatalf("EraseDetailsOf erased %d: %v", len(erased), err)
	}
	if again, err := s.EraseDetailsOf(ctx, Op{Actor: "exchange", Method: "exchanged/retention", Reason: ErasureRetention}, names); err != nil || len(again) != 0 {
		t.Fatalf("erasing again erased %v, %v", again, err)
	}
	if _, sealed := scan(t, s.Path(), refs[:50]); len(sealed) > 0 {
		t.Errorf("after the retention erasure the file holds the sealed details of %d erased referrals", len(sealed))
	}
	entries := allAudit(t, s)
	retention := 0
	for _, e := range entries {
		if e.GetMethod() == "exchanged/retention" {
			retention++
			if e.GetReason() != ErasureRetention {
				t.Errorf("retention audit entry %d has reason %q", e.GetSequence(), e.GetReason())
			}
		} else if e.GetReason() != "" {
			t.Errorf("audit entry %d (%s) has reason %q", e.GetSequence(), e.GetMethod(), e.GetReason())
		}
	}
	if retention != 50 {
		t.Errorf("%d retention audit entries, want 50", retention)
	}

	// An erasure without its scrub, as before scrubs existed.
	victim := refs[60]
	if err := s.update(ctx, Op{Actor: "agencies/ilo", Method: "test"}, func(w *writeTx) error {
		_, err := eraseDetails(w, victim.name, func(*exchangev1.Referral) error { return nil })
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, sealed := scan(t, s.Path(), []planted{victim}); len(sealed) == 0 {
		t.Fatal("without a scrub the freed pages should still hold the sealed details")
	}
	before, err := s.ContentHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	s.Close()
	s = openAt(t, path, Options{})
	if _, sealed := scan(t, path, []planted{victim}); len(sealed) > 0 {
		t.Error("Open did not overwrite the pages an unscrubbed erasure freed")
	}
	if after, err := s.ContentHash(ctx); err != nil || !bytes.Equal(before, after) {
		t.Errorf("the scrub at Open changed the content: %x → %x (%v)", before, after, err)
	}
}
