// Package cli implements the exchangectl commands. Main runs the program as
// the exchangectl binary does; Run runs it in-process with an explicit
// environment, for tests that drive the command line as a user would.
//
// Each noun (agencies, certs, focal-points, locations, working-groups) has
// one file; referrals has one for push, one for watch and one for the rest;
// datasets has one per verb or group of verbs (push, pull, aggregate, the
// period verbs, watch), one for definition files and one for the rest;
// plans likewise (apply, plans files, import-iati, the coordination views,
// watch, the rest). Each verb has an options struct, a constructor that parses
// flags and arguments into it, and a run function that does the work, so
// that flag parsing and behaviour are tested apart (the style of GitHub's
// gh).
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Environment variables read as fallbacks for the global flags; a flag
// given on the command line wins.
const (
	// EnvServer is the fallback of --server, the exchange's host:port, or
	// a comma-separated list of replicas' host:port.
	EnvServer = "EXCHANGE_SERVER"
	// EnvCert is the fallback of --cert, the client certificate file.
	EnvCert = "EXCHANGE_CERT"
	// EnvKey is the fallback of --key, the client private key file.
	EnvKey = "EXCHANGE_KEY"
	// EnvCA is the fallback of --ca, the exchange CA certificate file.
	EnvCA = "EXCHANGE_CA"
	// EnvJSON is the fallback of --json: "true" for JSON output.
	EnvJSON = "EXCHANGE_JSON"
	// EnvTimeout is the fallback of --timeout, a duration such as "2m".
	EnvTimeout = "EXCHANGE_TIMEOUT"
	// EnvFieldFile is the fallback of --field-file, the field office's
	// local file that keeps the outbox.
	EnvFieldFile = "EXCHANGE_FIELD_FILE"
)

// DevPKIDir is where exchanged writes its development PKI on first start,
// relative to the directory it runs in. When no certificate is configured,
// exchangectl uses the secretariat's files there, so that the secretariat
// needs no flags on the server machine.
const DevPKIDir = "exchange-data/pki"

// defaultTimeout bounds a whole command unless --timeout says otherwise.
const defaultTimeout = 30 * time.Second

// Environment is what a run of exchangectl sees of the world besides its
// arguments. Zero fields take the process's own: os.Stdin and so on,
// os.Getenv, the working directory and time.Now.
type Environment struct {
	// Stdin is the standard input.
	Stdin io.Reader
	// Stdout receives results: tables or JSON.
	Stdout io.Writer
	// Stderr receives errors and notes for people.
	Stderr io.Writer
	// Getenv looks up environment variables.
	Getenv func(string) string
	// WorkDir is the directory relative paths are resolved against,
	// including the default ./exchange-data/pki.
	WorkDir string
	// Now is the clock "today" is read from.
	Now func() time.Time
	// IsTerminal reports whether w is a terminal, where people read
	// progress; nil checks for an *os.File on a character device.
	IsTerminal func(w io.Writer) bool
}

// Main runs exchangectl with the process's environment and returns the
// exit code. Ctrl-C cancels the command in flight.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return Run(ctx, args, Environment{Stdin: stdin, Stdout: stdout, Stderr: stderr})
}

// Run runs exchangectl with args (without the program name) in env and
// returns the exit code (see the root command's help). It prints results to
// env.Stdout and errors to env.Stderr.
func Run(ctx context.Context, args []string, env Environment) int {
	a := newApp(env)
	defer a.close()
	root := newRootCmd(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if client.IsQueued(err) {
		printQueued(a.env.Stderr, err)
		return ExitOK
	}
	if err != nil {
		printError(a.env.Stderr, cmd, err)
	}
	return exitCode(err)
}

// app is the state of one run: the environment, the global options and the
// connection, made on first use.
type app struct {
	env    Environment
	global globalOptions
	// flags are the root's persistent flags, to tell given flags from
	// defaults.
	flags  *pflag.FlagSet
	client *client.Client
	cancel context.CancelFunc
	// field is the field office's local file (fieldfile.go).
	field fieldFileState
}

// globalOptions are the flags every command takes.
type globalOptions struct {
	Server  string
	Cert    string
	Key     string
	CA      string
	JSON    bool
	Timeout time.Duration
}

// newApp fills in env's zero fields.
func newApp(env Environment) *app {
	if env.Stdin == nil {
		env.Stdin = os.Stdin
	}
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.WorkDir == "" {
		env.WorkDir, _ = os.Getwd()
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.IsTerminal == nil {
		env.IsTerminal = isTerminal
	}
	return &app{env: env}
}

// isTerminal reports whether w is an *os.File on a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// stderrIsTerminal reports whether people watch stderr, so that progress
// and hints are worth printing there.
func (a *app) stderrIsTerminal() bool {
	return a.env.IsTerminal(a.env.Stderr)
}

// close releases the connection and the command's context.
func (a *app) close() {
	if a.client != nil {
		_ = a.client.Close()
	}
	a.closeFieldFile()
	if a.cancel != nil {
		a.cancel()
	}
}

// rootLong is the root command's long help, which documents the exit codes.
const rootLong = `exchangectl talks to the exchange, through which anti-trafficking agencies in
the Mekong sub-region share referrals, datasets and plans. It sends and follows
referrals of people between agencies, defines shared datasets and pushes and
pulls their rows, reads and administers the directory (agencies, focal points,
working groups, locations), and issues the client certificates agencies
connect with. Agencies sync their plans and see who plans what, where: the
overlaps and the gaps.

Every connection is mutual TLS: the certificate you present says who you are.
On the server machine the secretariat needs no flags: when no certificate is
given, exchangectl uses ./exchange-data/pki/secretariat.crt and .key, and
./exchange-data/pki/ca.crt, if they exist. An agency passes the files made by
'exchangectl certs issue', or sets them in the environment.

Environment (flags win over the environment):
  EXCHANGE_SERVER   server address(es), like --server
  EXCHANGE_CERT     client certificate file, like --cert
  EXCHANGE_KEY      client private key file, like --key
  EXCHANGE_CA       exchange CA certificate file, like --ca
  EXCHANGE_JSON     "true" for JSON output, like --json
  EXCHANGE_TIMEOUT  time limit per command, like --timeout
  EXCHANGE_FIELD_FILE  the field office's local file, like --field-file

Output: tables for people on stdout; with --json one JSON value (an object
for one resource, an array for lists), in the API's protobuf JSON form.
Errors go to stderr as "exchangectl: CODE: message", followed by one line per
invalid field.

Exit codes:
  0  success
  1  any other error
  2  usage error: bad flags or arguments, found before any call
  3  NOT_FOUND (or not visible to you)
  4  PERMISSION_DENIED or UNAUTHENTICATED
  5  ALREADY_EXISTS or ABORTED (a conflict, or a stale etag: read again)
  6  INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE, or an invalid
     input file (such as a dataset definition with an unknown field)
  7  UNAVAILABLE or DEADLINE_EXCEEDED (the server is down or slow; try again)
With --field-file, a write the exchange cannot be reached for is kept in the
outbox instead: the command says "queued" and exits 0 ('exchangectl outbox
--help').
'referrals push' and 'datasets push' also exit 6 when any record or row was
rejected. 'plans apply' and 'plans import-iati' exit 0 when no plan changed, 1
when plans changed (or would, with --dry-run), and 5 when any is in conflict;
'plans import-iati' exits 6 when no activity of the file could be imported.`

// newRootCmd builds the command tree for one run.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "exchangectl",
		Short:         "Command-line client of the exchange",
		Long:          rootLong,
		Args:          cobra.ArbitraryArgs,
		RunE:          runGroup,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.resolveGlobal(cmd)
		},
	}
	root.SetIn(a.env.Stdin)
	root.SetOut(a.env.Stdout)
	root.SetErr(a.env.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	f := root.PersistentFlags()
	f.StringVar(&a.global.Server, "server", client.DefaultAddress, "exchange address host:port, or replicas' addresses separated by commas (calls are balanced round robin and skip replicas that are down), or dns:///host:port to balance over all the name's addresses (env "+EnvServer+")")
	f.StringVar(&a.global.Cert, "cert", "", "client certificate file (env "+EnvCert+"; default ./"+DevPKIDir+"/secretariat.crt if present)")
	f.StringVar(&a.global.Key, "key", "", "client private key file (env "+EnvKey+"; default ./"+DevPKIDir+"/secretariat.key if present)")
	f.StringVar(&a.global.CA, "ca", "", "exchange CA certificate file (env "+EnvCA+"; default ./"+DevPKIDir+"/ca.crt if present)")
	f.BoolVar(&a.global.JSON, "json", false, "print JSON: an object for one resource, an array for lists (env "+EnvJSON+")")
	f.DurationVar(&a.global.Timeout, "timeout", defaultTimeout, "time limit for the whole command, 0 for none; push, pull and watch commands have none unless given (env "+EnvTimeout+")")
	addFieldFileFlag(a, f)
	a.flags = f

	root.AddCommand(
		newAdminCmd(a),
		newAgenciesCmd(a),
		newAuditCmd(a),
		newCertsCmd(a),
		newDatasetsCmd(a),
		newDocumentsCmd(a),
		newFocalPointsCmd(a),
		newKeysCmd(a),
		newLocationsCmd(a),
		newPlansCmd(a),
		newReferralsCmd(a),
		newUICmd(a, nil),
		newWorkingGroupsCmd(a),
		newConsultantsCmd(a),
		newReportsCmd(a),
		newOutboxCmd(a),
	)
	return root
}

// newGroupCmd returns a command that only holds subcommands.
func newGroupCmd(use, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs,
		RunE:  runGroup,
	}
}

// runGroup prints the help of a command that holds subcommands, or a usage
// error for an unknown subcommand.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usageErrorf("%s", msg)
}

// annotationLongRunning marks a command (in its Annotations) that may run
// for longer than the default time limit, or until interrupted: only a
// --timeout given on the command line or in the environment bounds it.
const annotationLongRunning = "exchangectl/long-running"

// longRunning is the Annotations value of long-running commands.
var longRunning = map[string]string{annotationLongRunning: "true"}

// resolveGlobal applies the environment fallbacks of the global flags and
// bounds the command's context by the timeout (for a long-running command,
// only by one given explicitly).
func (a *app) resolveGlobal(cmd *cobra.Command) error {
	if v := a.env.Getenv(EnvServer); v != "" && !a.flags.Changed("server") {
		a.global.Server = v
	}
	if v := a.env.Getenv(EnvJSON); v != "" && !a.flags.Changed("json") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return usageErrorf("%s=%q: want true or false", EnvJSON, v)
		}
		a.global.JSON = b
	}
	if v := a.env.Getenv(EnvTimeout); v != "" && !a.flags.Changed("timeout") {
		d, err := time.ParseDuration(v)
		if err != nil {
			return usageErrorf("%s=%q: want a duration such as 30s or 2m", EnvTimeout, v)
		}
		a.global.Timeout = d
	}
	if a.global.Timeout < 0 {
		return usageErrorf("--timeout %v is negative", a.global.Timeout)
	}
	explicit := a.flags.Changed("timeout") || a.env.Getenv(EnvTimeout) != ""
	if a.global.Timeout > 0 && (explicit || cmd.Annotations[annotationLongRunning] == "") {
		ctx, cancel := context.WithTimeout(cmd.Context(), a.global.Timeout)
		a.cancel = cancel
		cmd.SetContext(ctx)
	}
	return nil
}

// clientConfig returns the connection settings: each of --cert, --key and
// --ca from its flag, else its environment variable, else the development
// PKI in ./exchange-data/pki when its files exist. Certificate and key come
// from the development PKI only together. The field file, when one is
// named, is opened and held for the outbox, except for a command that
// connected with connectReadOnly.
func (a *app) clientConfig() (client.Config, error) {
	pick := func(flag, env string) string {
		if a.flags.Changed(flag) {
			return a.flags.Lookup(flag).Value.String()
		}
		return a.env.Getenv(env)
	}
	cert, key, ca := pick("cert", EnvCert), pick("key", EnvKey), pick("ca", EnvCA)
	dev := pki.DevFilesIn(a.path(DevPKIDir))
	if cert == "" && key == "" && fileExists(dev.SecretariatCert) {
		cert, key = dev.SecretariatCert, dev.SecretariatKey
	}
	if ca == "" && fileExists(dev.CACert) {
		ca = dev.CACert
	}
	switch {
	case cert == "" && key == "":
		return client.Config{}, usageErrorf("no client certificate: pass --cert and --key (or set %s and %s), or run in the directory that holds %s", EnvCert, EnvKey, DevPKIDir)
	case cert == "":
		return client.Config{}, usageErrorf("--key given without --cert")
	case key == "":
		return client.Config{}, usageErrorf("--cert given without --key")
	case ca == "":
		return client.Config{}, usageErrorf("no CA certificate: pass --ca (or set %s) with the exchange CA's certificate", EnvCA)
	}
	cfg := client.Config{
		CertFile: a.path(cert),
		KeyFile:  a.path(key),
		CAFile:   a.path(ca),
	}
	cfg.Address, cfg.Addresses = splitServer(a.global.Server)
	if a.field.readOnly {
		return cfg, nil
	}
	field, err := a.fieldFile()
	if err != nil {
		return client.Config{}, err
	}
	cfg.Field = field
	return cfg, nil
}

// splitServer reads --server: one address, or several separated by commas
// (spaces around them ignored), one per replica. Dial checks each.
func splitServer(server string) (address string, addresses []string) {
	if !strings.Contains(server, ",") {
		return strings.TrimSpace(server), nil
	}
	for _, addr := range strings.Split(server, ",") {
		addresses = append(addresses, strings.TrimSpace(addr))
	}
	return "", addresses
}

// connect returns the connection, dialling on first use.
func (a *app) connect(ctx context.Context) (*client.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	cfg, err := a.clientConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.client = c
	return c, nil
}

// path resolves p against the working directory.
func (a *app) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(a.env.WorkDir, p)
}

// today is the current calendar date in the local time zone.
func (a *app) today() *exchangev1.CalendarDate {
	return client.CalendarDate(a.env.Now())
}

// callContext bounds one call of a long-running command by the default
// time limit, unless the command's context has a deadline of its own
// (--timeout given).
func callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultTimeout)
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
