package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// seedDashboardReading seeds what the reports, consultants and documents
// pages show to IOM: ILO's report to the working group unwg (IOM is a
// member) submitted twice with different narratives, a consultant UNICEF
// listed with consent and IOM booked, and a PDF UNICEF shared with unwg,
// downloaded once by IOM. It returns the report's name as the dashboard's
// URL holds it ("ilo/01jd…").
func seedDashboardReading(t *testing.T, ilo, iom, unicef session) string {
	t.Helper()
	now := time.Now().UTC()
	var draft exchangev1.Report
	ilo.jsonOne(t, &draft, "reports", "create", "--fiscal-year", strconv.Itoa(now.Year()), "--start-month", "1",
		"--quarter", strconv.Itoa((int(now.Month())-1)/3+1), "--title", "ILO progress report", "--group", "unwg")
	short := strings.Replace(strings.TrimPrefix(draft.GetName(), "agencies/"), "/reports/", "/", 1)
	ilo.ok(t, "reports", "update", short, "--summary", "First version: three referrals sent to IOM.", "--challenges", "Border closures.")
	ilo.ok(t, "reports", "submit", short)
	ilo.ok(t, "reports", "update", short, "--summary", "Second version: pathways agreed with IOM.")
	ilo.ok(t, "reports", "submit", short)

	var k exchangev1.Consultant
	unicef.jsonOne(t, &k, "consultants", "add", "--name", "Sok Dara", "--language", "km", "--language", "en",
		"--niche", "psychosocial-counselling", "--province", "KH-12", "--province", "KH-1", "--consent-on", day(-10), "--consent-note", "form CF-12")
	iom.ok(t, "consultants", "engage", k.GetName(), "--from", day(30), "--to", day(44), "--niche", "psychosocial-counselling",
		"--purpose", "training of shelter staff")
	// A second booking, cancelled: the page shows who holds which weeks.
	var dropped exchangev1.Engagement
	iom.jsonOne(t, &dropped, "consultants", "engage", k.GetName(), "--from", day(50), "--to", day(54), "--niche", "psychosocial-counselling",
		"--purpose", "case conference")
	iom.ok(t, "consultants", "cancel-engagement", dropped.GetName(), "--reason", "conference moved online")

	pdf := make([]byte, 3000)
	if _, err := rand.Read(pdf); err != nil {
		t.Fatal(err)
	}
	copy(pdf, "%PDF-1.7\n")
	var v exchangev1.DocumentVersion
	unicef.jsonOne(t, &v, "documents", "upload", writeFile(t, unicef.dir, "manual.pdf", pdf), "--title", "Case management manual",
		"--kind", "manual", "--niche", "prevention", "--country", "KH", "--share-group", "unwg")
	doc := strings.Replace(strings.TrimPrefix(strings.TrimSuffix(v.GetName(), "/versions/1"), "agencies/"), "/documents/", "/", 1)
	iom.ok(t, "documents", "download", doc, "-o", "manual.pdf")
	return short
}

// reportShown is what the report page shows of one version.
type reportShown struct {
	Version   string   `json:"version"`
	Total     string   `json:"total"`
	Narrative []string `json:"narrative"`
	ByState   []string `json:"byState"`
}

// checkReportsPages compares the reports list and every version of the
// seeded report with the API, and checks no link leads off the dashboard.
func checkReportsPages(t *testing.T, b *browser, s session, base, report string) {
	b.visit(base+"/reports", "reports")
	shown := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#reports tr[data-report]")].map(tr => tr.dataset.report)`))
	var want []string
	for _, r := range jsonList(t, s, func() *exchangev1.Report { return &exchangev1.Report{} }, "reports", "list") {
		want = append(want, strings.Replace(strings.TrimPrefix(r.GetName(), "agencies/"), "/reports/", "/", 1))
	}
	slices.Sort(shown)
	slices.Sort(want)
	if !slices.Equal(shown, want) || !slices.Contains(want, report) {
		t.Errorf("the reports page lists %v, the API %v (want %s among them)", shown, want, report)
	}
	b.do(chromedp.Click(chromedp.CSS(`#reports a[href="/reports/`+report+`"]`)), chromedp.WaitReady(chromedp.CSS("section.report-version")))
	b.settle("report")
	versions := run(b, chromedp.Evaluate[[]reportShown](`[...document.querySelectorAll("section.report-version")].map(s => ({
		version: s.dataset.version, total: s.querySelector("dd.total").textContent,
		narrative: [...s.querySelectorAll("p.narrative")].map(p => p.textContent),
		byState: [...s.querySelectorAll("table.by-state tbody tr")].map(tr => tr.dataset.label + " " + tr.querySelector("td.num").textContent)}))`))
	if len(versions) != 2 || versions[0].Version != "v2" || versions[1].Version != "v1" {
		t.Fatalf("the report page shows versions %+v, want v2 then v1", versions)
	}
	for i, v := range []int{2, 1} {
		api := &exchangev1.Report{}
		s.jsonOne(t, api, "reports", "get", report, "--version", strconv.Itoa(v))
		got := versions[i]
		var narrative, byState []string
		for _, text := range []string{api.GetSummary(), api.GetProgress(), api.GetChallenges(), api.GetNextQuarter()} {
			if text != "" {
				narrative = append(narrative, text)
			}
		}
		for _, c := range api.GetFigures().GetReferralsByState() {
			byState = append(byState, strings.ToLower(strings.TrimPrefix(c.GetState().String(), "REFERRAL_STATE_"))+" "+fmt.Sprint(c.GetCount()))
		}
		if got.Total != fmt.Sprint(api.GetFigures().GetReferralsTotal()) || !slices.Equal(got.Narrative, narrative) || !slices.Equal(got.ByState, byState) {
			t.Errorf("version %d: the page shows %+v; the API total %d, narrative %q, by state %v",
				v, got, api.GetFigures().GetReferralsTotal(), narrative, byState)
		}
	}
	if !strings.HasPrefix(versions[0].Narrative[0], "Second version") || !strings.HasPrefix(versions[1].Narrative[0], "First version") {
		t.Errorf("the versions' summaries are %q and %q, want the second's then the first's", versions[0].Narrative, versions[1].Narrative)
	}
	if off := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("a[href]")].map(a => a.href).filter(h => new URL(h).origin !== location.origin)`)); len(off) != 0 {
		t.Errorf("the report page links off the dashboard: %v", off)
	}
}

// consultantShown is a roster row as the page shows it.
type consultantShown struct {
	ID        string `json:"id"`
	Expertise string `json:"expertise"`
	Languages string `json:"languages"`
	Provinces string `json:"provinces"`
}

// checkConsultantsPage compares the roster and the engagements with the
// API.
func checkConsultantsPage(t *testing.T, b *browser, s session, base string) {
	b.visit(base+"/consultants", "consultants")
	rows := run(b, chromedp.Evaluate[[]consultantShown](`[...document.querySelectorAll("#consultants tr[data-consultant]")].map(tr => ({
		id: tr.dataset.consultant, expertise: tr.querySelector(".expertise").textContent,
		languages: tr.querySelector(".languages").textContent, provinces: tr.querySelector(".provinces").textContent}))`))
	api := jsonList(t, s, func() *exchangev1.Consultant { return &exchangev1.Consultant{} }, "consultants", "list")
	if len(rows) != len(api) || len(api) != 1 {
		t.Fatalf("the page lists %d consultants, the API %d (want 1)", len(rows), len(api))
	}
	k := api[0]
	var niches []string
	for _, n := range k.GetNiches() {
		niches = append(niches, strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(n.String(), "NICHE_")), "_", "-"))
	}
	want := consultantShown{
		ID:        strings.Replace(strings.TrimPrefix(k.GetName(), "agencies/"), "/consultants/", "/", 1),
		Expertise: strings.Join(niches, ", "), Languages: strings.Join(k.GetLanguages(), ", "), Provinces: strings.Join(k.GetProvinces(), ", "),
	}
	if rows[0] != want {
		t.Errorf("the roster shows %+v, the API %+v", rows[0], want)
	}
	engagements := run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#engagements tbody tr")].map(tr => tr.dataset.agency + " " + tr.cells[2].textContent + " " + tr.cells[3].textContent + " " + tr.cells[5].textContent)`))
	var wantEngagements []string
	cancelled := 0
	var shownByCLI struct {
		Engagements []json.RawMessage `json:"engagements"`
	}
	if out := s.ok(t, "--json", "consultants", "show", k.GetName()); json.Unmarshal([]byte(out), &shownByCLI) != nil {
		t.Fatalf("consultants show --json: not JSON\n%s", out)
	}
	for _, raw := range shownByCLI.Engagements {
		e := &exchangev1.Engagement{}
		if err := protojson.Unmarshal(raw, e); err != nil {
			t.Fatal(err)
		}
		if e.GetCancelTime() != nil {
			cancelled++
			continue
		}
		p := e.GetPeriod()
		wantEngagements = append(wantEngagements, fmt.Sprintf("%s %04d-%02d-%02d %04d-%02d-%02d %s", client.ResourceID(e.GetAgency()),
			p.GetStart().GetYear(), p.GetStart().GetMonth(), p.GetStart().GetDay(), p.GetEnd().GetYear(), p.GetEnd().GetMonth(), p.GetEnd().GetDay(), e.GetPurpose()))
	}
	if !slices.Equal(engagements, wantEngagements) || len(wantEngagements) != 1 || cancelled != 1 {
		t.Errorf("the page shows engagements %q, the API %q and %d cancelled (want IOM's standing one, and its cancelled one left out)", engagements, wantEngagements, cancelled)
	}
}

// documentShown is a document row as the page shows it.
type documentShown struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	Niches    string   `json:"niches"`
	Countries string   `json:"countries"`
	Versions  []string `json:"versions"`
}

// checkDocumentsPage compares the documents, their versions and their
// download counts with the API.
func checkDocumentsPage(t *testing.T, b *browser, s session, base string) {
	b.visit(base+"/documents", "documents")
	rows := run(b, chromedp.Evaluate[[]documentShown](`[...document.querySelectorAll("#documents tr[data-document]")].map(tr => ({
		id: tr.dataset.document, kind: tr.querySelector(".kind").textContent, niches: tr.querySelector(".niches").textContent,
		countries: tr.querySelector(".countries").textContent,
		versions: [...tr.querySelectorAll("li[data-version]")].map(li => li.dataset.version + ":" + li.dataset.downloads)}))`))
	api := jsonList(t, s, func() *exchangev1.Document { return &exchangev1.Document{} }, "documents", "list")
	if len(rows) != len(api) || len(api) != 1 {
		t.Fatalf("the page lists %d documents, the API %d (want 1)", len(rows), len(api))
	}
	d := api[0]
	id := strings.Replace(strings.TrimPrefix(d.GetName(), "agencies/"), "/documents/", "/", 1)
	want := documentShown{ID: id, Kind: "manual", Niches: "prevention", Countries: strings.Join(d.GetCountries(), ", ")}
	if d.GetKind() != exchangev1.DocumentKind_DOCUMENT_KIND_MANUAL {
		t.Errorf("the API says the document is a %v, seeded as a manual", d.GetKind())
	}
	versions := jsonList(t, s, func() *exchangev1.DocumentVersion { return &exchangev1.DocumentVersion{} }, "documents", "versions", id)
	for i := len(versions) - 1; i >= 0; i-- {
		want.Versions = append(want.Versions, fmt.Sprintf("%d:%d", versions[i].GetVersion(), versions[i].GetDownloadCount()))
	}
	if got := rows[0]; got.ID != want.ID || got.Kind != want.Kind || got.Niches != want.Niches || got.Countries != want.Countries ||
		!slices.Equal(got.Versions, want.Versions) || !slices.Equal(want.Versions, []string{"1:1"}) {
		t.Errorf("the documents page shows %+v, the API %+v (want version 1 downloaded once)", got, want)
	}
}
