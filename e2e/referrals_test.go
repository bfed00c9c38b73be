package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// referralLine is one line of a push file: a CreateReferralRequest in
// protojson.
func referralLine(t *testing.T, requestID, receiver, consentFor, name string) string {
	t.Helper()
	req := &exchangev1.CreateReferralRequest{RequestId: requestID, Referral: &exchangev1.Referral{
		Receiver:         "agencies/" + receiver,
		Service:          &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: "trauma counselling after return"},
		Urgency:          exchangev1.Urgency_URGENCY_URGENT,
		SubjectReference: "subj-" + requestID,
		Subject:          &exchangev1.Subject{Name: name, Sex: exchangev1.Sex_SEX_FEMALE, Nationality: "KH"},
		Consent: &exchangev1.Consent{
			GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN, GivenTime: timestamppb.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)),
			ReceivingAgency: "agencies/" + consentFor, Services: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		},
		Location: &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"},
	}}
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReferralsThroughTheCLI pushes a case system's file through the real
// binaries, then follows one referral to its outcome, as two agencies
// would, while a third sees nothing.
func TestReferralsThroughTheCLI(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	sessions := map[string]session{}
	for _, id := range []string{"ilo", "iom", "unicef"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency", "--niche", "psychosocial-counselling", "--coverage", "KH-12")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
		sessions[id] = agencySession(t, srv.addr, filepath.Join(dir, "certs-"+id), id)
		sessions[id].ok(t, "keys", "create") // push seals with it
	}
	ilo, iom, unicef := sessions["ilo"], sessions["iom"], sessions["unicef"]

	lines := []string{
		referralLine(t, "case-1", "iom", "iom", "Person One"),
		referralLine(t, "case-2", "iom", "iom", "Person Two"),
		`{"requestId": "case-3", "referral": {`,                   // not JSON
		referralLine(t, "case-4", "iom", "unicef", "Person Four"), // consent for another agency
		referralLine(t, "case-5", "iom", "iom", ""),               // no name
		referralLine(t, "case-6", "iom", "iom", "Person Six"),
	}
	file := writeFile(t, ilo.dir, "referrals.jsonl", []byte(strings.Join(lines, "\n")+"\n"))
	first := ilo.fails(t, 6, nil, "referrals", "push", "-f", file)
	for _, want := range []string{"3 accepted", "3 rejected", "line 3 is not a CreateReferralRequest", "referral.consent.receiving_agency", "referral.sealed_details"} {
		if !strings.Contains(first.stdout+first.stderr, want) {
			t.Errorf("the push report does not say %q\n%s", want, first)
		}
	}
	again := ilo.fails(t, 6, nil, "referrals", "push", "-f", file)
	if !strings.Contains(strings.ToLower(again.stdout), "duplicate") {
		t.Errorf("a second push of the same file does not report duplicates\n%s", again)
	}

	inbox := jsonList(t, iom, func() *exchangev1.Referral { return &exchangev1.Referral{} }, "referrals", "inbox")
	if len(inbox) != 3 {
		t.Fatalf("iom's inbox holds %d referrals, want 3", len(inbox))
	}
	for _, r := range inbox {
		if r.GetSubject() != nil {
			t.Errorf("the inbox list carries identifying details: %v", r)
		}
	}
	name := inbox[0].GetName()
	id := strings.TrimPrefix(name, "referrals/")
	if out := unicef.fails(t, 3, nil, "referrals", "show", id); out.code != 3 {
		t.Fatal("a third agency sees the referral")
	}
	if len(jsonList(t, unicef, func() *exchangev1.Referral { return &exchangev1.Referral{} }, "referrals", "inbox")) != 0 {
		t.Error("a third agency lists referrals")
	}
	ilo.fails(t, 4, nil, "referrals", "accept", id) // only the receiver
	iom.fails(t, 6, []string{"REFERRAL_STATE_REQUESTED"}, "referrals", "accept", id)
	for _, verb := range []string{"acknowledge", "accept", "start"} {
		iom.ok(t, "referrals", verb, id)
	}
	iom.ok(t, "referrals", "complete", id, "--successful", "--reason", "six counselling sessions delivered")
	shown := &exchangev1.Referral{}
	ilo.jsonOne(t, shown, "referrals", "show", id)
	if shown.GetState() != exchangev1.ReferralState_REFERRAL_STATE_COMPLETED || len(shown.GetHistory()) != 5 || shown.GetSubject().GetName() == "" {
		t.Fatalf("the sender's view after completion: %v", shown)
	}
	ilo.fails(t, 6, nil, "referrals", "cancel", id, "--reason", "too late")

	// A watch as iom sees a new referral from ilo.
	watchDone := make(chan result, 1)
	go func() { watchDone <- iom.ctl(t, "--json", "--timeout", "3s", "referrals", "watch") }()
	time.Sleep(700 * time.Millisecond)
	more := writeFile(t, ilo.dir, "more.jsonl", []byte(referralLine(t, "case-7", "iom", "iom", "Person Seven")+"\n"))
	ilo.ok(t, "referrals", "push", "-f", more)
	w := <-watchDone
	if w.code != 0 || !strings.Contains(w.stdout, "REFERRAL_EVENT_KIND_CREATED") {
		t.Errorf("the watch did not report the new referral\n%s", w)
	}
}
