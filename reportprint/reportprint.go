// Package reportprint renders a quarterly progress report
// (exchangev1.Report) as a printable HTML page, with embedded CSS and an
// inline SVG bar chart of referrals by state, and prints that page to PDF
// with headless Chromium (page.PrintToPDF through chromedp).
//
// The page needs nothing from the network: no fonts, scripts or images
// are fetched, so it prints the same offline and leaks nothing about who
// opens it.
package reportprint

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

//go:embed report.html.tmpl
var templates embed.FS

var page = template.Must(template.New("report.html.tmpl").Funcs(template.FuncMap{
	"date":   formatDate,
	"number": func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) },
	"state":  func(s exchangev1.ReferralState) string { return enumLabel(s.String(), "REFERRAL_STATE_") },
	"niche":  func(n exchangev1.Niche) string { return enumLabel(n.String(), "NICHE_") },
	"stage":  func(s exchangev1.PlanStage) string { return enumLabel(s.String(), "PLAN_STAGE_") },
	"status": func(s exchangev1.PlanBudgetStatus) string { return enumLabel(s.String(), "PLAN_BUDGET_STATUS_") },
	"rstate": func(s exchangev1.ReportState) string { return enumLabel(s.String(), "REPORT_STATE_") },
	"when": func(r *exchangev1.Report) string {
		if r.GetSubmitTime() == nil {
			return ""
		}
		return r.GetSubmitTime().AsTime().UTC().Format("2 January 2006")
	},
	"paragraphs": func(s string) []string {
		var out []string
		for _, p := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n\n") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	},
}).ParseFS(templates, "report.html.tmpl"))

// ChartBarColor is the fill of the chart's bars, "#1f5fa8": a test finds
// the chart on a rendered page by it.
const ChartBarColor = "#1f5fa8"

// chart geometry, in CSS pixels.
const (
	chartWidth  = 640
	chartLabelW = 220
	chartBarH   = 22
	chartGap    = 10
)

// bar is one bar of the chart.
type bar struct {
	Label    string
	Count    int64
	Y, Width int
	TextY    int
}

// chart is the SVG bar chart of referrals by state.
type chart struct {
	Width, Height, LabelWidth, BarHeight int
	Color                                string
	Bars                                 []bar
}

func newChart(counts []*exchangev1.ReportStateCount) chart {
	c := chart{Width: chartWidth, LabelWidth: chartLabelW, BarHeight: chartBarH, Color: ChartBarColor}
	var most int64
	for _, sc := range counts {
		most = max(most, sc.GetCount())
	}
	for i, sc := range counts {
		y := i * (chartBarH + chartGap)
		w := 0
		if most > 0 {
			w = int(float64(chartWidth-chartLabelW-60) * float64(sc.GetCount()) / float64(most))
		}
		c.Bars = append(c.Bars, bar{Label: enumLabel(sc.GetState().String(), "REFERRAL_STATE_"), Count: sc.GetCount(), Y: y, Width: max(w, 1), TextY: y + chartBarH*3/4})
	}
	c.Height = max(len(counts)*(chartBarH+chartGap), chartBarH)
	return c
}

// HTML writes the report as a self-contained printable HTML page.
func HTML(w io.Writer, r *exchangev1.Report) error {
	return page.Execute(w, struct {
		R     *exchangev1.Report
		Chart chart
	}{r, newChart(r.GetFigures().GetReferralsByState())})
}

// PDF prints the HTML page at htmlPath to PDF (A4, backgrounds printed)
// with the Chromium binary at chromium, run headless with a throw-away
// profile, and returns the PDF's bytes.
func PDF(ctx context.Context, chromium, htmlPath string) ([]byte, error) {
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		return nil, err
	}
	// Everything Chromium writes (profile, caches, its own temporary
	// files) goes under one directory removed at the end, and it gets none
	// of this process's environment (no EXCHANGE_* paths).
	home, err := os.MkdirTemp("", "exchangectl-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	profile := filepath.Join(home, "profile")
	if err := os.Mkdir(profile, 0o700); err != nil {
		return nil, err
	}
	// Chromium's own temporary directory holds its singleton socket, whose
	// path must stay under the 108 bytes of a Unix socket address.
	tmpRoot := os.TempDir()
	if len(tmpRoot) > 40 {
		tmpRoot = "/tmp"
	}
	tmp, err := os.MkdirTemp(tmpRoot, "xc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.NoInheritEnv,
		chromedp.Env("HOME="+home, "TMPDIR="+tmp, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+filepath.ToSlash(abs)), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		return nil, fmt.Errorf("opening %s in Chromium (%s): %w", abs, chromium, err)
	}
	pdf, err := chromedp.Run(bctx, chromedp.PrintToPDF(chromedp.PDFPaper(chromedp.PaperA4), chromedp.PDFPrintBackground()))
	if err != nil {
		return nil, fmt.Errorf("printing %s to PDF: %w", abs, err)
	}
	return pdf, nil
}

// ChromiumPath returns the Chromium binary to print with: $CHROMIUM if
// set, else the first of chromium, chromium-browser and google-chrome on
// PATH; "" when there is none.
func ChromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := lookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// formatDate writes a calendar date as "1 July 2026".
func formatDate(d *exchangev1.CalendarDate) string {
	if d == nil {
		return "open"
	}
	return time.Date(int(d.GetYear()), time.Month(d.GetMonth()), int(d.GetDay()), 0, 0, 0, 0, time.UTC).Format("2 January 2006")
}

// enumLabel turns "REFERRAL_STATE_IN_PROGRESS" into "In progress".
func enumLabel(name, prefix string) string {
	s := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, prefix), "_", " "))
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
