package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/internal/logwrite"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/server"
	"github.com/alltogether/exchange/store"
)

// serveOptions are exchanged's settings. Each flag has an environment
// variable fallback so that a service manager can configure it.
type serveOptions struct {
	listen        string
	dataDir       string
	tlsCert       string
	tlsKey        string
	clientCA      string
	caCert        string
	caKey         string
	hosts         []string
	logLevel      string
	shutdownGrace time.Duration
	ackDeadlines  string
	maxDBSize     string
	horizon       int64
	compactEvery  time.Duration
	skipCheck     bool
	metricsListen string
	pprof         bool
	retention     time.Duration
	rate          float64
	burst         int
	concurrency   concurrencyOptions
	auditVerify   auditVerifyOptions
	etcd          etcdOptions
}

// Main runs exchanged with the given arguments and returns its exit code.
func Main(args []string) int {
	return newRootCommand(os.Stdout, os.Stderr).run(args)
}

type rootCommand struct {
	cmd *cobra.Command
}

func (r rootCommand) run(args []string) int {
	r.cmd.SetArgs(args)
	if err := r.cmd.Execute(); err != nil {
		fmt.Fprintln(r.cmd.ErrOrStderr(), "exchanged:", err)
		return 1
	}
	return 0
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newRootCommand(stdout, stderr io.Writer) rootCommand {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "exchanged",
		Short: "Run the exchange's gRPC server",
		Long: `exchanged runs the exchange: the gRPC service (mutual TLS 1.3) through which
agencies refer people, collect data jointly and share their plans.

With no flags it listens on 127.0.0.1:7443 and keeps everything in
./exchange-data: the database (exchange.db) and, created on first start, a
development CA with a server certificate and a secretariat client
certificate (pki/). Every flag can also be set through the environment
variable named in its help.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), o, stdout, stderr)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", env("EXCHANGE_LISTEN", "127.0.0.1:7443"), "address to listen on (EXCHANGE_LISTEN)")
	f.StringVar(&o.dataDir, "data-dir", env("EXCHANGE_DATA_DIR", "exchange-data"), "directory for the database and development certificates (EXCHANGE_DATA_DIR)")
	f.StringVar(&o.tlsCert, "tls-cert", env("EXCHANGE_TLS_CERT", ""), "server certificate (EXCHANGE_TLS_CERT; default DATA_DIR/pki/server.crt)")
	f.StringVar(&o.tlsKey, "tls-key", env("EXCHANGE_TLS_KEY", ""), "server key (EXCHANGE_TLS_KEY; default DATA_DIR/pki/server.key)")
	f.StringVar(&o.clientCA, "client-ca", env("EXCHANGE_CLIENT_CA", ""), "CA certificate that client certificates must chain to (EXCHANGE_CLIENT_CA; default DATA_DIR/pki/ca.crt)")
	f.StringVar(&o.caCert, "ca-cert", env("EXCHANGE_CA_CERT", ""), "CA certificate used to issue client certificates (EXCHANGE_CA_CERT; default DATA_DIR/pki/ca.crt)")
	f.StringVar(&o.caKey, "ca-key", env("EXCHANGE_CA_KEY", ""), "CA key used to issue client certificates; if absent, issuing is disabled (EXCHANGE_CA_KEY; default DATA_DIR/pki/ca.key)")
	f.StringSliceVar(&o.hosts, "hosts", strings.Split(env("EXCHANGE_HOSTS", "localhost,127.0.0.1,::1"), ","), "names and addresses for the development server certificate made on first start (EXCHANGE_HOSTS)")
	f.StringVar(&o.logLevel, "log-level", env("EXCHANGE_LOG_LEVEL", "info"), "debug, info, warn or error (EXCHANGE_LOG_LEVEL)")
	f.StringVar(&o.ackDeadlines, "ack-deadlines", env("EXCHANGE_ACK_DEADLINES", "emergency=4h,urgent=24h,routine=72h"),
		"how long a receiver has to acknowledge a referral, per urgency, before it is flagged overdue (EXCHANGE_ACK_DEADLINES)")
	f.StringVar(&o.maxDBSize, "max-db-size", env("EXCHANGE_MAX_DB_SIZE", "0"),
		"the most the database file may grow to, like 20GiB; writes are refused in its last 16th, kept for audited reads and erasures; 0 for no limit (EXCHANGE_MAX_DB_SIZE)")
	f.Int64Var(&o.horizon, "change-log-horizon", 1_000_000, "change-log entries kept for watchers; older ones are compacted")
	f.DurationVar(&o.compactEvery, "compact-every", time.Minute, "how often to compact the change log to its horizon")
	f.BoolVar(&o.skipCheck, "skip-check", false, "do not check every page of the database after start-up (writes then need not wait for the check)")
	f.StringVar(&o.metricsListen, "metrics-listen", env("EXCHANGE_METRICS_LISTEN", "127.0.0.1:9464"),
		"local address for Prometheus metrics over plain HTTP at /metrics, and the probes /readyz and /livez; empty to disable (EXCHANGE_METRICS_LISTEN)")
	f.BoolVar(&o.pprof, "pprof", false, "also serve Go's profiler at /debug/pprof/ on the metrics address, to find what a busy server spends its time on (keep the address local)")
	f.DurationVar(&o.retention, "retention", 2*365*24*time.Hour,
		"erase a referral's identifying details this long after it closed (completed, rejected, cancelled); 0 keeps them")
	f.Float64Var(&o.rate, "rate", 200, "calls per second each agency (and the secretariat) may make; beyond it calls get RESOURCE_EXHAUSTED; negative for no limit")
	f.IntVar(&o.burst, "burst", 400, "calls a caller may make at once above its rate")
	addConcurrencyFlags(cmd, &o.concurrency)
	addAuditVerifyFlags(cmd, &o.auditVerify)
	f.DurationVar(&o.shutdownGrace, "shutdown-grace", 20*time.Second, "how long calls in flight may run after SIGTERM before they are cut off")
	addEtcdFlags(cmd, &o.etcd)
	cmd.AddCommand(newRestoreCommand(stdout, &o.etcd))
	cmd.AddCommand(newCertsCommand(stdout, &o.etcd))
	cmd.AddCommand(newBackupCommand(stdout))
	return rootCommand{cmd: cmd}
}

// defaultGCPercent is the garbage collector's target (GOGC) exchanged uses
// when the environment sets none. Go's default, 100, collects whenever the
// heap has doubled; the exchange's live heap is small (tens of MiB) and
// every call allocates its request, response and records afresh, so at 100
// the collector took about 15% of the CPU under load. At 400 it takes about
// a quarter of that, for a heap up to five times the live one; single
// creates ran 12% and batched pushes 20% faster in the server's Go
// benchmarks. Set GOGC (and GOMEMLIMIT) to choose otherwise.
const defaultGCPercent = 400

// tuneGC sets the collector's target to defaultGCPercent unless GOGC is
// set in the environment.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

func serve(ctx context.Context, o *serveOptions, stdout, stderr io.Writer) error {
	tuneGC(os.Getenv)
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	// One log line per call: concurrent calls' lines share write calls
	// (logwrite), each still written before its log call returns or by
	// the call that is writing then.
	lines := logwrite.New(stderr)
	log := slog.New(lines.Handler(slog.NewJSONHandler(lines, &slog.HandlerOptions{Level: level})))

	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("cannot create data directory: %w", err)
	}
	dev, created, err := pki.EnsureDev(filepath.Join(o.dataDir, "pki"), o.hosts)
	if err != nil {
		return fmt.Errorf("development certificates: %w", err)
	}
	pick := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	tlsCert, tlsKey := pick(o.tlsCert, dev.ServerCert), pick(o.tlsKey, dev.ServerKey)
	clientCA := pick(o.clientCA, dev.CACert)
	caCert, caKey := pick(o.caCert, dev.CACert), pick(o.caKey, dev.CAKey)

	if err := o.concurrency.validate(); err != nil {
		return err
	}
	if err := o.auditVerify.validate(); err != nil {
		return err
	}
	deadlines, err := parseAckDeadlines(o.ackDeadlines)
	if err != nil {
		return fmt.Errorf("--ack-deadlines: %w", err)
	}
	tlsConfig, err := pki.ServerTLSConfig(tlsCert, tlsKey, clientCA)
	if err != nil {
		return err
	}
	var ca *pki.CA
	if _, err := os.Stat(caKey); err == nil {
		if ca, err = pki.LoadCA(caCert, caKey); err != nil {
			return err
		}
	} else {
		log.Warn("no CA key: IssueCertificate is disabled", "ca_key", caKey)
	}

	maxSize, err := parseSize(o.maxDBSize)
	if err != nil {
		return fmt.Errorf("--max-db-size: %w", err)
	}
	if maxSize != 0 && o.etcd.enabled() {
		return fmt.Errorf("--max-db-size bounds the bbolt file; on etcd the cluster's --quota-backend-bytes does")
	}
	metrics := server.NewMetrics()
	// The page check runs once exchanged listens (checkPages), not here.
	st, dbPath, err := openStore(&o.etcd, o.dataDir, store.Options{MaxSize: maxSize, Observer: metrics})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := verifyAuditAtStart(ctx, st, dbPath, o.auditVerify, metrics, log); err != nil {
		return err
	}
	if err := recordSecretariatCertificate(ctx, st, dev.SecretariatCert); err != nil {
		return err
	}

	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", o.listen, err)
	}
	srv, err := server.New(server.Config{Store: st, TLS: tlsConfig, CA: ca, Logger: log, AckDeadlines: deadlines, Metrics: metrics,
		Limits: server.Limits{CallsPerSecond: o.rate, CallBurst: o.burst, CallsInFlightPerCaller: o.concurrency.callsInFlight,
			StreamsPerCaller: o.concurrency.streams, WatchesPerCaller: o.concurrency.watches}})
	if err != nil {
		return err
	}

	// SIGINT and SIGTERM stop exchanged cleanly from the moment it says
	// it listens: a service manager may stop it right away.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if created {
		fmt.Fprintf(stdout, "created a development CA and certificates in %s\n", dev.Dir)
	}
	fmt.Fprintf(stdout, "exchanged listening on %s (database %s)\n", lis.Addr(), dbPath)
	fmt.Fprintf(stdout, "connect as the secretariat with:\n  exchangectl --server %s --ca %s --cert %s --key %s agencies list\n",
		lis.Addr(), dev.CACert, dev.SecretariatCert, dev.SecretariatKey)
	log.Info("serving", "address", lis.Addr().String(), "database", dbPath)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	checked := make(chan error, 1)
	if o.skipCheck {
		log.Warn("the database's pages were not checked (--skip-check)")
	} else {
		go func() { checked <- checkPages(ctx, st, log) }()
	}
	go compactChangeLog(ctx, st, log, o.horizon, o.compactEvery)
	go eraseExpiredReferrals(ctx, st, log, o.retention, time.Hour)
	go verifyAuditChain(ctx, st, metrics, log, o.auditVerify.every, o.auditVerify.atStart != "full")
	if o.metricsListen != "" {
		mlis, err := net.Listen("tcp", o.metricsListen)
		if err != nil {
			return fmt.Errorf("cannot listen for metrics on %s: %w", o.metricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
		probes := srv.ProbeHandler()
		mux.Handle("/readyz", probes)
		mux.Handle("/livez", probes)
		if o.pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		}
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go msrv.Serve(mlis)
		defer msrv.Close()
		fmt.Fprintf(stdout, "metrics on http://%s/metrics\n", mlis.Addr())
	}
	var damaged error
wait:
	for {
		select {
		case err := <-served:
			return err
		case err := <-checked:
			checked = nil
			if err != nil && ctx.Err() == nil {
				damaged = err
				break wait
			}
		case <-ctx.Done():
			break wait
		}
	}
	if damaged != nil {
		// Health reports NOT_SERVING from here on (Shutdown); on damage
		// the store has closed the file, so calls in flight fail.
		if store.KindOf(damaged) == store.KindFailedPrecondition {
			log.Error("the database is damaged: exchanged stops; restore the last backup", "error", damaged.Error())
		} else {
			log.Error("the page check after start-up could not run: exchanged stops", "error", damaged.Error())
		}
		graceCtx, cancel := context.WithTimeout(context.Background(), o.shutdownGrace)
		defer cancel()
		srv.Shutdown(graceCtx)
		<-served
		return fmt.Errorf("the page check after start-up: %w", damaged)
	}
	log.Info("shutting down: finishing calls in flight", "grace", o.shutdownGrace.String())
	graceCtx, cancel := context.WithTimeout(context.Background(), o.shutdownGrace)
	defer cancel()
	srv.Shutdown(graceCtx)
	if err := <-served; err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("closing the database: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}

// parseAckDeadlines reads "emergency=4h,urgent=24h,routine=72h"; urgencies
// not named keep their default.
func parseAckDeadlines(spec string) (server.AckDeadlines, error) {
	out := server.AckDeadlines{}
	for k, v := range server.DefaultAckDeadlines {
		out[k] = v
	}
	for _, part := range strings.Split(spec, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		urgency, known := exchangev1.Urgency_value["URGENCY_"+strings.ToUpper(name)]
		if !ok || !known || urgency == 0 {
			return nil, fmt.Errorf("%q: want URGENCY=DURATION with urgency emergency, urgent or routine", part)
		}
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q: %q is not a positive duration (like 24h)", part, value)
		}
		out[exchangev1.Urgency(urgency)] = d
	}
	return out, nil
}

// compactChangeLog keeps the change log within its horizon until ctx ends.
func compactChangeLog(ctx context.Context, st *store.Store, log *slog.Logger, keep int64, every time.Duration) {
	if keep <= 0 || every <= 0 {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			horizon, err := st.CompactChangeLog(ctx, keep)
			if err != nil && ctx.Err() == nil {
				log.Error("change-log compaction failed", "error", err.Error())
			} else if horizon > 0 {
				log.Debug("change log compacted", "horizon", horizon)
			}
		}
	}
}

// parseSize reads a byte count: plain bytes or with a KiB, MiB, GiB or TiB
// suffix.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		factor int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(strings.TrimSpace(s), u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("%q is not a size (like 20GiB or 0 for no limit)", s)
			}
			return n * u.factor, nil
		}
	}
	return 0, fmt.Errorf("%q is not a size", s)
}

// eraseExpiredReferrals erases, every interval, the identifying details of
// referrals closed longer ago than the retention period. The store
// overwrites the pages that held them before it answers (store/scrub.go),
// so no vacuum of the whole file is needed.
func eraseExpiredReferrals(ctx context.Context, st *store.Store, log *slog.Logger, retention, every time.Duration) {
	if retention <= 0 {
		return
	}
	run := func() {
		due, err := st.ClosedReferralsBefore(ctx, time.Now().Add(-retention), 1000)
		if err != nil {
			log.Error("retention: cannot list closed referrals", "error", err.Error())
			return
		}
		if len(due) == 0 {
			return
		}
		op := store.Op{Actor: "exchange", Method: "exchanged/retention", Reason: store.ErasureRetention}
		erased, err := st.EraseDetailsOf(ctx, op, due)
		if err != nil {
			log.Error("retention: erasure incomplete", "erased", len(erased), "error", err.Error())
		}
		if len(erased) > 0 {
			log.Info("retention: erased identifying details of closed referrals", "count", len(erased))
		}
	}
	run()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			run()
		}
	}
}

// checkPages checks every page of the database while exchanged serves
// (store.CheckHoldingWrites: reads go on, writes wait until it passes) and
// logs how long it took. A damaged file is an error that stops exchanged.
func checkPages(ctx context.Context, st *store.Store, log *slog.Logger) error {
	start := time.Now()
	if err := st.CheckHoldingWrites(ctx); err != nil {
		return err
	}
	log.Info("database pages checked", "took", time.Since(start).String())
	return nil
}
