package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestExitCodesForScripts checks the exit codes the root help promises to
// scripts, and that stderr says what went wrong.
func TestExitCodesForScripts(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)

	t.Run("usage 2", func(t *testing.T) {
		sec.fails(t, 2, []string{"--help"}, "agencies", "frobnicate")
		sec.fails(t, 2, []string{"missing argument ID"}, "agencies", "create")
		sec.fails(t, 2, []string{"--kind is required"}, "agencies", "create", "acme", "--name", "Acme")
		sec.fails(t, 2, []string{"unknown niche"}, "agencies", "list", "--niche", "astrology")
		sec.fails(t, 2, []string{"YYYY-MM-DD"}, "focal-points", "create", "--agency", "ilo", "--name", "X", "--topic", "data", "--start", "tomorrow")
	})

	t.Run("not found 3", func(t *testing.T) {
		sec.fails(t, 3, []string{"NOT_FOUND", "agencies/nosuch"}, "agencies", "get", "nosuch")
		sec.fails(t, 3, []string{"NOT_FOUND"}, "working-groups", "get", "no-such-group")
		sec.fails(t, 3, []string{"NOT_FOUND"}, "certs", "get", "abcdef0123")
	})

	t.Run("conflict 5", func(t *testing.T) {
		sec.ok(t, "agencies", "create", "ilo", "--name", "International Labour Organization", "--kind", "un-agency")
		sec.fails(t, 5, []string{"ALREADY_EXISTS", "agencies/ilo"}, "agencies", "create", "ilo", "--name", "Again", "--kind", "un-agency")
		sec.ok(t, "working-groups", "create", "wg-one", "--name", "One", "--kind", "working-group", "--member", "ilo")
		sec.fails(t, 5, []string{"ALREADY_EXISTS"}, "working-groups", "create", "wg-one", "--name", "One", "--kind", "working-group")
	})

	t.Run("invalid argument 6 names the field", func(t *testing.T) {
		// LA-01 has the syntax of a province but is not one of Laos's.
		sec.fails(t, 6, []string{"INVALID_ARGUMENT", "field agency.coverage[0].subdivision"},
			"agencies", "create", "unicef", "--name", "UNICEF", "--kind", "un-agency", "--coverage", "LA-01")
		sec.fails(t, 3, nil, "agencies", "get", "unicef")
		// A name longer than the API's bound.
		r := sec.fails(t, 6, []string{"INVALID_ARGUMENT", "field "},
			"agencies", "create", "longname", "--name", strings.Repeat("x", 5000), "--kind", "national-ngo")
		if !strings.Contains(r.stderr, "display_name") {
			t.Errorf("stderr does not name display_name\n%s", r)
		}
		// A parent that is not in the directory.
		sec.fails(t, 6, []string{"INVALID_ARGUMENT", "field agency.parent"},
			"agencies", "create", "ilo-kh", "--name", "ILO Cambodia", "--kind", "national-project-office", "--parent", "ghost")
		sec.fails(t, 6, []string{"field agency.website"}, "agencies", "update", "ilo", "--website", "not a url")
		sec.fails(t, 6, []string{"field focal_point.email"},
			"focal-points", "create", "--agency", "ilo", "--name", "X", "--topic", "data", "--email", "not-an-email")
	})

	t.Run("server down 7", func(t *testing.T) {
		srv.stop(t)
		start := time.Now()
		sec.fails(t, 7, []string{"UNAVAILABLE"}, "agencies", "list")
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("exchangectl took %v to report that the server is down", d)
		}
		sec.fails(t, 7, []string{"DEADLINE_EXCEEDED"}, "--timeout", "300ms", "agencies", "get", "ilo")
	})
}
