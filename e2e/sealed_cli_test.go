package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// TestTheCLISealsWithTheKeyRingBesideTheCertificate follows referrals
// through exchangectl once the agencies have run `keys create`: `referrals
// push` seals each line (the exchange stores a blob and no name; a line
// without a name, which has nothing to seal, is refused on sealed_details), `referrals show` opens
// it locally for both agencies, a receiver without a registered key and a
// receiver whose key changed since it was pinned are refused with a clear
// message and nothing is stored until the sender trusts the new key, and
// `referrals forward` re-seals to the new receiver, who opens it.
func TestTheCLISealsWithTheKeyRingBesideTheCertificate(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	sessions := map[string]session{}
	for _, id := range []string{"ilo", "iom", "unicef", "nokey"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency", "--niche", "psychosocial-counselling", "--coverage", "KH-12")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
		sessions[id] = agencySession(t, srv.addr, filepath.Join(dir, "certs-"+id), id)
		if id != "nokey" {
			sessions[id].ok(t, "keys", "create")
		}
	}
	ilo, iom, unicef := sessions["ilo"], sessions["iom"], sessions["unicef"]
	const marker = "SEALCLI-Dara-4417"
	outbox := func() []*exchangev1.Referral {
		return jsonList(t, ilo, func() *exchangev1.Referral { return &exchangev1.Referral{} }, "referrals", "outbox")
	}

	file := writeFile(t, ilo.dir, "referrals.jsonl", []byte(strings.Join([]string{
		referralLine(t, "case-1", "iom", "iom", marker),
		referralLine(t, "case-2", "iom", "iom", ""), // no name
	}, "\n")+"\n"))
	first := ilo.fails(t, 6, nil, "referrals", "push", "-f", file)
	if !strings.Contains(first.stdout+first.stderr, "1 accepted") || !strings.Contains(first.stdout+first.stderr, "referral.sealed_details") {
		t.Fatalf("push:\n%s", first)
	}
	list := outbox()
	if len(list) != 1 {
		t.Fatalf("%d referrals stored, want 1", len(list))
	}
	id := strings.TrimPrefix(list[0].GetName(), "referrals/")

	// Stored sealed: read without a key ring, the referral has a blob and
	// no name.
	iloID := identity{filepath.Join(dir, "certs-ilo", "ilo.crt"), filepath.Join(dir, "certs-ilo", "ilo.key"), filepath.Join(dir, "certs-ilo", "ca.crt")}
	plain := dialPlain(t, srv.addr, iloID)
	defer plain.Close()
	stored, err := plain.Referrals.Get(context.Background(), list[0].GetName())
	if err != nil || len(stored.GetSealedDetails()) == 0 || stored.GetSubject().GetName() != "" || stored.GetRequestId() != "case-1" {
		t.Fatalf("stored without a name and with a blob? %v %v", stored, err)
	}
	for who, s := range map[string]session{"ilo": ilo, "iom": iom} {
		var shown exchangev1.Referral
		s.jsonOne(t, &shown, "referrals", "show", id)
		if shown.GetSubject().GetName() != marker || len(shown.GetSealedDetails()) != 0 {
			t.Errorf("%s's show: %v", who, &shown)
		}
	}

	// A receiver without a key.
	noKey := writeFile(t, ilo.dir, "nokey.jsonl", []byte(referralLine(t, "case-3", "nokey", "nokey", marker)+"\n"))
	if r := ilo.ctl(t, "referrals", "push", "-f", noKey); r.code == 0 ||
		!strings.Contains(r.stderr, "agencies/nokey has not registered an encryption key; ask them to run `exchangectl keys create`") {
		t.Errorf("push to an agency without a key:\n%s", r)
	}
	// A receiver whose key changed since ilo pinned it.
	iom.ok(t, "keys", "rotate")
	ring, err := seal.OpenKeyRing(filepath.Join(dir, "certs-iom", "iom.age-keys"))
	if err != nil {
		t.Fatal(err)
	}
	newFP := ring.Current().Recipient().Fingerprint().String()
	changed := writeFile(t, ilo.dir, "changed.jsonl", []byte(referralLine(t, "case-4", "iom", "iom", marker)+"\n"))
	if r := ilo.ctl(t, "referrals", "push", "-f", changed); r.code == 0 ||
		!strings.Contains(r.stderr, "the encryption key of agencies/iom changed") || !strings.Contains(r.stderr, "exchangectl keys trust agencies/iom "+newFP) {
		t.Errorf("push to a changed key:\n%s", r)
	}
	if n := len(outbox()); n != 1 {
		t.Fatalf("refused pushes stored referrals: %d in the outbox", n)
	}
	ilo.ok(t, "keys", "trust", "agencies/iom", newFP)
	ilo.ok(t, "referrals", "push", "-f", changed)
	if n := len(outbox()); n != 2 {
		t.Fatalf("after trusting the new key: %d in the outbox", n)
	}

	// iom (its old key still in its ring) forwards the first to unicef.
	iom.ok(t, "referrals", "acknowledge", id)
	var child exchangev1.Referral
	iom.jsonOne(t, &child, "referrals", "forward", id, "--to", "unicef", "--niche", "psychosocial-counselling",
		"--need", "follow-up counselling", "--consent-given-by", "guardian")
	childID := strings.TrimPrefix(child.GetName(), "referrals/")
	for who, s := range map[string]session{"unicef": unicef, "iom": iom} {
		var shown exchangev1.Referral
		s.jsonOne(t, &shown, "referrals", "show", childID)
		if shown.GetSubject().GetName() != marker || shown.GetForwardedFrom() != list[0].GetName() {
			t.Errorf("%s's show of the forward: %v", who, &shown)
		}
	}
	raw, err := os.ReadFile(dbPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), marker) {
		t.Error("the marker is in the database file")
	}
}

// TestTheGoClientSealsOnCreateAndOpensOnGet drives client.Referrals with a
// key ring against the built exchanged: Create returns the referral with
// its details in clear, the exchange holds a blob bound to the request id,
// the receiver's Get opens it, and a receiver that registered no key is
// refused with a message that says what to do, and nothing is stored.
func TestTheGoClientSealsOnCreateAndOpensOnGet(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	ids := map[string]identity{}
	for _, id := range []string{"ilo", "iom", "nokey"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
		certDir := filepath.Join(dir, "certs-"+id)
		ids[id] = identity{filepath.Join(certDir, id+".crt"), filepath.Join(certDir, id+".key"), filepath.Join(certDir, "ca.crt")}
		if id != "nokey" {
			agencySession(t, srv.addr, certDir, id).ok(t, "keys", "create")
		}
	}
	sealing := func(id string) *client.Client {
		certDir := filepath.Dir(ids[id].cert)
		c, err := client.Dial(context.Background(), client.Config{
			Address: srv.addr, CertFile: ids[id].cert, KeyFile: ids[id].key, CAFile: ids[id].ca,
			KeyRingFile: filepath.Join(certDir, id+".age-keys"), PinsFile: filepath.Join(certDir, id+".age-pins"),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ilo, iom := sealing("ilo"), sealing("iom")
	ctx := context.Background()
	sent := attackReferral("SEALED", 1)
	created, err := ilo.Referrals.Create(ctx, sent, client.WithRequestID("go-case-1"))
	if err != nil {
		t.Fatal(err)
	}
	if created.GetSubject().GetName() != "SEALED-0001-NAME" || created.GetCaseNotes() != sent.GetCaseNotes() ||
		created.GetSubject().GetBirthYear() != 2011 || len(created.GetSealedDetails()) != 0 {
		t.Fatalf("create returned %v", created)
	}
	plain := dialPlain(t, srv.addr, ids["iom"])
	defer plain.Close()
	stored, err := plain.Referrals.Get(ctx, created.GetName())
	if err != nil || stored.GetRequestId() != "go-case-1" || stored.GetSubject().GetName() != "" || stored.GetCaseNotes() != "" ||
		!strings.HasPrefix(string(stored.GetSealedDetails()), "age-encryption.org/v1\n") {
		t.Fatalf("stored: %v %v", stored, err)
	}
	// As docs/sealing.md says: a ReferralDetails, bound to the
	// referral's request id, sender and receiver.
	ring, err := seal.OpenKeyRing(filepath.Join(filepath.Dir(ids["iom"].cert), "iom.age-keys"))
	if err != nil {
		t.Fatal(err)
	}
	opened, err := seal.Open(stored.GetSealedDetails(), seal.Binding{RequestID: "go-case-1", Sender: "agencies/ilo", Receiver: "agencies/iom"}, ring)
	var details exchangev1.ReferralDetails
	if err != nil || proto.Unmarshal(opened, &details) != nil || details.GetName() != "SEALED-0001-NAME" || details.GetBirthYear() != 2011 {
		t.Fatalf("the blob opened by hand: %v %v", &details, err)
	}
	got, err := iom.Referrals.Get(ctx, created.GetName())
	if err != nil || got.GetSubject().GetName() != "SEALED-0001-NAME" || got.GetSubject().GetGuardianContact() != sent.GetSubject().GetGuardianContact() ||
		got.GetCaseNotes() != sent.GetCaseNotes() || got.GetSubject().GetNationality() != "KH" {
		t.Fatalf("iom reads %v %v", got, err)
	}

	toNoKey := attackReferral("SEALED", 2)
	toNoKey.Receiver, toNoKey.Consent.ReceivingAgency = "agencies/nokey", "agencies/nokey"
	_, err = ilo.Referrals.Create(ctx, toNoKey)
	if status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "agencies/nokey has not registered an encryption key; ask them to run `exchangectl keys create`") {
		t.Fatalf("create to an agency without a key: %v", err)
	}
	if n, err := client.Collect(ilo.Referrals.Referrals(ctx, nil)); err != nil || len(n) != 1 {
		t.Fatalf("%d referrals stored (%v), want 1", len(n), err)
	}
}
