package server

import (
	"context"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// newRecipient makes a real agency key and returns its public half.
func newRecipient(t testing.TB) seal.Recipient {
	t.Helper()
	id, err := seal.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient()
}

// setKey registers r as c's own encryption key.
func setKey(c as, r string) (*exchangev1.Agency, error) {
	resp, err := c.dir.SetAgencyEncryptionKey(context.Background(), &exchangev1.SetAgencyEncryptionKeyRequest{Name: c.agencyName(), Recipient: r})
	return resp.GetAgency(), err
}

// TestAgencyRegistersAndRotatesItsOwnEncryptionKey: an agency registers
// its key, every member reads it with the agency, setting it again
// changes nothing, and a new key moves the old one's fingerprint into the
// history.
func TestAgencyRegistersAndRotatesItsOwnEncryptionKey(t *testing.T) {
	_, _, ilo, _, unicef := threeAgencies(t)
	ctx := context.Background()
	first := newRecipient(t)
	a, err := setKey(ilo, first.String())
	if err != nil {
		t.Fatal(err)
	}
	k := a.GetEncryptionKey()
	if k.GetRecipient() != first.String() || k.GetFingerprint() != first.Fingerprint().String() || k.GetCreateTime() == nil {
		t.Fatalf("registered key %v, want %s", k, first.Fingerprint())
	}
	seen, err := unicef.dir.GetAgency(ctx, &exchangev1.GetAgencyRequest{Name: "agencies/ilo"})
	if err != nil || !proto.Equal(seen.GetAgency().GetEncryptionKey(), k) {
		t.Fatalf("another agency reads the key as %v (%v)", seen.GetAgency().GetEncryptionKey(), err)
	}

	// The same key again, with surrounding spaces: nothing changes.
	again, err := setKey(ilo, "  "+first.String()+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if again.GetEtag() != a.GetEtag() || !proto.Equal(again.GetEncryptionKey(), k) {
		t.Errorf("setting the same key again changed the agency: etag %s → %s", a.GetEtag(), again.GetEtag())
	}

	second := newRecipient(t)
	b, err := setKey(ilo, second.String())
	if err != nil {
		t.Fatal(err)
	}
	if b.GetEncryptionKey().GetFingerprint() != second.Fingerprint().String() {
		t.Errorf("current key %s after rotation, want %s", b.GetEncryptionKey().GetFingerprint(), second.Fingerprint())
	}
	prev := b.GetPreviousEncryptionKeys()
	if len(prev) != 1 || prev[0].GetFingerprint() != first.Fingerprint().String() || prev[0].GetRecipient() != "" ||
		!prev[0].GetCreateTime().AsTime().Equal(k.GetCreateTime().AsTime()) {
		t.Errorf("previous keys %v, want the first key's fingerprint and time only", prev)
	}
}

// TestOnlyTheAgencyItselfSetsItsEncryptionKey: the secretariat is refused
// at the door, another agency by the handler (for an existing agency and a
// missing one alike), and nothing changes.
func TestOnlyTheAgencyItselfSetsItsEncryptionKey(t *testing.T) {
	x, sec, ilo, _, unicef := threeAgencies(t)
	ctx := context.Background()
	mine := newRecipient(t)
	if _, err := setKey(ilo, mine.String()); err != nil {
		t.Fatal(err)
	}
	before, _ := x.store.GetAgency(ctx, "agencies/ilo")
	swapped := newRecipient(t).String()
	for _, tc := range []struct {
		who    string
		c      as
		target string
	}{
		{"the secretariat", sec, "agencies/ilo"},
		{"unicef", unicef, "agencies/ilo"},
		{"unicef, for a missing agency", unicef, "agencies/zz-missing"},
	} {
		_, err := tc.c.dir.SetAgencyEncryptionKey(ctx, &exchangev1.SetAgencyEncryptionKeyRequest{Name: tc.target, Recipient: swapped})
		st := wantCode(t, err, codes.PermissionDenied)
		if tc.c.serial != sec.serial && !strings.Contains(st.Message(), "only the agency itself") {
			t.Errorf("%s: message %q", tc.who, st.Message())
		}
	}
	after, _ := x.store.GetAgency(ctx, "agencies/ilo")
	if !proto.Equal(before, after) {
		t.Fatalf("a refused call changed ilo's key: %v", after.GetEncryptionKey())
	}
}

// TestEncryptionKeyMustBeAPostQuantumAgeRecipient: classic X25519 age
// keys, age identities (private keys) and anything else are refused with
// INVALID_ARGUMENT naming recipient, and change nothing.
func TestEncryptionKeyMustBeAPostQuantumAgeRecipient(t *testing.T) {
	x, _, ilo, _, _ := threeAgencies(t)
	ctx := context.Background()
	classic, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	hybrid, err := seal.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	good := hybrid.Recipient().String()
	for name, tc := range map[string]struct{ recipient, says string }{
		"classic X25519 key":      {classic.Recipient().String(), "classic X25519 keys are refused"},
		"private key":             {hybrid.SecretKey(), "this is a private key"},
		"private key, lowercase":  {" " + strings.ToLower(hybrid.SecretKey()), "this is a private key"},
		"damaged hybrid key":      {good[:len(good)-6] + "qqqqqq", "not a valid post-quantum hybrid age key"},
		"PEM public key":          {"-----BEGIN PUBLIC KEY-----", "not an age key"},
		"too long (max_len 4096)": {"age1pq1" + strings.Repeat("q", 4096), ""},
		"empty":                   {"", ""},
	} {
		_, err := setKey(ilo, tc.recipient)
		st := wantCode(t, err, codes.InvalidArgument)
		if f := violatedFields(st); !slices.Equal(f, []string{"recipient"}) {
			t.Errorf("%s: fields %v, want [recipient]", name, f)
		}
		if !strings.Contains(st.String(), tc.says) {
			t.Errorf("%s: %v does not say %q", name, st, tc.says)
		}
		if secret := hybrid.SecretKey(); strings.Contains(strings.ToUpper(st.String()), secret[len("AGE-SECRET-KEY-PQ-1"):][:8]) {
			t.Errorf("%s: the error repeats a private key: %v", name, st)
		}
	}
	a, _ := x.store.GetAgency(ctx, "agencies/ilo")
	if a.GetEncryptionKey() != nil {
		t.Fatalf("refused keys were stored: %v", a.GetEncryptionKey())
	}
}

// TestUpdateAgencyCannotChangeEncryptionKeys: the key fields are output
// only; naming them in an update mask is INVALID_ARGUMENT, and an update
// with an empty mask (the agency's or the secretariat's) keeps the
// registered key, whatever the request carries.
func TestUpdateAgencyCannotChangeEncryptionKeys(t *testing.T) {
	_, sec, ilo, _, _ := threeAgencies(t)
	ctx := context.Background()
	mine := newRecipient(t)
	a, err := setKey(ilo, mine.String())
	if err != nil {
		t.Fatal(err)
	}
	forged := proto.CloneOf(a)
	forged.EncryptionKey = &exchangev1.EncryptionKey{Recipient: newRecipient(t).String(), Fingerprint: "0000-0000-0000-0000-0000-0000-0000-0000"}
	forged.PreviousEncryptionKeys = nil
	for _, c := range []as{ilo, sec} {
		for _, path := range []string{"encryption_key", "previous_encryption_keys"} {
			_, err := c.dir.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: forged, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{path}}})
			st := wantCode(t, err, codes.InvalidArgument)
			if f := violatedFields(st); !slices.Equal(f, []string{"update_mask.paths[0]"}) {
				t.Errorf("mask %s: fields %v", path, f)
			}
		}
		forged.DisplayName = "Renamed by " + c.agencyID
		resp, err := c.dir.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: forged})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.GetAgency()
		if got.GetDisplayName() != forged.DisplayName || !proto.Equal(got.GetEncryptionKey(), a.GetEncryptionKey()) {
			t.Errorf("an update with an empty mask left the name %q and the key %s", got.GetDisplayName(), got.GetEncryptionKey().GetFingerprint())
		}
		forged.Etag = got.GetEtag()
	}
}
