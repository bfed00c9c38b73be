package cli

import (
	"net"
	"strings"
	"testing"
)

// deadAddress returns a loopback address nothing listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestRunServerListSkipsDeadReplica runs exchangectl with --server listing
// a replica that is down and one that is up, in both orders, and with the
// same list in EXCHANGE_SERVER: every command reaches the live one.
func TestRunServerListSkipsDeadReplica(t *testing.T) {
	f := newFixture(t)
	dead := deadAddress(t)
	f.run("agencies", "create", "ilo", "--name", "ILO", "--kind", "un-agency").must(t)
	creds := f.flags[2:] // --cert, --key, --ca
	if f.flags[0] != "--server" {
		t.Fatalf("fixture flags %v", f.flags)
	}
	for _, list := range []string{dead + "," + f.server.Addr, f.server.Addr + ", " + dead} {
		for range 3 {
			args := append(append([]string{"--server", list}, creds...), "agencies", "get", "ilo")
			if r := f.runIn(newTestEnv(t), args...).must(t); !strings.Contains(r.stdout, "agencies/ilo") {
				t.Errorf("--server %s: output %q", list, r.stdout)
			}
		}
		e := newTestEnv(t)
		e.vars[EnvServer] = list
		f.runIn(e, append(append([]string{}, creds...), "agencies", "get", "ilo")...).must(t)
	}
	if got := len(f.server.Calls(mGetAgency)); got != 8 {
		t.Errorf("the live replica answered %d of 8 calls", got)
	}
}

// TestRunServerListNamesBadAddress checks that a bad address in --server
// is reported by name, before any call.
func TestRunServerListNamesBadAddress(t *testing.T) {
	f := newFixture(t)
	args := append(append([]string{"--server", f.server.Addr + ",exchange.example.org"}, f.flags[2:]...), "agencies", "get", "ilo")
	r := f.runIn(newTestEnv(t), args...)
	if r.code == 0 || !strings.Contains(r.stderr, `"exchange.example.org"`) || !strings.Contains(r.stderr, "host:port") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(f.server.Calls("")); n != 0 {
		t.Errorf("%d calls made", n)
	}
}

// TestServerFlagHelpMentionsLists checks that --help documents the list.
func TestServerFlagHelpMentionsLists(t *testing.T) {
	e := newTestEnv(t)
	Run(t.Context(), []string{"--help"}, e.Environment)
	if !strings.Contains(e.stdout.String(), "separated by commas") || !strings.Contains(e.stdout.String(), "dns:///host:port") {
		t.Errorf("root help does not document --server lists:\n%s", e.stdout)
	}
}
