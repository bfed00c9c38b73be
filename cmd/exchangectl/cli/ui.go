package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	"github.com/alltogether/exchange/ui"
)

// uiShutdownTimeout bounds the wait for requests in flight when the
// dashboard stops.
const uiShutdownTimeout = 5 * time.Second

// uiOptions are the flags of 'ui'.
type uiOptions struct {
	app     *app
	Listen  string
	Country string
	Period  string
}

// newUICmd builds 'ui'.
func newUICmd(a *app, runF func(*uiOptions) error) *cobra.Command {
	opts := &uiOptions{app: a}
	cmd := &cobra.Command{
		Use:   "ui [--listen 127.0.0.1:0]",
		Short: "Serve the dashboard on 127.0.0.1 for this machine's browser",
		Long: "Start the dashboard: a local web application on 127.0.0.1 that shows\n" +
			"coverage (plans by province and niche), referrals (inbox and outbox, with\n" +
			"their lifecycle actions; network-wide counts for the secretariat),\n" +
			"datasets (completeness, locked periods, a chart over time) and the\n" +
			"directory. It talks to the exchange with your certificate, so it shows\n" +
			"exactly what that certificate may see; the browser needs no certificate.\n\n" +
			"It prints a URL with a random token (32 bytes from the system's random\n" +
			"source); the first visit trades the token for a cookie, and any request\n" +
			"without it is refused (403). It runs until interrupted (Ctrl-C).",
		Example:     "  exchangectl ui\n  exchangectl ui --listen 127.0.0.1:8080 --country LA --period 2027",
		Args:        exactArgs(),
		Annotations: longRunning,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runUI(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:0", "loopback address and port to listen on (port 0 picks a free one)")
	f.StringVar(&opts.Country, "country", "", "the coverage page's country, ISO 3166-1 alpha-2 (default: your agency's first country)")
	f.StringVar(&opts.Period, "period", "", "the coverage page's year, YYYY (default: this year)")
	return cmd
}

// yearPattern is a year as --period takes it.
var yearPattern = regexp.MustCompile(`^[0-9]{4}$`)

// check refuses a --listen address off the loopback interface and
// malformed --country and --period values.
func (o *uiOptions) check() error {
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return usageErrorf("--listen %q: want host:port, such as 127.0.0.1:0", o.Listen)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return usageErrorf("--listen %q: the dashboard listens only on a loopback address such as 127.0.0.1", o.Listen)
	}
	if o.Country != "" && !countryPattern.MatchString(o.Country) {
		return usageErrorf("--country %q: want a two-letter ISO 3166-1 code such as KH", o.Country)
	}
	if o.Period != "" && !yearPattern.MatchString(o.Period) {
		return usageErrorf("--period %q: want a year such as 2027", o.Period)
	}
	return nil
}

// runUI serves the dashboard until ctx is done.
func runUI(ctx context.Context, o *uiOptions) error {
	a := o.app
	cfg, err := a.clientConfig()
	if err != nil {
		return err
	}
	agency, err := certificateAgency(cfg.CertFile)
	if err != nil {
		return err
	}
	c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	token, err := ui.NewToken()
	if err != nil {
		return err
	}
	dash, err := ui.New(ui.Config{Client: c, Agency: agency, Token: token, Country: o.Country, Period: o.Period, Now: a.env.Now})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	srv := &http.Server{Handler: dash, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(a.env.Stdout, "Dashboard: http://%s/?token=%s\n", ln.Addr(), token)
	fmt.Fprintln(a.env.Stderr, "Open the URL above in a browser on this machine; Ctrl-C stops the dashboard.")
	select {
	case err := <-served:
		return fmt.Errorf("ui: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), uiShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("ui: stopping: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ui: %w", err)
	}
	return nil
}

// certificateAgency returns the resource name of the agency certFile
// names, or "" for the secretariat's certificate.
func certificateAgency(certFile string) (string, error) {
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	cert, err := pki.ParseCertPEM(pemBytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", certFile, err)
	}
	id, err := pki.IdentityFromCert(cert)
	if err != nil {
		return "", err
	}
	if id.Role == pki.RoleAgency {
		return client.AgencyName(id.AgencyID), nil
	}
	return "", nil
}
