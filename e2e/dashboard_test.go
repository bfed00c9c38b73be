package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// browserTimeout bounds the whole browser part of the dashboard test.
const browserTimeout = 3 * time.Minute

// dashboardPlans are two agencies' plans for 2027 that overlap on
// prevention in Banteay Meanchey (KH-1), in the YAML of 'plans apply'.
var dashboardPlans = map[string]string{
	"ilo": `agency: ilo
plans:
  - externalId: ILO-KH-2027-01
    title: Safe migration in Banteay Meanchey and Prey Veng
    stage: concept
    niches: [prevention]
    locations: [{country: KH, subdivision: KH-1}, {country: KH, subdivision: KH-14}]
    plannedPeriod: {start: 2027-01-01, end: 2027-12-31}
    audience: {allMembers: true}
`,
	"unicef": `agency: unicef
plans:
  - externalId: UNICEF-KH-2027-01
    title: Community child protection in Banteay Meanchey
    stage: concept
    niches: [prevention, child-protection]
    locations: [{country: KH, subdivision: KH-1}]
    plannedPeriod: {start: 2027-03-01, end: 2027-12-31}
    audience: {allMembers: true}
`,
}

// TestDashboardInChromium seeds an exchange through the CLI (agencies,
// certificates, sealed referrals, the tour's dataset with a locked month,
// overlapping plans, focal points now and before, a working group, a
// report in two versions, a consultant and its booking, a document),
// starts 'exchangectl ui' as IOM and as the secretariat, and drives
// Debian's Chromium headless through every page: what each page shows is
// checked against the API (exchangectl --json, the same certificate), one
// lifecycle action is clicked and its effect read back from the API, any
// console error or uncaught exception fails the test, a small
// accessibility check runs on every page, and screenshots are saved as
// artefacts. It also checks the token gate and the security headers.
func TestDashboardInChromium(t *testing.T) {
	setup(t)
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it): the dashboard's browser test cannot run")
	}
	artefacts := artefactsDir(t)

	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	sessions := map[string]session{}
	for _, id := range []string{"ilo", "iom", "unicef", "afesip", "world-vision"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency", "--country", "KH",
			"--niche", "psychosocial-counselling,prevention", "--coverage", "KH-1,KH-12")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
		sessions[id] = agencySession(t, srv.addr, filepath.Join(dir, "certs-"+id), id)
	}
	ilo, iom, unicef, afesip := sessions["ilo"], sessions["iom"], sessions["unicef"], sessions["afesip"]
	for _, s := range []session{ilo, iom, unicef} {
		s.ok(t, "keys", "create") // referrals are sealed with it
	}

	// Referrals: three from ILO into IOM's inbox, one from IOM to UNICEF.
	toIOM := writeFile(t, ilo.dir, "to-iom.jsonl", []byte(strings.Join([]string{
		referralLine(t, "ilo-1", "iom", "iom", "Person One"),
		referralLine(t, "ilo-2", "iom", "iom", "Person Two"),
		referralLine(t, "ilo-3", "iom", "iom", "Person Three"),
	}, "\n")+"\n"))
	ilo.ok(t, "referrals", "push", "-f", toIOM)
	toUNICEF := writeFile(t, iom.dir, "to-unicef.jsonl", []byte(referralLine(t, "iom-1", "unicef", "unicef", "Person Four")+"\n"))
	iom.ok(t, "referrals", "push", "-f", toUNICEF)

	// The tour's dataset: IOM and AFESIP report October, which ILO locks;
	// AFESIP reports a small November, whose total is a small cell.
	demo, err := filepath.Abs(filepath.Join("..", "demo"))
	if err != nil {
		t.Fatal(err)
	}
	ilo.ok(t, "datasets", "create", "-f", filepath.Join(demo, "dataset.yaml"))
	iom.ok(t, "datasets", "push", "ilo/returns-kh", "-f", filepath.Join(demo, "rows", "iom.csv"))
	afesip.ok(t, "datasets", "push", "ilo/returns-kh", "-f", filepath.Join(demo, "rows", "afesip.csv"))
	ilo.ok(t, "datasets", "lock", "returns-kh", "2026-10")
	november := writeFile(t, afesip.dir, "november.csv", []byte("period,location,sex,age_group,returned,assisted,main_service\n2026-11,KH-1,female,12-17,2,2,shelter\n"))
	afesip.ok(t, "datasets", "push", "ilo/returns-kh", "-f", november)

	for owner, plans := range dashboardPlans {
		file := writeFile(t, sessions[owner].dir, "plans.yaml", []byte(plans))
		if r := sessions[owner].ctl(t, "plans", "apply", "-f", file); r.code != 1 {
			t.Fatalf("plans apply: want exit 1 (plans created)\n%s", r)
		}
	}

	// Directory: a current focal point, a past one, a working group.
	sec.ok(t, "focal-points", "create", "--agency", "iom", "--name", "Dara C.", "--topic", "referrals", "--email", "dara.c@iom.example.org")
	sec.ok(t, "focal-points", "create", "--agency", "iom", "--name", "Sokha V.", "--topic", "referrals",
		"--start", day(-400), "--end", day(-30))
	sec.ok(t, "working-groups", "create", "unwg", "--name", "UN Working Group on Trafficking", "--kind", "working-group",
		"--secretariat", "ilo", "--member", "iom,unicef", "--observer", "world-vision")

	reportName := seedDashboardReading(t, ilo, iom, unicef)

	dashURL := startUI(t, iom, "--country", "KH", "--period", "2027")
	base := strings.SplitN(dashURL, "/?", 2)[0]
	checkTokenGate(t, base, dashURL)
	checkBadInput(t, iom, base, dashURL[strings.Index(dashURL, "token=")+len("token="):])

	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	console := &consoleLog{}
	if err := chromedp.Listen(bctx, console.record); err != nil {
		t.Fatalf("starting Chromium (%s): %v", chromium, err)
	}
	if _, err := chromedp.Call(bctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, ctx: bctx, console: console, artefacts: artefacts}

	// The printed URL: the token is traded for an HttpOnly, SameSite=Strict
	// cookie and leaves the address bar.
	b.do(chromedp.Navigate(dashURL))
	loc := run(b, chromedp.Location())
	if strings.Contains(loc, "token") || !strings.HasSuffix(loc, "/coverage") {
		t.Errorf("after the first visit the browser is at %s, want %s/coverage without the token", loc, base)
	}
	cookies, err := chromedp.Call(bctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cookies.Cookies) != 1 || !cookies.Cookies[0].HTTPOnly || cookies.Cookies[0].SameSite != network.CookieSameSiteStrict {
		t.Errorf("cookies after the first visit: %+v, want one HttpOnly SameSite=Strict cookie", cookies.Cookies)
	}

	t.Run("coverage", func(t *testing.T) { checkCoveragePage(t, b.with(t), iom, base) })
	t.Run("referrals", func(t *testing.T) { checkReferralsPage(t, b.with(t), iom, base) })
	t.Run("datasets", func(t *testing.T) { checkDatasetsPages(t, b.with(t), iom, base) })
	t.Run("directory", func(t *testing.T) { checkDirectoryPage(t, b.with(t), iom, base) })
	t.Run("reports", func(t *testing.T) { checkReportsPages(t, b.with(t), iom, base, reportName) })
	t.Run("consultants", func(t *testing.T) { checkConsultantsPage(t, b.with(t), iom, base) })
	t.Run("documents", func(t *testing.T) { checkDocumentsPage(t, b.with(t), iom, base) })
	t.Run("phone", func(t *testing.T) {
		b := b.with(t)
		b.do(chromedp.EmulateViewport(390, 844))
		for _, p := range []string{"coverage", "referrals", "datasets/ilo/returns-kh", "directory", "reports", "reports/" + reportName, "consultants", "documents"} {
			shot := "phone-" + strings.ReplaceAll(p, "/", "-")
			if strings.HasPrefix(p, "reports/") {
				shot = "phone-report" // not the report's id, new each run
			}
			b.visit(base+"/"+p, shot)
			// Wide tables scroll inside their own box; the page itself
			// does not scroll sideways.
			if w := run(b, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`)); w > 0 {
				t.Errorf("%s at phone width scrolls sideways by %dpx", p, w)
			}
			// Referrals stack as cards: every action is on screen
			// without scrolling a table sideways.
			if p == "referrals" {
				off := run(b, chromedp.Evaluate[int](`[...document.querySelectorAll("form.action button")].filter(b => b.getBoundingClientRect().right > window.innerWidth).length`))
				if off > 0 {
					t.Errorf("at phone width %d lifecycle buttons lie beyond the right edge", off)
				}
			}
		}
	})

	t.Run("secretariat sees counts only", func(t *testing.T) { checkSecretariatReferrals(t, sec) })
}

// chromiumPath returns the Chromium binary to drive, or "" when none is
// installed. $CHROMIUM overrides the search.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artefactsDir returns where the test saves screenshots: $TEST_ARTEFACTS,
// else artefacts/dashboard at the repository's root (ignored by git).
func artefactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TEST_ARTEFACTS")
	if dir == "" {
		var err error
		if dir, err = filepath.Abs(filepath.Join("..", "artefacts")); err != nil {
			t.Fatal(err)
		}
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots go to %s", dir)
	return dir
}

// uiURLPattern finds the URL 'exchangectl ui' prints.
var uiURLPattern = regexp.MustCompile(`^Dashboard: (http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{43})$`)

// startUI starts 'exchangectl ui' in s with args and returns the URL it
// prints. At cleanup it is interrupted (as by Ctrl-C) and must exit 0.
func startUI(t *testing.T, s session, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin("exchangectl"), append([]string{"ui"}, args...)...)
	cmd.Dir = s.dir
	cmd.Env = baseEnv()
	for k, v := range s.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if m := uiURLPattern.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, pipe)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("exchangectl ui exited with %v after SIGINT, want 0\nstderr:\n%s", err, stderr)
			}
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			t.Errorf("exchangectl ui did not stop within %v of SIGINT", stopTimeout)
		}
	})
	select {
	case u := <-urls:
		return u
	case err := <-exited:
		t.Fatalf("exchangectl ui exited (%v) before printing its URL\nstderr:\n%s", err, stderr)
	case <-time.After(startTimeout):
		t.Fatalf("exchangectl ui printed no URL within %v\nstderr:\n%s", startTimeout, stderr)
	}
	return ""
}

// checkTokenGate checks, with a plain HTTP client, that every request
// without the token or its cookie is refused, that a POST must echo the
// token, and that pages carry the security headers.
func checkTokenGate(t *testing.T, base, dashURL string) {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(url string, cookie string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	token := dashURL[strings.Index(dashURL, "token=")+len("token="):]
	for _, path := range []string{"/", "/coverage", "/referrals", "/datasets", "/directory", "/reports", "/consultants", "/documents", "/static/app.css", "/coverage?token=wrong" + token[5:]} {
		if resp := get(base+path, ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s without the cookie: %s, want 403", path, resp.Status)
		}
	}
	if resp := get(base+"/coverage", "exchange_ui=not-the-token"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /coverage with a wrong cookie: %s, want 403", resp.Status)
	}
	// A page of another site whose name was rebound to 127.0.0.1 sends its
	// own name as Host: refused even with the token.
	rebound, err := http.NewRequest(http.MethodGet, dashURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	rebound.Host = "attacker.example" + base[strings.LastIndex(base, ":"):]
	if resp, err := noRedirect.Do(rebound); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET with Host %s: %s, want 403", rebound.Host, resp.Status)
	}
	first := get(dashURL, "")
	if first.StatusCode != http.StatusSeeOther || strings.Contains(first.Header.Get("Location"), "token") {
		t.Errorf("the printed URL answers %s, Location %q: want 303 to the URL without the token", first.Status, first.Header.Get("Location"))
	}
	cookie := first.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("the cookie %q is not %s", cookie, want)
		}
	}
	page := get(base+"/coverage", "exchange_ui="+token)
	if page.StatusCode != http.StatusOK {
		t.Errorf("GET /coverage with the cookie: %s, want 200", page.Status)
	}
	for header, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		"Cache-Control":           "no-store",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := page.Header.Get(header); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	// A POST with the cookie but without the token in the form (what a
	// forged cross-site form would send, had the browser sent the cookie).
	req, err := http.NewRequest(http.MethodPost, base+"/referrals/"+strings.Repeat("a", 26)+"/accept", strings.NewReader("etag="))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "exchange_ui="+token)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without the form token: %s, want 403", resp.Status)
	}
}

// consoleLog collects the console errors, uncaught exceptions and
// browser log errors (failed loads, CSP violations) of the tab.
type consoleLog struct {
	mu     sync.Mutex
	errors []string
}

// record is the tab's event listener; it must return fast.
func (c *consoleLog) record(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			msg = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
		}
	case *runtime.EventExceptionThrown:
		msg = "uncaught exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			msg = "browser log: " + ev.Entry.Text + " " + ev.Entry.URL
		}
	}
	if msg != "" {
		c.mu.Lock()
		c.errors = append(c.errors, msg)
		c.mu.Unlock()
	}
}

// take returns and clears the errors collected.
func (c *consoleLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errors
	c.errors = nil
	return out
}

// browser is the tab a (sub)test drives.
type browser struct {
	t         *testing.T
	ctx       context.Context
	console   *consoleLog
	artefacts string
}

// with returns the browser for subtest t.
func (b *browser) with(t *testing.T) *browser {
	c := *b
	c.t = t
	return &c
}

// do runs actions and fails the test on error.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("chromedp: %v", err)
	}
}

// run runs one action with a result and fails the test on error.
func run[T any](b *browser, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("chromedp: %v", err)
	}
	return v
}

// visit opens url, saves a full-page screenshot as shot.png, runs the
// accessibility check and fails on any console error the page caused.
func (b *browser) visit(url, shot string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
	b.settle(shot)
}

// settle checks the page the browser is on (after a navigation or a
// form's submission): screenshot, accessibility, console.
func (b *browser) settle(shot string) {
	b.t.Helper()
	png := run(b, chromedp.FullScreenshot(100))
	path := filepath.Join(b.artefacts, shot+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	for _, p := range run(b, chromedp.Evaluate[[]string](accessibilityCheck)) {
		b.t.Errorf("accessibility (%s): %s", shot, p)
	}
	for _, e := range b.console.take() {
		b.t.Errorf("console (%s): %s", shot, e)
	}
}

// accessibilityCheck is a small audit run in the page: the page has a
// language and a title; every form control has a label; images have alt
// text and SVG images a name; one h1 and no skipped heading level;
// buttons have text; text contrasts with its background by at least 4.5:1
// (3:1 for large text), as WCAG 2 AA asks. It returns the problems found.
const accessibilityCheck = `(() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("html has no lang");
  if (!document.title.trim()) problems.push("the page has no title");
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
      problems.push("form control without a label: " + (el.id || el.name));
  }
  for (const el of document.querySelectorAll("button"))
    if (!el.textContent.trim() && !el.getAttribute("aria-label")) problems.push("button without text");
  for (const el of document.querySelectorAll("img"))
    if (!el.hasAttribute("alt")) problems.push("image without alt: " + el.src);
  for (const el of document.querySelectorAll("svg[role=img]"))
    if (!el.getAttribute("aria-labelledby") && !el.getAttribute("aria-label")) problems.push("SVG image without a name");
  const h1s = document.querySelectorAll("h1").length;
  if (h1s !== 1) problems.push("want one h1, have " + h1s);
  let prev = 0;
  for (const h of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const level = Number(h.tagName[1]);
    if (level > prev + 1) problems.push(h.tagName + " " + JSON.stringify(h.textContent.trim()) + " skips a level after h" + prev);
    prev = level;
  }
  const luminance = (css) => {
    const m = css.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    if (p.length > 3 && p[3] === 0) return null;
    const lin = p.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const l = luminance(getComputedStyle(e).backgroundColor);
      if (l !== null) return l;
    }
    return 1;
  };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || !el || seen.has(el) || el.closest("svg")) continue;
    seen.add(el);
    const st = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (st.visibility === "hidden" || box.width === 0 || box.right < 0) continue;
    const fg = luminance(st.color);
    if (fg === null) continue;
    const bg = background(el);
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(st.fontSize);
    const need = size >= 24 || (Number(st.fontWeight) >= 700 && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) problems.push("contrast " + ratio.toFixed(2) + " < " + need + " for " + JSON.stringify(el.textContent.trim().slice(0, 40)));
  }
  return problems;
})()`

// coverageCell is a cell of the coverage grid as the page shows it.
type coverageCell struct {
	Province string `json:"province"`
	Niche    string `json:"niche"`
	Agencies string `json:"agencies"`
	Class    string `json:"class"`
}

// checkCoveragePage compares the grid with the plans service's coverage.
func checkCoveragePage(t *testing.T, b *browser, s session, base string) {
	b.visit(base+"/coverage", "coverage")
	cells := run(b, chromedp.Evaluate[[]coverageCell](`[...document.querySelectorAll("#coverage-grid td[data-niche]")].map(td => ({
		province: td.dataset.province, niche: td.dataset.niche, agencies: td.dataset.agencies, class: td.className.replace("cell ", "")}))`))
	api := &exchangev1.GetCoverageResponse{}
	s.jsonOne(t, api, "plans", "coverage", "--country", "KH", "--period", "2027")
	if len(api.GetCells()) == 0 {
		t.Fatal("the API shows no coverage: the seeding failed")
	}
	shown := map[string]coverageCell{}
	withAgencies := 0
	for _, c := range cells {
		shown[c.Province+"|"+c.Niche] = c
		if c.Agencies != "" {
			withAgencies++
		}
	}
	for _, c := range api.GetCells() {
		var ids []string
		for _, a := range c.GetAgencies() {
			ids = append(ids, client.ResourceID(a))
		}
		niche := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(c.GetNiche().String(), "NICHE_")), "_", "-")
		key := c.GetSubdivision() + "|" + niche
		got, ok := shown[key]
		if !ok {
			t.Errorf("the grid has no cell for %s", key)
			continue
		}
		if got.Agencies != strings.Join(ids, ", ") {
			t.Errorf("cell %s shows agencies %q, the API %q", key, got.Agencies, strings.Join(ids, ", "))
		}
		wantClass := "covered"
		if len(ids) > 1 {
			wantClass = "overlap"
		}
		if got.Class != wantClass {
			t.Errorf("cell %s is marked %q, want %q", key, got.Class, wantClass)
		}
	}
	if withAgencies != len(api.GetCells()) {
		t.Errorf("the grid shows %d cells with agencies, the API %d", withAgencies, len(api.GetCells()))
	}
	if c := shown["KH-1|prevention"]; c.Class != "overlap" {
		t.Errorf("KH-1 prevention, planned by ILO and UNICEF, is marked %q, want overlap", c.Class)
	}
	gaps := &exchangev1.FindGapsResponse{}
	s.jsonOne(t, gaps, "plans", "gaps", "--country", "KH", "--period", "2027", "--niche", "prevention,child-protection")
	for _, g := range gaps.GetGaps() {
		niche := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(g.GetNiche().String(), "NICHE_")), "_", "-")
		if c := shown[g.GetSubdivision()+"|"+niche]; c.Class != "gap" {
			t.Errorf("the API's gap %s %s is marked %q on the page", g.GetSubdivision(), niche, c.Class)
		}
	}
	overlaps := run(b, chromedp.Evaluate[int](`document.querySelectorAll("#overlaps tbody tr").length`))
	apiOverlaps := jsonList(t, s, func() *exchangev1.PlanOverlap { return &exchangev1.PlanOverlap{} }, "plans", "overlaps", "--country", "KH", "--period", "2027")
	if overlaps != len(apiOverlaps) || overlaps == 0 {
		t.Errorf("the page lists %d overlaps, the API %d (want at least 1)", overlaps, len(apiOverlaps))
	}
}

// checkReferralsPage compares inbox and outbox with the API, checks no
// identifying detail reaches the page, reaches the first action by
// keyboard, and acknowledges a referral by clicking.
func checkReferralsPage(t *testing.T, b *browser, s session, base string) {
	b.visit(base+"/referrals", "referrals")
	for box, section := range map[string]string{"inbox": "Inbox", "outbox": "Outbox"} {
		ids := run(b, chromedp.Evaluate[[]string](fmt.Sprintf(`[...document.querySelectorAll("#%s tr[data-referral]")].map(tr => tr.dataset.referral)`, section)))
		var want []string
		for _, r := range jsonList(t, s, func() *exchangev1.Referral { return &exchangev1.Referral{} }, "referrals", box) {
			want = append(want, client.ResourceID(r.GetName()))
		}
		slices.Sort(ids)
		slices.Sort(want)
		if !slices.Equal(ids, want) || len(want) == 0 {
			t.Errorf("the %s shows %v, the API %v (want some)", box, ids, want)
		}
	}
	text := run(b, chromedp.Evaluate[string](`document.body.innerText`))
	for _, name := range []string{"Person One", "Person Two", "Person Three", "Person Four"} {
		if strings.Contains(text, name) {
			t.Errorf("the referrals page shows the name %q", name)
		}
	}
	for _, d := range run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("tr[data-referral] td.details")].map(td => td.textContent)`)) {
		if d != "sealed" {
			t.Errorf("a referral's identifying details show as %q, want sealed", d)
		}
	}

	// Keyboard: Tab from the top of the page reaches the first action.
	reached := false
	for i := 0; i < 60 && !reached; i++ {
		b.do(chromedp.KeyEvent(kb.Tab))
		reached = run(b, chromedp.Evaluate[bool](`document.activeElement === document.querySelector("form.action button, form.action input:not([type=hidden]), form.action select")`))
	}
	if !reached {
		t.Error("60 presses of Tab do not reach the first lifecycle action")
	}

	// Acknowledge the first referral in the inbox by clicking.
	id := run(b, chromedp.Evaluate[string](`document.querySelector("#Inbox tr[data-referral]").dataset.referral`))
	b.do(
		chromedp.Click(chromedp.CSS(`#Inbox tr[data-referral="`+id+`"] button.verb-acknowledge`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
	)
	b.settle("referrals-after-acknowledge")
	got := &exchangev1.Referral{}
	s.jsonOne(t, got, "referrals", "show", id)
	if got.GetState() != exchangev1.ReferralState_REFERRAL_STATE_RECEIVED {
		t.Errorf("after clicking acknowledge the API says referral %s is %v, want RECEIVED", id, got.GetState())
	}
	if state := run(b, chromedp.Evaluate[string](`document.querySelector('#Inbox tr[data-referral="`+id+`"]').dataset.state`)); state != "received" {
		t.Errorf("after acknowledging, the page shows referral %s as %q, want received", id, state)
	}
	// The verbs offered follow the state and the side.
	verbs := func(sel string) []string {
		return run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll('`+sel+` button')].map(b => b.textContent)`))
	}
	if got := verbs(`#Inbox tr[data-referral="` + id + `"]`); !slices.Equal(got, []string{"accept", "reject"}) {
		t.Errorf("a received referral in the inbox offers %v, want [accept reject]", got)
	}
	if got := verbs(`#Outbox tr[data-referral]`); !slices.Equal(got, []string{"cancel"}) {
		t.Errorf("a requested referral in the outbox offers %v, want [cancel]", got)
	}
}

// datasetBar is one bar of the chart.
type datasetBar struct {
	Period string `json:"period"`
	Value  string `json:"value"`
	Hidden bool   `json:"hidden"`
}

// checkDatasetsPages compares the list, the locks, the completeness and
// the chart with the API.
func checkDatasetsPages(t *testing.T, b *browser, s session, base string) {
	b.visit(base+"/datasets", "datasets")
	links := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#datasets a")].map(a => a.textContent)`))
	var want []string
	for _, d := range jsonList(t, s, func() *exchangev1.Dataset { return &exchangev1.Dataset{} }, "datasets", "list") {
		want = append(want, client.ResourceID(d.GetOwner())+"/"+client.ResourceID(d.GetName()))
	}
	if !slices.Equal(links, want) || len(want) == 0 {
		t.Errorf("the datasets page lists %v, the API %v", links, want)
	}
	b.do(chromedp.Click(chromedp.CSS(`#datasets a[href="/datasets/ilo/returns-kh"]`)), chromedp.WaitReady(chromedp.CSS("#periods")))
	b.settle("dataset")

	locked := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#periods li.locked")].map(li => li.dataset.period)`))
	if !slices.Equal(locked, []string{"2026-10"}) {
		t.Errorf("the page shows locked periods %v, want [2026-10]", locked)
	}
	for _, period := range []string{"2026-10", "2026-11"} {
		api := &exchangev1.GetDatasetCompletenessResponse{}
		s.jsonOne(t, api, "datasets", "completeness", "ilo/returns-kh", period)
		for _, c := range api.GetContributors() {
			who := client.ResourceID(c.GetContributor())
			got := run(b, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector('#completeness td[data-contributor="%s"][data-period="%s"]') || {dataset: {rows: "absent"}}).dataset.rows`, who, period)))
			if got != fmt.Sprint(c.GetRows()) {
				t.Errorf("completeness of %s in %s: the page shows %s rows, the API %d", who, period, got, c.GetRows())
			}
		}
	}
	bars := run(b, chromedp.Evaluate[[]datasetBar](`[...document.querySelectorAll("#chart rect.bar")].map(r => ({period: r.dataset.period, value: r.dataset.value || "", hidden: r.classList.contains("hidden")}))`))
	agg := &exchangev1.AggregateDatasetRowsResponse{}
	s.jsonOne(t, agg, "datasets", "aggregate", "ilo/returns-kh", "--by", "period", "--suppress-below", "5")
	sums := map[string]string{}
	for _, c := range agg.GetCells() {
		sums[c.GetGroup()["period"]] = fmt.Sprint(c.GetSums()["returned"])
	}
	hidden := 0
	for _, bar := range bars {
		want, ok := sums[bar.Period]
		switch {
		case bar.Hidden:
			hidden++
			if ok {
				t.Errorf("the chart hides %s, whose total the API returns (%s)", bar.Period, want)
			}
		case bar.Value != want:
			t.Errorf("the chart's bar for %s shows %q, the API's total is %q", bar.Period, bar.Value, want)
		}
	}
	if len(bars) != 2 || hidden != int(agg.GetSuppressedCells()) || hidden != 1 {
		t.Errorf("the chart has %d bars, %d hidden; the API suppressed %d cells (want 2 bars, November's small total hidden)", len(bars), hidden, agg.GetSuppressedCells())
	}
}

// checkDirectoryPage compares agencies with the API and checks that past
// focal points show as past and the working group as it was made.
func checkDirectoryPage(t *testing.T, b *browser, s session, base string) {
	b.visit(base+"/directory", "directory")
	shown := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#agencies tr[data-agency]")].map(tr => tr.dataset.agency)`))
	var want []string
	for _, a := range jsonList(t, s, func() *exchangev1.Agency { return &exchangev1.Agency{} }, "agencies", "list") {
		want = append(want, client.ResourceID(a.GetName()))
	}
	slices.Sort(shown)
	slices.Sort(want)
	if !slices.Equal(shown, want) {
		t.Errorf("the directory lists agencies %v, the API %v", shown, want)
	}
	rows := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#focal-points tbody tr")].map(tr => tr.innerText.replace(/\s+/g, " ").trim())`))
	if len(rows) != 2 || !strings.Contains(rows[0], "Dara C.") || !strings.HasSuffix(rows[0], "current") ||
		!strings.Contains(rows[1], "Sokha V.") || !strings.HasSuffix(rows[1], "past") {
		t.Errorf("focal points shown: %q, want Dara C. current, then Sokha V. past", rows)
	}
	groups := run(b, chromedp.Evaluate[string](`document.querySelector("#working-groups tbody").innerText`))
	for _, want := range []string{"unwg", "secretariat: ilo", "member: iom, unicef", "observer: world-vision"} {
		if !strings.Contains(groups, want) {
			t.Errorf("the working groups table does not show %q:\n%s", want, groups)
		}
	}
}

// checkSecretariatReferrals starts the dashboard as the secretariat and
// checks that its referrals page has the network-wide counts the API
// gives, and no referral.
func checkSecretariatReferrals(t *testing.T, sec session) {
	dashURL := startUI(t, sec)
	base := strings.SplitN(dashURL, "/?", 2)[0]
	token := dashURL[strings.Index(dashURL, "token=")+len("token="):]
	req, err := http.NewRequest(http.MethodGet, base+"/referrals", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", "exchange_ui="+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the secretariat's referrals page: %s\n%s", resp.Status, page)
	}
	if strings.Contains(page, "data-referral=") || strings.Contains(page, "Person ") {
		t.Error("the secretariat's referrals page shows referrals")
	}
	// 4 referrals in all: 1 received (acknowledged above), 3 requested.
	for _, want := range []string{`<span class="state">requested</span> <span class="count">3</span>`, `<span class="state">received</span> <span class="count">1</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the secretariat's counts do not show %s\n%s", want, page)
		}
	}
}

// checkBadInput sends the dashboard bad input: each answer is a 400 page
// that names the field, and nothing changes.
func checkBadInput(t *testing.T, s session, base, token string) {
	t.Helper()
	outbox := jsonList(t, s, func() *exchangev1.Referral { return &exchangev1.Referral{} }, "referrals", "outbox")
	if len(outbox) == 0 {
		t.Fatal("iom's outbox is empty: the seeding failed")
	}
	id := client.ResourceID(outbox[0].GetName())
	send := func(method, path, form string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Cookie", "exchange_ui="+token)
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, c := range []struct{ method, path, form, want string }{
		{http.MethodGet, "/coverage?country=Cambodia", "", "country: &#34;CAMBODIA&#34; is not a two-letter ISO 3166-1 code"},
		{http.MethodGet, "/coverage?country=KH&period=next", "", "period: &#34;next&#34; is not a year"},
		{http.MethodGet, "/datasets/ilo/returns-kh?measure=main_service", "", "measure: &#34;main_service&#34; is not a numeric measure"},
		{http.MethodPost, "/referrals/" + id + "/cancel", "csrf=" + token + "&reason=", "cancel reason: required"},
		{http.MethodPost, "/referrals/" + id + "/reject", "csrf=" + token + "&reason=maybe", "rejection reason: &#34;maybe&#34; is not one of the code list"},
		{http.MethodPost, "/referrals/not-an-id/accept", "csrf=" + token, "referral: &#34;not-an-id&#34; is not a referral id"},
	} {
		code, body := send(c.method, c.path, c.form)
		if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d, want 400 saying %q\n%s", c.method, c.path, code, c.want, body)
		}
	}
	after := &exchangev1.Referral{}
	s.jsonOne(t, after, "referrals", "show", id)
	if after.GetState() != outbox[0].GetState() || after.GetEtag() != outbox[0].GetEtag() {
		t.Errorf("bad input changed referral %s: %v (etag %s), was %v (etag %s)", id, after.GetState(), after.GetEtag(), outbox[0].GetState(), outbox[0].GetEtag())
	}
}
