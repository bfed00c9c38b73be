package store

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// newEncryptionKey makes a real agency key and returns its public half as
// SetAgencyEncryptionKey takes it.
func newEncryptionKey(t *testing.T) *exchangev1.EncryptionKey {
	t.Helper()
	id, err := seal.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	r := id.Recipient()
	return &exchangev1.EncryptionKey{Recipient: r.String(), Fingerprint: r.Fingerprint().String()}
}

// keyOp is SetAgencyEncryptionKey called by the agency itself with the
// certificate serial.
func keyOp(agency, serial string) Op {
	return Op{Actor: "agencies/" + agency, Method: "/alltogether.exchange.v1.DirectoryService/SetAgencyEncryptionKey", ActorCertificate: serial}
}

// TestSetAgencyEncryptionKeyKeepsTheHistoryNewestFirst checks that each new
// key becomes current with the time it was set, that the one it replaces
// moves to the front of previous_encryption_keys without its recipient,
// and that setting the current key again writes nothing at all.
func TestSetAgencyEncryptionKeyKeepsTheHistoryNewestFirst(t *testing.T) {
	s, clk := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "ilo", nil)
	op := keyOp("ilo", "1f3a")

	var keys []*exchangev1.EncryptionKey
	var times []time.Time
	for range 3 {
		k := newEncryptionKey(t)
		at := clk.advance(time.Hour)
		a, err := s.SetAgencyEncryptionKey(ctx, op, "agencies/ilo", k)
		if err != nil {
			t.Fatal(err)
		}
		keys, times = append(keys, k), append(times, at)
		cur := a.GetEncryptionKey()
		if cur.GetRecipient() != k.GetRecipient() || cur.GetFingerprint() != k.GetFingerprint() || !cur.GetCreateTime().AsTime().Equal(at) {
			t.Fatalf("current key %v, want %s set at %v", cur, k.GetFingerprint(), at)
		}
	}
	a, err := s.GetAgency(ctx, "agencies/ilo")
	if err != nil {
		t.Fatal(err)
	}
	prev := a.GetPreviousEncryptionKeys()
	if len(prev) != 2 {
		t.Fatalf("%d previous keys, want 2", len(prev))
	}
	for i, want := range []int{1, 0} { // newest first
		p := prev[i]
		if p.GetFingerprint() != keys[want].GetFingerprint() || !p.GetCreateTime().AsTime().Equal(times[want]) || p.GetRecipient() != "" {
			t.Errorf("previous key %d = %v, want fingerprint %s, created %v, no recipient", i, p, keys[want].GetFingerprint(), times[want])
		}
	}

	// The same key again: no new etag, revision or audit entry.
	rev := s.Revision()
	seq, _, err := s.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	again, err := s.SetAgencyEncryptionKey(ctx, op, "agencies/ilo", keys[2])
	if err != nil {
		t.Fatal(err)
	}
	after, _, _ := s.AuditHead(ctx)
	if !proto.Equal(again, a) || s.Revision() != rev || after != seq {
		t.Errorf("setting the current key again changed the record (%v), the revision (%d→%d) or the audit chain (%d→%d)",
			!proto.Equal(again, a), rev, s.Revision(), seq, after)
	}

	if _, err := s.SetAgencyEncryptionKey(ctx, op, "agencies/nobody", keys[0]); KindOf(err) != KindNotFound {
		t.Errorf("a key for a missing agency: %v, want not found", err)
	}
}

// TestPreviousEncryptionKeysAreBounded checks that the history keeps the
// newest MaxPreviousEncryptionKeys keys and drops older ones.
func TestPreviousEncryptionKeysAreBounded(t *testing.T) {
	s, clk := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "ilo", nil)
	var fingerprints []string
	for range MaxPreviousEncryptionKeys + 5 {
		k := newEncryptionKey(t)
		clk.advance(time.Minute)
		if _, err := s.SetAgencyEncryptionKey(ctx, keyOp("ilo", "1f3a"), "agencies/ilo", k); err != nil {
			t.Fatal(err)
		}
		fingerprints = append(fingerprints, k.GetFingerprint())
	}
	a, err := s.GetAgency(ctx, "agencies/ilo")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range a.GetPreviousEncryptionKeys() {
		got = append(got, p.GetFingerprint())
	}
	// The newest previous keys, newest first: every key but the current,
	// reversed, cut to the bound.
	want := slices.Clone(fingerprints[:len(fingerprints)-1])
	slices.Reverse(want)
	want = want[:MaxPreviousEncryptionKeys]
	if !slices.Equal(got, want) {
		t.Errorf("previous keys\n%v\nwant\n%v", got, want)
	}
}

// TestCreateAgencyIgnoresEncryptionKeys checks that the secretariat cannot
// give an agency a key by creating it with one: the fields are output only.
func TestCreateAgencyIgnoresEncryptionKeys(t *testing.T) {
	s, _ := openTest(t)
	in := agencyMsg("ILO", nil, nil)
	in.EncryptionKey = newEncryptionKey(t)
	in.PreviousEncryptionKeys = []*exchangev1.EncryptionKey{{Fingerprint: "AAAA"}}
	a, err := s.CreateAgency(t.Context(), secretariat("CreateAgency"), "ilo", in)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetEncryptionKey() != nil || len(a.GetPreviousEncryptionKeys()) != 0 {
		t.Errorf("created agency has key %v and previous keys %v", a.GetEncryptionKey(), a.GetPreviousEncryptionKeys())
	}
}

// TestKeyChangeIsAuditedWithTheCallersCertificateAndSeenByLookupCaller
// checks that a key change appends an audit entry naming the agency, the
// method and the certificate serial of the call (an entry of the exchange
// itself carries none), and that LookupCaller, which caches agency
// records, returns the new key at once.
func TestKeyChangeIsAuditedWithTheCallersCertificateAndSeenByLookupCaller(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "ilo", nil)
	if _, err := s.RecordSignedCertificate(ctx, Op{Actor: ActorExchange, Method: "exchanged/start"}, "1f3a",
		&exchangev1.Certificate{Subject: "agencies/ilo"}); err != nil {
		t.Fatal(err)
	}
	before, err := s.LookupCaller(ctx, "1f3a", "ilo")
	if err != nil || before.Agency.GetEncryptionKey() != nil {
		t.Fatalf("before: %v, %v", before.Agency, err)
	}
	k := newEncryptionKey(t)
	if _, err := s.SetAgencyEncryptionKey(ctx, keyOp("ilo", "1f3a"), "agencies/ilo", k); err != nil {
		t.Fatal(err)
	}
	after, err := s.LookupCaller(ctx, "1f3a", "ilo")
	if err != nil || after.Agency.GetEncryptionKey().GetRecipient() != k.GetRecipient() {
		t.Fatalf("LookupCaller after the change returns key %v (%v)", after.Agency.GetEncryptionKey(), err)
	}

	entries, err := s.AuditEntries(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.GetActor()+" "+e.GetMethod()+" "+e.GetResourceName()+" ["+e.GetActorCertificate()+"]")
	}
	want := []string{
		"secretariat /alltogether.exchange.v1.DirectoryService/CreateAgency agencies/ilo []",
		"exchange exchanged/start certificates/1f3a []",
		"agencies/ilo /alltogether.exchange.v1.DirectoryService/SetAgencyEncryptionKey agencies/ilo [1f3a]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit entries\n%q\nwant\n%q", got, want)
	}
}

// TestCertificateSubjectReadsTheRecord checks CertificateSubject against
// recorded certificates of an agency and of the secretariat, with their
// PEM, and a serial that is not recorded.
func TestCertificateSubjectReadsTheRecord(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	mustCreateAgency(t, s, "ilo", nil)
	pem := "-----BEGIN CERTIFICATE-----\n" + string(make([]byte, 900)) + "\n-----END CERTIFICATE-----\n"
	for serial, subject := range map[string]string{"0a": "agencies/ilo", "0b": "secretariat"} {
		if _, err := s.RecordSignedCertificate(ctx, Op{Actor: ActorExchange, Method: "test"}, serial,
			&exchangev1.Certificate{Subject: subject, CertificatePem: pem, Issuer: "exchange"}); err != nil {
			t.Fatal(err)
		}
		got, found, err := s.CertificateSubject(ctx, CertificatePrefix+serial)
		if err != nil || !found || got != subject {
			t.Errorf("CertificateSubject(%s) = %q, %v, %v; want %q", serial, got, found, err, subject)
		}
	}
	if got, found, err := s.CertificateSubject(ctx, CertificatePrefix+"0c"); err != nil || found || got != "" {
		t.Errorf("CertificateSubject of a serial not recorded = %q, %v, %v", got, found, err)
	}
}
