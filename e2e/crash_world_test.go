package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// This file holds what the crash, shutdown and start-up tests share: a
// small network of agencies made through the real client, exchanged
// started from any binary, and the offline check of a stopped server's
// database.

// faultTag is the build tag that plants the ack-before-commit fault in the
// store (store/fault_ackbeforecommit.go).
const faultTag = "exchange_fault_ack_before_commit"

// worldProvinces are the Cambodian provinces the workers write rows for,
// one per worker.
var worldProvinces = []string{"KH-1", "KH-2", "KH-3", "KH-4", "KH-5", "KH-6", "KH-7", "KH-8", "KH-9", "KH-10",
	"KH-11", "KH-12", "KH-13", "KH-14", "KH-15", "KH-16", "KH-17", "KH-18", "KH-19", "KH-20"}

// identity is the files a client presents: certificate, key and the
// exchange CA.
type identity struct{ cert, key, ca string }

// world is the network a test builds on a fresh exchanged: sender
// agencies push referrals to receiver agencies and contribute rows to a
// monthly dataset that the first receiver owns.
type world struct {
	// dir is exchanged's working directory (its data in dir/exchange-data).
	dir       string
	senders   []string
	receivers []string
	// ids holds every agency's certificate files, by agency id.
	ids map[string]identity
	// dataset is the dataset's full name; owner the id of its owner.
	dataset string
	owner   string
}

// dbPath is the database file of an exchanged run in dir.
func dbPath(dir string) string { return filepath.Join(dir, "exchange-data", "exchange.db") }

// secretariat is the identity exchanged makes for the secretariat on
// first start in dir.
func secretariat(dir string) identity {
	p := pkiDir(dir)
	return identity{filepath.Join(p, "secretariat.crt"), filepath.Join(p, "secretariat.key"), filepath.Join(p, "ca.crt")}
}

// dial prepares a client of the exchange at addr as id, sealing and
// opening referral details with the key ring beside id's certificate if
// there is one (sealed_fixtures_test.go).
func dial(t *testing.T, addr string, id identity) *client.Client {
	t.Helper()
	ring, pins := keyRingBeside(id.cert)
	c, err := client.Dial(context.Background(), client.Config{
		Address: addr, CertFile: id.cert, KeyFile: id.key, CAFile: id.ca,
		Timeout:     30 * time.Second, // a safety net: the tests' contexts end calls first
		KeyRingFile: ring, PinsFile: pins,
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return c
}

// newWorld creates the agencies (through the secretariat), issues each a
// certificate with Certificates.Issue, makes each a key ring, and defines
// the dataset.
func newWorld(t *testing.T, dir, addr string, senders, receivers []string) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &world{dir: dir, senders: senders, receivers: receivers, ids: map[string]identity{},
		dataset: client.DatasetName(receivers[0], "returns-monthly"), owner: receivers[0]}
	sec := dial(t, addr, secretariat(dir))
	defer sec.Close()
	// The secretariat's certificate is recorded at start; an exchanged
	// with the planted fault may acknowledge that before it commits.
	eventually(t, "the secretariat's certificate", func() error {
		return sec.Conn().Invoke(ctx, exchangev1.DirectoryService_ListAgencies_FullMethodName, &exchangev1.ListAgenciesRequest{}, &exchangev1.ListAgenciesResponse{})
	})
	certDir := filepath.Join(dir, "agency-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(append([]string(nil), senders...), receivers...) {
		_, err := sec.Directory.CreateAgency(ctx, id, &exchangev1.Agency{
			DisplayName: "Agency " + id,
			Kind:        exchangev1.AgencyKind_AGENCY_KIND_NATIONAL_NGO,
			Countries:   []string{"KH"},
			Niches:      []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
			Coverage:    []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-12"}},
		})
		if err != nil {
			t.Fatalf("create agency %s: %v", id, err)
		}
		// An exchanged with the planted fault acknowledges before it
		// commits: wait until the agency can be read.
		eventually(t, "agency "+id, func() error { _, err := sec.Directory.GetAgency(ctx, client.AgencyName(id)); return err })
		certPEM, keyPEM, caPEM, _, err := sec.Certificates.Issue(ctx, client.AgencyName(id), 0)
		if err != nil {
			t.Fatalf("issue a certificate for %s: %v", id, err)
		}
		w.ids[id] = identity{
			cert: writeFile(t, certDir, id+".crt", certPEM),
			key:  writeFile(t, certDir, id+".key", keyPEM),
			ca:   writeFile(t, certDir, "ca.crt", caPEM),
		}
		makeKeyRing(t, addr, id, w.ids[id])
	}
	contributors := make([]string, len(senders))
	for i, s := range senders {
		contributors[i] = client.AgencyName(s)
	}
	owner := dial(t, addr, w.ids[w.owner])
	defer owner.Close()
	_, err := owner.Datasets.Create(ctx, client.AgencyName(w.owner), client.ResourceID(w.dataset), &exchangev1.Dataset{
		Title:        "Returned people assisted, by province and sex",
		Contributors: contributors,
		PeriodType:   exchangev1.PeriodType_PERIOD_TYPE_MONTH,
		Schema: &exchangev1.DatasetSchema{
			LocationLevel: exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE,
			Categories:    []*exchangev1.Category{{Key: "sex", Values: []string{"female", "male"}, Required: true}},
			Measures: []*exchangev1.Measure{{Key: "cases", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER,
				Required: true, Min: new(0.0)}},
		},
	})
	if err != nil {
		t.Fatalf("create dataset: %v", err)
	}
	eventually(t, w.dataset, func() error { _, err := owner.Datasets.Get(ctx, w.dataset); return err })
	return w
}

// eventually calls fn until it succeeds, for up to 5s.
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// worldReferral is the referral a case system sends under requestID: the
// request id doubles as the subject reference, which the receiver's
// inbox summaries keep, so that a listed referral names its request.
func worldReferral(requestID, receiver string) *exchangev1.Referral {
	return &exchangev1.Referral{
		Receiver:         client.AgencyName(receiver),
		Service:          &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: "counselling after return"},
		Urgency:          exchangev1.Urgency_URGENCY_URGENT,
		SubjectReference: requestID,
		Subject:          &exchangev1.Subject{Name: "Person " + requestID, Sex: exchangev1.Sex_SEX_FEMALE, Nationality: "KH"},
		Consent: &exchangev1.Consent{
			GivenBy:         exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN,
			GivenTime:       timestamppb.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)),
			ReceivingAgency: client.AgencyName(receiver),
			Services:        []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		},
		Location: &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12"},
	}
}

// worldRow is a row of the dataset.
func worldRow(period, location, sex string, cases int64) *exchangev1.Row {
	return &exchangev1.Row{Period: period, Location: location, Categories: map[string]string{"sex": sex},
		Values: map[string]*exchangev1.Value{"cases": {Kind: &exchangev1.Value_IntValue{IntValue: cases}}}}
}

// launchBinary starts the exchanged binary at path in dir with args, like
// launchServer (which always runs the suite's exchanged). The process is
// killed at cleanup if still running.
func launchBinary(t *testing.T, path, dir string, args ...string) (*server, <-chan string) {
	t.Helper()
	s := &server{dir: dir, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(path, args...)
	s.cmd.Dir = dir
	s.cmd.Env = baseEnv()
	s.cmd.Stderr = s.stderr
	pipe, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
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

// startBinary starts the exchanged binary at path in dir on a free
// loopback port and waits until it listens. Unlike startServer it does not
// stop the server at cleanup (it kills it if the test left it running).
func startBinary(t *testing.T, path, dir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"}, extra...)
	s, addrs := launchBinary(t, path, dir, args...)
	select {
	case s.addr = <-addrs:
	case <-s.exited:
		t.Fatalf("exchanged exited before listening (%v)\nstdout:\n%s\nstderr:\n%s", s.waitErr, s.stdout, s.stderr)
	case <-time.After(startTimeout):
		t.Fatalf("exchanged printed no \"exchanged listening on ADDR\" line within %v\nstderr:\n%s", startTimeout, s.stderr)
	}
	return s
}

// kill ends the server with SIGKILL, as a power cut or the OOM killer
// would, and waits until it is gone.
func (s *server) kill(t *testing.T) {
	t.Helper()
	s.stopped = true
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL to exchanged: %v (did it exit early?)\nstderr:\n%s", err, s.stderr)
	}
	<-s.exited
}

// faultBinary builds, once, an exchanged with the planted fault and
// returns its path.
var faultBinary = sync.OnceValues(func() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	path := filepath.Join(binDir, "exchanged-"+faultTag)
	cmd := exec.Command("go", "build", "-tags", faultTag, "-o", path, "./cmd/exchanged")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -tags %s ./cmd/exchanged: %v\n%s", faultTag, err, out)
	}
	return path, nil
})

// moduleRoot is the directory of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// offlineCheck is what checkOffline found.
type offlineCheck struct {
	revision     int64
	auditEntries uint64
	size         int64
}

// checkOffline checks the database of a stopped exchanged in dir through
// the store, as an operator would before starting it again: it opens it
// read-only with CheckOnOpen, which walks every page with bbolt's
// consistency check, and verifies the audit chain.
func checkOffline(t *testing.T, dir string) (offlineCheck, error) {
	t.Helper()
	st, err := store.Open(dbPath(dir), store.Options{ReadOnly: true, CheckOnOpen: true})
	if err != nil {
		return offlineCheck{}, fmt.Errorf("opening the database read-only with CheckOnOpen: %w", err)
	}
	defer st.Close()
	ctx := context.Background()
	n, err := st.VerifyAudit(ctx)
	if err != nil {
		return offlineCheck{}, fmt.Errorf("audit chain: %w", err)
	}
	status, err := st.Status(ctx)
	if err != nil {
		return offlineCheck{}, err
	}
	return offlineCheck{revision: status.Revision, auditEntries: n, size: status.Size}, nil
}
