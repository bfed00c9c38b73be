package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	"github.com/alltogether/exchange/seal"
)

// The exchange refuses identifying details in clear: an agency's client
// seals them with the agency's key ring. Agencies in these tests keep
// their key ring where `exchangectl keys create` puts it, ID.age-keys
// beside the certificate (pins in ID.age-pins), and dial uses it when it
// is there, as exchangectl does; dialPlain reads as a client without one.

// keyRingBeside returns the key ring and pin files beside an agency's
// certificate, or "" for both when the certificate is not an agency's or
// no key ring is there.
func keyRingBeside(certFile string) (ring, pins string) {
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		return "", ""
	}
	cert, err := pki.ParseCertPEM(pemBytes)
	if err != nil {
		return "", ""
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil || id.Role != pki.RoleAgency {
		return "", ""
	}
	dir := filepath.Dir(certFile)
	ring = filepath.Join(dir, id.AgencyID+".age-keys")
	if _, err := os.Stat(ring); err != nil {
		return "", ""
	}
	return ring, filepath.Join(dir, id.AgencyID+".age-pins")
}

// makeKeyRing does what `exchangectl keys create` does for the agency
// agencyID of id: a key ring beside its certificate, its public key
// registered in the directory. It waits until the key can be read back
// (an exchanged with a planted fault acknowledges before it commits).
func makeKeyRing(t *testing.T, addr, agencyID string, id identity) {
	t.Helper()
	ring, err := seal.CreateKeyRing(filepath.Join(filepath.Dir(id.cert), agencyID+".age-keys"))
	if err != nil {
		t.Fatal(err)
	}
	c := dialPlain(t, addr, id)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The certificate itself may not be committed yet: retry until the
	// key is registered and can be read back (setting it again is a no-op).
	eventually(t, agencyID+"'s key", func() error {
		if _, err := c.Directory.SetEncryptionKey(ctx, agencyID, ring.Current().Recipient()); err != nil {
			return err
		}
		_, err := c.Directory.EncryptionKey(ctx, agencyID)
		return err
	})
}

// dialPlain prepares a client of the exchange at addr as id, without a
// key ring: it sends and reads sealed details as they are.
func dialPlain(t *testing.T, addr string, id identity) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), client.Config{
		Address: addr, CertFile: id.cert, KeyFile: id.key, CAFile: id.ca,
		Timeout: 30 * time.Second, // a safety net: the tests' contexts end calls first
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}
