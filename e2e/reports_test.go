package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestQuarterlyReportThroughTheCLI drafts a quarterly report through the
// real binaries, writes its narrative from a file, submits it, has the
// working group's observer read, comment on and print it (HTML and, with
// Chromium and poppler-utils, PDF), and checks that an agency outside the
// group gets the answer of a report that does not exist.
func TestQuarterlyReportThroughTheCLI(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	sessions := map[string]session{}
	for _, id := range []string{"ilo", "iom", "unicef"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency", "--country", "KH",
			"--niche", "psychosocial-counselling,prevention", "--coverage", "KH-12")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
		sessions[id] = agencySession(t, srv.addr, filepath.Join(dir, "certs-"+id), id)
	}
	ilo, iom, unicef := sessions["ilo"], sessions["iom"], sessions["unicef"]
	ilo.ok(t, "keys", "create") // referrals are sealed with the keys
	iom.ok(t, "keys", "create")
	sec.ok(t, "working-groups", "create", "unwg", "--name", "UN Working Group on Trafficking", "--kind", "working-group",
		"--member", "ilo", "--observer", "iom")
	push := writeFile(t, ilo.dir, "to-iom.jsonl", []byte(referralLine(t, "rep-1", "iom", "iom", "Person One")+"\n"+
		referralLine(t, "rep-2", "iom", "iom", "Person Two")+"\n"))
	ilo.ok(t, "referrals", "push", "-f", push)

	// The quarter of ILO's July fiscal year that holds today.
	now := time.Now().UTC()
	months := now.Year()*12 + int(now.Month()) - 1 - 6
	fy, q := strconv.Itoa(months/12), strconv.Itoa(months%12/3+1)

	var draft exchangev1.Report
	ilo.jsonOne(t, &draft, "reports", "create", "--fiscal-year", fy, "--start-month", "7", "--quarter", q,
		"--title", "ILO progress report", "--group", "unwg")
	newReferral := func() *exchangev1.Referral { return new(exchangev1.Referral) }
	sent := append(jsonList(t, ilo, newReferral, "referrals", "outbox"), jsonList(t, ilo, newReferral, "referrals", "inbox")...)
	if got := draft.GetFigures().GetReferralsTotal(); got != int64(len(sent)) || got != 2 {
		t.Fatalf("prefilled %d referrals; 'referrals outbox' and 'inbox' show %d, and 2 were sent", got, len(sent))
	}
	short := strings.Replace(strings.TrimPrefix(draft.GetName(), "agencies/"), "/reports/", "/", 1)
	iom.fails(t, 3, []string{"not found"}, "reports", "get", short) // a draft is the owner's alone

	summary := writeFile(t, ilo.dir, "summary.txt", []byte("Two survivors referred to IOM for counselling.\n\nPathways agreed."))
	ilo.ok(t, "reports", "update", short, "--summary", "@"+summary, "--challenges", "Border closures.")
	ilo.ok(t, "reports", "submit", short)

	var read exchangev1.Report
	iom.jsonOne(t, &read, "reports", "get", short)
	if read.GetVersion() != 1 || !strings.HasPrefix(read.GetSummary(), "Two survivors referred") || read.GetChallenges() != "Border closures." {
		t.Fatalf("the observer reads %v", &read)
	}
	iom.ok(t, "reports", "comment", short, "Thank you; shall we align pathways?")
	if out := ilo.ok(t, "reports", "comments", short); !strings.Contains(out, "agencies/iom") {
		t.Fatalf("the owner does not see the observer's comment:\n%s", out)
	}

	// The outsider: the same exit, and the same message but for the name,
	// as for an id nothing has.
	twin := short[:strings.Index(short, "/")+1] + strings.Repeat("z", 26)
	hidden := unicef.fails(t, 3, []string{"not found"}, "reports", "get", short)
	missing := unicef.fails(t, 3, []string{"not found"}, "reports", "get", twin)
	if strings.ReplaceAll(hidden.stderr, strings.TrimPrefix(short, "ilo/"), strings.Repeat("z", 26)) != missing.stderr {
		t.Fatalf("a hidden report answers unlike a missing one:\n%s\nvs\n%s", hidden.stderr, missing.stderr)
	}

	// Printing: the HTML always; the PDF when Chromium and poppler are here.
	htmlPath := filepath.Join(iom.dir, "report.html")
	args := []string{"reports", "export", short, "--html", "report.html"}
	chromium, pdftotext := chromiumPath(), ""
	if p, err := exec.LookPath("pdftotext"); err == nil {
		pdftotext = p
	}
	if chromium != "" && pdftotext != "" {
		args = append(args, "--pdf", "report.pdf")
	} else {
		t.Log("Chromium or pdftotext (poppler-utils) is missing: the PDF is not printed here (the reportprint tests say which)")
	}
	iom.ok(t, args...)
	page, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ILO progress report", "Requested (2)", "Two survivors referred to IOM for counselling.", "<svg"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the HTML lacks %q", want)
		}
	}
	if len(args) > 5 {
		out, err := exec.Command(pdftotext, filepath.Join(iom.dir, "report.pdf"), "-").CombinedOutput()
		if err != nil {
			t.Fatalf("pdftotext: %v\n%s", err, out)
		}
		text := strings.Join(strings.Fields(string(out)), " ")
		for _, want := range []string{"ILO progress report", "Requested (2)", "KH-12 2", "Pathways agreed."} {
			if !strings.Contains(text, want) {
				t.Errorf("the PDF's text lacks %q:\n%s", want, text)
			}
		}
	}
}
