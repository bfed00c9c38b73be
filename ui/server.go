// Package ui is the exchange's dashboard: a small web application that
// `exchangectl ui` serves on 127.0.0.1 and that talks to the exchange
// through the Go client with the user's own certificate. Browsers need no
// client certificate and the exchange gains no new way in: every page
// shows only what the API returns to that certificate.
//
// Pages are rendered on the server from html/template templates; the
// stylesheet, the one small script and the templates are embedded, so the
// dashboard needs no network access and no build step. Each page has its
// file: coverage.go (plans by province and niche), referrals.go (inbox,
// outbox and lifecycle actions; counts for the secretariat), datasets.go
// (completeness, locks and a chart drawn in chart.go), directory.go
// (agencies, focal points, working groups), reports.go (reports and each
// version's figures and narrative), consultants.go (roster and
// engagements) and documents.go (documents, versions, download counts).
//
// Access is guarded by a token (gate.go): the URL exchangectl prints
// carries it once; the first visit trades it for an HttpOnly,
// SameSite=Strict cookie. Every other request without the cookie gets
// 403, and every POST must echo the token in a form field.
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// callTimeout bounds the exchange calls one page makes.
const callTimeout = 30 * time.Second

// Config is what the dashboard needs to run.
type Config struct {
	// Client is the connection to the exchange, made with the user's
	// certificate. The dashboard does not close it.
	Client *client.Client
	// Agency is the resource name of the agency the certificate names
	// ("agencies/ilo"), or "" for the secretariat's certificate.
	Agency string
	// Token is the secret that opens the dashboard (NewToken).
	Token string
	// Country is the coverage page's country (ISO 3166-1 alpha-2) when the
	// URL names none; empty for the caller agency's first country.
	Country string
	// Period is the coverage page's year (YYYY) when the URL names none;
	// empty for the current year.
	Period string
	// Now is the clock; nil for time.Now.
	Now func() time.Time
}

// Dashboard is the dashboard's http.Handler.
type Dashboard struct {
	cfg   Config
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New checks cfg and returns the dashboard.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Client == nil {
		return nil, errors.New("ui: no client")
	}
	if len(cfg.Token) < 32 {
		return nil, errors.New("ui: the token must be at least 32 characters (NewToken)")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Dashboard{cfg: cfg, pages: map[string]*template.Template{}}
	layout, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	for _, page := range []string{"coverage", "referrals", "datasets", "dataset", "directory", "reports", "report", "consultants", "documents", "problem"} {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: %w", err)
		}
		d.pages[page] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/coverage", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /coverage", d.coverage)
	mux.HandleFunc("GET /referrals", d.referrals)
	mux.HandleFunc("POST /referrals/{id}/{verb}", d.referralAction)
	mux.HandleFunc("GET /datasets", d.datasets)
	mux.HandleFunc("GET /datasets/{owner}/{id}", d.dataset)
	mux.HandleFunc("GET /directory", d.directory)
	mux.HandleFunc("GET /reports", d.reports)
	mux.HandleFunc("GET /reports/{owner}/{id}", d.report)
	mux.HandleFunc("GET /consultants", d.consultants)
	mux.HandleFunc("GET /documents", d.documents)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.problem(w, r, http.StatusNotFound, "No such page: "+r.URL.Path)
	})
	d.mux = mux
	return d, nil
}

// page is what every page's template sees besides its own data.
type page struct {
	// Title is the page's title, also its first heading.
	Title string
	// Nav is the navigation entry to mark as current.
	Nav string
	// CSRF is the token POST forms echo.
	CSRF string
	// Caller names who the dashboard acts as.
	Caller string
	// Secretariat is true for the secretariat's certificate.
	Secretariat bool
	// Error is a problem to show above the content.
	Error string
	// Notice is a confirmation to show above the content.
	Notice string
	// Data is the page's own data.
	Data any
}

// newPage returns the common part of a page.
func (d *Dashboard) newPage(title, nav string) *page {
	caller := "the secretariat"
	if d.cfg.Agency != "" {
		caller = client.ResourceID(d.cfg.Agency)
	}
	return &page{Title: title, Nav: nav, CSRF: d.cfg.Token, Caller: caller, Secretariat: d.cfg.Agency == ""}
}

// render writes the named page with HTTP status code.
func (d *Dashboard) render(w http.ResponseWriter, code int, name string, p *page) {
	var b strings.Builder
	if err := d.pages[name].ExecuteTemplate(&b, "layout.html", p); err != nil {
		http.Error(w, "rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

// problem renders a page that only says what went wrong.
func (d *Dashboard) problem(w http.ResponseWriter, _ *http.Request, code int, msg string) {
	p := d.newPage(http.StatusText(code), "")
	p.Error = msg
	d.render(w, code, "problem", p)
}

// callContext bounds the exchange calls of one request.
func callContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), callTimeout)
}

// httpStatus maps an exchange error to the HTTP status a page answers
// with, and returns the message to show.
func httpStatus(err error) (int, string) {
	st, ok := status.FromError(err)
	if !ok {
		return http.StatusBadGateway, err.Error()
	}
	msg := st.Code().String() + ": " + st.Message()
	switch st.Code() {
	case codes.NotFound:
		return http.StatusNotFound, msg
	case codes.PermissionDenied, codes.Unauthenticated:
		return http.StatusForbidden, msg
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest, msg
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict, msg
	case codes.Unavailable, codes.DeadlineExceeded:
		return http.StatusServiceUnavailable, msg
	default:
		return http.StatusBadGateway, msg
	}
}

// ServeHTTP checks the token (gate.go), sets the security headers and
// serves the page.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if !d.admit(w, r) {
		return
	}
	d.mux.ServeHTTP(w, r)
}
