package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/alltogether/exchange/client/clienttest"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Full method names the tests inspect.
const (
	mCreateAgency     = exchangev1.DirectoryService_CreateAgency_FullMethodName
	mGetAgency        = exchangev1.DirectoryService_GetAgency_FullMethodName
	mUpdateAgency     = exchangev1.DirectoryService_UpdateAgency_FullMethodName
	mIssueCertificate = exchangev1.CertificateService_IssueCertificate_FullMethodName
)

// fixture is a fake exchange and a way to run exchangectl against it.
type fixture struct {
	t      *testing.T
	server *clienttest.Server
	// flags connect as the secretariat.
	flags []string
}

func newFixture(t *testing.T) *fixture {
	s := clienttest.NewServer(t)
	cfg := s.Config(t, "secretariat")
	return &fixture{t: t, server: s, flags: []string{"--server", s.Addr, "--cert", cfg.CertFile, "--key", cfg.KeyFile, "--ca", cfg.CAFile}}
}

// result is the outcome of one exchangectl run.
type result struct {
	code           int
	stdout, stderr string
	env            *testEnv
}

// run runs exchangectl in-process as the secretariat.
func (f *fixture) run(args ...string) result {
	f.t.Helper()
	return f.runIn(newTestEnv(f.t), append(append([]string{}, f.flags...), args...)...)
}

// runIn runs exchangectl in-process in e with args as given.
func (f *fixture) runIn(e *testEnv, args ...string) result {
	f.t.Helper()
	code := Run(context.Background(), args, e.Environment)
	return result{code, e.stdout.String(), e.stderr.String(), e}
}

// must fails the test unless r succeeded.
func (r result) must(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

func TestRunAgencies(t *testing.T) {
	f := newFixture(t)

	r := f.run("agencies", "create", "ilo", "--name", "International Labour Organization", "--short-name", "ILO",
		"--kind", "un-agency", "--country", "KH,TH", "--niche", "prevention,migration", "--coverage", "KH-12").must(t)
	for _, want := range []string{"agencies/ilo", "International Labour Organization", "un-agency", "prevention, migration", "KH-12"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("create output lacks %q:\n%s", want, r.stdout)
		}
	}
	req := f.server.Calls(mCreateAgency)[0].Request.(*exchangev1.CreateAgencyRequest)
	if req.AgencyId != "ilo" || len(req.RequestId) != 32 || req.Agency.Coverage[0].Subdivision != "KH-12" {
		t.Errorf("request %v", req)
	}

	f.run("agencies", "create", "iom", "--name", "International Organization for Migration", "--kind", "un-agency", "--country", "LA").must(t)

	r = f.run("agencies", "create", "ilo", "--name", "Again", "--kind", "donor")
	if r.code != ExitConflict || r.stderr != "exchangectl: ALREADY_EXISTS: agencies/ilo already exists\n" {
		t.Errorf("duplicate create: exit %d, stderr %q", r.code, r.stderr)
	}

	r = f.run("agencies", "get", "nobody")
	if r.code != ExitNotFound || !strings.HasPrefix(r.stderr, "exchangectl: NOT_FOUND: ") {
		t.Errorf("get missing: exit %d, stderr %q", r.code, r.stderr)
	}

	r = f.run("agencies", "list").must(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], "ilo ") || !strings.HasPrefix(lines[2], "iom ") {
		t.Errorf("list table:\n%s", r.stdout)
	}
	if i := strings.Index(lines[0], "NAME"); lines[1][i-2:i] != "  " {
		t.Errorf("columns are not aligned:\n%s", r.stdout)
	}

	r = f.run("--json", "agencies", "list", "--country", "KH").must(t)
	var list []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0]["name"] != "agencies/ilo" || list[0]["displayName"] != "International Labour Organization" {
		t.Errorf("JSON list (%v):\n%s", err, r.stdout)
	}
	r = f.run("--json", "agencies", "list", "--country", "VN").must(t)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty JSON list: %q", r.stdout)
	}

	r = f.run("--json", "agencies", "get", "ilo").must(t)
	var got exchangev1.Agency
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || got.GetShortName() != "ILO" {
		t.Errorf("JSON get (%v):\n%s", err, r.stdout)
	}

	f.run("agencies", "update", "ilo", "--website", "https://www.ilo.org").must(t)
	upd := f.server.Calls(mUpdateAgency)[0].Request.(*exchangev1.UpdateAgencyRequest)
	if strings.Join(upd.GetUpdateMask().GetPaths(), ",") != "website" || upd.GetAgency().GetEtag() != got.GetEtag() || upd.GetAgency().GetWebsite() != "https://www.ilo.org" {
		t.Errorf("update request: mask %v etag %q (read %q)", upd.GetUpdateMask().GetPaths(), upd.GetAgency().GetEtag(), got.GetEtag())
	}

	f.server.FailNext(mUpdateAgency, status.Error(codes.Aborted, "agencies/ilo changed since it was read"))
	if r = f.run("agencies", "update", "ilo", "--short-name", "I"); r.code != ExitConflict {
		t.Errorf("stale etag: exit %d, stderr %q", r.code, r.stderr)
	}

	r = f.run("agencies", "suspend", "iom", "--reason", "audit").must(t)
	if !strings.Contains(r.stdout, "suspended") || !strings.Contains(r.stdout, "audit") {
		t.Errorf("suspend output:\n%s", r.stdout)
	}
	if r = f.run("agencies", "list", "--state", "suspended").must(t); !strings.Contains(r.stdout, "iom") || strings.Contains(r.stdout, "ilo ") {
		t.Errorf("list --state suspended:\n%s", r.stdout)
	}
	if r = f.run("agencies", "suspend", "iom", "--reason", "again"); r.code != ExitInvalid {
		t.Errorf("suspend twice: exit %d (FAILED_PRECONDITION), stderr %q", r.code, r.stderr)
	}
	f.run("agencies", "reactivate", "iom").must(t)
}

func TestRunExitCodesFromServer(t *testing.T) {
	f := newFixture(t)
	f.run("agencies", "create", "ilo", "--name", "ILO", "--kind", "un-agency").must(t)

	f.server.FailNext(mGetAgency, status.Error(codes.PermissionDenied, "agencies may not read that"))
	if r := f.run("agencies", "get", "ilo"); r.code != ExitDenied || r.stderr != "exchangectl: PERMISSION_DENIED: agencies may not read that\n" {
		t.Errorf("denied: exit %d, stderr %q", r.code, r.stderr)
	}
	f.server.FailNext(mGetAgency, status.Error(codes.Unauthenticated, "revoked"))
	if r := f.run("agencies", "get", "ilo"); r.code != ExitDenied {
		t.Errorf("unauthenticated: exit %d", r.code)
	}

	bad, _ := status.New(codes.InvalidArgument, "invalid CreateAgencyRequest").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "agency.website", Description: "value does not have prefix `https://`"}},
	})
	f.server.FailNext(mCreateAgency, bad.Err())
	r := f.run("agencies", "create", "acme", "--name", "ACME", "--kind", "donor", "--website", "http://acme.example")
	if r.code != ExitInvalid || r.stderr != "exchangectl: INVALID_ARGUMENT: invalid CreateAgencyRequest\n  field agency.website: value does not have prefix `https://`\n" {
		t.Errorf("invalid: exit %d, stderr %q", r.code, r.stderr)
	}

	f.server.FailNext(mGetAgency, status.Error(codes.Unavailable, "down"), status.Error(codes.Unavailable, "down"),
		status.Error(codes.Unavailable, "down"), status.Error(codes.Unavailable, "down"))
	if r := f.run("agencies", "get", "ilo"); r.code != ExitUnavailable || !strings.HasPrefix(r.stderr, "exchangectl: UNAVAILABLE: ") {
		t.Errorf("unavailable: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(f.server.Calls(mGetAgency)); n != 2+4 {
		t.Errorf("%d GetAgency calls, want the read retried 4 times", n)
	}

	// The whole command is bounded by --timeout.
	if r := f.run("--timeout", "1ns", "agencies", "get", "ilo"); r.code != ExitUnavailable || !strings.HasPrefix(r.stderr, "exchangectl: DEADLINE_EXCEEDED: ") {
		t.Errorf("timeout: exit %d, stderr %q", r.code, r.stderr)
	}

	// Nothing listens on the address: UNAVAILABLE after the retries.
	e := newTestEnv(t)
	args := append([]string{}, f.flags...)
	args[1] = "127.0.0.1:1"
	if r := f.runIn(e, append(args, "locations", "list")...); r.code != ExitUnavailable {
		t.Errorf("no server: exit %d, stderr %q", r.code, r.stderr)
	}

	// Files that do not exist: a plain error naming the file.
	if r := f.run("--cert", "/nonexistent/ilo.crt", "agencies", "get", "ilo"); r.code != ExitError || !strings.Contains(r.stderr, "/nonexistent/ilo.crt") {
		t.Errorf("missing cert: exit %d, stderr %q", r.code, r.stderr)
	}

	// A usage error never reaches the server.
	before := len(f.server.Calls(""))
	if r := f.run("agencies", "create", "acme", "--kind", "donor"); r.code != ExitUsage {
		t.Errorf("usage: exit %d", r.code)
	}
	if after := len(f.server.Calls("")); after != before {
		t.Errorf("a usage error made %d calls", after-before)
	}
}

func TestRunCertsIssueAndConnectAsAgency(t *testing.T) {
	f := newFixture(t)
	f.run("agencies", "create", "ilo", "--name", "ILO", "--kind", "un-agency").must(t)

	e := newTestEnv(t)
	r := f.runIn(e, append(append([]string{}, f.flags...), "certs", "issue", "--agency", "ilo", "--out-dir", "certs", "--validity-days", "30")...).must(t)
	dir := filepath.Join(e.WorkDir, "certs")
	crt, key, ca := filepath.Join(dir, "ilo.crt"), filepath.Join(dir, "ilo.key"), filepath.Join(dir, "ca.crt")
	for _, want := range []string{crt, key, ca, "export EXCHANGE_CERT=" + crt, "export EXCHANGE_KEY=" + key, "export EXCHANGE_CA=" + ca,
		"export EXCHANGE_SERVER=" + f.server.Addr, "exchangectl agencies get ilo"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("issue output lacks %q:\n%s", want, r.stdout)
		}
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v", err, fi.Mode())
	}
	if req := f.server.Calls(mIssueCertificate)[0].Request.(*exchangev1.IssueCertificateRequest); req.ValidityDays != 30 || req.Subject != "agencies/ilo" {
		t.Errorf("issue request %v", req)
	}

	// Never overwrite, and do not even ask the server.
	r = f.runIn(newTestEnvIn(t, e.WorkDir), append(append([]string{}, f.flags...), "certs", "issue", "--agency", "ilo", "--out-dir", "certs")...)
	if r.code != ExitError || !strings.Contains(r.stderr, "exists") {
		t.Errorf("second issue: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(f.server.Calls(mIssueCertificate)); n != 1 {
		t.Errorf("%d IssueCertificate calls after a refused overwrite, want 1", n)
	}
	oldKey, _ := os.ReadFile(key)
	f.runIn(newTestEnvIn(t, e.WorkDir), append(append([]string{}, f.flags...), "certs", "issue", "--agency", "ilo", "--out-dir", "certs", "--force")...).must(t)
	if newKey, _ := os.ReadFile(key); string(newKey) == string(oldKey) {
		t.Error("--force did not replace the key")
	}

	// Connect as the agency through the environment the output names.
	agency := newTestEnvIn(t, e.WorkDir)
	agency.vars = map[string]string{"EXCHANGE_SERVER": f.server.Addr, "EXCHANGE_CERT": crt, "EXCHANGE_KEY": key, "EXCHANGE_CA": ca}
	f.runIn(agency, "agencies", "get", "ilo").must(t)
	calls := f.server.Calls(mGetAgency)
	if caller := calls[len(calls)-1].Caller; caller != "spiffe://alltogether/agency/ilo" {
		t.Errorf("caller %q, want the issued agency certificate", caller)
	}

	r = f.run("certs", "list", "--agency", "ilo").must(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SERIAL") {
		t.Fatalf("certs list:\n%s", r.stdout)
	}
	serial := strings.Fields(lines[1])[0]
	if r = f.run("certs", "get", serial).must(t); !strings.Contains(r.stdout, "agencies/ilo") || !strings.Contains(r.stdout, "active") {
		t.Errorf("certs get:\n%s", r.stdout)
	}
	if r = f.run("certs", "get", serial, "--pem").must(t); !strings.HasPrefix(r.stdout, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("certs get --pem:\n%s", r.stdout)
	}
	if r = f.run("certs", "revoke", serial, "--reason", "rotated").must(t); !strings.Contains(r.stdout, "revoked") || !strings.Contains(r.stdout, "rotated") {
		t.Errorf("certs revoke:\n%s", r.stdout)
	}
	if r = f.run("certs", "issue", "--agency", "nobody", "--out-dir", "x"); r.code != ExitNotFound {
		t.Errorf("issue for a missing agency: exit %d, stderr %q", r.code, r.stderr)
	}
}

// newTestEnvIn is newTestEnv with the given working directory.
func newTestEnvIn(t *testing.T, dir string) *testEnv {
	e := newTestEnv(t)
	e.WorkDir = dir
	return e
}

func TestRunAsSecretariatOnServerMachineNeedsNoFlags(t *testing.T) {
	f := newFixture(t)
	cfg := f.server.Config(t, "secretariat")
	e := newTestEnv(t)
	dir := filepath.Join(e.WorkDir, "exchange-data", "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{cfg.CertFile: "secretariat.crt", cfg.KeyFile: "secretariat.key", cfg.CAFile: "ca.crt"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.vars = map[string]string{"EXCHANGE_SERVER": f.server.Addr}
	if r := f.runIn(e, "agencies", "list"); r.code != 0 || r.stderr != "No agencies found.\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if caller := f.server.Calls("")[0].Caller; caller != "spiffe://alltogether/secretariat" {
		t.Errorf("caller %q", caller)
	}
}

func TestRunFocalPoints(t *testing.T) {
	f := newFixture(t)
	f.run("agencies", "create", "ilo", "--name", "ILO", "--kind", "un-agency").must(t)
	f.run("focal-points", "create", "--agency", "ilo", "--name", "Old Officer", "--topic", "referrals", "--start", "2025-01-01").must(t)
	r := f.run("--json", "focal-points", "create", "--agency", "ilo", "--name", "Somchai P.", "--topic", "referrals", "--email", "s@example.org").must(t)
	var created exchangev1.FocalPoint
	if err := protojson.Unmarshal([]byte(r.stdout), &created); err != nil {
		t.Fatal(err)
	}
	if formatDate(created.GetTenure().GetStart()) != "2026-03-15" {
		t.Errorf("start %s, want today (2026-03-15)", formatDate(created.GetTenure().GetStart()))
	}

	r = f.run("focal-points", "current", "--agency", "ilo", "--topic", "referrals").must(t)
	if !strings.Contains(r.stdout, "Somchai P.") {
		t.Errorf("current:\n%s", r.stdout)
	}
	if r = f.run("focal-points", "current", "--agency", "ilo", "--topic", "data"); r.code != ExitNotFound {
		t.Errorf("current for a topic without focal point: exit %d", r.code)
	}

	r = f.run("focal-points", "list", "--agency", "ilo").must(t)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.Contains(lines[1], "2026-03-14") {
		t.Errorf("list (the old tenure should end the day before the new one):\n%s", r.stdout)
	}
	r = f.run("focal-points", "list", "--on", "2025-06-01").must(t)
	if !strings.Contains(r.stdout, "Old Officer") || strings.Contains(r.stdout, "Somchai") {
		t.Errorf("list --on 2025-06-01:\n%s", r.stdout)
	}

	r = f.run("focal-points", "end", created.GetName(), "--on", "2026-06-30").must(t)
	if !strings.Contains(r.stdout, "2026-06-30") {
		t.Errorf("end:\n%s", r.stdout)
	}
	r = f.run("focal-points", "get", strings.TrimPrefix(strings.Replace(created.GetName(), "/focalPoints/", "/", 1), "agencies/")).must(t)
	if !strings.Contains(r.stdout, "Tenure end:") || !strings.Contains(r.stdout, "2026-06-30") {
		t.Errorf("get by short name:\n%s", r.stdout)
	}
	r = f.run("--json", "focal-points", "delete", created.GetName()).must(t)
	var deleted map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &deleted); err != nil || deleted["name"] != created.GetName() || deleted["deleted"] != true {
		t.Errorf("delete --json (%v): %s", err, r.stdout)
	}
	if r = f.run("focal-points", "get", created.GetName()); r.code != ExitNotFound {
		t.Errorf("get after delete: exit %d", r.code)
	}
}

func TestRunWorkingGroupsAndLocations(t *testing.T) {
	f := newFixture(t)
	f.run("working-groups", "create", "un-wg", "--name", "UN Working Group", "--kind", "working-group",
		"--member", "ilo,iom", "--observer", "escap").must(t)
	r := f.run("working-groups", "list", "--member", "escap").must(t)
	if !strings.Contains(r.stdout, "un-wg") || !strings.Contains(r.stdout, "escap(observer)") {
		t.Errorf("list:\n%s", r.stdout)
	}
	f.run("working-groups", "update", "un-wg", "--member", "ilo", "--secretariat", "un-iap").must(t)
	r = f.run("working-groups", "get", "un-wg").must(t)
	if !strings.Contains(r.stdout, "Secretariat:") || !strings.Contains(r.stdout, "un-iap") || strings.Contains(r.stdout, "escap") {
		t.Errorf("membership not replaced:\n%s", r.stdout)
	}
	if r = f.run("working-groups", "delete", "un-wg").must(t); r.stdout != "Deleted workingGroups/un-wg.\n" {
		t.Errorf("delete: %q", r.stdout)
	}

	f.server.SetPageSize(1)
	for _, l := range []struct{ code, name string }{{"KH-12", "Phnom Penh"}, {"KH-18", "Preah Sihanouk"}, {"TH-10", "Bangkok"}} {
		f.server.PutLocation(&exchangev1.Location{Name: "locations/" + l.code, Code: l.code, Country: l.code[:2], DisplayName: l.name, Kind: "province"})
	}
	r = f.run("locations", "list", "--country", "KH").must(t)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.Contains(r.stdout, "Preah Sihanouk") {
		t.Errorf("locations list over pages:\n%s", r.stdout)
	}
	if r = f.run("locations", "get", "kh-12").must(t); !strings.Contains(r.stdout, "Phnom Penh") {
		t.Errorf("locations get:\n%s", r.stdout)
	}
}
