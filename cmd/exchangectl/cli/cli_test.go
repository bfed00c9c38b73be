package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestEnumNamesRoundTrip(t *testing.T) {
	for _, e := range []enumNames{nicheNames, agencyKindNames, agencyStateNames, workingGroupKindNames, membershipRoleNames, certStateNames} {
		values := e.desc.Values()
		for i := range values.Len() {
			n := values.Get(i).Number()
			if n == 0 {
				if e.name(0) != "" {
					t.Errorf("%s: zero value has name %q", e.what, e.name(0))
				}
				continue
			}
			name := e.name(n)
			if name != strings.ToLower(name) || strings.Contains(name, "_") {
				t.Errorf("%s: name %q is not lowercase with hyphens", e.what, name)
			}
			for _, spelling := range []string{name, strings.ToUpper(name), string(values.Get(i).Name())} {
				if got, err := e.parse(spelling); err != nil || got != n {
					t.Errorf("%s: parse(%q) = %v, %v; want %v", e.what, spelling, got, err, n)
				}
			}
		}
	}
	want := map[string]string{
		"return-and-reintegration": "NICHE_RETURN_AND_REINTEGRATION",
		"psychosocial-counselling": "NICHE_PSYCHOSOCIAL_COUNSELLING",
		"child-protection":         "NICHE_CHILD_PROTECTION",
	}
	for flag, enum := range want {
		n, err := nicheNames.parse(flag)
		if err != nil || string(nicheNames.desc.Values().ByNumber(n).Name()) != enum {
			t.Errorf("%s: %v, %v", flag, n, err)
		}
	}
	_, err := nicheNames.parse("trafficking")
	if err == nil || !strings.Contains(err.Error(), "prevention, rescue, return-and-reintegration") {
		t.Errorf("unknown niche: %v; want the valid values listed", err)
	}
	if _, err := agencyKindNames.parse("unspecified"); err == nil {
		t.Error("unspecified accepted as a kind")
	}
	if got := nicheNames.name(protoreflect.EnumNumber(999)); got != "999" {
		t.Errorf("unknown number: %q", got)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("disk full"), 1},
		{usageErrorf("missing argument ID"), 2},
		{fmt.Errorf("wrapped: %w", usageErrorf("x")), 2},
		{status.Error(codes.NotFound, ""), 3},
		{status.Error(codes.PermissionDenied, ""), 4},
		{status.Error(codes.Unauthenticated, ""), 4},
		{status.Error(codes.AlreadyExists, ""), 5},
		{status.Error(codes.Aborted, ""), 5},
		{status.Error(codes.InvalidArgument, ""), 6},
		{status.Error(codes.FailedPrecondition, ""), 6},
		{status.Error(codes.OutOfRange, ""), 6},
		{status.Error(codes.Unavailable, ""), 7},
		{status.Error(codes.DeadlineExceeded, ""), 7},
		{context.DeadlineExceeded, 7},
		{status.Error(codes.Internal, ""), 1},
		{status.Error(codes.Unimplemented, ""), 1},
		{status.Error(codes.Canceled, ""), 1},
		{fmt.Errorf("reading: %w", status.Error(codes.NotFound, "")), 3},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestPrintError(t *testing.T) {
	st, err := status.New(codes.InvalidArgument, "invalid CreateAgencyRequest").WithDetails(
		&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT", Domain: "exchange.alltogether.org"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "agency.display_name", Description: "value length must be at least 1 characters"},
			{Field: "agency.website", Description: "value does not have prefix `https://`"},
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	printError(&buf, nil, st.Err())
	want := "exchangectl: INVALID_ARGUMENT: invalid CreateAgencyRequest\n" +
		"  field agency.display_name: value length must be at least 1 characters\n" +
		"  field agency.website: value does not have prefix `https://`\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}

	buf.Reset()
	printError(&buf, nil, status.Error(codes.NotFound, "agencies/x not found"))
	if got := buf.String(); got != "exchangectl: NOT_FOUND: agencies/x not found\n" {
		t.Errorf("got %q", got)
	}
	buf.Reset()
	printError(&buf, nil, errors.New("disk full"))
	if got := buf.String(); got != "exchangectl: disk full\n" {
		t.Errorf("got %q", got)
	}
}

func TestUsageErrorsExitTwoBeforeAnyCall(t *testing.T) {
	tests := [][]string{
		{"agencies", "create", "ilo", "--kind", "un-agency"},
		{"agencies", "create", "ilo", "--name", "ILO", "--kind", "un"},
		{"agencies", "get"},
		{"agencies", "frobnicate"},
		{"agencie"},
		{"--no-such-flag"},
		{"--timeout", "soon", "agencies", "list"},
		{"focal-points", "list", "--on", "2026-13-01"},
		{"certs", "issue"},
		{"working-groups", "update", "un-wg"},
		{"locations", "get", "Phnom Penh"},
	}
	for _, args := range tests {
		e := newTestEnv(t)
		// No certificate is configured: a command that got as far as
		// connecting would fail differently.
		if code := Run(context.Background(), args, e.Environment); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", args, code, ExitUsage, e.stderr)
		}
		if !strings.HasPrefix(e.stderr.String(), "exchangectl: ") || !strings.Contains(e.stderr.String(), "--help' for usage") {
			t.Errorf("%v: stderr %q", args, e.stderr)
		}
		if e.stdout.Len() != 0 {
			t.Errorf("%v: stdout %q", args, e.stdout)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"agencies"}, {"certs", "issue", "--help"}, {"help", "focal-points"}} {
		e := newTestEnv(t)
		if code := Run(context.Background(), args, e.Environment); code != ExitOK {
			t.Errorf("%v: exit %d; stderr %s", args, code, e.stderr)
		}
	}
	e := newTestEnv(t)
	Run(context.Background(), []string{"--help"}, e.Environment)
	for _, want := range []string{"Exit codes:", "3  NOT_FOUND", "7  UNAVAILABLE", "EXCHANGE_SERVER"} {
		if !strings.Contains(e.stdout.String(), want) {
			t.Errorf("root help lacks %q", want)
		}
	}
}

// resolve parses global flags as the root command does and returns the
// resulting options and connection settings.
func resolve(t *testing.T, e *testEnv, args ...string) (globalOptions, clientConfigResult, error) {
	t.Helper()
	a := newApp(e.Environment)
	root := newRootCmd(a)
	if err := root.PersistentFlags().Parse(args); err != nil {
		t.Fatal(err)
	}
	root.SetContext(context.Background())
	err := a.resolveGlobal(root)
	defer a.close()
	cfg, cfgErr := a.clientConfig()
	return a.global, clientConfigResult{cfg.Address, cfg.CertFile, cfg.KeyFile, cfg.CAFile, cfgErr}, err
}

type clientConfigResult struct {
	Address, Cert, Key, CA string
	Err                    error
}

func TestGlobalFlagsAndEnvironment(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		e := newTestEnv(t)
		g, cfg, err := resolve(t, e)
		if err != nil || g.Server != "127.0.0.1:7443" || g.Timeout != 30*time.Second || g.JSON {
			t.Errorf("%+v, %v", g, err)
		}
		if !isUsage(cfg.Err) {
			t.Errorf("no certificate anywhere: %v, want a usage error", cfg.Err)
		}
	})
	t.Run("environment", func(t *testing.T) {
		e := newTestEnv(t)
		e.vars = map[string]string{
			EnvServer: "exchange.example.org:7443", EnvJSON: "true", EnvTimeout: "5s",
			EnvCert: "ilo.crt", EnvKey: "ilo.key", EnvCA: "/etc/exchange/ca.crt",
		}
		g, cfg, err := resolve(t, e)
		if err != nil || g.Server != "exchange.example.org:7443" || g.Timeout != 5*time.Second || !g.JSON {
			t.Errorf("%+v, %v", g, err)
		}
		want := clientConfigResult{"exchange.example.org:7443", filepath.Join(e.WorkDir, "ilo.crt"), filepath.Join(e.WorkDir, "ilo.key"), "/etc/exchange/ca.crt", nil}
		if cfg != want {
			t.Errorf("config %+v, want %+v", cfg, want)
		}
	})
	t.Run("flags win", func(t *testing.T) {
		e := newTestEnv(t)
		e.vars = map[string]string{EnvServer: "env:1", EnvJSON: "true", EnvTimeout: "5s", EnvCert: "env.crt", EnvKey: "env.key", EnvCA: "env-ca.crt"}
		g, cfg, err := resolve(t, e, "--server", "flag:2", "--json=false", "--timeout", "1m", "--cert", "/f.crt", "--key", "/f.key", "--ca", "/f-ca.crt")
		if err != nil || g.Server != "flag:2" || g.Timeout != time.Minute || g.JSON {
			t.Errorf("%+v, %v", g, err)
		}
		if want := (clientConfigResult{"flag:2", "/f.crt", "/f.key", "/f-ca.crt", nil}); cfg != want {
			t.Errorf("config %+v, want %+v", cfg, want)
		}
	})
	t.Run("development PKI of the server machine", func(t *testing.T) {
		e := newTestEnv(t)
		dir := filepath.Join(e.WorkDir, "exchange-data", "pki")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"secretariat.crt", "secretariat.key", "ca.crt"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, cfg, _ := resolve(t, e)
		want := clientConfigResult{"127.0.0.1:7443", filepath.Join(dir, "secretariat.crt"), filepath.Join(dir, "secretariat.key"), filepath.Join(dir, "ca.crt"), nil}
		if cfg != want {
			t.Errorf("config %+v, want %+v", cfg, want)
		}
		// An agency's own certificate replaces the secretariat's; the CA
		// still comes from the development PKI.
		_, cfg, _ = resolve(t, e, "--cert", "/a.crt", "--key", "/a.key")
		if cfg.Cert != "/a.crt" || cfg.Key != "/a.key" || cfg.CA != filepath.Join(dir, "ca.crt") {
			t.Errorf("config %+v", cfg)
		}
		// Half a pair is a usage error, never mixed with the secretariat's.
		if _, cfg, _ = resolve(t, e, "--cert", "/a.crt"); !isUsage(cfg.Err) {
			t.Errorf("--cert alone: %v", cfg.Err)
		}
	})
	t.Run("bad environment", func(t *testing.T) {
		for k, v := range map[string]string{EnvJSON: "yes please", EnvTimeout: "soon"} {
			e := newTestEnv(t)
			e.vars = map[string]string{k: v}
			if _, _, err := resolve(t, e); !isUsage(err) {
				t.Errorf("%s=%s: %v", k, v, err)
			}
		}
	})
}
