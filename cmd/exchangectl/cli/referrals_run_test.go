package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

const (
	mBatchReferrals = exchangev1.ReferralService_BatchCreateReferrals_FullMethodName
	mWatchReferrals = exchangev1.ReferralService_WatchReferrals_FullMethodName
)

// agencyFlags returns the global flags that connect as identity
// ("agency/ilo").
func (f *fixture) agencyFlags(identity string) []string {
	cfg := f.server.Config(f.t, identity)
	return []string{"--server", f.server.Addr, "--cert", cfg.CertFile, "--key", cfg.KeyFile, "--ca", cfg.CAFile}
}

// runAs runs exchangectl in-process as identity.
func (f *fixture) runAs(identity string, args ...string) result {
	f.t.Helper()
	return f.runIn(newTestEnv(f.t), append(f.agencyFlags(identity), args...)...)
}

// referralFixture is a fake exchange with ilo, iom and unicef, iom and
// unicef providing shelter in KH-12 and in all of KH, each with a key ring
// beside its certificates, so that exchangectl seals and opens referral
// details (the fake, like the exchange, refuses them in clear).
func referralFixture(t *testing.T) *fixture {
	f := newFixture(t)
	for _, a := range []*exchangev1.Agency{
		{Name: "agencies/ilo", DisplayName: "ILO", ShortName: "ILO", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY},
		{Name: "agencies/iom", DisplayName: "IOM", ShortName: "IOM", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
			Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER}, Coverage: []*exchangev1.LocationRef{{Country: "KH"}}},
		{Name: "agencies/unicef", DisplayName: "UNICEF", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
			Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER}, Coverage: []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-12"}}},
	} {
		f.server.PutAgency(a)
	}
	for _, id := range []string{"agency/ilo", "agency/iom", "agency/unicef"} {
		f.server.MakeKeyRing(t, id)
	}
	return f
}

// referralTo is a valid referral to receiver ("iom").
func referralTo(receiver, need string) *exchangev1.Referral {
	return &exchangev1.Referral{
		Receiver:            "agencies/" + receiver,
		Service:             &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: need},
		Urgency:             exchangev1.Urgency_URGENCY_URGENT,
		SenderCaseReference: "CASE-1",
		SubjectReference:    "subj-1",
		Subject:             &exchangev1.Subject{Name: "Sokha", Sex: exchangev1.Sex_SEX_FEMALE, Languages: []string{"km"}},
		CaseNotes:           "notes",
		Consent: &exchangev1.Consent{
			GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN, GivenTime: timestamppb.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)),
			ReceivingAgency: "agencies/" + receiver, Services: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		},
		Location: &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"},
	}
}

// jsonLine is req as one line of a push file.
func jsonLine(t *testing.T, req *exchangev1.CreateReferralRequest) string {
	t.Helper()
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// writeFile writes lines into a file of e's working directory.
func writeFile(t *testing.T, dir, name string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pushLines is a file with every kind of line. (A line to an agency not
// in the directory is not among them: its details cannot be sealed, so
// the push stops there, as for a receiver without a key.)
func pushLines(t *testing.T) (lines []string, wrongConsent, noLocation *exchangev1.Referral) {
	wrongConsent = referralTo("iom", "consent for another agency")
	wrongConsent.Consent.ReceivingAgency = "agencies/unicef"
	noLocation = referralTo("iom", "no location")
	noLocation.Location = nil
	noName := referralTo("iom", "no name")
	noName.Subject.Name = ""
	first := jsonLine(t, &exchangev1.CreateReferralRequest{Referral: referralTo("iom", "counselling one")})
	return []string{
		first, // 1: accepted, derived id
		"",    // 2: blank, skipped
		jsonLine(t, &exchangev1.CreateReferralRequest{Referral: referralTo("iom", "counselling two"), RequestId: "case-2"}), // 3: accepted
		`{"referral": {"receiver": "agencies/iom",`,                            // 4: not JSON
		jsonLine(t, &exchangev1.CreateReferralRequest{Referral: wrongConsent}), // 5: FAILED_PRECONDITION
		jsonLine(t, &exchangev1.CreateReferralRequest{Referral: noLocation}),   // 6: INVALID_ARGUMENT
		"   " + first + "   ",                                            // 7: the same as line 1
		`{"referral": {}, "colour": "red"}`,                              // 8: unknown field
		jsonLine(t, &exchangev1.CreateReferralRequest{Referral: noName}), // 9: INVALID_ARGUMENT, nothing to seal
		jsonLine(t, &exchangev1.CreateReferralRequest{Referral: referralTo("unicef", "counselling three")}), // 10: accepted
	}, wrongConsent, noLocation
}

func TestRunReferralsPush(t *testing.T) {
	f := referralFixture(t)
	lines, _, _ := pushLines(t)
	e := newTestEnv(t)
	writeFile(t, e.WorkDir, "referrals.jsonl", lines...)
	run := func() result {
		return f.runIn(newTestEnvIn(t, e.WorkDir), append(f.agencyFlags("agency/ilo"), "referrals", "push", "-f", "referrals.jsonl", "--batch-size", "3")...)
	}

	r := run()
	if r.code != ExitInvalid {
		t.Fatalf("exit %d, want %d (records rejected)\nstdout:\n%s\nstderr:\n%s", r.code, ExitInvalid, r.stdout, r.stderr)
	}
	firstID := derivedRequestID([]byte(lines[0]))
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	wantRows := []struct{ line, id, status, result string }{
		{"1", firstID, "accepted", "referrals/"},
		{"3", "case-2", "accepted", "referrals/"},
		{"4", "-", "rejected", "INVALID_ARGUMENT line 4 is not a CreateReferralRequest in JSON"},
		{"5", "jsonl-", "rejected", "FAILED_PRECONDITION referral.consent.receiving_agency: consent covers agencies/unicef"},
		{"6", "jsonl-", "rejected", "INVALID_ARGUMENT referral.location: value is required"},
		{"7", firstID, "duplicate", "referrals/"},
		{"8", "-", "rejected", "INVALID_ARGUMENT line 8 is not a CreateReferralRequest in JSON"},
		{"9", "jsonl-", "rejected", "INVALID_ARGUMENT referral.sealed_details: required"},
		{"10", "jsonl-", "accepted", "referrals/"},
	}
	if len(rows) != len(wantRows)+1 || !strings.HasPrefix(rows[0], "LINE    REQUEST ID") {
		t.Fatalf("output:\n%s", r.stdout)
	}
	stored := f.server.Referrals()
	for i, w := range wantRows {
		cols := strings.Fields(rows[i+1])
		if len(cols) < 4 || cols[0] != w.line || !strings.HasPrefix(cols[1], w.id) || cols[2] != w.status || !strings.HasPrefix(strings.Join(cols[3:], " "), w.result) {
			t.Errorf("row %d: %q\nwant line %s, id %s…, %s, %s…", i+1, rows[i+1], w.line, w.id, w.status, w.result)
		}
	}
	// Line 7 repeats line 1: it was sent in a later batch and names the
	// same referral.
	if strings.Fields(rows[1])[3] != strings.Fields(rows[6])[3] {
		t.Errorf("line 7 names %s, line 1 %s", strings.Fields(rows[6])[3], strings.Fields(rows[1])[3])
	}
	if len(stored) != 3 {
		t.Errorf("%d referrals stored, want 3", len(stored))
	}
	if !strings.Contains(r.stderr, "9 records from referrals.jsonl: 3 accepted, 1 duplicate, 5 rejected.") ||
		!strings.Contains(r.stderr, "exchangectl: 5 of 9 records were rejected") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	for _, call := range f.server.Calls(mBatchReferrals) {
		if n := len(call.Request.(*exchangev1.BatchCreateReferralsRequest).GetRequests()); n > 3 {
			t.Errorf("a batch of %d, over --batch-size 3", n)
		}
		if call.Caller != "spiffe://alltogether/agency/ilo" {
			t.Errorf("caller %s", call.Caller)
		}
	}

	// Again: nothing new, the sent lines are duplicates.
	r = run()
	if r.code != ExitInvalid || len(f.server.Referrals()) != 3 {
		t.Fatalf("second run: exit %d, %d referrals stored\n%s\n%s", r.code, len(f.server.Referrals()), r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "0 accepted, 4 duplicates, 5 rejected") {
		t.Errorf("second run stderr:\n%s", r.stderr)
	}

	// Fixed, with lines removed and reordered: still nothing twice.
	writeFile(t, e.WorkDir, "fixed.jsonl", lines[9], lines[2], lines[0],
		jsonLine(t, &exchangev1.CreateReferralRequest{Referral: referralTo("iom", "counselling four")}))
	r = f.runIn(newTestEnvIn(t, e.WorkDir), append(f.agencyFlags("agency/ilo"), "--json", "referrals", "push", "-f", "fixed.jsonl")...).must(t)
	var results []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &results); err != nil || len(results) != 4 {
		t.Fatalf("JSON results (%v):\n%s", err, r.stdout)
	}
	for i, want := range []string{"REFERRAL_PUSH_STATUS_DUPLICATE", "REFERRAL_PUSH_STATUS_DUPLICATE", "REFERRAL_PUSH_STATUS_DUPLICATE", "REFERRAL_PUSH_STATUS_ACCEPTED"} {
		if results[i]["status"] != want || results[i]["line"] != float64(i+1) || results[i]["index"] != nil {
			t.Errorf("result %d: %v, want %s at line %d", i, results[i], want, i+1)
		}
	}
	if results[2]["requestId"] != firstID || !strings.HasPrefix(results[2]["referral"].(string), "referrals/") {
		t.Errorf("result 3: %v", results[2])
	}
	if n := len(f.server.Referrals()); n != 4 {
		t.Errorf("%d referrals stored, want 4", n)
	}
}

func TestRunReferralsPushFromStdinWithProgress(t *testing.T) {
	f := referralFixture(t)
	var lines []string
	for i := range 5 {
		lines = append(lines, jsonLine(t, &exchangev1.CreateReferralRequest{Referral: referralTo("iom", fmt.Sprintf("need %d", i))}))
	}
	e := newTestEnv(t)
	// A byte order mark first, and no final newline.
	e.Stdin = strings.NewReader("\ufeff" + strings.Join(lines, "\n"))
	e.IsTerminal = func(w io.Writer) bool { return w == e.Environment.Stderr }
	r := f.runIn(e, append(f.agencyFlags("agency/ilo"), "referrals", "push", "-f", "-", "--batch-size", "2")...).must(t)
	if n := len(strings.Split(strings.TrimSpace(r.stdout), "\n")); n != 6 {
		t.Errorf("%d output lines, want a header and 5:\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stderr, "\rSent 2 records through line 2") || !strings.Contains(r.stderr, "\rSent 5 records through line 5") ||
		!strings.HasSuffix(r.stderr, "\r\x1b[K5 records from standard input: 5 accepted, 0 duplicates, 0 rejected.\n") {
		t.Errorf("progress on a terminal: %q", r.stderr)
	}
	if n := len(f.server.Calls(mBatchReferrals)); n != 3 {
		t.Errorf("%d batches, want 3", n)
	}

	// Not a terminal: no progress; an empty input is no error.
	e = newTestEnv(t)
	e.Stdin = strings.NewReader("\n\n")
	r = f.runIn(e, append(f.agencyFlags("agency/ilo"), "--json", "referrals", "push", "-f", "-")...).must(t)
	if r.stdout != "[]\n" || r.stderr != "No records in standard input.\n" {
		t.Errorf("empty input: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

func TestRunReferralsPushErrors(t *testing.T) {
	f := referralFixture(t)
	e := newTestEnv(t)
	var lines []string
	for i := range 4 {
		lines = append(lines, jsonLine(t, &exchangev1.CreateReferralRequest{Referral: referralTo("iom", fmt.Sprintf("need %d", i))}))
	}
	writeFile(t, e.WorkDir, "four.jsonl", lines...)
	push := func(args ...string) result {
		return f.runIn(newTestEnvIn(t, e.WorkDir), append(append(f.agencyFlags("agency/ilo"), "referrals", "push"), args...)...)
	}

	// The exchange goes away after the first batch: the first is listed,
	// the exit code is UNAVAILABLE's, and a re-run sends only the rest.
	down := status.Error(codes.Unavailable, "down")
	f.server.FailNext(mBatchReferrals, nil, down, down, down, down)
	r := push("-f", "four.jsonl", "--batch-size", "2")
	if r.code != ExitUnavailable || strings.Count(r.stdout, "accepted") != 2 ||
		!strings.Contains(r.stderr, "2 records from four.jsonl before the error (2 accepted, 0 duplicates, 0 rejected); lines after 2 were not sent.") ||
		!strings.Contains(r.stderr, "exchangectl: UNAVAILABLE: down") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = push("-f", "four.jsonl", "--batch-size", "2").must(t)
	if strings.Count(r.stdout, "duplicate") != 2 || strings.Count(r.stdout, "accepted") != 2 || len(f.server.Referrals()) != 4 {
		t.Errorf("re-run:\n%s", r.stdout)
	}

	if r = push("-f", "missing.jsonl"); r.code != ExitError || !strings.Contains(r.stderr, "missing.jsonl") {
		t.Errorf("missing file: exit %d, stderr %q", r.code, r.stderr)
	}
	// The secretariat sends no referrals: every record is rejected.
	r = f.runIn(newTestEnvIn(t, e.WorkDir), append(append([]string{}, f.flags...), "referrals", "push", "-f", "four.jsonl")...)
	if r.code != ExitInvalid || strings.Count(r.stdout, "PERMISSION_DENIED") != 4 {
		t.Errorf("as the secretariat: exit %d\n%s", r.code, r.stdout)
	}
}

func TestRunReferralsLifecycle(t *testing.T) {
	f := referralFixture(t)
	ctx := context.Background()
	ilo := f.server.DialSealing(t, "agency/ilo")
	r1, err := ilo.Referrals.Create(ctx, referralTo("iom", "counselling after return"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ilo.Referrals.Create(ctx, referralTo("iom", "second"))
	if err != nil {
		t.Fatal(err)
	}
	id1, id2 := client.ResourceID(r1.GetName()), client.ResourceID(r2.GetName())

	r := f.runAs("agency/iom", "referrals", "inbox").must(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "FROM") ||
		!strings.HasPrefix(lines[1], id2+" ") || !strings.Contains(lines[1], "requested") || !strings.Contains(lines[1], "psychosocial-counselling") {
		t.Errorf("inbox:\n%s", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("inbox wrote to stderr off a terminal: %q", r.stderr)
	}
	if r = f.runAs("agency/ilo", "referrals", "inbox"); r.code != 0 || r.stderr != "No referrals found.\n" {
		t.Errorf("ilo's inbox: %d %q", r.code, r.stderr)
	}
	r = f.runAs("agency/ilo", "referrals", "outbox", "--counterparty", "iom", "--state", "requested").must(t)
	if !strings.Contains(r.stdout, "TO") || strings.Count(r.stdout, "iom") != 2 {
		t.Errorf("outbox:\n%s", r.stdout)
	}

	e := newTestEnv(t)
	e.IsTerminal = func(io.Writer) bool { return true }
	r = f.runIn(e, append(f.agencyFlags("agency/iom"), "referrals", "inbox")...).must(t)
	if want := fmt.Sprintf("Listed at revision %d: 'exchangectl referrals watch --from %d'", f.server.Revision(), f.server.Revision()); !strings.Contains(r.stderr, want) {
		t.Errorf("on a terminal, stderr %q lacks %q", r.stderr, want)
	}

	for _, verb := range []string{"acknowledge", "accept", "start"} {
		f.runAs("agency/iom", "referrals", verb, id1).must(t)
	}
	r = f.runAs("agency/iom", "referrals", "complete", "referrals/"+id1, "--successful", "--reason", "counselling given", "--delivered", "psychosocial-counselling").must(t)
	for _, want := range []string{"State:", "completed", "Outcome:", "successful: counselling given", "History:", "TIME", "acknowledged", "service started"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("complete output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = f.runAs("agency/ilo", "referrals", "show", id1).must(t)
	for _, want := range []string{"Person:", "Sokha", "Consent covers:", "iom: psychosocial-counselling", "Case notes:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	r = f.runAs("agency/ilo", "--json", "referrals", "show", id1).must(t)
	var shown exchangev1.Referral
	if err := protojson.Unmarshal([]byte(r.stdout), &shown); err != nil || len(shown.GetHistory()) != 5 {
		t.Errorf("show --json (%v): %d transitions", err, len(shown.GetHistory()))
	}

	// Wrong state, wrong side, not a party, bad id.
	if r = f.runAs("agency/iom", "referrals", "accept", id2); r.code != ExitInvalid || !strings.Contains(r.stderr, "FAILED_PRECONDITION") {
		t.Errorf("accept before acknowledge: exit %d, %q", r.code, r.stderr)
	}
	if r = f.runAs("agency/ilo", "referrals", "acknowledge", id2); r.code != ExitDenied {
		t.Errorf("acknowledge by the sender: exit %d, %q", r.code, r.stderr)
	}
	if r = f.runAs("agency/unicef", "referrals", "show", id2); r.code != ExitNotFound {
		t.Errorf("show by a third agency: exit %d, %q", r.code, r.stderr)
	}
	if r = f.runAs("agency/iom", "referrals", "show", "nope"); r.code != ExitUsage {
		t.Errorf("bad id: exit %d", r.code)
	}

	f.runAs("agency/iom", "referrals", "ack", id2).must(t)
	r = f.runAs("agency/iom", "referrals", "forward", id2, "--to", "unicef", "--niche", "shelter", "--need", "safe shelter",
		"--consent-given-by", "person", "--request-id", "fwd-1").must(t)
	if !strings.Contains(r.stdout, "Forwarded from:") || !strings.Contains(r.stdout, r2.GetName()) || !strings.Contains(r.stdout, "agencies/unicef") {
		t.Errorf("forward:\n%s", r.stdout)
	}
	f.runAs("agency/iom", "referrals", "forward", id2, "--to", "unicef", "--niche", "shelter", "--need", "safe shelter",
		"--consent-given-by", "person", "--request-id", "fwd-1").must(t)
	if n := len(f.server.Referrals()); n != 3 {
		t.Errorf("%d referrals after forwarding twice with one request id, want 3", n)
	}
	r = f.runAs("agency/iom", "referrals", "reject", id2, "--reason", "other", "--details", "service paused").must(t)
	if !strings.Contains(r.stdout, "Rejected:") || !strings.Contains(r.stdout, "other: service paused") {
		t.Errorf("reject:\n%s", r.stdout)
	}
	r = f.runAs("agency/ilo", "referrals", "revoke-consent", id2, "--reason", "withdrawn by guardian").must(t)
	if !strings.Contains(r.stdout, "Consent revoked:") {
		t.Errorf("revoke-consent:\n%s", r.stdout)
	}
	if r = f.runAs("agency/ilo", "referrals", "cancel", id2, "--reason", "x"); r.code != ExitInvalid {
		t.Errorf("cancel a rejected referral: exit %d", r.code)
	}

	r = f.runAs("agency/ilo", "referrals", "suggest", "--niche", "shelter", "--province", "KH-12").must(t)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "unicef") || !strings.Contains(lines[2], "KH (whole country)") {
		t.Errorf("suggest:\n%s", r.stdout)
	}
	r = f.runAs("agency/ilo", "referrals", "suggest", "--niche", "legal-aid", "--province", "KH-12").must(t)
	if !strings.HasPrefix(r.stdout, "Gap: no active agency declares legal_aid covering KH-12") {
		t.Errorf("gap: %q", r.stdout)
	}
	r = f.runAs("agency/ilo", "--json", "referrals", "suggest", "--niche", "legal-aid", "--province", "KH-12").must(t)
	var gap exchangev1.SuggestRecipientsResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &gap); err != nil || !gap.GetGap() {
		t.Errorf("gap JSON (%v): %s", err, r.stdout)
	}

	r = f.run("referrals", "stats").must(t)
	if !strings.Contains(r.stdout, "STATE") || !strings.Contains(r.stdout, "completed") || !strings.Contains(r.stdout, "KH-12") {
		t.Errorf("stats:\n%s", r.stdout)
	}
	r = f.runAs("agency/iom", "--json", "referrals", "stats").must(t)
	var counts []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &counts); err != nil || len(counts) == 0 {
		t.Errorf("stats --json (%v): %s", err, r.stdout)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// watchRun runs `referrals watch` as iom in the background.
type watchRun struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan int
}

func (f *fixture) startWatch(t *testing.T, args ...string) *watchRun {
	t.Helper()
	w := &watchRun{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1)}
	e := newTestEnv(t)
	e.Stdout, e.Stderr = w.stdout, w.stderr
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	t.Cleanup(cancel)
	go func() {
		w.done <- Run(ctx, append(append(f.agencyFlags("agency/iom"), "referrals", "watch"), args...), e.Environment)
	}()
	return w
}

// waitLines waits until stdout holds n lines.
func (w *watchRun) waitLines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if out := strings.TrimSpace(w.stdout.String()); out != "" && len(strings.Split(out, "\n")) >= n {
			return strings.Split(out, "\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d lines wanted; stdout:\n%s\nstderr:\n%s", n, w.stdout, w.stderr)
	return nil
}

// stop interrupts the watch and returns its exit code.
func (w *watchRun) stop(t *testing.T) int {
	t.Helper()
	w.cancel()
	select {
	case code := <-w.done:
		return code
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop")
		return -1
	}
}

func TestRunReferralsWatch(t *testing.T) {
	f := referralFixture(t)
	ctx := context.Background()
	ilo := f.server.DialSealing(t, "agency/ilo")
	iom := f.server.DialSealing(t, "agency/iom")
	from := f.server.Revision()
	r1, err := ilo.Referrals.Create(ctx, referralTo("iom", "one"))
	if err != nil {
		t.Fatal(err)
	}
	f.server.SetWatchHeartbeat(20 * time.Millisecond)
	// The first stream drops after one event: the watch says so on
	// stderr, resumes, and prints nothing twice.
	f.server.BreakWatch(1)
	w := f.startWatch(t, "--from", fmt.Sprint(from))
	w.waitLines(t, 1)
	if _, err := iom.Referrals.Acknowledge(ctx, r1.GetName(), ""); err != nil {
		t.Fatal(err)
	}
	w.waitLines(t, 2)
	time.Sleep(100 * time.Millisecond)
	if code := w.stop(t); code != ExitOK {
		t.Errorf("exit %d after interrupt, want 0; stderr:\n%s", code, w.stderr)
	}
	lines := strings.Split(strings.TrimSpace(w.stdout.String()), "\n")
	id := client.ResourceID(r1.GetName())
	if len(lines) != 2 || !strings.Contains(lines[0], "created") || !strings.Contains(lines[0], id+" requested") ||
		!strings.Contains(lines[0], "ilo -> iom psychosocial-counselling") || !strings.Contains(lines[1], "updated") || !strings.Contains(lines[1], "received") {
		t.Errorf("events:\n%s", w.stdout)
	}
	if !strings.Contains(w.stderr.String(), "exchangectl: watch interrupted (rpc error: code = Unavailable") || !strings.Contains(w.stderr.String(), fmt.Sprintf("after revision %d", from)) {
		t.Errorf("stderr: %q", w.stderr)
	}

	// JSON Lines, from now.
	w = f.startWatch(t, "--json")
	for len(f.server.Calls(mWatchReferrals)) < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	r2, err := ilo.Referrals.Create(ctx, referralTo("iom", "two"))
	if err != nil {
		t.Fatal(err)
	}
	lines = w.waitLines(t, 1)
	if code := w.stop(t); code != ExitOK {
		t.Errorf("exit %d", code)
	}
	var ev exchangev1.WatchReferralsResponse
	if err := protojson.Unmarshal([]byte(lines[0]), &ev); err != nil || ev.GetReferral().GetName() != r2.GetName() || ev.GetKind() != exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_CREATED {
		t.Errorf("JSON line (%v): %s", err, lines[0])
	}
	if len(lines) != 1 {
		t.Errorf("%d lines from now, want 1:\n%s", len(lines), w.stdout)
	}

	// Behind the horizon: OUT_OF_RANGE, exit 6.
	f.server.CompactChanges(f.server.Revision())
	r := f.runAs("agency/iom", "referrals", "watch", "--from", fmt.Sprint(from))
	if r.code != ExitInvalid || !strings.Contains(r.stderr, "OUT_OF_RANGE") || !strings.Contains(r.stderr, "list again") {
		t.Errorf("compacted: exit %d, stderr %q", r.code, r.stderr)
	}
	// --timeout ends a watch normally.
	if r := f.runAs("agency/iom", "--timeout", "200ms", "referrals", "watch"); r.code != ExitOK {
		t.Errorf("watch --timeout: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestReferralUsageErrorsExitTwoBeforeAnyCall(t *testing.T) {
	f := referralFixture(t)
	for _, args := range [][]string{
		{"referrals", "show"},
		{"referrals", "show", "nope"},
		{"referrals", "reject", testReferralID},
		{"referrals", "reject", testReferralID, "--reason", "other"},
		{"referrals", "complete", testReferralID, "--reason", "x"},
		{"referrals", "forward", testReferralID, "--to", "unicef"},
		{"referrals", "push"},
		{"referrals", "push", "-f", "x", "--batch-size", "1000"},
		{"referrals", "inbox", "--state", "open"},
		{"referrals", "suggest", "--niche", "shelter"},
		{"referrals", "watch", "--from", "-5"},
		{"referrals", "frobnicate"},
	} {
		before := len(f.server.Calls(""))
		r := f.runAs("agency/ilo", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if n := len(f.server.Calls("")) - before; n != 0 {
			t.Errorf("%v made %d calls", args, n)
		}
	}
}

// terminalInput is standard input a person types on: the tests' IsTerminal
// says so for it.
type terminalInput struct{ *strings.Reader }

func (*terminalInput) Write(p []byte) (int, error) { return len(p), nil }

// TestRunReferralsErase erases through exchangectl: without a terminal and
// without --yes it refuses with exit 2 and calls nothing; on a terminal a
// wrong id typed erases nothing (exit 2) and the right one erases; --yes
// erases from a script; the reason code and note reach the call.
func TestRunReferralsErase(t *testing.T) {
	f := referralFixture(t)
	ctx := context.Background()
	ilo := f.server.DialSealing(t, "agency/ilo")
	f.server.DialSealing(t, "agency/iom") // iom registers the key ilo seals to
	first, err := ilo.Referrals.Create(ctx, referralTo("iom", "counselling"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := ilo.Referrals.Create(ctx, referralTo("iom", "shelter"))
	if err != nil {
		t.Fatal(err)
	}
	id1, id2 := client.ResourceID(first.GetName()), client.ResourceID(second.GetName())
	erasures := func() int { return len(f.server.Calls(exchangev1.ReferralService_EraseReferralDetails_FullMethodName)) }

	r := f.runAs("agency/ilo", "referrals", "erase", id1, "--reason-code", "person-request")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "pass --yes") || erasures() != 0 {
		t.Errorf("without a terminal or --yes: exit %d, %d calls, stderr %q", r.code, erasures(), r.stderr)
	}

	onTerminal := func(typed string) result {
		e := newTestEnv(t)
		in := &terminalInput{strings.NewReader(typed)}
		e.Stdin = in
		e.IsTerminal = func(w io.Writer) bool { return w == io.Writer(in) }
		return f.runIn(e, append(f.agencyFlags("agency/ilo"), "referrals", "erase", id1, "--reason-code", "consent-withdrawn", "--reason", "guardian called")...)
	}
	r = onTerminal(id2 + "\n")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "Type the referral's id") || !strings.Contains(r.stderr, "not confirmed") || erasures() != 0 {
		t.Errorf("the wrong id typed: exit %d, %d calls, stderr %q", r.code, erasures(), r.stderr)
	}
	r = onTerminal(strings.ToUpper(id1) + "\n").must(t)
	if !strings.Contains(r.stdout, "erased") || strings.Contains(r.stdout, "Sokha") {
		t.Errorf("erase output:\n%s", r.stdout)
	}
	calls := f.server.Calls(exchangev1.ReferralService_EraseReferralDetails_FullMethodName)
	if len(calls) != 1 {
		t.Fatalf("%d erase calls, want 1", len(calls))
	}
	req := calls[0].Request.(*exchangev1.EraseReferralDetailsRequest)
	if req.GetName() != first.GetName() || req.GetReasonCode() != exchangev1.ErasureReason_ERASURE_REASON_CONSENT_WITHDRAWN || req.GetReason() != "guardian called" {
		t.Errorf("the call carried %v", req)
	}

	r = f.runAs("agency/ilo", "referrals", "erase", "referrals/"+id2, "--reason-code", "recorded-in-error", "--yes").must(t)
	if got, err := ilo.Referrals.Get(ctx, second.GetName()); err != nil || !got.GetDetailsErased() || got.GetSubject() != nil {
		t.Errorf("after erase --yes: %v, %v", got, err)
	}
	if r = f.runAs("agency/iom", "referrals", "erase", id2, "--reason-code", "other", "--yes"); r.code == 0 {
		t.Errorf("erase by the receiver succeeded:\n%s", r.stdout)
	}
}
