package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// TrustDomain is the SPIFFE trust domain of the exchange. Every identity URI
// has the form spiffe://alltogether/....
const TrustDomain = "alltogether"

// uriScheme is the URI scheme of every identity URI.
const uriScheme = "spiffe"

// Path prefixes and paths of identity URIs.
const (
	agencyPathPrefix = "/agency/"
	secretariatPath  = "/secretariat"
)

// Role is the kind of caller an Identity names. The zero value, RoleUnknown,
// is not a valid role.
type Role int

const (
	// RoleUnknown is the zero Role; it never names a valid caller.
	RoleUnknown Role = iota
	// RoleAgency is an anti-trafficking agency identified by an agency id.
	RoleAgency
	// RoleSecretariat is the secretariat, the team that administers the
	// directory.
	RoleSecretariat
)

// String returns "agency", "secretariat" or "unknown".
func (r Role) String() string {
	switch r {
	case RoleAgency:
		return "agency"
	case RoleSecretariat:
		return "secretariat"
	default:
		return "unknown"
	}
}

// Identity names a caller of the exchange. AgencyID is set only when Role is
// RoleAgency. Identity is comparable with ==.
type Identity struct {
	// Role is the kind of caller.
	Role Role
	// AgencyID is the agency id for RoleAgency and empty otherwise.
	AgencyID string
}

// Agency returns the identity of the agency with the given id. It does not
// check the id; use Validate or ValidAgencyID for that.
func Agency(id string) Identity {
	return Identity{Role: RoleAgency, AgencyID: id}
}

// Secretariat returns the identity of the secretariat.
func Secretariat() Identity {
	return Identity{Role: RoleSecretariat}
}

// agencyIDPattern is the syntax of an agency id.
var agencyIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,38}[a-z0-9]$`)

// ValidAgencyID reports whether id is a well-formed agency id: 3 to 40
// characters of lowercase ASCII letters, digits and hyphens, starting with a
// letter and not ending with a hyphen.
func ValidAgencyID(id string) bool {
	return agencyIDPattern.MatchString(id)
}

// Validate returns nil if id is a valid identity and otherwise an error that
// says what is wrong with it.
func (id Identity) Validate() error {
	if err := id.validate(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// validate implements Validate without the "pki:" prefix.
func (id Identity) validate() error {
	switch id.Role {
	case RoleAgency:
		if !ValidAgencyID(id.AgencyID) {
			return fmt.Errorf("invalid agency id %q: must match %s", id.AgencyID, agencyIDPattern)
		}
		return nil
	case RoleSecretariat:
		if id.AgencyID != "" {
			return fmt.Errorf("secretariat identity must have an empty AgencyID, got %q", id.AgencyID)
		}
		return nil
	default:
		return fmt.Errorf("identity has invalid role %d", int(id.Role))
	}
}

// URI returns the SPIFFE URI of id, for example
// spiffe://alltogether/agency/ilo or spiffe://alltogether/secretariat. It
// returns nil if id is not valid, so that no certificate can ever carry an
// invalid identity.
func (id Identity) URI() *url.URL {
	if id.validate() != nil {
		return nil
	}
	u := &url.URL{Scheme: uriScheme, Host: TrustDomain}
	switch id.Role {
	case RoleAgency:
		u.Path = agencyPathPrefix + id.AgencyID
	case RoleSecretariat:
		u.Path = secretariatPath
	}
	return u
}

// String returns "agency/<id>" for an agency, "secretariat" for the
// secretariat and "unknown" for anything else. It is the certificate
// CommonName and the form accepted by ParseIdentity.
func (id Identity) String() string {
	switch id.Role {
	case RoleAgency:
		return "agency/" + id.AgencyID
	case RoleSecretariat:
		return "secretariat"
	default:
		return "unknown"
	}
}

// ParseIdentity parses the String form of an identity ("agency/<id>" or
// "secretariat") and returns an error if s is not a valid identity.
func ParseIdentity(s string) (Identity, error) {
	if s == "secretariat" {
		return Secretariat(), nil
	}
	if rest, ok := strings.CutPrefix(s, "agency/"); ok {
		id := Agency(rest)
		if err := id.Validate(); err != nil {
			return Identity{}, err
		}
		return id, nil
	}
	return Identity{}, fmt.Errorf("pki: cannot parse identity %q: want \"agency/<id>\" or \"secretariat\"", s)
}

// IdentityFromURI returns the identity named by a SPIFFE URI. The URI must be
// exactly the canonical form produced by Identity.URI: scheme spiffe, host
// TrustDomain, path /agency/<valid id> or /secretariat, and no user info,
// port, query, fragment or percent-encoding.
func IdentityFromURI(u *url.URL) (Identity, error) {
	id, err := identityFromURI(u)
	if err != nil {
		return Identity{}, fmt.Errorf("pki: %w", err)
	}
	return id, nil
}

// identityFromURI implements IdentityFromURI; its errors carry no "pki:"
// prefix so that callers can wrap them.
func identityFromURI(u *url.URL) (Identity, error) {
	if u == nil {
		return Identity{}, errors.New("identity URI is nil")
	}
	if u.Scheme != uriScheme {
		return Identity{}, fmt.Errorf("identity URI %q has scheme %q, want %q", u, u.Scheme, uriScheme)
	}
	if u.Host != TrustDomain {
		return Identity{}, fmt.Errorf("identity URI %q has trust domain %q, want %q", u, u.Host, TrustDomain)
	}
	var id Identity
	switch {
	case u.Path == secretariatPath:
		id = Secretariat()
	case strings.HasPrefix(u.Path, agencyPathPrefix):
		agencyID := strings.TrimPrefix(u.Path, agencyPathPrefix)
		if !ValidAgencyID(agencyID) {
			return Identity{}, fmt.Errorf("identity URI %q has invalid agency id %q: must match %s", u, agencyID, agencyIDPattern)
		}
		id = Agency(agencyID)
	default:
		return Identity{}, fmt.Errorf("identity URI %q has unknown path %q, want %q or %q", u, u.Path, agencyPathPrefix+"<id>", secretariatPath)
	}
	// Reject anything that merely decodes to a valid identity: user info,
	// ports, queries, fragments, opaque forms and percent-encoded paths.
	if want := id.URI().String(); u.String() != want {
		return Identity{}, fmt.Errorf("identity URI %q is not in canonical form %q", u, want)
	}
	return id, nil
}

// IdentityFromCert returns the identity named by a client certificate. The
// certificate must carry exactly one URI SAN and that URI must satisfy
// IdentityFromURI. IdentityFromCert does not verify the certificate chain:
// call it only on certificates that TLS has already verified against the
// exchange CA.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, errors.New("pki: certificate is nil")
	}
	switch n := len(cert.URIs); n {
	case 0:
		return Identity{}, fmt.Errorf("pki: certificate %q (serial %s) has no URI SAN; want exactly one spiffe://%s/... URI", cert.Subject.CommonName, SerialString(cert.SerialNumber), TrustDomain)
	case 1:
	default:
		return Identity{}, fmt.Errorf("pki: certificate %q (serial %s) has %d URI SANs; want exactly one", cert.Subject.CommonName, SerialString(cert.SerialNumber), n)
	}
	id, err := identityFromURI(cert.URIs[0])
	if err != nil {
		return Identity{}, fmt.Errorf("pki: certificate %q (serial %s): %w", cert.Subject.CommonName, SerialString(cert.SerialNumber), err)
	}
	return id, nil
}
