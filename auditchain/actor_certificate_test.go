package auditchain

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// certificateEntry is an entry as the chain held them before
// actor_certificate existed.
func certificateEntry() *exchangev1.AuditEntry {
	return &exchangev1.AuditEntry{Sequence: 9, Revision: 1_780_000_000_000_000, Time: timestamppb.New(time.Date(2026, 11, 27, 4, 5, 6, 7, time.UTC)),
		Actor: "secretariat", Method: "/alltogether.exchange.v1.CertificateService/IssueCertificate",
		ResourceName: "certificates/5a1f0c2e9d", PreviousHash: bytes.Repeat([]byte{0xcd}, 32)}
}

// TestEntriesWithoutActorCertificateKeepTheirHashes checks that
// actor_certificate, added after the chain had entries, changes nothing for
// entries without one (those the exchange makes itself, and every entry
// written before): their sealed encoding and hash are byte for byte what
// the code before the field produced (the constants below were computed by
// it), so chains already on disk still verify.
func TestEntriesWithoutActorCertificateKeepTheirHashes(t *testing.T) {
	const (
		hashBefore   = "c7093373389cf2e8d0e5f539119bba605a5d1406e8b122583097fc0cf62fa750"
		sealedBefore = "0809108080cddde8dc94031a0808f282a4d8061007220b73656372657461726961742a3c2f616c6c746f6765746865722e65786368616e67652e76312e4365727469666963617465536572766963652f4973737565436572746966696361746532176365727469666963617465732f356131663063326539643a20cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd4220c7093373389cf2e8d0e5f539119bba605a5d1406e8b122583097fc0cf62fa750"
	)
	e := certificateEntry()
	sealed, err := Seal(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(e.GetHash()); got != hashBefore {
		t.Errorf("an entry without actor_certificate hashes to %s; before the field it hashed to %s", got, hashBefore)
	}
	if got := hex.EncodeToString(sealed); got != sealedBefore {
		t.Errorf("an entry without actor_certificate is sealed as\n%s\nbefore the field it was\n%s", got, sealedBefore)
	}
	v := NewVerifierAfter(8, bytes.Repeat([]byte{0xcd}, 32))
	if err := v.Add(e); err != nil {
		t.Errorf("the old entry does not verify: %v", err)
	}
}

// TestActorCertificateIsCoveredByTheHash checks that an entry's
// certificate serial is sealed in its deterministic place (after the hash,
// whose field number is lower) and that changing or removing it breaks
// the chain.
func TestActorCertificateIsCoveredByTheHash(t *testing.T) {
	e := certificateEntry()
	e.ActorCertificate = "5a1f0c2e9d"
	sealed, err := Seal(e)
	if err != nil {
		t.Fatal(err)
	}
	marshalled, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sealed, marshalled) {
		t.Fatalf("Seal encoded\n%x\nthe entry with its hash encodes as\n%x", sealed, marshalled)
	}
	if h, _ := Hash(certificateEntry()); bytes.Equal(h, e.GetHash()) {
		t.Fatal("the certificate serial does not change the hash")
	}
	for name, tamper := range map[string]func(*exchangev1.AuditEntry){
		"serial changed": func(e *exchangev1.AuditEntry) { e.ActorCertificate = "5a1f0c2e9e" },
		"serial removed": func(e *exchangev1.AuditEntry) { e.ActorCertificate = "" },
	} {
		c := proto.CloneOf(e)
		tamper(c)
		if err := NewVerifierAfter(8, bytes.Repeat([]byte{0xcd}, 32)).Add(c); err == nil {
			t.Errorf("%s: the chain still verifies", name)
		}
	}
}
