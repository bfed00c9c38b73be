package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// auditWatch is an open WatchAuditEntries stream read in the background.
type auditWatch struct {
	msgs   chan *exchangev1.WatchAuditEntriesResponse
	err    chan error
	cancel context.CancelFunc
}

// watchAudit opens an audit watch for c from token ("" = from now) and
// waits for its first message, which carries only a resume token.
func watchAudit(t *testing.T, c as, token string) (*auditWatch, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.audit().WatchAuditEntries(ctx, &exchangev1.WatchAuditEntriesRequest{ResumeToken: token})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &auditWatch{msgs: make(chan *exchangev1.WatchAuditEntriesResponse, 100), err: make(chan error, 1), cancel: cancel}
	t.Cleanup(cancel)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				w.err <- err
				close(w.msgs)
				return
			}
			w.msgs <- msg
		}
	}()
	first := w.next(t)
	if len(first.GetEntries()) != 0 || first.GetResumeToken() == "" {
		t.Fatalf("first message of an audit watch: %d entries, token %q; want only a token", len(first.GetEntries()), first.GetResumeToken())
	}
	return w, first.GetResumeToken()
}

// next returns the watch's next message, failing after 5 seconds.
func (w *auditWatch) next(t *testing.T) *exchangev1.WatchAuditEntriesResponse {
	t.Helper()
	select {
	case msg, ok := <-w.msgs:
		if !ok {
			t.Fatalf("audit watch ended: %v", <-w.err)
		}
		return msg
	case <-time.After(5 * time.Second):
		t.Fatal("no audit watch message within 5s (heartbeats come every 200ms)")
	}
	return nil
}

// untilLines reads the watch until every one of want has arrived,
// returning every line received and the last resume token.
func (w *auditWatch) untilLines(t *testing.T, want ...string) (got []string, token string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		missing := slices.DeleteFunc(slices.Clone(want), func(l string) bool { return slices.Contains(got, l) })
		if len(missing) == 0 {
			return got, token
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit watch did not deliver within 5s:\n%s\ngot %q", strings.Join(missing, "\n"), got)
		}
		msg := w.next(t)
		for _, e := range msg.GetEntries() {
			got = append(got, auditLine(e))
		}
		token = msg.GetResumeToken()
	}
}

// TestAgencyWatchesItsOwnAuditEntries: ilo watching its audit entries
// receives, promptly, the certificate the secretariat issues for it and
// its own key change, without their place in the chain; unicef, watching
// at the same time, receives no entry at all, only heartbeats; the
// secretariat receives both with their sequence numbers.
func TestAgencyWatchesItsOwnAuditEntries(t *testing.T) {
	_, sec, ilo, _, unicef := threeAgencies(t)
	ctx := context.Background()
	iloWatch, _ := watchAudit(t, ilo, "")
	unicefWatch, _ := watchAudit(t, unicef, "")
	secWatch, _ := watchAudit(t, sec, "")

	start := time.Now()
	issued, err := sec.certs.IssueCertificate(ctx, &exchangev1.IssueCertificateRequest{Subject: "agencies/ilo", CsrDer: newCSR(t, pki.Agency("ilo"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setKey(ilo, newRecipient(t).String()); err != nil {
		t.Fatal(err)
	}
	issuedLine := fmt.Sprintf("secretariat [%s] CertificateService/IssueCertificate %s", sec.serial, issued.GetCertificate().GetName())
	keyLine := fmt.Sprintf("agencies/ilo [%s] DirectoryService/SetAgencyEncryptionKey agencies/ilo", ilo.serial)

	got, _ := iloWatch.untilLines(t, issuedLine, keyLine)
	t.Logf("ilo's watch delivered both entries %v after the issuance began", time.Since(start))
	if len(got) != 2 {
		t.Errorf("ilo's watch delivered %q, want exactly the two entries about it", got)
	}
	secWatch.untilLines(t, issuedLine, keyLine)

	// unicef's watch runs past both changes: a few heartbeats, no entries.
	for range 3 {
		msg := unicefWatch.next(t)
		for _, e := range msg.GetEntries() {
			t.Errorf("unicef's audit watch delivered %s, which is not about unicef", auditLine(e))
		}
	}
}

// TestAuditWatchEntriesAreRedactedForAgencies: an agency's watch shows
// no entry's sequence number or previous hash (the gaps would count
// other agencies' activity); the secretariat's shows both.
func TestAuditWatchEntriesAreRedactedForAgencies(t *testing.T) {
	_, sec, ilo, _, _ := threeAgencies(t)
	iloWatch, _ := watchAudit(t, ilo, "")
	secWatch, _ := watchAudit(t, sec, "")
	if _, err := setKey(ilo, newRecipient(t).String()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who      string
		w        *auditWatch
		redacted bool
	}{{"ilo", iloWatch, true}, {"secretariat", secWatch, false}} {
		msg := c.w.next(t)
		for msg.GetEntries() == nil {
			msg = c.w.next(t)
		}
		for _, e := range msg.GetEntries() {
			hidden := e.GetSequence() == 0 && len(e.GetPreviousHash()) == 0
			if hidden != c.redacted {
				t.Errorf("%s's watch: entry %s has sequence %d and %d bytes of previous hash; redacted want %v",
					c.who, auditLine(e), e.GetSequence(), len(e.GetPreviousHash()), c.redacted)
			}
		}
	}
}

// TestAuditWatchResumesWithoutLossOrRepeat: ilo watches, receives one
// entry, and its watch is cut by a shutdown (UNAVAILABLE); changes about
// ilo happen while it is away; a new watch from the last token it had
// delivers exactly the entries its audit list gained since the first
// watch began, none of them twice and none missing.
func TestAuditWatchResumesWithoutLossOrRepeat(t *testing.T) {
	x, sec, ilo, _, _ := threeAgencies(t)
	ctx := context.Background()
	before := allAuditEntries(t, ilo, 1000)
	w, _ := watchAudit(t, ilo, "")

	if _, err := setKey(ilo, newRecipient(t).String()); err != nil {
		t.Fatal(err)
	}
	firstLine := fmt.Sprintf("agencies/ilo [%s] DirectoryService/SetAgencyEncryptionKey agencies/ilo", ilo.serial)
	delivered, token := w.untilLines(t, firstLine)

	x.stop()
	select {
	case <-w.msgs:
		for range w.msgs {
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end when the exchange shut down")
	}
	if err := <-w.err; status.Code(err) != codes.Unavailable {
		t.Fatalf("the watch ended with %v at shutdown, want UNAVAILABLE", err)
	}
	x.serve(x.register)
	sec, ilo = x.asSecretariat(), x.asAgency("ilo")

	// While ilo is away: a certificate for ilo, another key change.
	if _, err := sec.certs.IssueCertificate(ctx, &exchangev1.IssueCertificateRequest{Subject: "agencies/ilo", CsrDer: newCSR(t, pki.Agency("ilo"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := setKey(ilo, newRecipient(t).String()); err != nil {
		t.Fatal(err)
	}

	after := allAuditEntries(t, ilo, 1000)
	var want []string
	for _, e := range after[len(before):] {
		want = append(want, auditLine(e))
	}
	resumed, _ := watchAudit(t, ilo, token)
	rest, _ := resumed.untilLines(t, want[len(delivered):]...)
	if got := append(delivered, rest...); !slices.Equal(got, want) {
		t.Fatalf("across the reconnection the watch delivered\n%s\nwant (ilo's audit list since the watch began)\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nothing more arrives: the next message is a heartbeat.
	if msg := resumed.next(t); len(msg.GetEntries()) != 0 {
		t.Fatalf("after catching up the watch delivered %d more entries", len(msg.GetEntries()))
	}
}

// TestAuditWatchHeartbeatTokensAreFreshEachTime: an idle watch's
// heartbeats carry no entries and a different token each time, though
// the position they hold is the same; a heartbeat token resumes a watch;
// a token that is not the exchange's is refused naming resume_token.
func TestAuditWatchHeartbeatTokensAreFreshEachTime(t *testing.T) {
	x, _, _, _, unicef := threeAgencies(t)
	w, first := watchAudit(t, unicef, "")
	tokens := []string{first}
	for range 3 {
		msg := w.next(t)
		if len(msg.GetEntries()) != 0 {
			t.Fatalf("an idle watch delivered %d entries", len(msg.GetEntries()))
		}
		if slices.Contains(tokens, msg.GetResumeToken()) {
			t.Fatalf("heartbeat token %q repeats an earlier one", msg.GetResumeToken())
		}
		tokens = append(tokens, msg.GetResumeToken())
	}
	opener := &auditService{store: x.store}
	var positions []uint64
	for _, tok := range tokens {
		pos, ok := opener.openToken(tok)
		if !ok {
			t.Fatalf("token %q does not open", tok)
		}
		positions = append(positions, pos)
	}
	if slices.Min(positions) != slices.Max(positions) {
		t.Fatalf("an idle watch's tokens hold positions %v, want one", positions)
	}
	watchAudit(t, unicef, tokens[len(tokens)-1]) // a heartbeat token resumes

	stream, err := unicef.audit().WatchAuditEntries(context.Background(), &exchangev1.WatchAuditEntriesRequest{ResumeToken: "bm90LWEtdG9rZW4"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "resume_token") {
		t.Fatalf("a forged token: %v, want INVALID_ARGUMENT naming resume_token", err)
	}
}

// TestAuditWatchContinuesAListPage: a watch started with a list's page
// token delivers the rest of the caller's list, in order, and nothing
// before it.
func TestAuditWatchContinuesAListPage(t *testing.T) {
	_, _, ilo, _, _ := threeAgencies(t)
	for range 2 {
		if _, err := setKey(ilo, newRecipient(t).String()); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	for _, e := range allAuditEntries(t, ilo, 1000) {
		all = append(all, auditLine(e))
	}
	if len(all) < 3 {
		t.Fatalf("ilo's list has %d entries, want 3 or more", len(all))
	}
	page, err := ilo.audit().ListAuditEntries(context.Background(), &exchangev1.ListAuditEntriesRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := watchAudit(t, ilo, page.GetNextPageToken())
	got, _ := w.untilLines(t, all[1:]...)
	if !slices.Equal(got, all[1:]) {
		t.Fatalf("from the first page's token the watch delivered\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(all[1:], "\n"))
	}
}
