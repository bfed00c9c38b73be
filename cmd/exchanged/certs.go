package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/server"
	"github.com/alltogether/exchange/store"
)

// certsRecordOptions are the settings of `exchanged certs record`.
type certsRecordOptions struct {
	dataDir  string
	clientCA string
	etcd     *etcdOptions
}

func newCertsCommand(stdout io.Writer, etcd *etcdOptions) *cobra.Command {
	certs := &cobra.Command{
		Use:   "certs",
		Short: "Offline work on the certificates the exchange accepts",
	}
	o := &certsRecordOptions{etcd: etcd}
	record := &cobra.Command{
		Use:   "record CERT.pem...",
		Short: "Record client certificates signed outside the API, so that the exchange accepts them",
		Long: `The exchange accepts only client certificates it has recorded: those it
issued (exchangectl certs issue) and the secretariat's certificate it made on
first start. A certificate signed with the CA some other way (your own CA
without giving exchanged its key, say) is refused until it is recorded here;
once recorded it is listed and revoked like any other.

record checks that each certificate is a client certificate of the client CA
that names an identity of the exchange, and records it with the actor
"exchange" in the audit chain. Recording a certificate again changes nothing.
exchanged must not be running on DATA_DIR.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			return recordCertificateFiles(cmd.Context(), o, files, stdout)
		},
	}
	f := record.Flags()
	f.StringVar(&o.dataDir, "data-dir", env("EXCHANGE_DATA_DIR", "exchange-data"), "the data directory (EXCHANGE_DATA_DIR)")
	f.StringVar(&o.clientCA, "client-ca", env("EXCHANGE_CLIENT_CA", ""), "CA certificate that client certificates must chain to (EXCHANGE_CLIENT_CA; default DATA_DIR/pki/ca.crt)")
	certs.AddCommand(record)
	return certs
}

// recordCertificateFiles records each certificate file in the store of
// o.dataDir, after checking it against the client CA.
func recordCertificateFiles(ctx context.Context, o *certsRecordOptions, files []string, stdout io.Writer) error {
	caFile := o.clientCA
	if caFile == "" {
		caFile = pki.DevFilesIn(filepath.Join(o.dataDir, "pki")).CACert
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("the client CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	type checked struct {
		file string
		pem  []byte
		cert *x509.Certificate
	}
	var certs []checked
	for _, file := range files {
		pemBytes, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		cert, err := pki.ParseCertPEM(pemBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return fmt.Errorf("%s is not a client certificate of the client CA %s, so the exchange would refuse it anyway: %w", file, caFile, err)
		}
		if _, err := pki.IdentityFromCert(cert); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		certs = append(certs, checked{file, pemBytes, cert})
	}
	st, dbPath, err := openStore(o.etcd, o.dataDir, store.Options{})
	if err != nil {
		return fmt.Errorf("%s (stop exchanged first: the database is locked while it runs): %w", dbPath, err)
	}
	defer st.Close()
	for _, c := range certs {
		recorded, err := recordCertificate(ctx, st, c.pem, c.cert, "exchanged/certs-record")
		if err != nil {
			return fmt.Errorf("%s: %w", c.file, err)
		}
		fmt.Fprintf(stdout, "recorded %s for %s (%s, valid until %s)\n", recorded.GetName(), recorded.GetSubject(),
			c.file, recorded.GetNotAfter().AsTime().Format(time.DateOnly))
	}
	return st.Close()
}

// recordSecretariatCertificate records the secretariat certificate that
// exchanged made on first start, at every start (once: recording it again
// changes nothing), so that it is accepted, listed and revoked like any
// other; a data directory made before certificates had to be recorded
// gets it recorded at its next start.
func recordSecretariatCertificate(ctx context.Context, st *store.Store, certFile string) error {
	pemBytes, err := os.ReadFile(certFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	cert, err := pki.ParseCertPEM(pemBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", certFile, err)
	}
	if _, err := recordCertificate(ctx, st, pemBytes, cert, "exchanged/start"); err != nil {
		return fmt.Errorf("recording the secretariat certificate %s: %w", certFile, err)
	}
	return nil
}

// recordCertificate records a client certificate in the store, as the
// actor "exchange", with the subject its identity names.
func recordCertificate(ctx context.Context, st *store.Store, pemBytes []byte, cert *x509.Certificate, method string) (*exchangev1.Certificate, error) {
	id, err := pki.IdentityFromCert(cert)
	if err != nil {
		return nil, err
	}
	serial := pki.SerialString(cert.SerialNumber)
	return st.RecordSignedCertificate(ctx, store.Op{Actor: "exchange", Method: method}, serial, &exchangev1.Certificate{
		Subject:        server.Caller{Identity: id}.Actor(),
		NotBefore:      timestamppb.New(cert.NotBefore),
		NotAfter:       timestamppb.New(cert.NotAfter),
		CertificatePem: string(pemBytes),
		Issuer:         "exchange",
	})
}
