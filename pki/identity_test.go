package pki_test

import (
	"strings"
	"testing"
	"time"

	"github.com/alltogether/exchange/pki"
)

func TestIdentityRoundTrip(t *testing.T) {
	ca := newTestCA(t)
	long := "a" + strings.Repeat("b", 38) + "c" // 40 characters, the maximum
	tests := []struct {
		name    string
		id      pki.Identity
		wantStr string
		wantURI string
	}{
		{"agency ilo", pki.Agency("ilo"), "agency/ilo", "spiffe://alltogether/agency/ilo"},
		{"agency iom", pki.Agency("iom"), "agency/iom", "spiffe://alltogether/agency/iom"},
		{"agency with hyphen", pki.Agency("un-iap"), "agency/un-iap", "spiffe://alltogether/agency/un-iap"},
		{"agency with digits", pki.Agency("a1-2b3"), "agency/a1-2b3", "spiffe://alltogether/agency/a1-2b3"},
		{"agency max length", pki.Agency(long), "agency/" + long, "spiffe://alltogether/agency/" + long},
		{"secretariat", pki.Secretariat(), "secretariat", "spiffe://alltogether/secretariat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.id.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := tt.id.String(); got != tt.wantStr {
				t.Errorf("String() = %q, want %q", got, tt.wantStr)
			}
			u := tt.id.URI()
			if u == nil || u.String() != tt.wantURI {
				t.Fatalf("URI() = %v, want %s", u, tt.wantURI)
			}
			if got, err := pki.ParseIdentity(tt.wantStr); err != nil || got != tt.id {
				t.Errorf("ParseIdentity(%q) = %+v, %v; want %+v", tt.wantStr, got, err, tt.id)
			}
			if got, err := pki.IdentityFromURI(mustParseURL(t, tt.wantURI)); err != nil || got != tt.id {
				t.Errorf("IdentityFromURI = %+v, %v; want %+v", got, err, tt.id)
			}
			// Through a certificate crafted outside package pki.
			if got, err := pki.IdentityFromCert(certWithNames(t, []string{tt.wantURI}, nil)); err != nil || got != tt.id {
				t.Errorf("IdentityFromCert(crafted) = %+v, %v; want %+v", got, err, tt.id)
			}
			// Through a certificate issued by the CA.
			certPEM, _, err := ca.IssueClient(tt.id, time.Hour)
			if err != nil {
				t.Fatalf("IssueClient: %v", err)
			}
			if got, err := pki.IdentityFromCert(mustParseCertPEM(t, certPEM)); err != nil || got != tt.id {
				t.Errorf("IdentityFromCert(issued) = %+v, %v; want %+v", got, err, tt.id)
			}
		})
	}
}

func TestSecretariatHasNoAgencyID(t *testing.T) {
	id := pki.Secretariat()
	if id.Role != pki.RoleSecretariat || id.AgencyID != "" {
		t.Fatalf("Secretariat() = %+v", id)
	}
	if a := pki.Agency("ilo"); a.Role != pki.RoleAgency || a.AgencyID != "ilo" {
		t.Fatalf("Agency(ilo) = %+v", a)
	}
	var zero pki.Identity
	if zero.Role != pki.RoleUnknown {
		t.Fatalf("zero Identity has role %v, want RoleUnknown", zero.Role)
	}
}

func TestRoleString(t *testing.T) {
	tests := []struct {
		role pki.Role
		want string
	}{
		{pki.RoleUnknown, "unknown"},
		{pki.RoleAgency, "agency"},
		{pki.RoleSecretariat, "secretariat"},
		{pki.Role(99), "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.role.String(); got != tt.want {
				t.Errorf("Role(%d).String() = %q, want %q", int(tt.role), got, tt.want)
			}
		})
	}
}

func TestValidAgencyID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"ilo", true},
		{"iom", true},
		{"un-iap", true},
		{"a00", true},
		{"a--b", true},
		{"a" + strings.Repeat("b", 38) + "c", true},
		{"", false},
		{"a", false},
		{"ab", false}, // too short: minimum is 3
		{"a" + strings.Repeat("b", 39) + "c", false}, // 41 characters
		{"ILO", false},
		{"Ilo", false},
		{"1lo", false},
		{"-lo", false},
		{"il-", false},
		{"il_o", false},
		{"il.o", false},
		{"il o", false},
		{"ilo/x", false},
		{"ilo\n", false},
		{"ìlo", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := pki.ValidAgencyID(tt.id); got != tt.want {
				t.Errorf("ValidAgencyID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestIdentityFromCertRejects(t *testing.T) {
	tests := []struct {
		name    string
		uris    []string
		dns     []string
		wantErr []string
	}{
		{"no URI SAN", nil, []string{"ilo.example"}, []string{"no URI SAN"}},
		{"two URI SANs", []string{"spiffe://alltogether/agency/ilo", "spiffe://alltogether/secretariat"}, nil, []string{"2 URI SANs"}},
		{"two identical URI SANs", []string{"spiffe://alltogether/agency/ilo", "spiffe://alltogether/agency/ilo"}, nil, []string{"2 URI SANs"}},
		{"wrong scheme https", []string{"https://alltogether/agency/ilo"}, nil, []string{"scheme", `"https"`}},
		{"wrong scheme spiffy", []string{"spiffy://alltogether/agency/ilo"}, nil, []string{"scheme", `"spiffy"`}},
		{"wrong trust domain", []string{"spiffe://evil/agency/ilo"}, nil, []string{"trust domain", `"evil"`}},
		{"trust domain suffix", []string{"spiffe://alltogether.evil/agency/ilo"}, nil, []string{"trust domain"}},
		{"trust domain upper case", []string{"spiffe://AllTogether/agency/ilo"}, nil, []string{"trust domain"}},
		{"no trust domain", []string{"spiffe:///agency/ilo"}, nil, []string{"trust domain"}},
		{"opaque", []string{"spiffe:alltogether/agency/ilo"}, nil, []string{"trust domain"}},
		{"agency id upper case", []string{"spiffe://alltogether/agency/ILO"}, nil, []string{"invalid agency id", `"ILO"`}},
		{"agency id too short", []string{"spiffe://alltogether/agency/i"}, nil, []string{"invalid agency id"}},
		{"agency id trailing hyphen", []string{"spiffe://alltogether/agency/ilo-"}, nil, []string{"invalid agency id"}},
		{"agency id empty", []string{"spiffe://alltogether/agency/"}, nil, []string{"invalid agency id"}},
		{"agency extra segment", []string{"spiffe://alltogether/agency/ilo/admin"}, nil, []string{"invalid agency id"}},
		{"agency trailing slash", []string{"spiffe://alltogether/agency/ilo/"}, nil, []string{"invalid agency id"}},
		{"agency percent-encoded", []string{"spiffe://alltogether/agency/%69lo"}, nil, []string{"canonical"}},
		{"agency with query", []string{"spiffe://alltogether/agency/ilo?role=secretariat"}, nil, []string{"canonical"}},
		{"agency with fragment", []string{"spiffe://alltogether/agency/ilo#x"}, nil, []string{"canonical"}},
		{"secretariat with user info", []string{"spiffe://ilo@alltogether/secretariat"}, nil, []string{"canonical"}},
		{"unknown path admin", []string{"spiffe://alltogether/admin"}, nil, []string{"unknown path", `"/admin"`}},
		{"unknown path root", []string{"spiffe://alltogether/"}, nil, []string{"unknown path"}},
		{"unknown path empty", []string{"spiffe://alltogether"}, nil, []string{"unknown path"}},
		{"unknown path agency without id", []string{"spiffe://alltogether/agency"}, nil, []string{"unknown path"}},
		{"secretariat trailing slash", []string{"spiffe://alltogether/secretariat/"}, nil, []string{"unknown path"}},
		{"secretariat sub-path", []string{"spiffe://alltogether/secretariat/ilo"}, nil, []string{"unknown path"}},
		{"secretariat dot segment", []string{"spiffe://alltogether/./secretariat"}, nil, []string{"unknown path"}},
		{"secretariat upper case", []string{"spiffe://alltogether/Secretariat"}, nil, []string{"unknown path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := certWithNames(t, tt.uris, tt.dns)
			id, err := pki.IdentityFromCert(cert)
			wantErrContaining(t, err, tt.wantErr...)
			if id != (pki.Identity{}) {
				t.Errorf("got identity %+v with error, want zero Identity", id)
			}
		})
	}
	t.Run("nil certificate", func(t *testing.T) {
		_, err := pki.IdentityFromCert(nil)
		wantErrContaining(t, err, "nil")
	})
	t.Run("nil URI", func(t *testing.T) {
		_, err := pki.IdentityFromURI(nil)
		wantErrContaining(t, err, "nil")
	})
}

func TestInvalidIdentities(t *testing.T) {
	ca := newTestCA(t)
	_, csrDER, err := pki.NewKeyAndCSR(pki.Agency("ilo"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		id      pki.Identity
		wantErr string
	}{
		{"zero", pki.Identity{}, "invalid role"},
		{"unknown role", pki.Identity{Role: pki.Role(7), AgencyID: "ilo"}, "invalid role"},
		{"agency empty id", pki.Agency(""), "invalid agency id"},
		{"agency bad id", pki.Agency("ILO"), "invalid agency id"},
		{"agency path injection", pki.Agency("ilo/../secretariat"), "invalid agency id"},
		{"secretariat with agency id", pki.Identity{Role: pki.RoleSecretariat, AgencyID: "ilo"}, "empty AgencyID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErrContaining(t, tt.id.Validate(), tt.wantErr)
			if u := tt.id.URI(); u != nil {
				t.Errorf("URI() = %v, want nil for an invalid identity", u)
			}
			if _, _, err := pki.NewKeyAndCSR(tt.id); err == nil {
				t.Error("NewKeyAndCSR accepted an invalid identity")
			}
			if _, _, err := ca.SignCSR(csrDER, tt.id, time.Hour); err == nil {
				t.Error("SignCSR accepted an invalid identity")
			}
			if _, _, err := ca.IssueClient(tt.id, time.Hour); err == nil {
				t.Error("IssueClient accepted an invalid identity")
			}
		})
	}
}

func TestParseIdentityRejects(t *testing.T) {
	for _, s := range []string{"", "unknown", "agency/", "agency/ILO", "agency", "Secretariat", "secretariat/", "agency/ilo/x", "spiffe://alltogether/agency/ilo"} {
		t.Run(s, func(t *testing.T) {
			if id, err := pki.ParseIdentity(s); err == nil {
				t.Errorf("ParseIdentity(%q) = %+v, want error", s, id)
			}
		})
	}
}
