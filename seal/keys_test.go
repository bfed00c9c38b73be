package seal

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
)

func TestIdentityAndRecipientRoundTrip(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id.SecretKey(), "AGE-SECRET-KEY-PQ-1") {
		t.Fatalf("secret key %.20s… is not a hybrid age identity", id.SecretKey())
	}
	again, err := ParseIdentity(id.SecretKey())
	if err != nil {
		t.Fatal(err)
	}
	if again.SecretKey() != id.SecretKey() || again.Recipient() != id.Recipient() {
		t.Error("a parsed identity differs from the one formatted")
	}
	rcpt := id.Recipient()
	if !strings.HasPrefix(rcpt.String(), "age1pq1") {
		t.Fatalf("recipient %.20s… is not a hybrid age recipient", rcpt)
	}
	parsed, err := ParseRecipient(rcpt.String())
	if err != nil {
		t.Fatal(err)
	}
	if parsed != rcpt {
		t.Error("a parsed recipient differs from the one formatted")
	}
	// The age library reads both, so other age tools do too.
	if _, err := age.ParseHybridIdentity(id.SecretKey()); err != nil {
		t.Errorf("age does not read the identity: %v", err)
	}
	if _, err := age.ParseHybridRecipient(rcpt.String()); err != nil {
		t.Errorf("age does not read the recipient: %v", err)
	}
}

func TestClassicAndMalformedKeysAreRefused(t *testing.T) {
	classic, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseIdentity(classic.String()); err == nil || !strings.Contains(err.Error(), "classic X25519") {
		t.Errorf("classic identity: got %v, want a refusal naming X25519", err)
	}
	if _, err := ParseRecipient(classic.Recipient().String()); err == nil || !strings.Contains(err.Error(), "classic X25519") {
		t.Errorf("classic recipient: got %v, want a refusal naming X25519", err)
	}
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	secret := id.SecretKey()
	last := "Q"
	if strings.HasSuffix(secret, last) {
		last = "P"
	}
	broken := secret[:len(secret)-1] + last // a valid character, a wrong checksum
	if _, err := ParseIdentity(broken); err == nil {
		t.Error("an identity with a bad checksum parsed")
	} else if strings.Contains(err.Error(), secret[20:40]) {
		t.Errorf("the error repeats the secret key: %v", err)
	}
	rcpt := id.Recipient().String()
	for _, s := range []string{"", "ssh-ed25519 AAAA", rcpt[:len(rcpt)-5], "age1pq1" + strings.Repeat("q", 100)} {
		if _, err := ParseRecipient(s); err == nil {
			t.Errorf("ParseRecipient(%.30q) succeeded", s)
		}
	}
}

func TestIdentityPrintsWithoutItsSecret(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimPrefix(id.SecretKey(), "AGE-SECRET-KEY-PQ-1")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(verb, id)
		if strings.Contains(strings.ToUpper(out), secret[:16]) {
			t.Errorf("%s prints the secret key: %s", verb, out)
		}
		if !strings.Contains(out, id.Recipient().Fingerprint().String()) {
			t.Errorf("%s does not name the key by its fingerprint: %s", verb, out)
		}
	}
}

func TestFingerprint(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	rcpt := id.Recipient()
	f := rcpt.Fingerprint()
	sum := sha256.Sum256([]byte(rcpt.String()))
	if string(f[:]) != string(sum[:16]) {
		t.Errorf("fingerprint %x is not the first 16 bytes of SHA-256 of the recipient text %x", f, sum)
	}
	text := f.String()
	if !regexp.MustCompile(`^[0-9A-F]{4}(-[0-9A-F]{4}){7}$`).MatchString(text) {
		t.Errorf("fingerprint %q is not eight groups of four upper-case hex digits", text)
	}
	for _, s := range []string{
		text,
		strings.ToLower(text),
		strings.ReplaceAll(text, "-", " "),
		strings.ReplaceAll(text, "-", ":"),
		strings.ReplaceAll(text, "-", ""),
	} {
		got, err := ParseFingerprint(s)
		if err != nil || got != f {
			t.Errorf("ParseFingerprint(%q) = %v, %v; want %v", s, got, err, f)
		}
	}
	for _, s := range []string{"", text[:len(text)-1], text + "0", strings.Replace(text, "-", "G", 1), strings.Replace(text, "-", "_", 1)} {
		if _, err := ParseFingerprint(s); err == nil {
			t.Errorf("ParseFingerprint(%q) succeeded", s)
		}
	}
}

// TestParseRecipientNeverQuotesASecretKey: a secret key pasted where a
// recipient belongs must not come back in an error message, which may be
// logged or shown to others.
func TestParseRecipientNeverQuotesASecretKey(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	secret := id.SecretKey()
	for _, in := range []string{secret, strings.ToLower(secret), "x" + secret} {
		_, err := ParseRecipient(in)
		if err == nil {
			t.Fatal("a secret key parsed as a recipient")
		}
		body := strings.ToUpper(strings.TrimPrefix(secret, "AGE-SECRET-KEY-"))
		for i := 0; i+8 <= len(body); i++ {
			if strings.Contains(strings.ToUpper(err.Error()), body[i:i+8]) {
				t.Fatalf("the error quotes the secret key: %v", err)
			}
		}
	}
}
