package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func listAgencies(c as) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.dir.ListAgencies(ctx, &exchangev1.ListAgenciesRequest{})
	return err
}

func TestConnectionsWithoutAValidCertificateAreRefused(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")

	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey, err := other.IssueClient(pki.Agency("ilo"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "o.crt"), otherCert)
	writeFile(t, filepath.Join(dir, "o.key"), otherKey)

	noCert := x.clientConfig(x.dev.SecretariatCert, x.dev.SecretariatKey)
	noCert.Certificates = nil
	tls12 := x.clientConfig(x.dev.SecretariatCert, x.dev.SecretariatKey)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12

	for name, cfg := range map[string]*tls.Config{
		"no client certificate":     noCert,
		"certificate of another CA": rogueConfig(t, filepath.Join(dir, "o.crt"), filepath.Join(dir, "o.key"), x.dev.CACert),
		"TLS 1.2":                   tls12,
	} {
		t.Run(name, func(t *testing.T) {
			conn := x.dialWith(cfg)
			err := listAgencies(as{dir: exchangev1.NewDirectoryServiceClient(conn)})
			wantCode(t, err, codes.Unavailable) // the handshake fails
		})
	}
}

func TestUnknownRevokedAndSuspendedCallersAreRefused(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	ctx := context.Background()

	t.Run("agency not in the directory", func(t *testing.T) {
		st := wantCode(t, listAgencies(x.asAgency("ghost")), codes.Unauthenticated)
		if reason(st) != "UNAUTHENTICATED" {
			t.Errorf("reason %q", reason(st))
		}
	})

	t.Run("revoked certificate, on an open connection", func(t *testing.T) {
		ilo := x.asIssuedAgency(sec, "ilo")
		if err := listAgencies(ilo); err != nil {
			t.Fatalf("before revocation: %v", err)
		}
		if _, err := sec.certs.RevokeCertificate(ctx, &exchangev1.RevokeCertificateRequest{Name: "certificates/" + ilo.serial, Reason: "key lost"}); err != nil {
			t.Fatal(err)
		}
		wantCode(t, listAgencies(ilo), codes.Unauthenticated)
		// Other certificates of the same agency still work.
		if err := listAgencies(x.asAgency("ilo")); err != nil {
			t.Fatalf("a fresh certificate of ilo: %v", err)
		}
	})

	t.Run("suspended agency, until reactivated", func(t *testing.T) {
		iom := x.asAgency("iom")
		if _, err := sec.dir.SuspendAgency(ctx, &exchangev1.SuspendAgencyRequest{Name: "agencies/iom", Reason: "membership lapsed"}); err != nil {
			t.Fatal(err)
		}
		st := wantCode(t, listAgencies(iom), codes.PermissionDenied)
		if reason(st) != "AGENCY_SUSPENDED" {
			t.Errorf("reason %q", reason(st))
		}
		if _, err := sec.dir.ReactivateAgency(ctx, &exchangev1.ReactivateAgencyRequest{Name: "agencies/iom"}); err != nil {
			t.Fatal(err)
		}
		if err := listAgencies(iom); err != nil {
			t.Fatalf("after reactivation: %v", err)
		}
	})
}

func TestSecretariatOnlyMethodsRefuseAgencies(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")
	ctx := context.Background()
	_, err := ilo.dir.CreateAgency(ctx, &exchangev1.CreateAgencyRequest{AgencyId: "new", Agency: &exchangev1.Agency{DisplayName: "x", Kind: exchangev1.AgencyKind_AGENCY_KIND_DONOR}})
	wantCode(t, err, codes.PermissionDenied)
	_, err = ilo.dir.SuspendAgency(ctx, &exchangev1.SuspendAgencyRequest{Name: "agencies/ilo", Reason: "x"})
	wantCode(t, err, codes.PermissionDenied)
	_, err = ilo.certs.IssueCertificate(ctx, &exchangev1.IssueCertificateRequest{Subject: "agencies/ilo", CsrDer: newCSR(t, pki.Agency("ilo"))})
	wantCode(t, err, codes.PermissionDenied)
	if _, err := x.store.GetAgency(ctx, "agencies/new"); err == nil {
		t.Fatal("the refused create stored an agency")
	}
}

// rogueConfig builds a client configuration by hand, without the check
// pki.ClientTLSConfig makes, to prove the server refuses what it presents.
func rogueConfig(t *testing.T, certFile, keyFile, caFile string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost"}
}
