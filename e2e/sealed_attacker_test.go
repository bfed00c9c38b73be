package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// Numbers of referrals the attacker test plants markers in: sealed by the
// sending client (the issue's 1,000), and sent in clear by a client
// without a key ring, which the exchange must refuse.
const (
	attackSealed = 1000
	attackPlain  = 100
)

// markerPattern finds every marker the test plants, in any field: in the
// identifying details (SEALED, PLAIN) and, as the attack's own control,
// in the subject reference, which the exchange holds in clear (CONTROL).
var markerPattern = regexp.MustCompile(`(SEALED|PLAIN|CONTROL)-\d{4}-(NAME|GUARD|NOTE|REF)`)

// attackReferral is a referral from ilo to iom whose name, guardian
// contact and case notes carry the markers of kind ("SEALED" or
// "PLAIN") and number i, and whose subject reference, a routing field the
// exchange reads, carries the control marker CONTROL-i-REF.
func attackReferral(kind string, i int) *exchangev1.Referral {
	m := func(field string) string { return fmt.Sprintf("%s-%04d-%s", kind, i, field) }
	return &exchangev1.Referral{
		Receiver:         "agencies/iom",
		Service:          &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: "counselling after return"},
		Urgency:          exchangev1.Urgency_URGENCY_URGENT,
		SubjectReference: fmt.Sprintf("CONTROL-%04d-REF", i),
		Subject: &exchangev1.Subject{
			Name: m("NAME"), GuardianContact: m("GUARD") + " +855 12 000 000", BirthYear: 2011,
			Sex: exchangev1.Sex_SEX_FEMALE, Nationality: "KH", Languages: []string{"km"},
		},
		CaseNotes: "notes: " + m("NOTE"),
		Consent: &exchangev1.Consent{
			GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN, GivenTime: timestamppb.New(time.Now().Add(-time.Hour)),
			ReceivingAgency: "agencies/iom", Services: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		},
		Location: &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"},
	}
}

// markerAt matches a marker at the start of its input, and markerStarts
// are the words a marker begins with, one per alternative of
// markerPattern's first group.
var (
	markerAt     = regexp.MustCompile(`^` + markerPattern.String())
	markerStarts = [][]byte{[]byte("SEALED-"), []byte("PLAIN-"), []byte("CONTROL-")}
)

// markerMaxLen is the length of the longest marker, CONTROL-0000-GUARD.
const markerMaxLen = len("CONTROL-0000-GUARD")

// markersIn adds to found every marker in b: each place b holds a word a
// marker begins with is matched against markerPattern. This finds what
// markerPattern.FindAll finds (markers cannot overlap: none holds the
// first word of another), without running the regular expression over
// every byte of tens of megabytes, which under the race detector took
// two minutes of the suite.
func markersIn(found map[string]bool, b []byte) {
	for _, start := range markerStarts {
		for rest := b; ; {
			i := bytes.Index(rest, start)
			if i < 0 {
				break
			}
			if m := markerAt.Find(rest[i:min(len(rest), i+markerMaxLen)]); m != nil {
				found[string(m)] = true
			}
			rest = rest[i+len(start):]
		}
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime(t *testing.T) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		t.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// pushAll sends refs from c in batches of client.MaxReferralBatch and
// returns the names created, in order.
func pushAll(t *testing.T, c *client.Client, refs []*exchangev1.Referral) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for start := 0; start < len(refs); start += client.MaxReferralBatch {
		var reqs []*exchangev1.CreateReferralRequest
		for _, r := range refs[start:min(start+client.MaxReferralBatch, len(refs))] {
			reqs = append(reqs, &exchangev1.CreateReferralRequest{Referral: r})
		}
		results, err := c.Referrals.BatchCreate(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range results {
			if res.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED {
				t.Fatalf("push: %v", res)
			}
			names = append(names, res.GetReferral())
		}
	}
	return names
}

// readAll reads every referral in names with c, eight at a time, and
// returns what came back, in order.
func readAll(t *testing.T, c *client.Client, names []string) []*exchangev1.Referral {
	t.Helper()
	out := make([]*exchangev1.Referral, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = c.Referrals.Get(context.Background(), names[i])
			}
		})
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("read %s: %v", names[i], err)
		}
	}
	return out
}

// openedFromStore is the attack on a copy of the database file (or a
// backup): open it as the exchange does and read every referral of ilo's
// outbox. It returns the records as JSON.
func openedFromStore(t *testing.T, path string) []byte {
	t.Helper()
	st, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer st.Close()
	ctx := context.Background()
	var out bytes.Buffer
	token := ""
	for {
		page, next, _, err := st.ListReferrals(ctx, store.ReferralFilter{AgencyID: "ilo", Outbox: true}, store.Page{Size: 1000, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			full, err := st.GetReferral(ctx, r.GetName())
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString(protojson.Format(full))
		}
		if next == "" {
			return out.Bytes()
		}
		token = next
	}
}

// TestTheOperatorRecoversNoSealedDetails is the issue's attacker test,
// run against the built binaries. ilo and iom make their key rings with
// `exchangectl keys create`; ilo sends 1,000 referrals sealed by its
// client (name, guardian contact and case notes carry unique markers; the
// subject reference, which the exchange holds in clear, a control marker)
// and tries 100 more in clear without a key ring, which the exchange must
// refuse, each naming sealed_details; iom reads some. Then the attacker takes everything the
// operator holds: the database file's raw bytes (freed pages included), a
// fresh `admin backup` taken with the secretariat's certificate, both
// opened as the exchange opens them (with the data keys they hold), a
// certificate for iom minted offline with the CA key and recorded with
// `exchanged certs record`, used to read every referral over the API,
// exchanged's logs and its /metrics page. It must recover none of the
// 3,000 sealed markers nor any of the refused ones, and must recover the
// 1,000 control markers through every source that reads the referrals
// (the regression check of the attack itself), while ilo and iom, each
// with its own key ring, read every sealed referral in full.
func TestTheOperatorRecoversNoSealedDetails(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	// The per-agency rate is lifted: the agencies read thousands of
	// referrals as fast as they can.
	srv := startServer(t, dir, "--rate", "-1")
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	ids := map[string]identity{}
	for _, id := range []string{"ilo", "iom"} {
		sec.ok(t, "agencies", "create", id, "--name", id, "--kind", "un-agency", "--niche", "psychosocial-counselling", "--coverage", "KH-12")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
		certDir := filepath.Join(dir, "certs-"+id)
		ids[id] = identity{filepath.Join(certDir, id+".crt"), filepath.Join(certDir, id+".key"), filepath.Join(certDir, "ca.crt")}
		agencySession(t, srv.addr, certDir, id).ok(t, "keys", "create")
	}
	// sealing dials id with its key ring and pins, beside its certificate.
	sealing := func(id string) *client.Client {
		t.Helper()
		certDir := filepath.Dir(ids[id].cert)
		c, err := client.Dial(context.Background(), client.Config{
			Address: srv.addr, CertFile: ids[id].cert, KeyFile: ids[id].key, CAFile: ids[id].ca, Timeout: time.Minute,
			KeyRingFile: filepath.Join(certDir, id+".age-keys"), PinsFile: filepath.Join(certDir, id+".age-pins"),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ilo, iom := sealing("ilo"), sealing("iom")
	iloPlain := dialPlain(t, srv.addr, ids["ilo"])
	defer iloPlain.Close()

	var sealedRefs []*exchangev1.Referral
	for i := range attackSealed {
		sealedRefs = append(sealedRefs, attackReferral("SEALED", i))
	}
	cpu0 := cpuTime(t)
	sealedNames := pushAll(t, ilo, sealedRefs)
	cpu1 := cpuTime(t)
	t.Logf("client CPU per referral pushed, sealing included: %v", (cpu1-cpu0)/attackSealed)
	var plainReqs []*exchangev1.CreateReferralRequest
	for i := range attackPlain {
		plainReqs = append(plainReqs, &exchangev1.CreateReferralRequest{Referral: attackReferral("PLAIN", i)})
	}
	plainResults, err := iloPlain.Referrals.BatchCreate(context.Background(), plainReqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range plainResults {
		if res.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED || !strings.Contains(res.GetMessage(), "referral.sealed_details: required") {
			t.Fatalf("a referral in clear: %v", res)
		}
	}

	// iom reads some before the attack; each read is audited and logged.
	some := readAll(t, iom, sealedNames[:50])
	for i, r := range some {
		if r.GetSubject().GetName() != fmt.Sprintf("SEALED-%04d-NAME", i) {
			t.Fatalf("iom reads %s as %v", sealedNames[i], r.GetSubject())
		}
	}

	// What the operator holds. A backup taken over the network with the
	// secretariat's certificate:
	sec.ok(t, "admin", "backup", "-o", "stolen-backup.db")
	metrics := scrape(t, srv)
	// A certificate for iom, signed offline with the CA key and recorded.
	ca, err := pki.LoadCA(filepath.Join(pkiDir(dir), "ca.crt"), filepath.Join(pkiDir(dir), "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueClient(pki.Agency("iom"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mintDir := t.TempDir()
	minted := identity{writeFile(t, mintDir, "minted.crt", certPEM), writeFile(t, mintDir, "minted.key", keyPEM), ids["iom"].ca}
	srv.stop(t)
	logs := srv.stdout.String() + srv.stderr.String()
	if r := newSession(dir).exec(t, "exchanged", "certs", "record", minted.cert); r.code != 0 {
		t.Fatalf("certs record:\n%s", r)
	}
	rawFile, err := os.ReadFile(dbPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	fileCopy := writeFile(t, t.TempDir(), "exchange.db", rawFile)
	srv = startServer(t, dir, "--rate", "-1")
	asIOM := dial(t, srv.addr, minted)
	defer asIOM.Close()
	var api bytes.Buffer
	for _, r := range readAll(t, asIOM, sealedNames) {
		api.WriteString(protojson.Format(r))
	}
	backup, err := os.ReadFile(filepath.Join(dir, "stolen-backup.db"))
	if err != nil {
		t.Fatal(err)
	}

	// count returns the identifying (sealed or refused) and the control
	// markers in found.
	count := func(found map[string]bool) (identifying, control int) {
		for m := range found {
			if m[0] == 'C' {
				control++
			} else {
				identifying++
			}
		}
		return identifying, control
	}
	const viaMinted = "the API, with a minted certificate"
	sources := []struct {
		what string
		data []byte
		// readsReferrals says the attack through this source reads the
		// referrals as the exchange holds them, and so must recover every
		// control marker.
		readsReferrals bool
	}{
		{"the database file's raw bytes", rawFile, false},
		{"the backup's raw bytes", backup, false},
		{"the database file, opened as the exchange opens it", openedFromStore(t, fileCopy), true},
		{"the backup, opened as the exchange opens it", openedFromStore(t, filepath.Join(dir, "stolen-backup.db")), true},
		{viaMinted, api.Bytes(), true},
		{"exchanged's logs", []byte(logs), false},
		{"/metrics", []byte(metrics), false},
	}
	all := map[string]bool{}
	for _, src := range sources {
		found := map[string]bool{}
		markersIn(found, src.data)
		maps.Copy(all, found)
		identifying, control := count(found)
		t.Logf("%s (%d bytes): %d of %d identifying markers, %d of %d control markers", src.what, len(src.data), identifying, 3*(attackSealed+attackPlain), control, attackSealed)
		if src.readsReferrals && control != attackSealed {
			t.Errorf("%s: the attack recovered %d of the %d control markers; the attack itself is broken", src.what, control, attackSealed)
		}
		if src.what == viaMinted {
			if blobs := bytes.Count(src.data, []byte(`"sealedDetails"`)); blobs != attackSealed {
				t.Errorf("the minted certificate read %d sealed blobs, want %d (the attack reads what the API serves)", blobs, attackSealed)
			}
		}
	}
	identifyingFound, controlFound := count(all)
	t.Logf("markers recovered in all: %d of %d identifying, %d of %d control", identifyingFound, 3*(attackSealed+attackPlain), controlFound, attackSealed)
	if identifyingFound != 0 {
		t.Errorf("the operator recovered %d markers of identifying details", identifyingFound)
	}

	// Both agencies read every sealed referral with their own key rings.
	ilo, iom = sealing("ilo"), sealing("iom")
	var sizes []int
	for who, c := range map[string]*client.Client{"ilo": ilo, "iom": iom} {
		read := map[string]bool{}
		for _, r := range readAll(t, c, sealedNames) {
			markersIn(read, []byte(protojson.Format(r)))
		}
		if identifying, _ := count(read); identifying != 3*attackSealed {
			t.Errorf("%s reads %d of the %d sealed markers", who, identifying, 3*attackSealed)
		}
	}
	raw := dialPlain(t, srv.addr, ids["ilo"])
	defer raw.Close()
	for _, r := range readAll(t, raw, sealedNames[:20]) {
		sizes = append(sizes, len(r.GetSealedDetails()))
	}
	t.Logf("sealed_details sizes (bytes) of the first 20: min %d, max %d", slices.Min(sizes), slices.Max(sizes))
	// docs/sealing.md: "about 3.4 KB for short details".
	if slices.Min(sizes) < 3000 || slices.Max(sizes) > 4000 {
		t.Errorf("sealed_details of %d to %d bytes; docs/sealing.md says about 3.4 KB", slices.Min(sizes), slices.Max(sizes))
	}
}
