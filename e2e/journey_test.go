package e2e

import (
	"bytes"
	"cmp"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestNewcomerJourney follows the README from an empty directory: start
// exchanged, create agencies as the secretariat with no certificate flags,
// issue their certificates, act as an agency, create a working group, look
// at the API with grpcurl, stop and start again on the same data.
func TestNewcomerJourney(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)

	// First start: a development PKI and a database, private files 0600.
	if !strings.Contains(srv.stdout.String(), "created a development CA") {
		t.Errorf("first start does not say it created a development CA; stdout:\n%s", srv.stdout)
	}
	data := filepath.Join(dir, "exchange-data")
	for name, want := range map[string]os.FileMode{
		"exchange.db":         0o600,
		"pki/ca.key":          0o600,
		"pki/server.key":      0o600,
		"pki/secretariat.key": 0o600,
		"pki/ca.crt":          0o644,
		"pki/server.crt":      0o644,
		"pki/secretariat.crt": 0o644,
	} {
		if got := fileMode(t, filepath.Join(data, name)); got != want {
			t.Errorf("exchange-data/%s has mode %v, want %v", name, got, want)
		}
	}
	for _, d := range []string{data, pkiDir(dir)} {
		if got := fileMode(t, d); got&0o077 != 0 {
			t.Errorf("%s has mode %v: readable by others", d, got)
		}
	}

	// The secretariat, in the server's directory: no certificate flags.
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	agencies := []struct {
		id, name, short string
		args            []string
		countries       []string
		niches          []exchangev1.Niche
		coverage        []string // subdivision, or country for a whole country
	}{
		{"ilo", "International Labour Organization", "ILO",
			[]string{"--kind", "un-agency", "--country", "KH", "--country", "TH", "--niche", "prevention", "--niche", "research-and-data", "--coverage", "KH-12"},
			[]string{"KH", "TH"},
			[]exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION, exchangev1.Niche_NICHE_RESEARCH_AND_DATA},
			[]string{"KH-12"}},
		{"iom", "International Organization for Migration", "IOM",
			[]string{"--kind", "un-agency", "--country", "KH,TH", "--niche", "return-and-reintegration,migration", "--coverage", "KH", "--coverage", "TH-10"},
			[]string{"KH", "TH"},
			[]exchangev1.Niche{exchangev1.Niche_NICHE_RETURN_AND_REINTEGRATION, exchangev1.Niche_NICHE_MIGRATION},
			[]string{"KH", "TH-10"}},
		{"unicef", "United Nations Children's Fund", "UNICEF",
			[]string{"--kind", "un-agency", "--country", "LA", "--niche", "child-protection", "--coverage", "LA-VT"},
			[]string{"LA"},
			[]exchangev1.Niche{exchangev1.Niche_NICHE_CHILD_PROTECTION},
			[]string{"LA-VT"}},
	}
	for _, a := range agencies {
		got := &exchangev1.Agency{}
		sec.jsonOne(t, got, append([]string{"agencies", "create", a.id, "--name", a.name, "--short-name", a.short}, a.args...)...)
		var coverage []string
		for _, c := range got.GetCoverage() {
			coverage = append(coverage, cmp.Or(c.GetSubdivision(), c.GetCountry()))
		}
		if got.GetName() != "agencies/"+a.id || got.GetDisplayName() != a.name || got.GetShortName() != a.short ||
			got.GetKind() != exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY ||
			got.GetState() != exchangev1.AgencyState_AGENCY_STATE_ACTIVE ||
			!slices.Equal(got.GetCountries(), a.countries) || !slices.Equal(got.GetNiches(), a.niches) ||
			!slices.Equal(coverage, a.coverage) || got.GetEtag() == "" {
			t.Errorf("agencies create %s --json printed %v", a.id, got)
		}
	}
	list := jsonList(t, sec, func() *exchangev1.Agency { return &exchangev1.Agency{} }, "agencies", "list")
	if got := agencyIDs(list); !slices.Equal(got, []string{"ilo", "iom", "unicef"}) {
		t.Errorf("agencies list --json: got %v, want ilo iom unicef", got)
	}
	list = jsonList(t, sec, func() *exchangev1.Agency { return &exchangev1.Agency{} }, "agencies", "list", "--country", "KH")
	if got := agencyIDs(list); !slices.Equal(got, []string{"ilo", "iom"}) {
		t.Errorf("agencies list --country KH --json: got %v, want ilo iom", got)
	}
	list = jsonList(t, sec, func() *exchangev1.Agency { return &exchangev1.Agency{} }, "agencies", "list", "--niche", "child-protection")
	if got := agencyIDs(list); !slices.Equal(got, []string{"unicef"}) {
		t.Errorf("agencies list --niche child-protection --json: got %v, want unicef", got)
	}
	if out := sec.ok(t, "agencies", "list"); !strings.Contains(out, "International Labour Organization") {
		t.Errorf("agencies list (table) does not show ILO:\n%s", out)
	}

	// Certificates: the key is made locally; the CA is the server's.
	caPEM, err := os.ReadFile(filepath.Join(pkiDir(dir), "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	certDirs := map[string]string{}
	for _, a := range agencies {
		out := sec.ok(t, "certs", "issue", "--agency", a.id, "--out-dir", "certs-"+a.id)
		if !strings.Contains(out, "EXCHANGE_CERT=") {
			t.Errorf("certs issue --agency %s does not say how to connect:\n%s", a.id, out)
		}
		cd := filepath.Join(dir, "certs-"+a.id)
		certDirs[a.id] = cd
		if got := fileMode(t, filepath.Join(cd, a.id+".key")); got != 0o600 {
			t.Errorf("certs-%s/%s.key has mode %v, want 0600", a.id, a.id, got)
		}
		if _, err := os.Stat(filepath.Join(cd, a.id+".crt")); err != nil {
			t.Error(err)
		}
		if got, err := os.ReadFile(filepath.Join(cd, "ca.crt")); err != nil || !bytes.Equal(got, caPEM) {
			t.Errorf("certs-%s/ca.crt is not the exchange CA (err %v)", a.id, err)
		}
	}
	certs := jsonList(t, sec, func() *exchangev1.Certificate { return &exchangev1.Certificate{} }, "certs", "list", "--agency", "ilo")
	if len(certs) != 1 || certs[0].GetSubject() != "agencies/ilo" || certs[0].GetState() != exchangev1.CertificateState_CERTIFICATE_STATE_ACTIVE {
		t.Errorf("certs list --agency ilo --json: %v", certs)
	}

	// ILO, from a directory of its own, names its focal points.
	ilo := agencySession(t, srv.addr, certDirs["ilo"], "ilo")
	got := &exchangev1.Agency{}
	ilo.jsonOne(t, got, "agencies", "get", "ilo")
	if got.GetDisplayName() != "International Labour Organization" {
		t.Errorf("agencies get ilo as ilo: %v", got)
	}
	earlier, later := day(-400), day(-30)
	first, second := &exchangev1.FocalPoint{}, &exchangev1.FocalPoint{}
	ilo.jsonOne(t, first, "focal-points", "create", "--agency", "ilo", "--name", "Somchai P.", "--topic", "referrals",
		"--role", "Programme officer", "--email", "somchai@ilo.example.org", "--start", earlier)
	ilo.jsonOne(t, second, "focal-points", "create", "--agency", "ilo", "--name", "Dara K.", "--topic", "referrals",
		"--email", "dara@ilo.example.org", "--start", later)
	for _, fp := range []*exchangev1.FocalPoint{first, second} {
		if !strings.HasPrefix(fp.GetName(), "agencies/ilo/focalPoints/") || fp.GetTopic() != "referrals" {
			t.Errorf("focal-points create --json printed %v", fp)
		}
	}
	if first.GetDisplayName() != "Somchai P." || first.GetRole() != "Programme officer" || formatDate(first.GetTenure().GetStart()) != earlier {
		t.Errorf("first focal point: %v", first)
	}
	if second.GetDisplayName() != "Dara K." || formatDate(second.GetTenure().GetStart()) != later {
		t.Errorf("second focal point: %v", second)
	}
	current := &exchangev1.FocalPoint{}
	ilo.jsonOne(t, current, "focal-points", "current", "--agency", "ilo", "--topic", "referrals")
	if current.GetName() != second.GetName() || current.GetDisplayName() != "Dara K." {
		t.Errorf("focal-points current --agency ilo --topic referrals = %s (%s), want %s (Dara K.)",
			current.GetName(), current.GetDisplayName(), second.GetName())
	}
	// The history stays, and the earlier tenure no longer runs into the later.
	fps := jsonList(t, ilo, func() *exchangev1.FocalPoint { return &exchangev1.FocalPoint{} }, "focal-points", "list", "--agency", "ilo")
	if len(fps) != 2 {
		t.Errorf("focal-points list --agency ilo: %d focal points, want 2: %v", len(fps), fps)
	}
	for _, fp := range fps {
		if fp.GetName() == first.GetName() {
			if end := formatDate(fp.GetTenure().GetEnd()); end == "" || end >= later {
				t.Errorf("earlier focal point's tenure ends %q, want before %s (naming a successor ends it)", end, later)
			}
		}
	}
	// Anyone in the network finds ILO's contact.
	unicef := agencySession(t, srv.addr, certDirs["unicef"], "unicef")
	current = &exchangev1.FocalPoint{}
	unicef.jsonOne(t, current, "focal-points", "current", "--agency", "ilo", "--topic", "referrals")
	if current.GetName() != second.GetName() {
		t.Errorf("focal-points current as unicef = %s, want %s", current.GetName(), second.GetName())
	}

	// The secretariat creates a working group; ILO is its secretariat.
	wg := &exchangev1.WorkingGroup{}
	sec.jsonOne(t, wg, "working-groups", "create", "un-wg-trafficking", "--name", "UN Working Group on Trafficking",
		"--kind", "working-group", "--secretariat", "ilo", "--member", "unicef", "--observer", "iom")
	wantRoles := map[string]exchangev1.MembershipRole{
		"agencies/ilo":    exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT,
		"agencies/unicef": exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER,
		"agencies/iom":    exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER,
	}
	checkGroup := func(how string, wg *exchangev1.WorkingGroup) {
		t.Helper()
		roles := map[string]exchangev1.MembershipRole{}
		for _, m := range wg.GetMembers() {
			roles[m.GetAgency()] = m.GetRole()
		}
		if wg.GetName() != "workingGroups/un-wg-trafficking" || wg.GetDisplayName() != "UN Working Group on Trafficking" ||
			wg.GetKind() != exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP || !maps.Equal(roles, wantRoles) {
			t.Errorf("%s: %v", how, wg)
		}
	}
	checkGroup("working-groups create --json", wg)
	wg = &exchangev1.WorkingGroup{}
	ilo.jsonOne(t, wg, "working-groups", "get", "un-wg-trafficking")
	checkGroup("working-groups get as ilo", wg)

	// grpcurl, through server reflection, as the README shows: by the
	// name in the development certificate, localhost.
	p := pkiDir(dir)
	_, port, _ := net.SplitHostPort(srv.addr)
	r := sec.exec(t, "grpcurl", "-cacert", filepath.Join(p, "ca.crt"), "-cert", filepath.Join(p, "secretariat.crt"),
		"-key", filepath.Join(p, "secretariat.key"), "localhost:"+port, "list")
	if r.code != 0 {
		t.Errorf("grpcurl list failed\n%s", r)
	}
	services := strings.Fields(r.stdout)
	for _, s := range []string{
		"alltogether.exchange.v1.DirectoryService",
		"alltogether.exchange.v1.CertificateService",
		"alltogether.exchange.v1.ReferralService",
		"grpc.health.v1.Health",
	} {
		if !slices.Contains(services, s) {
			t.Errorf("grpcurl list does not list %s\n%s", s, r)
		}
	}
	r = ilo.exec(t, "grpcurl", "-cacert", filepath.Join(certDirs["ilo"], "ca.crt"), "-cert", filepath.Join(certDirs["ilo"], "ilo.crt"),
		"-key", filepath.Join(certDirs["ilo"], "ilo.key"), "-d", `{"name": "agencies/unicef"}`,
		srv.addr, "alltogether.exchange.v1.DirectoryService/GetAgency")
	if r.code != 0 || !strings.Contains(r.stdout, "United Nations Children's Fund") {
		t.Errorf("grpcurl GetAgency as ilo\n%s", r)
	}

	// Stop gracefully, start again on the same directory: same PKI, same data.
	srv.stop(t)
	srv = startServer(t, dir)
	if strings.Contains(srv.stdout.String(), "created a development CA") {
		t.Errorf("second start made a new development CA; stdout:\n%s", srv.stdout)
	}
	if again, err := os.ReadFile(filepath.Join(pkiDir(dir), "ca.crt")); err != nil || !bytes.Equal(again, caPEM) {
		t.Errorf("ca.crt changed across a restart (err %v)", err)
	}
	ilo = agencySession(t, srv.addr, certDirs["ilo"], "ilo")
	current = &exchangev1.FocalPoint{}
	ilo.jsonOne(t, current, "focal-points", "current", "--agency", "ilo", "--topic", "referrals")
	if current.GetName() != second.GetName() {
		t.Errorf("after a restart, focal-points current = %s, want %s", current.GetName(), second.GetName())
	}
	list = jsonList(t, newSession(dir, "EXCHANGE_SERVER="+srv.addr), func() *exchangev1.Agency { return &exchangev1.Agency{} }, "agencies", "list")
	if got := agencyIDs(list); !slices.Equal(got, []string{"ilo", "iom", "unicef"}) {
		t.Errorf("after a restart, agencies list: %v, want ilo iom unicef", got)
	}
}

// agencyIDs returns the ids of agencies, sorted.
func agencyIDs(list []*exchangev1.Agency) []string {
	var ids []string
	for _, a := range list {
		ids = append(ids, strings.TrimPrefix(a.GetName(), "agencies/"))
	}
	slices.Sort(ids)
	return ids
}

// formatDate formats d as YYYY-MM-DD, or "" for nil.
func formatDate(d *exchangev1.CalendarDate) string {
	if d == nil {
		return ""
	}
	return time.Date(int(d.GetYear()), time.Month(d.GetMonth()), int(d.GetDay()), 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
}
