package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/internal/faultproxy"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// fieldSizes are the referrals and rows the field office test pushes:
// the 1,000 and 10,000 by default; EXCHANGE_E2E_FIELD_SMALL=1
// makes them 200 and 2,000 for a quick run.
func fieldSizes() (referrals, rows int) {
	if os.Getenv("EXCHANGE_E2E_FIELD_SMALL") == "1" {
		return 200, 2000
	}
	return 1000, 10000
}

// TestAFieldOfficeWorksThroughADeadLine is issue #21's test: a field
// office (ilo, then iom) works through a fault proxy that refuses,
// blackholes and cuts connections at random moments, while exchangectl
// is killed (SIGKILL) at random moments and `outbox send` run again after
// each kill. It pushes 1,000 referrals and 10,000 dataset rows, and iom
// makes three moves on 40 of the referrals; then the link is restored and
// the outbox drained. Every referral is stored once (each request id
// once), every row written once (one watch event each), each referral's
// moves are in its history in the order made, and the outbox is empty
// but for the writes made to be rejected (an accept of a referral the
// sender cancelled meanwhile, a referral whose consent does not cover
// its receiver), which are listed with the exchange's reasons and stay.
func TestAFieldOfficeWorksThroughADeadLine(t *testing.T) {
	setup(t)
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("EXCHANGE_E2E_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("random seed %d (rerun with EXCHANGE_E2E_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 21))
	nReferrals, nRows := fieldSizes()

	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	direct := map[string]session{}
	for _, id := range []string{"ilo", "iom"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency", "--niche", "psychosocial-counselling", "--coverage", "KH-12")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
		direct[id] = agencySession(t, srv.addr, filepath.Join(dir, "certs-"+id), id).with("EXCHANGE_TIMEOUT=60s")
		direct[id].ok(t, "keys", "create")
	}
	proxy, err := faultproxy.New(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	field := map[string]session{}
	for id, s := range direct {
		field[id] = s.with("EXCHANGE_SERVER="+proxy.Addr(), "EXCHANGE_FIELD_FILE="+filepath.Join(dir, "certs-"+id, "field.db"), "EXCHANGE_TIMEOUT=20s")
	}
	ilo, iom := field["ilo"], field["iom"]

	// The dataset, and what the field office keeps while the line is up:
	// iom's key, to seal to offline, and the dataset's definition.
	direct["ilo"].ok(t, "datasets", "create", "-f", writeFile(t, dir, "dataset.yaml", []byte(fieldDataset)))
	ilo.ok(t, "outbox", "fetch-keys", "iom")
	ilo.ok(t, "datasets", "push", "ilo/returns", "-f", writeFile(t, dir, "empty.csv", []byte(fieldRowsHeader+"\n")))

	// Every row written reaches this watch once per write.
	rowEvents := watchRows(t, srv.addr, filepath.Join(dir, "certs-ilo"), "ilo", "agencies/ilo/datasets/returns")

	var lines []string
	for i := range nReferrals {
		lines = append(lines, referralLine(t, fmt.Sprintf("field-%04d", i), "iom", "iom", fmt.Sprintf("Field Person %04d", i)))
	}
	referralsFile := writeFile(t, dir, "referrals.jsonl", []byte(strings.Join(lines, "\n")+"\n"))
	rowsFile := writeFile(t, dir, "rows.csv", []byte(fieldRows(nRows)))

	chaos := startChaos(proxy, rand.New(rand.NewPCG(seed, 22)))
	kills := 0
	// A job is run until it finishes without being killed; a kill may
	// leave part of a push unqueued, so the same file is pushed again
	// (request ids and identical rows make that harmless), and `outbox
	// send` is run after each kill.
	job := func(s session, args ...string) {
		for attempt := 0; ; attempt++ {
			if attempt > 200 {
				t.Fatalf("%v never finished", args)
			}
			began := time.Now()
			r, killed := runMaybeKilled(t, s, rng, args...)
			t.Logf("%s %s: exit %d, killed %v, after %v", args[0], args[1], r.code, killed, time.Since(began).Round(time.Millisecond))
			if killed {
				kills++
				r, killedAgain := runMaybeKilled(t, s, rng, "outbox", "send", "--attempt-timeout", "3s")
				if killedAgain {
					kills++
				} else if r.code != 0 && r.code != 7 {
					t.Fatalf("outbox send after a kill:\n%s", r)
				}
				continue
			}
			if r.code != 0 && r.code != 7 {
				t.Fatalf("want exit 0 or 7 (unreachable before anything was queued)\n%s", r)
			}
			if r.code == 0 {
				return
			}
		}
	}
	job(ilo, "referrals", "push", "-f", referralsFile, "--batch-size", "100")
	job(ilo, "datasets", "push", "ilo/returns", "-f", rowsFile, "--batch-size", "500")
	drainUnderChaos(t, ilo, rng, &kills)
	chaos.stop()
	proxy.SetMode(faultproxy.Pass)
	drained := ilo.ctl(t, "outbox", "send")
	if drained.code != 0 {
		t.Fatalf("final drain:\n%s", drained)
	}
	t.Logf("ilo: %d referrals and %d rows pushed with %d kills and %d connection cuts in %v", nReferrals, nRows, kills, proxy.Cuts(), time.Since(start).Round(time.Millisecond))

	// Every referral once, by its request id.
	sent := jsonList(t, direct["ilo"], func() *exchangev1.Referral { return &exchangev1.Referral{} }, "referrals", "outbox")
	seen := map[string]int{}
	for _, r := range sent {
		seen[r.GetSubjectReference()]++
	}
	for i := range nReferrals {
		if n := seen[fmt.Sprintf("subj-field-%04d", i)]; n != 1 {
			t.Errorf("referral field-%04d is stored %d times, want once", i, n)
		}
	}
	if len(sent) != nReferrals {
		t.Errorf("the exchange holds %d referrals from ilo, want %d", len(sent), nReferrals)
	}
	// Every row once: one watch event per row written.
	waitForRows(t, rowEvents, nRows)

	// iom moves 40 referrals through three states each, the line down;
	// then the moves are drained under chaos with kills.
	names := make([]string, 0, len(sent))
	for _, r := range sent {
		names = append(names, r.GetName())
	}
	slices.Sort(names)
	moved := names[:40]
	proxy.SetMode(faultproxy.Refuse)
	for _, name := range moved {
		for _, verb := range []string{"acknowledge", "accept", "start"} {
			r := iom.ctl(t, "referrals", verb, strings.TrimPrefix(name, "referrals/"))
			if r.code != 0 || !strings.Contains(r.stderr, "queued: the exchange cannot be reached") {
				t.Fatalf("a move with the line down:\n%s", r)
			}
		}
	}
	// Made to be rejected: an accept of a referral its sender cancels
	// while the line is down (the state changed under it), and a referral
	// whose consent does not cover its receiver.
	cancelled := names[40]
	if r := iom.ctl(t, "referrals", "accept", strings.TrimPrefix(cancelled, "referrals/")); r.code != 0 {
		t.Fatalf("accept with the line down:\n%s", r)
	}
	direct["ilo"].ok(t, "referrals", "cancel", strings.TrimPrefix(cancelled, "referrals/"), "--reason", "duplicate case")
	badConsent := writeFile(t, dir, "bad-consent.jsonl", []byte(referralLine(t, "field-bad-consent", "iom", "unicef", "Field Person Bad")+"\n"))
	if r := ilo.ctl(t, "referrals", "push", "-f", badConsent); r.code != 0 || !strings.Contains(r.stdout, "queued") {
		t.Fatalf("push with the line down:\n%s", r)
	}

	chaos = startChaos(proxy, rand.New(rand.NewPCG(seed, 23)))
	drainUnderChaos(t, iom, rng, &kills)
	drainUnderChaos(t, ilo, rng, &kills)
	chaos.stop()
	proxy.SetMode(faultproxy.Pass)

	for _, who := range []struct {
		s       session
		kind    string
		code    string
		because string
	}{
		{iom, "accept", "FAILED_PRECONDITION", "REFERRAL_STATE_CANCELLED"},
		{ilo, "create 1 referrals", "REJECTED_IN_PART", "request field-bad-consent"},
	} {
		r := who.s.ctl(t, "outbox", "send")
		if r.code != 6 || !strings.Contains(r.stderr, "1 write was rejected") {
			t.Errorf("final send: want exit 6 for the rejected write\n%s", r)
		}
		var left []struct {
			ID        uint64 `json:"id"`
			Kind      string `json:"kind"`
			State     string `json:"state"`
			Code      string `json:"code"`
			LastError string `json:"lastError"`
		}
		if err := json.Unmarshal([]byte(who.s.ok(t, "--json", "outbox", "list")), &left); err != nil {
			t.Fatal(err)
		}
		if len(left) != 1 || left[0].Kind != who.kind || left[0].State != "rejected" || left[0].Code != who.code || !strings.Contains(left[0].LastError, who.because) {
			t.Errorf("left in the outbox: %+v, want only the %s, rejected %s with %q", left, who.kind, who.code, who.because)
		}
	}
	// Each moved referral shows the three moves once, in order, by iom.
	want := []exchangev1.ReferralState{exchangev1.ReferralState_REFERRAL_STATE_RECEIVED, exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED, exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS}
	for _, name := range moved {
		var r exchangev1.Referral
		direct["iom"].jsonOne(t, &r, "referrals", "show", strings.TrimPrefix(name, "referrals/"))
		var got []exchangev1.ReferralState
		for _, h := range r.GetHistory() {
			if h.GetFromState() != h.GetToState() && h.GetActor() == "agencies/iom" {
				got = append(got, h.GetToState())
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: iom's moves %v, want %v", name, got, want)
		}
	}
	t.Logf("done in %v: %d kills in all, %d connection cuts", time.Since(start).Round(time.Millisecond), kills, proxy.Cuts())
}

// drainUnderChaos runs `outbox send` until it exits 0, killing some runs
// at random moments; it fails t after 300 runs.
func drainUnderChaos(t *testing.T, s session, rng *rand.Rand, kills *int) {
	t.Helper()
	for range 300 {
		r, killed := runMaybeKilled(t, s, rng, "outbox", "send", "--attempt-timeout", "3s")
		switch {
		case killed:
			*kills++
		case r.code == 0:
			return
		case r.code == 6:
			return // rejected writes wait for a person; checked by the caller
		case r.code != 7:
			t.Fatalf("outbox send:\n%s", r)
		}
	}
	t.Fatal("the outbox never drained")
}

// runMaybeKilled runs exchangectl in s and, two times in three, kills it
// with SIGKILL after a random moment under 0.8 s.
func runMaybeKilled(t *testing.T, s session, rng *rand.Rand, args ...string) (result, bool) {
	t.Helper()
	var killAfter time.Duration
	if rng.IntN(3) != 0 {
		killAfter = time.Duration(1+rng.IntN(800)) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("exchangectl"), args...)
	cmd.Dir = s.dir
	cmd.Env = baseEnv()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	var err error
	if killAfter > 0 {
		select {
		case err = <-done:
		case <-time.After(killAfter):
			_ = cmd.Process.Kill()
			err, killed = <-done, true
		}
	} else {
		err = <-done
	}
	r := result{args: append([]string{"exchangectl"}, args...), stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("exchangectl did not finish within %v\n%s", commandTimeout, r)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
		if !killed && r.code < 0 {
			t.Fatalf("exchangectl died: %v\n%s", err, r)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	if killed && r.code >= 0 {
		killed = false // it finished before the kill
	}
	return r, killed
}

// chaos switches the proxy's mode at random moments until stopped.
type chaos struct {
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
}

// startChaos switches proxy every 20 to 300 ms: mostly passing, else
// refusing, blackholing or cutting every open connection.
func startChaos(proxy *faultproxy.Proxy, rng *rand.Rand) *chaos {
	c := &chaos{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.quit:
				return
			case <-time.After(time.Duration(20+rng.IntN(280)) * time.Millisecond):
			}
			switch n := rng.IntN(10); {
			case n < 5:
				proxy.SetMode(faultproxy.Pass)
			case n < 7:
				proxy.SetMode(faultproxy.Refuse)
			case n < 8:
				proxy.SetMode(faultproxy.Blackhole)
			default:
				proxy.SetMode(faultproxy.Pass)
				proxy.CutAll()
			}
		}
	}()
	return c
}

func (c *chaos) stop() {
	c.stopOnce.Do(func() { close(c.quit) })
	<-c.done
}

// watchRows follows the dataset's rows as agency id, straight to the
// exchange, and returns a function that reports the row events seen so
// far by row key.
func watchRows(t *testing.T, addr, certDir, id, dataset string) func() map[string]int {
	t.Helper()
	c, err := client.Dial(context.Background(), client.Config{Address: addr, ServerName: "localhost",
		CertFile: filepath.Join(certDir, id+".crt"), KeyFile: filepath.Join(certDir, id+".key"), CAFile: filepath.Join(certDir, "ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	events := map[string]int{}
	done := make(chan struct{})
	started := make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		_ = c.Datasets.WatchRows(ctx, dataset, 0, func(m *exchangev1.WatchDatasetRowsResponse) error {
			once.Do(func() { close(started) })
			mu.Lock()
			defer mu.Unlock()
			for _, r := range m.GetRows() {
				events[r.GetPeriod()+"/"+r.GetLocation()+"/"+r.GetCategories()["sex"]+"/"+r.GetCategories()["age_group"]]++
			}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	select {
	case <-started:
	case <-time.After(2 * time.Second): // a watch of a quiet dataset says nothing until a heartbeat
	}
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(events)
	}
}

// waitForRows waits until the watch has seen n distinct rows, then
// checks each was seen once.
func waitForRows(t *testing.T, events func() map[string]int, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(events()) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // any late duplicate
	got := events()
	if len(got) != n {
		t.Fatalf("the watch saw %d distinct rows, want %d", len(got), n)
	}
	for k, c := range got {
		if c != 1 {
			t.Errorf("row %s was written %d times, want once", k, c)
		}
	}
}

// fieldDataset is ilo's dataset of the field office test.
const fieldDataset = `id: returns
title: Returned victims assisted, by province, sex and age group
periodType: month
schema:
  locationLevel: province
  categories:
    - {key: sex, values: [female, male], required: true}
    - {key: age_group, values: ["0-11", "12-17", "18-24", "25+"], required: true}
  measures:
    - {key: returned, type: integer, required: true, min: 0}
`

const fieldRowsHeader = "period,location,sex,age_group,returned"

// fieldRows is a CSV of n distinct rows (n a multiple of 8): 25
// provinces by as many months from 2020-01 as needed, by sex and age
// group.
func fieldRows(n int) string {
	var b strings.Builder
	b.WriteString(fieldRowsHeader + "\n")
	i := 0
	for month := 0; i < n; month++ {
		period := fmt.Sprintf("%04d-%02d", 2020+month/12, 1+month%12)
		for province := 1; province <= 25 && i < n; province++ {
			for _, sex := range []string{"female", "male"} {
				for _, age := range []string{"0-11", "12-17", "18-24", "25+"} {
					if i < n {
						fmt.Fprintf(&b, "%s,KH-%d,%s,%s,%d\n", period, province, sex, age, i%97)
						i++
					}
				}
			}
		}
	}
	return b.String()
}
