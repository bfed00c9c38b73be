package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/internal/faultproxy"
)

// With --field-file, a referral move made while the exchange cannot be
// reached is kept and said to be queued (exit 0); `outbox send` exits 7
// while the line is down and sends it once it is back; a move the
// exchange refuses on arrival stays listed, rejected with its reason
// (exit 6), until `outbox drop --yes` removes it.
func TestRunOutboxQueuesSendsAndKeepsRejections(t *testing.T) {
	f := referralFixture(t)
	ctx := context.Background()
	ilo := f.server.DialSealing(t, "agency/ilo")
	r1, err := ilo.Referrals.Create(ctx, referralTo("iom", "first"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ilo.Referrals.Create(ctx, referralTo("iom", "second"))
	if err != nil {
		t.Fatal(err)
	}
	id1, id2 := client.ResourceID(r1.GetName()), client.ResourceID(r2.GetName())
	proxy, err := faultproxy.New(f.server.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	fieldFile := filepath.Join(t.TempDir(), "field.db")
	iom := func(args ...string) result {
		t.Helper()
		flags := f.agencyFlags("agency/iom")
		flags[1] = proxy.Addr()
		return f.runIn(newTestEnv(t), append(append(flags, "--field-file", fieldFile), args...)...)
	}

	proxy.SetMode(faultproxy.Refuse)
	for _, args := range [][]string{{"acknowledge", id1}, {"accept", id1}, {"acknowledge", id2}} {
		r := iom(append([]string{"referrals"}, args...)...)
		if r.code != ExitOK || !strings.Contains(r.stderr, "queued: the exchange cannot be reached; it will be sent by 'exchangectl outbox send'") {
			t.Fatalf("%v with the line down: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	// A forward reads the referral's details first, to seal them to the
	// new receiver: with the line down it fails, and nothing is queued.
	if r := iom("referrals", "forward", id1, "--to", "unicef", "--niche", "shelter", "--need", "shelter", "--consent-given-by", "guardian"); r.code != ExitUnavailable {
		t.Fatalf("forward with the line down: exit %d, stderr %q", r.code, r.stderr)
	}
	r := iom("outbox", "list").must(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "LAST ERROR") || !strings.Contains(lines[2], "accept") || !strings.Contains(lines[2], "pending") ||
		!strings.Contains(lines[2], "referrals/"+id1) {
		t.Fatalf("outbox list:\n%s", r.stdout)
	}
	if r = iom("outbox", "send"); r.code != ExitUnavailable {
		t.Fatalf("send with the line down: exit %d, stderr %q", r.code, r.stderr)
	}

	// While the line is down, the sender cancels the second referral: the
	// receiver's acknowledgement of it will be refused.
	if _, err := ilo.Referrals.Cancel(ctx, r2.GetName(), "duplicate case", ""); err != nil {
		t.Fatal(err)
	}
	proxy.SetMode(faultproxy.Pass)
	r = iom("outbox", "send")
	if r.code != ExitInvalid || strings.Count(r.stdout, "sent ") != 2 || !strings.Contains(r.stdout, "rejected  3  acknowledge  referrals/"+id2+"  FAILED_PRECONDITION") {
		t.Fatalf("send with the line back: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = iom("--json", "outbox", "list").must(t)
	var listed []outboxEntryJSON
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != 3 || listed[0].State != "rejected" || listed[0].Code != "FAILED_PRECONDITION" || listed[0].LastError == "" {
		t.Fatalf("listed after the send: %+v", listed)
	}
	if r = iom("outbox", "send"); r.code != ExitInvalid {
		t.Fatalf("a second send keeps the rejection: exit %d", r.code)
	}
	if r = iom("outbox", "drop", "3"); r.code != ExitUsage || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("drop without --yes: exit %d %q", r.code, r.stderr)
	}
	if r = iom("outbox", "drop", "9", "--yes"); r.code != ExitNotFound {
		t.Fatalf("drop of a missing entry: exit %d %q", r.code, r.stderr)
	}
	r = iom("outbox", "drop", "3", "--yes").must(t)
	if !strings.Contains(r.stderr, "dropped outbox entry 3 (rejected, acknowledge of referrals/"+id2) {
		t.Fatalf("drop said %q", r.stderr)
	}
	if r = iom("outbox", "send").must(t); !strings.Contains(r.stderr, "0 rejected, 0 pending") {
		t.Fatalf("send of an empty outbox: %q", r.stderr)
	}
	got, err := f.server.DialSealing(t, "agency/iom").Referrals.Get(ctx, r1.GetName())
	if err != nil || got.GetState().String() != "REFERRAL_STATE_ACCEPTED" {
		t.Fatalf("first referral: %v %v", got.GetState(), err)
	}
}

// `datasets push` with --field-file keeps the dataset's definition when
// the exchange can be reached; with the line down it reads the rows
// against the kept one and queues them (exit 0), and `outbox send`
// writes them. A dataset never pushed to from this machine cannot be
// read offline: the push fails and says why.
func TestRunDatasetsPushQueuesRowsWithTheKeptDefinition(t *testing.T) {
	f, dir := datasetFixture(t)
	createReturns(t, f, dir)
	proxy, err := faultproxy.New(f.server.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	fieldFile := filepath.Join(t.TempDir(), "field.db")
	iom := func(args ...string) result {
		t.Helper()
		flags := f.agencyFlags("agency/iom")
		flags[1] = proxy.Addr()
		return f.runIn(newTestEnvIn(t, dir), append(append(flags, "--field-file", fieldFile), args...)...)
	}
	writeFile(t, dir, "header.csv", strings.SplitN(mustRead(t, dir, "rows.csv"), "\n", 2)[0])

	proxy.SetMode(faultproxy.Refuse)
	if r := iom("datasets", "push", "ilo/returns", "-f", "rows.csv"); r.code != ExitUnavailable || !strings.Contains(r.stderr, "keeps no definition of agencies/ilo/datasets/returns") {
		t.Fatalf("offline push before any online one: exit %d, stderr %q", r.code, r.stderr)
	}
	proxy.SetMode(faultproxy.Pass)
	iom("datasets", "push", "ilo/returns", "-f", "header.csv").must(t)
	proxy.SetMode(faultproxy.Refuse)
	r := iom("datasets", "push", "ilo/returns", "-f", "rows.csv", "--batch-size", "5").must(t)
	if !strings.Contains(r.stderr, "8 rows from rows.csv: 0 written, 0 rejected, 8 queued") {
		t.Fatalf("offline push: stderr %q", r.stderr)
	}
	if n := len(f.server.DatasetRows("agencies/ilo/datasets/returns")); n != 0 {
		t.Fatalf("%d rows stored with the line down", n)
	}
	proxy.SetMode(faultproxy.Pass)
	if r := iom("outbox", "send").must(t); strings.Count(r.stdout, "sent ") != 2 {
		t.Fatalf("send: %q", r.stdout)
	}
	if n := len(f.server.DatasetRows("agencies/ilo/datasets/returns")); n != 8 {
		t.Fatalf("%d rows stored after the send, want 8", n)
	}
}
