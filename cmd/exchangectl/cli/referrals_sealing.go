package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
)

// connectSealing is connect for the referral commands that carry
// identifying details (show, push, forward): when the agency's key ring
// exists at its default place (ID.age-keys beside the certificate, where
// `keys create` makes it), the client seals the details it sends with it
// and opens those it reads, with the pins (ID.age-pins) beside it.
// Without a key ring, referrals are sent as they are, and the exchange
// refuses any that carries identifying details in clear.
func (a *app) connectSealing(ctx context.Context) (*client.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	cfg, err := a.clientConfig()
	if err != nil {
		return nil, err
	}
	cfg.KeyRingFile, cfg.PinsFile = defaultKeyRing(cfg.CertFile)
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.client = c
	return c, nil
}

// defaultKeyRing returns the key ring and pin files beside an agency's
// certificate, or "" for both when the certificate is not an agency's or
// no key ring is there.
func defaultKeyRing(certFile string) (ring, pins string) {
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		return "", "" // Dial reports it
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
	ring = filepath.Join(dir, id.AgencyID+keyRingSuffix)
	if _, err := os.Stat(ring); err != nil {
		return "", ""
	}
	return ring, filepath.Join(dir, id.AgencyID+pinsSuffix)
}
