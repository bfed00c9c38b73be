package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/internal/agejs"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// exampleRun runs one of docs/clients' examples as an agency and returns
// its standard output; it fails the test when the example fails.
type exampleRun struct {
	t    *testing.T
	dir  string // the examples, copied beside node_modules
	addr string
	ids  map[string]identity
}

func (r exampleRun) as(agency string, name string, args ...string) []byte {
	r.t.Helper()
	out, errOut, err := r.try(agency, name, args...)
	if err != nil {
		r.t.Fatalf("%s as %s %v: %v\n%s%s", name, agency, args, err, out, errOut)
	}
	return out
}

func (r exampleRun) try(agency string, name string, args ...string) (stdout, stderr []byte, err error) {
	r.t.Helper()
	id := r.ids[agency]
	ring, _ := keyRingBeside(id.cert)
	var cmd *exec.Cmd
	script := filepath.Join(r.dir, name)
	switch filepath.Ext(name) {
	case ".mjs":
		cmd = exec.Command("node", append([]string{script}, args...)...)
	case ".py":
		cmd = exec.Command("python3", append([]string{script}, args...)...)
	default:
		cmd = exec.Command("sh", append([]string{script}, args...)...)
	}
	cmd.Dir = r.dir
	// The server's name, not its address: a TLS server name may not be an
	// IP address (RFC 6066), and node warns when it is one.
	_, port, _ := net.SplitHostPort(r.addr)
	cmd.Env = append(baseEnv(), "EXCHANGE_URL=https://localhost:"+port, "EXCHANGE_CERT="+id.cert, "EXCHANGE_KEY="+id.key,
		"EXCHANGE_CA="+id.ca, "EXCHANGE_AGENCY="+agency, "EXCHANGE_KEY_RING="+ring, "PYTHONDONTWRITEBYTECODE=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	go func() {
		<-ctx.Done()
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}()
	err = cmd.Run()
	if bytes.Contains(errOut.Bytes(), []byte("TLS ServerName to an IP address")) {
		r.t.Errorf("%s warns that its TLS server name is an IP address:\n%s", name, errOut.Bytes())
	}
	return out.Bytes(), errOut.Bytes(), err
}

// referralOf decodes an example's JSON answer (the OpenAPI document's
// Referral) with the protobuf JSON mapping, so that any field the example
// printed that the API does not define fails the test.
func referralOf(t *testing.T, out []byte) *exchangev1.Referral {
	t.Helper()
	var r exchangev1.Referral
	if err := protojson.Unmarshal(out, &r); err != nil {
		t.Fatalf("an example printed no referral: %v\n%s", err, out)
	}
	return &r
}

// TestTheClientExamplesDriveReferralsOverJSON runs docs/clients.md's
// examples against a real exchanged: node seals and sends a referral with
// fetch; Python (requests) finds it in the receiver's inbox and moves it
// on; node follows it to ACCEPTED; the receiver opens the details with
// node and with Python. Python seals (sealing.py, with cryptography) and
// sends a referral that the receiver's Go client and node open; curl sends
// a blob sealed beforehand, reads, acknowledges and lists; last, Python
// pulls a dataset's rows, then only what changed. The Go client checks
// every step from the other side.
func TestTheClientExamplesDriveReferralsOverJSON(t *testing.T) {
	setup(t)
	for _, tool := range []string{"python3", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the client examples need %s, which is not on PATH: %v", tool, err)
		}
	}
	if err := exec.Command("python3", "-c", "import requests, cryptography.hazmat.primitives.asymmetric.mlkem").Run(); err != nil {
		t.Skipf("the Python examples need the requests package and cryptography 48 or later (ML-KEM): %v", err)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	modules := agejs.Modules(t, root)
	dir := t.TempDir()
	srv := startServer(t, dir)
	w := newWorld(t, dir, srv.addr, []string{"ilo"}, []string{"iom"})

	// The examples as docs/clients holds them, beside node_modules.
	examples := t.TempDir()
	if err := os.Symlink(modules, filepath.Join(examples, "node_modules")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"referral.mjs", "referral.py", "sealing.py", "referral.sh", "referral.json", "details.json", "dataset.py"} {
		b, err := os.ReadFile(filepath.Join(root, "docs", "clients", name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, examples, name, b)
	}
	w.ids["secretariat"] = secretariat(dir)
	run := exampleRun{t: t, dir: examples, addr: srv.addr, ids: w.ids}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iom := dial(t, srv.addr, w.ids["iom"])
	defer iom.Close()
	var details struct {
		Name, GuardianContact, CaseNotes string
		BirthYear                        int32
	}
	b, _ := os.ReadFile(filepath.Join(examples, "details.json"))
	if err := json.Unmarshal(b, &details); err != nil {
		t.Fatal(err)
	}

	// node: ilo seals the details to iom's key and its own, and sends.
	sent := referralOf(t, run.as("ilo", "referral.mjs", "send", "referral.json", "details.json"))
	if sent.GetState() != exchangev1.ReferralState_REFERRAL_STATE_REQUESTED || sent.GetReceiver() != "agencies/iom" {
		t.Fatalf("node sent %v", sent)
	}
	// The Go client of iom opens what node sealed.
	got, err := iom.Referrals.Get(ctx, sent.GetName())
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSubject().GetName() != details.Name || got.GetCaseNotes() != details.CaseNotes ||
		got.GetSubject().GetBirthYear() != details.BirthYear || got.GetSubject().GetGuardianContact() != details.GuardianContact {
		t.Fatalf("iom's Go client opened %v, want %+v", got, details)
	}

	// Python: iom finds it in its inbox, acknowledges and accepts it.
	var inbox []json.RawMessage
	if err := json.Unmarshal(run.as("iom", "referral.py", "inbox"), &inbox); err != nil {
		t.Fatal(err)
	}
	var listed bool
	for _, raw := range inbox {
		listed = listed || referralOf(t, raw).GetName() == sent.GetName()
	}
	if !listed {
		t.Fatalf("iom's inbox from Python lacks %s", sent.GetName())
	}
	run.as("iom", "referral.py", "act", sent.GetName(), "acknowledge")
	run.as("iom", "referral.py", "act", sent.GetName(), "accept")

	// node: ilo follows it to ACCEPTED; iom opens the details with node.
	followed := referralOf(t, run.as("ilo", "referral.mjs", "follow", sent.GetName(), "REFERRAL_STATE_ACCEPTED", "10"))
	if followed.GetState() != exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED {
		t.Fatalf("node followed to %v", followed.GetState())
	}
	var opened struct {
		Name, GuardianContact, CaseNotes string
		BirthYear                        int32
	}
	if err := json.Unmarshal(run.as("iom", "referral.mjs", "open", sent.GetName()), &opened); err != nil {
		t.Fatal(err)
	}
	if opened != details {
		t.Fatalf("node opened %+v, want %+v", opened, details)
	}
	// The secretariat is neither side: it may not read the referral over
	// JSON either, and the example reports NOT_FOUND.
	_, errOut, err := run.try("secretariat", "referral.py", "get", sent.GetName())
	if err == nil || !strings.Contains(string(errOut), `"code": 5`) {
		t.Fatalf("the secretariat read a referral over JSON: %v %s", err, errOut)
	}

	// Python opens, as iom, what node sealed.
	if err := json.Unmarshal(run.as("iom", "referral.py", "open", sent.GetName()), &opened); err != nil {
		t.Fatal(err)
	}
	if opened != details {
		t.Fatalf("Python opened %+v, want %+v", opened, details)
	}

	// Python seals (sealing.py) and sends; iom's Go client and node open
	// it. Sent again with the same request id: the same referral.
	requestID := "py-" + strings.ReplaceAll(t.Name(), "/", "-")
	fromPython := referralOf(t, run.as("ilo", "referral.py", "send", "referral.json", "details.json", requestID))
	if again := referralOf(t, run.as("ilo", "referral.py", "send", "referral.json", "details.json", requestID)); again.GetName() != fromPython.GetName() {
		t.Fatalf("a retry made %s, the first %s", again.GetName(), fromPython.GetName())
	}
	got, err = iom.Referrals.Get(ctx, fromPython.GetName())
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSubject().GetName() != details.Name || got.GetCaseNotes() != details.CaseNotes ||
		got.GetSubject().GetBirthYear() != details.BirthYear || got.GetSubject().GetGuardianContact() != details.GuardianContact {
		t.Fatalf("iom's Go client opened what Python sealed as %v, want %+v", got, details)
	}
	opened = struct {
		Name, GuardianContact, CaseNotes string
		BirthYear                        int32
	}{}
	if err := json.Unmarshal(run.as("iom", "referral.mjs", "open", fromPython.GetName()), &opened); err != nil {
		t.Fatal(err)
	}
	if opened != details {
		t.Fatalf("node opened what Python sealed as %+v, want %+v", opened, details)
	}

	// curl sends a blob sealed beforehand (here by docs/sealing.md's
	// seal-for-exchange.mjs; curl cannot seal); iom reads it with curl and
	// acknowledges it; ilo lists its outbox.
	curlID := "curl-" + strings.ReplaceAll(t.Name(), "/", "-")
	iloAgency, err := iom.Directory.GetAgency(ctx, client.AgencyName("ilo"))
	if err != nil {
		t.Fatal(err)
	}
	iomAgency, err := iom.Directory.GetAgency(ctx, client.AgencyName("iom"))
	if err != nil {
		t.Fatal(err)
	}
	sealer := writeFile(t, examples, "seal.mjs", sealingDocScript(t, root, "seal-for-exchange.mjs"))
	pb, err := proto.Marshal(&exchangev1.ReferralDetails{Name: details.Name, GuardianContact: details.GuardianContact,
		BirthYear: details.BirthYear, CaseNotes: details.CaseNotes})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, examples, "details.pb", pb)
	cmd := exec.Command("node", sealer, "details.pb", "sealed.age", curlID, "agencies/ilo", "agencies/iom",
		iomAgency.GetEncryptionKey().GetRecipient(), iloAgency.GetEncryptionKey().GetRecipient())
	cmd.Dir = examples
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node sealing for curl: %v\n%s", err, out)
	}
	fromCurl := referralOfAnswer(t, run.as("ilo", "referral.sh", "send", "referral.json", "sealed.age", curlID))
	if r := referralOfAnswer(t, run.as("iom", "referral.sh", "get", fromCurl.GetName())); r.GetState() != exchangev1.ReferralState_REFERRAL_STATE_REQUESTED {
		t.Fatalf("curl read %v", r)
	}
	if r := referralOfAnswer(t, run.as("iom", "referral.sh", "act", fromCurl.GetName(), "acknowledge")); r.GetState() != exchangev1.ReferralState_REFERRAL_STATE_RECEIVED {
		t.Fatalf("curl acknowledged: %v", r)
	}
	var outbox exchangev1.ListReferralsResponse
	if err := protojson.Unmarshal(run.as("ilo", "referral.sh", "list", "outbox"), &outbox); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range outbox.GetReferrals() {
		names = append(names, r.GetName())
	}
	if want := []string{fromCurl.GetName(), fromPython.GetName(), sent.GetName()}; !slices.Equal(names, want) {
		t.Fatalf("ilo's outbox from curl %v, want %v", names, want)
	}
	got, err = iom.Referrals.Get(ctx, fromCurl.GetName())
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSubject().GetName() != details.Name || got.GetState() != exchangev1.ReferralState_REFERRAL_STATE_RECEIVED {
		t.Fatalf("iom's Go client reads the curl referral as %v", got)
	}

	// Python pulls the dataset iom owns and ilo contributes to, then only
	// what changed after the revision it reached.
	ilo := dial(t, srv.addr, w.ids["ilo"])
	defer ilo.Close()
	writeRows := func(rows ...*exchangev1.Row) {
		t.Helper()
		var writes []*exchangev1.RowWrite
		for _, r := range rows {
			writes = append(writes, &exchangev1.RowWrite{Row: r})
		}
		if _, err := ilo.Datasets.Write(ctx, w.dataset, writes); err != nil {
			t.Fatal(err)
		}
	}
	pulled := func(args ...string) (rows []*exchangev1.Row, revision string) {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(string(run.as("iom", "dataset.py", append([]string{"pull", w.dataset}, args...)...))), "\n")
		for _, l := range lines[:len(lines)-1] {
			var r exchangev1.Row
			if err := protojson.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("dataset.py printed %q: %v", l, err)
			}
			rows = append(rows, &r)
		}
		var end struct{ Revision string }
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &end); err != nil || end.Revision == "" {
			t.Fatalf("dataset.py ended with %q: %v", lines[len(lines)-1], err)
		}
		return rows, end.Revision
	}
	writeRows(worldRow("2026-01", "KH-12", "female", 4), worldRow("2026-01", "KH-12", "male", 2))
	rows, revision := pulled()
	if len(rows) != 2 || rows[0].GetContributor() != "agencies/ilo" {
		t.Fatalf("dataset.py pulled %v", rows)
	}
	writeRows(worldRow("2026-02", "KH-12", "female", 5))
	rows, _ = pulled(revision)
	if len(rows) != 1 || rows[0].GetPeriod() != "2026-02" {
		t.Fatalf("dataset.py pulled after revision %s: %v", revision, rows)
	}

	// curl without the agency's certificate gets nothing.
	_, _, err = exampleRun{t: t, dir: examples, addr: srv.addr, ids: map[string]identity{"nobody": {cert: "/nonexistent.crt", key: "/nonexistent.key", ca: w.ids["iom"].ca}}}.
		try("nobody", "referral.sh", "list")
	if err == nil {
		t.Fatal("curl without a certificate was answered")
	}
}

// referralOfAnswer decodes a {"referral": …} answer as curl prints it.
func referralOfAnswer(t *testing.T, out []byte) *exchangev1.Referral {
	t.Helper()
	// Every referral verb answers with its referral in "referral"; a
	// create's answer also says whether it left out the sealed details.
	var resp exchangev1.GetReferralResponse
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(out, &resp); err != nil {
		t.Fatalf("curl printed %v\n%s", err, out)
	}
	return resp.GetReferral()
}

// sealingDocScript returns the js block of docs/sealing.md whose first
// line names the file, as seal/interop_test.go reads them.
func sealingDocScript(t *testing.T, root, name string) []byte {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(root, "docs", "sealing.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```js\n(// " + regexp.QuoteMeta(name) + ":.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/sealing.md has no js block starting // %s:", name)
	}
	return m[1]
}
