package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// binDir holds exchanged, exchangectl and grpcurl, built once by TestMain.
var binDir string

// Time limits of the suite.
const (
	// startTimeout bounds the wait for "exchanged listening on ADDR".
	startTimeout = 20 * time.Second
	// stopTimeout is how long exchanged may take to exit after SIGTERM.
	stopTimeout = 10 * time.Second
	// commandTimeout bounds one run of exchangectl or grpcurl.
	commandTimeout = 30 * time.Second
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test skips itself in -short mode; build nothing.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "exchange-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := 1
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	} else {
		binDir = dir
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinaries builds exchanged, exchangectl and the e2e seeder
// (e2e/internal/seedrows) from this module, grpcurl
// from tools/go.mod and etcd from the version pinned in bench/etcd (for the
// high-availability test, ha_test.go) into dir.
func buildBinaries(dir string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return errors.New("go env GOMOD: not inside a module")
	}
	root := filepath.Dir(gomod)
	for _, b := range []struct {
		dir  string
		args []string
	}{
		{root, []string{"build", "-o", dir + string(filepath.Separator), "./cmd/exchanged", "./cmd/exchangectl", "./e2e/internal/seedrows"}},
		{root, []string{"build", "-modfile=tools/go.mod", "-o", filepath.Join(dir, "grpcurl"), "github.com/fullstorydev/grpcurl/cmd/grpcurl"}},
		{filepath.Join(root, "bench", "etcd"), []string{"build", "-o", filepath.Join(dir, "etcd"), "go.etcd.io/etcd/server/v3"}},
	} {
		args := b.args
		cmd := exec.Command("go", args...)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// bin returns the path of a built binary.
func bin(name string) string { return filepath.Join(binDir, name) }

// setup skips the test in -short mode and runs it in parallel with the
// others: each test has its own server, directories and port.
func setup(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end tests build and run the binaries; skipped with -short")
	}
	t.Parallel()
}

// baseEnv is the test process's environment without any EXCHANGE_*
// variable, so that only what a test sets reaches the binaries.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EXCHANGE_") {
			env = append(env, kv)
		}
	}
	return env
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is a running exchanged subprocess.
type server struct {
	// dir is the working directory it was started in.
	dir string
	// addr is the address it reported listening on.
	addr   string
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	// exited is closed once the process has exited and waitErr is set.
	exited  chan struct{}
	waitErr error
	stopped bool
}

// launchServer starts exchanged in dir with args and returns at once; the
// process is killed at cleanup if still running. addrs receives the
// address of the "exchanged listening on ADDR" line, if one is printed.
func launchServer(t *testing.T, dir string, args ...string) (*server, <-chan string) {
	t.Helper()
	s := &server{dir: dir, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin("exchanged"), args...)
	s.cmd.Dir = dir
	s.cmd.Env = baseEnv()
	s.cmd.Stderr = s.stderr
	pipe, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting exchanged: %v", err)
	}
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(s.stdout, line)
			if rest, ok := strings.CutPrefix(line, "exchanged listening on "); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					select {
					case addrs <- f[0]:
					default:
					}
				}
			}
		}
		_, _ = io.Copy(s.stdout, pipe)
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s, addrs
}

// startServer starts exchanged in dir listening on a free loopback port
// (plus any extra args) and waits until it reports the address it listens
// on. At cleanup it is stopped as by stop, unless the test stopped it.
func startServer(t *testing.T, dir string, extra ...string) *server {
	t.Helper()
	s, addrs := launchServer(t, dir, append([]string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, extra...)...)
	select {
	case s.addr = <-addrs:
	case <-s.exited:
		t.Fatalf("exchanged exited before listening (%v)\nstdout:\n%s\nstderr:\n%s", s.waitErr, s.stdout, s.stderr)
	case <-time.After(startTimeout):
		t.Fatalf("exchanged printed no \"exchanged listening on ADDR\" line within %v\nstdout:\n%s\nstderr:\n%s", startTimeout, s.stdout, s.stderr)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends SIGTERM and checks that exchanged exits with status 0 within
// stopTimeout: a graceful shutdown that closes the database.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM to exchanged: %v (did it exit early?)\nstderr:\n%s", err, s.stderr)
	}
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("exchanged did not exit within %v of SIGTERM\nstderr:\n%s", stopTimeout, s.stderr)
		return
	}
	if s.waitErr != nil {
		t.Errorf("exchanged exited with %v after SIGTERM, want status 0\nstderr:\n%s", s.waitErr, s.stderr)
	}
}

// result is what one command printed and its exit code.
type result struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// session is a shell a user types commands into: a working directory and
// EXCHANGE_* environment variables.
type session struct {
	dir string
	env map[string]string
}

// newSession returns a session in dir with the given NAME=VALUE variables.
func newSession(dir string, kv ...string) session {
	return session{dir: dir}.with(kv...)
}

// with returns a copy of s with the NAME=VALUE variables added.
func (s session) with(kv ...string) session {
	env := maps.Clone(s.env)
	if env == nil {
		env = map[string]string{}
	}
	for _, e := range kv {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	return session{dir: s.dir, env: env}
}

// exec runs a binary from binDir in the session and returns its result.
func (s session) exec(t *testing.T, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(name), args...)
	cmd.Dir = s.dir
	cmd.Env = baseEnv()
	for _, k := range slices.Sorted(maps.Keys(s.env)) {
		cmd.Env = append(cmd.Env, k+"="+s.env[k])
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: append([]string{name}, args...), stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s did not finish within %v\n%s", name, commandTimeout, r)
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", name, err)
	}
	return r
}

// ctl runs exchangectl with args.
func (s session) ctl(t *testing.T, args ...string) result {
	t.Helper()
	return s.exec(t, "exchangectl", args...)
}

// ok runs exchangectl, requires exit 0 and returns stdout.
func (s session) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.ctl(t, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	return r.stdout
}

// fails runs exchangectl and requires exit code want and a stderr that
// contains each of the substrings in stderrHas.
func (s session) fails(t *testing.T, want int, stderrHas []string, args ...string) result {
	t.Helper()
	r := s.ctl(t, args...)
	if r.code != want {
		t.Errorf("want exit %d\n%s", want, r)
		return r
	}
	for _, sub := range stderrHas {
		if !strings.Contains(r.stderr, sub) {
			t.Errorf("stderr does not mention %q\n%s", sub, r)
		}
	}
	return r
}

// jsonOne runs exchangectl --json args, requires exit 0 and decodes the
// one object it prints into m.
func (s session) jsonOne(t *testing.T, m proto.Message, args ...string) {
	t.Helper()
	out := s.ok(t, append([]string{"--json"}, args...)...)
	if err := protojson.Unmarshal([]byte(out), m); err != nil {
		t.Fatalf("exchangectl --json %s: output is not one %s: %v\n%s", strings.Join(args, " "), m.ProtoReflect().Descriptor().FullName(), err, out)
	}
}

// jsonList runs exchangectl --json args, requires exit 0 and decodes the
// array it prints, each element with newT.
func jsonList[T proto.Message](t *testing.T, s session, newT func() T, args ...string) []T {
	t.Helper()
	out := s.ok(t, append([]string{"--json"}, args...)...)
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("exchangectl --json %s: output is not a JSON array: %v\n%s", strings.Join(args, " "), err, out)
	}
	items := make([]T, 0, len(raw))
	for _, r := range raw {
		m := newT()
		if err := protojson.Unmarshal(r, m); err != nil {
			t.Fatalf("exchangectl --json %s: element is not a %s: %v\n%s", strings.Join(args, " "), m.ProtoReflect().Descriptor().FullName(), err, r)
		}
		items = append(items, m)
	}
	return items
}

// pkiDir is the development PKI exchanged makes in its working directory.
func pkiDir(dir string) string { return filepath.Join(dir, "exchange-data", "pki") }

// agencySession is a session for an agency whose files `certs issue
// --out-dir certDir` wrote: a working directory of its own (no
// exchange-data to fall back on) and EXCHANGE_CERT/KEY/CA pointing at the
// files.
func agencySession(t *testing.T, addr, certDir, id string) session {
	t.Helper()
	return newSession(t.TempDir(),
		"EXCHANGE_SERVER="+addr,
		"EXCHANGE_CERT="+filepath.Join(certDir, id+".crt"),
		"EXCHANGE_KEY="+filepath.Join(certDir, id+".key"),
		"EXCHANGE_CA="+filepath.Join(certDir, "ca.crt"),
	)
}

// writeFile writes data to dir/name with mode 0600 and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fileMode returns the permission bits of path.
func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return fi.Mode().Perm()
}

// day formats the date days from today (local time) as YYYY-MM-DD, as
// exchangectl reads dates.
func day(days int) string {
	return time.Now().AddDate(0, 0, days).Format(time.DateOnly)
}
