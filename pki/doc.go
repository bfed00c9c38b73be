// Package pki is the exchange's small public-key infrastructure: caller
// identities, the exchange CA, a development certificate set, and the mutual
// TLS 1.3 configurations used by the server and its clients.
//
// # Identities
//
// Every caller is named by exactly one URI SAN in its client certificate:
//
//	spiffe://alltogether/agency/<id>   an agency, e.g. agency/ilo
//	spiffe://alltogether/secretariat   the secretariat
//
// Agency ids match ^[a-z][a-z0-9-]{1,38}[a-z0-9]$ (see ValidAgencyID).
// Agency and Secretariat build an Identity; Identity.URI and Identity.String
// render it; IdentityFromCert reads it back from a certificate and rejects
// anything else with an error that says what is wrong (no or several URI
// SANs, wrong scheme or trust domain, bad agency id, unknown path, or a
// non-canonical URI). IdentityFromCert does not verify the chain: use it only
// on a certificate that TLS has verified, such as the first peer certificate
// of a connection set up with ServerTLSConfig.
//
// # Certificate authority
//
// NewCA creates a self-signed ECDSA P-256 CA; CA.Save writes it (the key as
// PEM PKCS#8 with mode 0600, the certificate with 0644, never overwriting)
// and LoadCA reads it back. The CA issues:
//
//   - server certificates with IssueServer (DNS names and IP addresses,
//     server authentication only);
//   - client certificates with SignCSR, which checks the request's signature
//     but ignores every name in it and sets the identity chosen by the
//     caller, or with IssueClient, which also creates the key.
//
// Leaf certificates get a random positive 128-bit serial, NotBefore one
// minute in the past, and never outlive the CA. SerialString is the canonical
// text form of a serial (lowercase hex, no colons) used everywhere.
//
// # Development set
//
// EnsureDev creates, once, a directory with ca.crt, ca.key, server.crt,
// server.key, secretariat.crt and secretariat.key (see DevFilesIn), so that a
// local exchange and the secretariat tools can talk to each other at once:
//
//	files, created, err := pki.EnsureDev("dev-pki", []string{"localhost", "127.0.0.1"})
//	srvCfg, err := pki.ServerTLSConfig(files.ServerCert, files.ServerKey, files.CACert)
//	cliCfg, err := pki.ClientTLSConfig(files.SecretariatCert, files.SecretariatKey, files.CACert, "localhost")
//
// # TLS
//
// ServerTLSConfig and ClientTLSConfig accept only TLS 1.3. The server
// requires a client certificate that chains to the configured CA and carries
// a valid identity; the client trusts only the configured CA.
package pki
