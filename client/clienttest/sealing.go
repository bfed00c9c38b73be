package clienttest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// The real exchange refuses identifying details in clear: a referral must
// carry them sealed by its sending client in sealed_details. The fake
// does the same (checkSealed), so a test exercises the client's sealing;
// MakeKeyRing gives an agency a key ring, as `exchangectl keys create`
// does, and DialSealing a client that seals with it.

// ageHeader begins every age v1 file, and so every sealed_details blob.
const ageHeader = "age-encryption.org/v1\n"

// checkSealed refuses, as the real exchange does, a referral without
// sealed_details, a blob that is not an age file, and an identifying field
// in clear beside a blob. field prefixes the field names ("referral"; ""
// for a forward's request).
func checkSealed(field string, r *exchangev1.Referral) error {
	if field != "" {
		field += "."
	}
	if len(r.GetSealedDetails()) == 0 {
		return invalid("invalid request: "+field+"sealed_details: required", violation(field+"sealed_details",
			"required: the exchange holds no identifying details in clear; seal them with the agency's key ring (see docs/sealing.md)"))
	}
	if !bytes.HasPrefix(r.GetSealedDetails(), []byte(ageHeader)) {
		return invalid("invalid request: "+field+"sealed_details: not an age v1 file", violation(field+"sealed_details", "not an age v1 file"))
	}
	for name, set := range map[string]bool{
		"subject.name": r.GetSubject().GetName() != "", "subject.guardian_contact": r.GetSubject().GetGuardianContact() != "",
		"subject.birth_year": r.GetSubject().GetBirthYear() != 0, "case_notes": r.GetCaseNotes() != "",
	} {
		if set {
			return invalid("invalid request: "+field+name+": send it inside sealed_details, not in clear",
				violation(field+name, "the referral carries sealed_details; send it inside sealed_details, not in clear"))
		}
	}
	return nil
}

// MakeKeyRing does for the agency identity names ("agency/ilo") what
// `exchangectl keys create` does: a key ring beside the certificates
// Config writes for it (in PKI.Dir, as ilo.age-keys, with ilo.age-pins
// for pins), its public key registered in the fake's directory. A second
// call returns the same files. exchangectl run with such a certificate
// seals with it.
func (s *Server) MakeKeyRing(t testing.TB, identity string) (ringFile, pinsFile string) {
	t.Helper()
	agency, ok := strings.CutPrefix(identity, "agency/")
	if !ok {
		t.Fatalf("clienttest: MakeKeyRing(%q): only an agency seals", identity)
	}
	ringFile, pinsFile = filepath.Join(s.PKI.Dir, agency+".age-keys"), filepath.Join(s.PKI.Dir, agency+".age-pins")
	if _, err := os.Stat(ringFile); err == nil {
		return ringFile, pinsFile
	}
	ring, err := seal.CreateKeyRing(ringFile)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := client.Dial(context.Background(), s.Config(t, identity))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Directory.SetEncryptionKey(context.Background(), agency, ring.Current().Recipient()); err != nil {
		t.Fatalf("clienttest: register %s's key: %v", agency, err)
	}
	return ringFile, pinsFile
}

// DialSealing connects to the server as the agency identity names
// ("agency/ilo") with its key ring (MakeKeyRing), so that the client
// seals the referrals it sends and opens those it reads. The client is
// closed when t ends.
func (s *Server) DialSealing(t testing.TB, identity string) *client.Client {
	t.Helper()
	cfg := s.Config(t, identity)
	cfg.KeyRingFile, cfg.PinsFile = s.MakeKeyRing(t, identity)
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
