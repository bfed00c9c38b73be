package reportprint

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// sampleReport is a submitted report with referrals in three states.
func sampleReport() *exchangev1.Report {
	d := func(y, m, day int32) *exchangev1.CalendarDate {
		return &exchangev1.CalendarDate{Year: y, Month: m, Day: day}
	}
	return &exchangev1.Report{
		Name: "agencies/ngo-kh/reports/01jd0000000000000000000000", Owner: "agencies/ngo-kh",
		Title: "Quarterly progress report Q2 FY2026", FiscalYear: 2026, FiscalYearStartMonth: 7, Quarter: 2,
		Period: &exchangev1.DatePeriod{Start: d(2026, 10, 1), End: d(2026, 12, 31)},
		State:  exchangev1.ReportState_REPORT_STATE_SUBMITTED, Version: 1, SubmitTime: timestamppb.New(time.Date(2027, 1, 8, 9, 0, 0, 0, time.UTC)),
		Summary:  "Shelter capacity doubled in Battambang.\n\nTwo referral pathways agreed with the province.",
		Progress: "Forty focal points trained.", Challenges: "Border closures in November.", NextQuarter: "Open the second shelter.",
		Figures: &exchangev1.ReportFigures{
			ReferralsTotal: 29,
			ReferralsByState: []*exchangev1.ReportStateCount{
				{State: exchangev1.ReferralState_REFERRAL_STATE_REQUESTED, Count: 17},
				{State: exchangev1.ReferralState_REFERRAL_STATE_RECEIVED, Count: 9},
				{State: exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED, Count: 3},
			},
			ReferralsByNiche:    []*exchangev1.ReportNicheCount{{Niche: exchangev1.Niche_NICHE_SHELTER, Count: 29}},
			ReferralsByLocation: []*exchangev1.ReportLocationCount{{Location: "KH-2", Count: 21}, {Location: "KH-12", Count: 8}},
			Plans: []*exchangev1.ReportPlanLine{{Plan: "agencies/ngo-kh/plans/01jd0000000000000000000001", Title: "Safe shelters",
				Stage: exchangev1.PlanStage_PLAN_STAGE_IN_IMPLEMENTATION, PlannedPeriod: &exchangev1.DatePeriod{Start: d(2026, 1, 1), End: d(2027, 12, 31)},
				CurrencyCode: "USD", TotalAmount: "120000",
				PeriodBudgetLines: []*exchangev1.PlanBudgetLine{{Period: &exchangev1.DatePeriod{Start: d(2026, 10, 1), End: d(2026, 12, 31)}, Amount: "30000",
					Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_COMMITTED}}}},
			Datasets: []*exchangev1.ReportDatasetTotals{{Dataset: "agencies/ngo-kh/datasets/returns", Title: "Returned victims assisted",
				PeriodFrom: "2026-10", PeriodTo: "2026-12", Sums: map[string]float64{"cases": 45, "spend": 1250.5}, RoundingBase: 5}},
		},
	}
}

func TestHTMLHoldsTheFiguresNarrativeAndChart(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{"Quarterly progress report Q2 FY2026", "1 October 2026", "31 December 2026", ">29<",
		"Requested (17)", "Received (9)", "Accepted (3)", "Shelter", "KH-2", "Safe shelters", "120000 USD", "30000 USD (Committed)",
		"<p>Two referral pathways agreed with the province.</p>", "Returned victims assisted", "2026-10 – 2026-12", "cases 45<br>spend 1250.5", "Forty focal points trained.", "<svg", `fill="` + ChartBarColor + `"`} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(html, "http://") && !strings.Contains(html, `xmlns="http://www.w3.org/2000/svg"`) || strings.Contains(html, "https://") || strings.Contains(html, "<script") {
		t.Error("the page fetches or runs something: it must be self-contained")
	}
	// The longest bar is the largest count, and bars are proportional.
	c := newChart(sampleReport().GetFigures().GetReferralsByState())
	if c.Bars[0].Width <= c.Bars[1].Width || c.Bars[1].Width <= c.Bars[2].Width {
		t.Errorf("bar widths %d %d %d are not ordered as the counts 17 9 3", c.Bars[0].Width, c.Bars[1].Width, c.Bars[2].Width)
	}
	// Narrative is text, never markup.
	r := sampleReport()
	r.Summary = `<script>alert(1)</script>`
	b.Reset()
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<script>alert") {
		t.Error("narrative markup reached the page unescaped")
	}
}

// printed prints r to PDF and returns the PDF's path; it skips when
// Chromium or poppler-utils are missing.
func printed(t *testing.T, r *exchangev1.Report) string {
	t.Helper()
	chromium := ChromiumPath()
	if chromium == "" {
		t.Skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it): the report's PDF cannot be printed")
	}
	for _, tool := range []string{"pdfinfo", "pdftotext", "pdftoppm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is missing (Debian: apt-get install poppler-utils; .ci/run installs it): the printed report cannot be checked", tool)
		}
	}
	dir := t.TempDir()
	htmlPath, pdfPath := filepath.Join(dir, "report.html"), filepath.Join(dir, "report.pdf")
	var b bytes.Buffer
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(htmlPath, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	pdf, err := PDF(ctx, chromium, htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("printed %d bytes of PDF in %v", len(pdf), time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile(pdfPath, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	return pdfPath
}

// tool runs a poppler tool and returns its output.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// barPixels renders the PDF's first page to PNG at 100 dpi and counts the
// pixels in the bar colour, and all non-white pixels, inside the chart's
// band: the rows between the first and last bar-coloured row.
func barPixels(t *testing.T, pdfPath string) (bars, ink int) {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "page")
	tool(t, "pdftoppm", "-png", "-r", "100", "-f", "1", "-l", "1", "-singlefile", pdfPath, prefix)
	f, err := os.Open(prefix + ".png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	want := [3]int{0x1f, 0x5f, 0xa8}
	isBar := func(x, y int) bool {
		r, g, b, _ := img.At(x, y).RGBA()
		got := [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
		for i := range got {
			if d := got[i] - want[i]; d < -12 || d > 12 {
				return false
			}
		}
		return true
	}
	bounds := img.Bounds()
	top, bottom := -1, -1
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			if isBar(x, y) {
				bars++
				if top < 0 {
					top = y
				}
				bottom = y
			}
		}
	}
	if top < 0 {
		return 0, 0
	}
	area := image.Rect(bounds.Min.X, top, bounds.Max.X, bottom+1)
	for y := area.Min.Y; y < area.Max.Y; y++ {
		for x := area.Min.X; x < area.Max.X; x++ {
			if r, g, b, _ := img.At(x, y).RGBA(); r < 0xf000 || g < 0xf000 || b < 0xf000 {
				ink++
			}
		}
	}
	return bars, ink
}

func TestPDFHasPagesFiguresAndAChart(t *testing.T) {
	// Chromium's profile goes to a temporary directory that is removed.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	pdfPath := printed(t, sampleReport())
	if left, err := filepath.Glob(filepath.Join(tmp, "exchangectl-chromium-*")); err != nil || len(left) > 0 {
		t.Fatalf("Chromium's profile was left behind: %v %v", left, err)
	}
	info := tool(t, "pdfinfo", pdfPath)
	pages := 0
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(line, "Pages:"); ok {
			pages, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if pages < 1 {
		t.Fatalf("the PDF has %d pages:\n%s", pages, info)
	}
	text := strings.Join(strings.Fields(tool(t, "pdftotext", pdfPath, "-")), " ")
	for _, want := range []string{"Quarterly progress report Q2 FY2026", "29", "Requested (17)", "Received (9)", "Accepted (3)",
		"KH-2 21", "KH-12 8", "Safe shelters", "Returned victims assisted", "cases 45", "120000 USD", "Shelter capacity doubled in Battambang.", "Open the second shelter."} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF's text lacks %q", want)
		}
	}
	bars, ink := barPixels(t, pdfPath)
	t.Logf("%d pages; chart: %d bar-coloured pixels, %d non-white pixels in its band (100 dpi)", pages, bars, ink)
	// Three bars of 22 CSS px (about 23 px at 100 dpi), the longest about
	// 360 CSS px: thousands of pixels, not a stray line.
	if bars < 2000 || ink < bars {
		t.Fatalf("the chart looks empty: %d bar pixels, %d non-white in its band", bars, ink)
	}

	// A quarter without referrals prints no bars.
	empty := sampleReport()
	empty.Figures.ReferralsByState, empty.Figures.ReferralsTotal = nil, 0
	if bars, _ := barPixels(t, printed(t, empty)); bars != 0 {
		t.Fatalf("a quarter without referrals printed %d bar pixels", bars)
	}
}
