package client_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/clienttest"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

const setEncryptionKey = exchangev1.DirectoryService_SetAgencyEncryptionKey_FullMethodName

func newRecipient(t *testing.T) seal.Recipient {
	t.Helper()
	id, err := seal.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient()
}

// TestSetEncryptionKeyAndReadItBack: an agency registers its key with its
// own certificate, a partner reads it back as a seal.Recipient, a lost
// answer is retried without changing the outcome, and a rotation keeps
// the old key's fingerprint.
func TestSetEncryptionKeyAndReadItBack(t *testing.T) {
	s := clienttest.NewServer(t)
	seedAgencies(s, "ilo", "unicef")
	ilo, unicef := s.Dial(t, "agency/ilo"), s.Dial(t, "agency/unicef")
	ctx := context.Background()

	if _, err := unicef.Directory.EncryptionKey(ctx, "ilo"); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("the key of an agency without one: %v, want FAILED_PRECONDITION", err)
	}

	first := newRecipient(t)
	s.FailAfterNext(setEncryptionKey, unavailable()) // the key is set, the answer lost
	a, err := ilo.Directory.SetEncryptionKey(ctx, "ilo", first)
	if err != nil {
		t.Fatal(err)
	}
	if calls := s.Calls(setEncryptionKey); len(calls) != 2 || calls[1].Attempt != "1" {
		t.Fatalf("%d calls, want a first attempt and one retry", len(calls))
	}
	if a.GetEncryptionKey().GetFingerprint() != first.Fingerprint().String() || len(a.GetPreviousEncryptionKeys()) != 0 {
		t.Fatalf("after a retried set: key %v, previous %v", a.GetEncryptionKey(), a.GetPreviousEncryptionKeys())
	}
	got, err := unicef.Directory.EncryptionKey(ctx, "ilo")
	if err != nil || got != first {
		t.Fatalf("unicef reads ilo's key as %s (%v), want %s", got.Fingerprint(), err, first.Fingerprint())
	}

	second := newRecipient(t)
	a, err = ilo.Directory.SetEncryptionKey(ctx, "ilo", second)
	if err != nil {
		t.Fatal(err)
	}
	if prev := a.GetPreviousEncryptionKeys(); len(prev) != 1 || prev[0].GetFingerprint() != first.Fingerprint().String() {
		t.Errorf("previous keys after rotation: %v", prev)
	}

	if _, err := unicef.Directory.SetEncryptionKey(ctx, "ilo", newRecipient(t)); status.Code(err) != codes.PermissionDenied {
		t.Errorf("unicef set ilo's key: %v", err)
	}
	if _, err := ilo.Directory.SetEncryptionKey(ctx, "ilo", seal.Recipient{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an empty key: %v", err)
	}
}

// TestEncryptionKeyOfChecksTheFingerprint: the client computes the
// fingerprint itself and refuses a directory record whose fingerprint
// does not belong to its key, or whose key is not a post-quantum age key.
func TestEncryptionKeyOfChecksTheFingerprint(t *testing.T) {
	r := newRecipient(t)
	other := newRecipient(t)
	for name, tc := range map[string]struct {
		key  *exchangev1.EncryptionKey
		code codes.Code
	}{
		"good":              {&exchangev1.EncryptionKey{Recipient: r.String(), Fingerprint: r.Fingerprint().String()}, codes.OK},
		"other fingerprint": {&exchangev1.EncryptionKey{Recipient: r.String(), Fingerprint: other.Fingerprint().String()}, codes.DataLoss},
		"not a key":         {&exchangev1.EncryptionKey{Recipient: "age1pq1notakey", Fingerprint: r.Fingerprint().String()}, codes.DataLoss},
		"none":              {nil, codes.FailedPrecondition},
	} {
		got, err := client.EncryptionKeyOf(&exchangev1.Agency{Name: "agencies/ilo", EncryptionKey: tc.key})
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
		if tc.code == codes.OK && got != r {
			t.Errorf("%s: key %s, want %s", name, got.Fingerprint(), r.Fingerprint())
		}
	}
}
