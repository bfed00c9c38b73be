package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// newCertsCmd is `exchangectl certs`.
func newCertsCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("certs", "Issue, list and revoke client certificates",
		"Client certificates identify agencies and the secretariat to the exchange. The\n"+
			"secretariat issues them; the private key is made on this machine and never\n"+
			"sent anywhere. A revoked certificate is refused from its next call on.")
	cmd.Aliases = []string{"certificates", "cert"}
	cmd.AddCommand(
		newCertsIssueCmd(a, nil),
		newCertsListCmd(a, nil),
		newCertsGetCmd(a, nil),
		newCertsRevokeCmd(a, nil),
	)
	return cmd
}

// certsIssueOptions are the inputs of `certs issue`.
type certsIssueOptions struct {
	app          *app
	Agency       string
	Secretariat  bool
	OutDir       string
	ValidityDays int32
	Force        bool
}

// newCertsIssueCmd is `exchangectl certs issue`.
func newCertsIssueCmd(a *app, runF func(*certsIssueOptions) error) *cobra.Command {
	opts := &certsIssueOptions{app: a}
	cmd := &cobra.Command{
		Use:   "issue (--agency ID | --secretariat) [--out-dir DIR] [flags]",
		Short: "Issue a client certificate (secretariat only)",
		Long: "Make a private key here, have the exchange sign a certificate for it, and\n" +
			"write DIR/ID.crt, DIR/ID.key (mode 0600) and DIR/ca.crt. Existing files are\n" +
			"never overwritten unless --force is given. Then hand the three files to the\n" +
			"agency over a safe channel; the command prints how it connects with them.",
		Example: "  exchangectl certs issue --agency ilo --out-dir ./certs\n" +
			"  exchangectl certs issue --secretariat --validity-days 90 --out-dir ./rotated",
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := opts.subject(); err != nil {
				return err
			}
			if opts.ValidityDays < 0 || opts.ValidityDays > 825 {
				return usageErrorf("--validity-days %d: want 0 (the server's default, 365) to 825", opts.ValidityDays)
			}
			if runF != nil {
				return runF(opts)
			}
			return runCertsIssue(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Agency, "agency", "", "issue for this agency id")
	f.BoolVar(&opts.Secretariat, "secretariat", false, "issue for the secretariat")
	f.StringVar(&opts.OutDir, "out-dir", ".", "directory to write the files into (created if missing)")
	f.Int32Var(&opts.ValidityDays, "validity-days", 0, "validity in days, 0 for the server's default (365), at most 825")
	f.BoolVar(&opts.Force, "force", false, "overwrite existing files")
	return cmd
}

// subject returns the certificate subject and the base name of the files,
// or a usage error.
func (o *certsIssueOptions) subject() (subject, base string, err error) {
	switch {
	case o.Secretariat && o.Agency != "":
		return "", "", usageErrorf("give --agency or --secretariat, not both")
	case o.Secretariat:
		return client.SecretariatSubject, "secretariat", nil
	case o.Agency != "":
		id, err := agencyID(o.Agency)
		if err != nil {
			return "", "", err
		}
		return client.AgencyName(id), id, nil
	default:
		return "", "", usageErrorf("give --agency ID or --secretariat")
	}
}

// issuedFiles are the paths certs issue writes.
type issuedFiles struct {
	Cert, Key, CA string
}

// files returns the paths to write, resolved against the working directory.
func (o *certsIssueOptions) files(base string) issuedFiles {
	dir := o.app.path(o.OutDir)
	return issuedFiles{
		Cert: filepath.Join(dir, base+".crt"),
		Key:  filepath.Join(dir, base+".key"),
		CA:   filepath.Join(dir, "ca.crt"),
	}
}

// runCertsIssue issues the certificate, writes the files and prints how to
// connect with them.
func runCertsIssue(ctx context.Context, o *certsIssueOptions) error {
	subject, base, err := o.subject()
	if err != nil {
		return err
	}
	files := o.files(base)
	// Refuse before issuing, so that no certificate is issued for nothing.
	if !o.Force {
		for _, p := range []string{files.Cert, files.Key} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s exists; not overwriting it (use --force, or another --out-dir)", p)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(files.Cert), 0o700); err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	certPEM, keyPEM, caPEM, cert, err := c.Certificates.Issue(ctx, subject, o.ValidityDays)
	if err != nil {
		return err
	}
	if err := writeNewFile(files.Key, keyPEM, 0o600, o.Force); err != nil {
		return err
	}
	if err := writeNewFile(files.Cert, certPEM, 0o644, o.Force); err != nil {
		return err
	}
	if err := writeCA(files.CA, caPEM, o.Force); err != nil {
		return err
	}
	if o.app.global.JSON {
		return printJSON(o.app.env.Stdout, cert)
	}
	return printIssued(o.app, subject, base, cert, files)
}

// writeNewFile writes data to path with perm, refusing to replace an
// existing file unless force is set. A forced write replaces the file, so
// that a key never keeps the looser mode of an older file.
func writeNewFile(path string, data []byte, perm fs.FileMode, force bool) error {
	if force {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists; not overwriting it (use --force, or another --out-dir)", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeCA writes the CA certificate, leaving an identical existing file in
// place (several agencies issued into one directory share it) and refusing
// to replace a different one unless force is set.
func writeCA(path string, caPEM []byte, force bool) error {
	existing, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(existing, caPEM):
		return nil
	case err == nil && !force:
		return fmt.Errorf("%s exists and holds a different CA certificate; the certificate and key were written, the CA was not (use --force to replace it)", path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return writeNewFile(path, caPEM, 0o644, true)
}

// printIssued tells people what was written and how to connect with it.
func printIssued(a *app, subject, base string, cert *exchangev1.Certificate, files issuedFiles) error {
	w := a.env.Stdout
	fmt.Fprintf(w, "Issued %s for %s, valid until %s.\n\n", cert.GetName(), subject, formatTime(cert.GetNotAfter()))
	if err := printTable(w, []string{"FILE", "CONTENT"}, [][]string{
		{files.Cert, "certificate"},
		{files.Key, "private key, mode 0600: keep it secret; it never left this machine"},
		{files.CA, "exchange CA certificate, to verify the server"},
	}); err != nil {
		return err
	}
	try := "exchangectl agencies get " + base
	if subject == client.SecretariatSubject {
		try = "exchangectl agencies list"
	}
	fmt.Fprintf(w, "\nConnect as %s with:\n", subject)
	fmt.Fprintf(w, "  export %s=%s\n", EnvServer, shellQuote(a.global.Server))
	fmt.Fprintf(w, "  export %s=%s\n", EnvCert, shellQuote(files.Cert))
	fmt.Fprintf(w, "  export %s=%s\n", EnvKey, shellQuote(files.Key))
	fmt.Fprintf(w, "  export %s=%s\n", EnvCA, shellQuote(files.CA))
	fmt.Fprintf(w, "  %s\n", try)
	fmt.Fprintf(w, "or in one command:\n  exchangectl --server %s --cert %s --key %s --ca %s %s\n",
		shellQuote(a.global.Server), shellQuote(files.Cert), shellQuote(files.Key), shellQuote(files.CA),
		strings.TrimPrefix(try, "exchangectl "))
	if host, _, err := net.SplitHostPort(a.global.Server); err == nil && (host == "localhost" || net.ParseIP(host).IsLoopback()) {
		fmt.Fprintf(w, "(%s is this machine: on another machine, use an address of the exchange it can reach.)\n", a.global.Server)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// certsListOptions are the inputs of `certs list`.
type certsListOptions struct {
	app         *app
	Agency      string
	Secretariat bool
}

// newCertsListCmd is `exchangectl certs list`.
func newCertsListCmd(a *app, runF func(*certsListOptions) error) *cobra.Command {
	opts := &certsListOptions{app: a}
	cmd := &cobra.Command{
		Use:     "list [--agency ID | --secretariat]",
		Aliases: []string{"ls"},
		Short:   "List certificates (the secretariat sees all, an agency its own)",
		Example: "  exchangectl certs list --agency ilo",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := opts.subject(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runCertsList(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Agency, "agency", "", "only certificates of this agency id")
	cmd.Flags().BoolVar(&opts.Secretariat, "secretariat", false, "only certificates of the secretariat")
	return cmd
}

// subject returns the subject filter ("" for all), or a usage error.
func (o *certsListOptions) subject() (string, error) {
	switch {
	case o.Secretariat && o.Agency != "":
		return "", usageErrorf("give --agency or --secretariat, not both")
	case o.Secretariat:
		return client.SecretariatSubject, nil
	case o.Agency != "":
		id, err := agencyID(o.Agency)
		if err != nil {
			return "", err
		}
		return client.AgencyName(id), nil
	}
	return "", nil
}

// runCertsList prints the certificates.
func runCertsList(ctx context.Context, o *certsListOptions) error {
	subject, err := o.subject()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	certs, err := client.Collect(c.Certificates.Certificates(ctx, subject))
	if err != nil {
		return err
	}
	return printList(o.app, certs, "certificates",
		[]string{"SERIAL", "SUBJECT", "STATE", "NOT-AFTER", "ISSUER"},
		func(cert *exchangev1.Certificate) []string {
			return []string{
				client.ResourceID(cert.GetName()),
				cert.GetSubject(),
				certStateNames.name(protoreflect.EnumNumber(cert.GetState())),
				formatTime(cert.GetNotAfter()),
				orDash(cert.GetIssuer()),
			}
		})
}

// certsGetOptions are the inputs of `certs get`.
type certsGetOptions struct {
	app    *app
	Serial string
	PEM    bool
}

// newCertsGetCmd is `exchangectl certs get`.
func newCertsGetCmd(a *app, runF func(*certsGetOptions) error) *cobra.Command {
	opts := &certsGetOptions{app: a}
	cmd := &cobra.Command{
		Use:     "get SERIAL",
		Short:   "Show one certificate",
		Example: "  exchangectl certs get 1f3a9c\n  exchangectl certs get 1f3a9c --pem > ilo.crt",
		Args:    exactArgs("SERIAL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Serial = args[0]
			if _, err := certificateSerial(opts.Serial); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runCertsGet(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.PEM, "pem", false, "print only the certificate in PEM")
	return cmd
}

// runCertsGet prints the certificate.
func runCertsGet(ctx context.Context, o *certsGetOptions) error {
	serial, err := certificateSerial(o.Serial)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	cert, err := c.Certificates.Get(ctx, client.CertificateName(serial))
	if err != nil {
		return err
	}
	if o.PEM && !o.app.global.JSON {
		_, err := fmt.Fprint(o.app.env.Stdout, cert.GetCertificatePem())
		return err
	}
	return printOne(o.app, cert, certificateDetail)
}

// certsRevokeOptions are the inputs of `certs revoke`.
type certsRevokeOptions struct {
	app    *app
	Serial string
	Reason string
}

// newCertsRevokeCmd is `exchangectl certs revoke`.
func newCertsRevokeCmd(a *app, runF func(*certsRevokeOptions) error) *cobra.Command {
	opts := &certsRevokeOptions{app: a}
	cmd := &cobra.Command{
		Use:     "revoke SERIAL --reason TEXT",
		Short:   "Revoke a certificate; it is refused from its next call on",
		Example: "  exchangectl certs revoke 1f3a9c --reason \"key compromised\"",
		Args:    exactArgs("SERIAL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Serial = args[0]
			if _, err := certificateSerial(opts.Serial); err != nil {
				return err
			}
			if strings.TrimSpace(opts.Reason) == "" {
				return usageErrorf("--reason is required")
			}
			if runF != nil {
				return runF(opts)
			}
			return runCertsRevoke(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why, for example \"key compromised\" or \"rotated\" (required)")
	return cmd
}

// runCertsRevoke revokes the certificate and prints it.
func runCertsRevoke(ctx context.Context, o *certsRevokeOptions) error {
	serial, err := certificateSerial(o.Serial)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	cert, err := c.Certificates.Revoke(ctx, client.CertificateName(serial), o.Reason)
	if err != nil {
		return err
	}
	return printOne(o.app, cert, certificateDetail)
}

// certificateDetail is the human form of one certificate.
func certificateDetail(cert *exchangev1.Certificate) []field {
	return []field{
		{"Name", cert.GetName()},
		{"Subject", cert.GetSubject()},
		{"State", certStateNames.name(protoreflect.EnumNumber(cert.GetState()))},
		{"Not before", formatTime(cert.GetNotBefore())},
		{"Not after", formatTime(cert.GetNotAfter())},
		{"Issuer", cert.GetIssuer()},
		{"Created", formatTime(cert.GetCreateTime())},
		{"Revoked", formatTime(cert.GetRevokeTime())},
		{"Revoke reason", cert.GetRevokeReason()},
	}
}
