package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
)

// CookieName is the name of the cookie that carries the token after the
// first visit.
const CookieName = "exchange_ui"

// CSRFField is the form field every POST echoes the token in.
const CSRFField = "csrf"

// contentSecurityPolicy lets pages load only their own embedded assets:
// no inline script or style, no framing, forms post only to the dashboard.
const contentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// NewToken returns 32 random bytes from crypto/rand, base64url without
// padding: the secret in the dashboard's URL.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ui: token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// setSecurityHeaders sets the headers every answer carries.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// tokenOK compares s with the token in constant time.
func (d *Dashboard) tokenOK(s string) bool {
	return subtle.ConstantTimeCompare([]byte(s), []byte(d.cfg.Token)) == 1
}

// loopbackHost reports whether the request's Host names this machine's
// loopback interface, so that a page of another site whose name was
// rebound to 127.0.0.1 is refused.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// admit lets a request through, or answers it (403, or the redirect that
// trades the URL's token for the cookie) and returns false.
func (d *Dashboard) admit(w http.ResponseWriter, r *http.Request) bool {
	if !loopbackHost(r.Host) {
		forbid(w, "the dashboard answers only on 127.0.0.1")
		return false
	}
	if t := r.URL.Query().Get("token"); t != "" && r.Method == http.MethodGet {
		if !d.tokenOK(t) {
			forbid(w, "wrong token: open the URL that 'exchangectl ui' printed")
			return false
		}
		http.SetCookie(w, &http.Cookie{
			Name: CookieName, Value: d.cfg.Token, Path: "/",
			HttpOnly: true, SameSite: http.SameSiteStrictMode,
		})
		q := r.URL.Query()
		q.Del("token")
		target := r.URL.Path
		if enc := q.Encode(); enc != "" {
			target += "?" + enc
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return false
	}
	c, err := r.Cookie(CookieName)
	if err != nil || !d.tokenOK(c.Value) {
		forbid(w, "no valid token: open the URL that 'exchangectl ui' printed")
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := r.ParseForm(); err != nil || !d.tokenOK(r.PostFormValue(CSRFField)) {
			forbid(w, "the form does not carry this dashboard's token: reload the page and try again")
			return false
		}
	}
	return true
}

// forbid answers 403 with a short plain-text explanation.
func forbid(w http.ResponseWriter, why string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = fmt.Fprintln(w, "403 Forbidden:", why)
}
