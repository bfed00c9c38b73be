package server

// Identity only from the certificate: no request body field and no
// metadata header changes who the caller is, and a connection without a
// valid client certificate of the exchange's CA over TLS 1.3 never gets as
// far as a call.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestIsolationIdentityComesOnlyFromTheCertificate(t *testing.T) {
	t.Parallel()
	x, sec, ilo, iom, unicef := threeAgencies(t)
	ctx := context.Background()

	t.Run("referral.sender names another agency", func(t *testing.T) {
		r := newReferral("unicef")
		r.Sender = "agencies/iom"
		r.History = []*exchangev1.Transition{{Actor: "agencies/iom", Reason: "referred"}}
		resp, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: r, RequestId: nextRequestID()})
		if err != nil {
			t.Fatal(err)
		}
		name := resp.GetReferral().GetName()
		got, err := unicef.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if s := got.GetReferral().GetSender(); s != "agencies/ilo" {
			t.Errorf("stored sender %s, want agencies/ilo (the certificate)", s)
		}
		if h := got.GetReferral().GetHistory(); len(h) != 1 || h[0].GetActor() != "agencies/ilo" {
			t.Errorf("history %v, want one entry by agencies/ilo", h)
		}
		if _, err := iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: name}); status.Code(err) != codes.NotFound {
			t.Errorf("iom, named as sender in the body, reads the referral: %v", err)
		}

		batch, err := ilo.referrals().BatchCreateReferrals(ctx, &exchangev1.BatchCreateReferralsRequest{Requests: []*exchangev1.CreateReferralRequest{
			{Referral: r, RequestId: nextRequestID()},
		}})
		if err != nil || batch.GetResults()[0].GetReferral() == "" {
			t.Fatalf("batch: %v %v", batch, err)
		}
		got, err = unicef.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: batch.GetResults()[0].GetReferral()})
		if err != nil || got.GetReferral().GetSender() != "agencies/ilo" {
			t.Errorf("batch: stored sender %s (%v), want agencies/ilo", got.GetReferral().GetSender(), err)
		}
	})

	t.Run("row.contributor names another agency", func(t *testing.T) {
		d := returnsDataset("agencies/ilo")
		if _, err := iom.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/iom", DatasetId: "identity-rows", Dataset: d}); err != nil {
			t.Fatal(err)
		}
		ds := "agencies/iom/datasets/identity-rows"
		write(t, iom, ds, isoRow("KH-2", 11))
		claimed := isoRow("KH-12", 5)
		claimed.Contributor = "agencies/iom"
		write(t, ilo, ds, claimed)
		// A deletion "as iom" of iom's row deletes nothing of iom's.
		gone := isoRow("KH-2", 0)
		gone.Contributor = "agencies/iom"
		del, err := ilo.datasets().WriteDatasetRows(ctx, &exchangev1.WriteDatasetRowsRequest{Dataset: ds, Writes: []*exchangev1.RowWrite{{Row: gone, Delete: true}}})
		if err != nil {
			t.Fatal(err)
		}
		if del.GetAccepted() != 0 {
			t.Errorf("ilo deleted a row by naming iom as its contributor: %v", del.GetResults())
		}
		rows, _ := pullAll(t, iom, &exchangev1.PullDatasetRowsRequest{Dataset: ds})
		var got []string
		for _, r := range rows {
			got = append(got, r.GetContributor()+" "+r.GetLocation())
		}
		slices.Sort(got)
		if want := []string{"agencies/ilo KH-12", "agencies/iom KH-2"}; !slices.Equal(got, want) {
			t.Errorf("rows %v, want %v: the contributor is the writer's certificate", got, want)
		}
		// An agency that is no contributor gets nothing by naming one.
		claimed.Contributor = "agencies/ilo"
		_, err = unicef.datasets().WriteDatasetRows(ctx, &exchangev1.WriteDatasetRowsRequest{Dataset: ds, Writes: []*exchangev1.RowWrite{{Row: claimed}}})
		if status.Code(err) != codes.NotFound {
			t.Errorf("unicef writing as ilo: %v, want NOT_FOUND", err)
		}
	})

	t.Run("dataset.owner names another agency", func(t *testing.T) {
		d := returnsDataset()
		d.Owner = "agencies/iom"
		resp, err := ilo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "identity-owner", Dataset: d})
		if err != nil {
			t.Fatal(err)
		}
		if o := resp.GetDataset().GetOwner(); o != "agencies/ilo" {
			t.Errorf("owner %s, want agencies/ilo", o)
		}
		if _, err := iom.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: "agencies/ilo/datasets/identity-owner"}); status.Code(err) != codes.NotFound {
			t.Errorf("iom, named as owner in the body, reads the dataset: %v", err)
		}
	})

	t.Run("plan owner and parent name another agency", func(t *testing.T) {
		p := newPlan("identity-1")
		p.Owner = "agencies/iom"
		p.Audience = nil
		resp, err := ilo.plans().CreatePlan(ctx, &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: p})
		if err != nil {
			t.Fatal(err)
		}
		created := resp.GetPlan()
		if created.GetOwner() != "agencies/ilo" || !isUnder(created.GetName(), "agencies/ilo/plans/") {
			t.Errorf("created %s owned by %s, want under agencies/ilo", created.GetName(), created.GetOwner())
		}
		_, err = ilo.plans().CreatePlan(ctx, &exchangev1.CreatePlanRequest{Parent: "agencies/iom", Plan: newPlan("identity-2")})
		wantCode(t, err, codes.PermissionDenied)
		upd := newPlan("identity-1")
		upd.Name, upd.Owner, upd.Audience = created.GetName(), "agencies/iom", nil
		u, err := ilo.plans().UpdatePlan(ctx, &exchangev1.UpdatePlanRequest{Plan: upd})
		if err != nil || u.GetPlan().GetOwner() != "agencies/ilo" {
			t.Errorf("update naming iom as owner: owner %s, %v", u.GetPlan().GetOwner(), err)
		}
		if _, err := iom.plans().GetPlan(ctx, &exchangev1.GetPlanRequest{Name: created.GetName()}); status.Code(err) != codes.NotFound {
			t.Errorf("iom reads ilo's plan after being named its owner: %v", err)
		}
		_, err = ilo.plans().ApplyPlans(ctx, &exchangev1.ApplyPlansRequest{Parent: "agencies/iom", Plans: []*exchangev1.Plan{newPlan("identity-3")}})
		wantCode(t, err, codes.PermissionDenied)
		file, err := os.ReadFile("../iati/testdata/ilo-mekong-2026.xml")
		if err != nil {
			t.Fatal(err)
		}
		_, err = ilo.plans().ImportIatiActivities(ctx, &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/iom", IatiXml: file})
		wantCode(t, err, codes.PermissionDenied)
		list, err := iom.plans().ListPlans(ctx, &exchangev1.ListPlansRequest{Parent: "agencies/iom"})
		if err != nil || len(list.GetPlans()) != 0 {
			t.Errorf("iom has plans it never made: %v %v", list.GetPlans(), err)
		}
	})

	t.Run("directory records of another agency", func(t *testing.T) {
		_, err := ilo.dir.CreateFocalPoint(ctx, isoFocalPointRequest("agencies/iom", 1))
		wantCode(t, err, codes.PermissionDenied)
		_, err = ilo.dir.UpdateAgency(ctx, &exchangev1.UpdateAgencyRequest{Agency: &exchangev1.Agency{Name: "agencies/iom", DisplayName: "Taken over", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}})
		wantCode(t, err, codes.PermissionDenied)
	})

	t.Run("metadata claiming another identity", func(t *testing.T) {
		between := refer(t, iom, "unicef")
		iomCert, _, _ := x.certFor(pki.Agency("iom"))
		iomPEM, err := os.ReadFile(iomCert)
		if err != nil {
			t.Fatal(err)
		}
		headers := metadata.Pairs(
			"x-agency", "iom", "x-agency-id", "agencies/iom", "x-exchange-agency", "iom", "x-caller", "agency/iom",
			"x-forwarded-client-cert", "By=spiffe://alltogether/agency/iom;URI=spiffe://alltogether/agency/iom",
			"x-client-cert", url.QueryEscape(string(iomPEM)), "x-ssl-client-cert", url.QueryEscape(string(iomPEM)),
			"x-spiffe-id", "spiffe://alltogether/agency/iom", "x-remote-user", "iom", "x-forwarded-user", "agency/iom",
			"authorization", "Bearer spiffe://alltogether/agency/iom", "x-role", "secretariat",
		)
		as := metadata.NewOutgoingContext(ctx, headers)

		// ilo stays ilo.
		_, err = ilo.referrals().GetReferral(as, &exchangev1.GetReferralRequest{Name: between.GetName()})
		if status.Code(err) != codes.NotFound {
			t.Errorf("ilo with headers naming iom reads iom's referral: %v", err)
		}
		list, err := ilo.referrals().ListReferrals(as, &exchangev1.ListReferralsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list.GetReferrals() {
			if r.GetSender() != "agencies/ilo" && r.GetReceiver() != "agencies/ilo" {
				t.Errorf("ilo with headers naming iom lists %s (%s→%s)", r.GetName(), r.GetSender(), r.GetReceiver())
			}
		}
		created, err := ilo.referrals().CreateReferral(as, &exchangev1.CreateReferralRequest{Referral: newReferral("unicef"), RequestId: nextRequestID()})
		if err != nil || created.GetReferral().GetSender() != "agencies/ilo" {
			t.Errorf("ilo with headers naming iom sent as %s (%v)", created.GetReferral().GetSender(), err)
		}
		_, err = ilo.dir.CreateAgency(as, &exchangev1.CreateAgencyRequest{AgencyId: "by-header", Agency: &exchangev1.Agency{DisplayName: "x", Kind: exchangev1.AgencyKind_AGENCY_KIND_DONOR}})
		wantCode(t, err, codes.PermissionDenied)
		entries, err := x.store.AuditEntries(ctx, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.GetResourceName() == created.GetReferral().GetName() && e.GetActor() != "agencies/ilo" {
				t.Errorf("audit entry for the referral names %s", e.GetActor())
			}
		}

		// The secretariat stays the secretariat: no referral contents.
		_, err = sec.referrals().GetReferral(as, &exchangev1.GetReferralRequest{Name: between.GetName()})
		if status.Code(err) != codes.NotFound {
			t.Errorf("the secretariat with headers naming iom reads iom's referral: %v", err)
		}
		// A suspended agency stays suspended, whoever the headers name.
		x.createAgency(sec, "lapsed")
		lapsed := x.asAgency("lapsed")
		if _, err := sec.dir.SuspendAgency(ctx, &exchangev1.SuspendAgencyRequest{Name: "agencies/lapsed", Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		st := wantCode(t, listAgenciesCtx(as, lapsed), codes.PermissionDenied)
		if reason(st) != "AGENCY_SUSPENDED" {
			t.Errorf("suspended agency with headers naming iom: reason %q", reason(st))
		}
	})
}

func isUnder(name, prefix string) bool {
	return len(name) > len(prefix) && name[:len(prefix)] == prefix
}

func listAgenciesCtx(ctx context.Context, c as) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.dir.ListAgencies(ctx, &exchangev1.ListAgenciesRequest{})
	return err
}

// clientCert makes a client certificate for tmpl, signed by parent's key
// (self-signed when parent is nil).
func clientCert(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey any) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// leafTemplate is a client certificate template for the agency URI.
func leafTemplate(uri string, notBefore, notAfter time.Time, usage x509.ExtKeyUsage) *x509.Certificate {
	u, _ := url.Parse(uri)
	return &x509.Certificate{
		Subject: pkix.Name{CommonName: "agency/ilo"}, URIs: []*url.URL{u},
		NotBefore: notBefore, NotAfter: notAfter, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
}

// handshake dials the exchange with raw TLS, sends the HTTP/2 preface and
// reads: a server that accepted the client answers with its SETTINGS
// frame; one that refused it ends the handshake with an alert.
func handshake(addr string, cfg *tls.Config) (accepted bool, detail error) {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")); err != nil {
		return false, err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, fmt.Errorf("neither an answer nor a refusal within 5s")
	}
	return err == nil && n > 0, err
}

func TestIsolationHandshakeRefusesAnythingButAnExchangeCertificateOverTLS13(t *testing.T) {
	t.Parallel()
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	caPEM, err := os.ReadFile(x.dev.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	// The client presents its certificate whatever the server asks for
	// (crypto/tls would otherwise keep back one the server's CA list does
	// not name), so that the server has to refuse it itself.
	config := func(certs ...tls.Certificate) *tls.Config {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: certs, RootCAs: roots, ServerName: "localhost"}
		if len(certs) == 1 {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
		}
		return cfg
	}
	now := time.Now()
	ilo := pki.Agency("ilo").URI().String()

	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, otherKeyPEM, err := other.IssueClient(pki.Agency("ilo"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := tls.X509KeyPair(otherPEM, otherKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := tls.LoadX509KeyPair(x.dev.ServerCert, x.dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	good, goodKey, _ := x.certFor(pki.Agency("ilo"))
	goodCert, err := tls.LoadX509KeyPair(good, goodKey)
	if err != nil {
		t.Fatal(err)
	}
	tls12 := config(goodCert)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12

	// The control: a valid certificate of the exchange's CA is accepted.
	if ok, err := handshake(x.addr, config(goodCert)); !ok {
		t.Fatalf("a valid certificate was not accepted (%v): the refusals below would prove nothing", err)
	}
	if err := listAgencies(asConn(x, config(goodCert))); err != nil {
		t.Fatalf("a valid certificate cannot call: %v", err)
	}

	refused := map[string]*tls.Config{
		"no client certificate": config(),
		"expired certificate of the exchange's CA": config(clientCert(t,
			leafTemplate(ilo, now.Add(-48*time.Hour), now.Add(-24*time.Hour), x509.ExtKeyUsageClientAuth), x.ca.Cert, x.ca.Key)),
		"not yet valid certificate of the exchange's CA": config(clientCert(t,
			leafTemplate(ilo, now.Add(24*time.Hour), now.Add(48*time.Hour), x509.ExtKeyUsageClientAuth), x.ca.Cert, x.ca.Key)),
		"certificate of another CA, naming ilo": config(otherCert),
		"self-signed certificate with ilo's URI SAN": config(clientCert(t,
			leafTemplate(ilo, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth), nil, nil)),
		"exchange CA certificate with a URI of another trust domain": config(clientCert(t,
			leafTemplate("spiffe://alltogether.evil/agency/ilo", now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth), x.ca.Cert, x.ca.Key)),
		"exchange CA certificate for servers only, naming ilo": config(clientCert(t,
			leafTemplate(ilo, now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageServerAuth), x.ca.Cert, x.ca.Key)),
		"the exchange's own server certificate": config(serverCert),
		"valid certificate over TLS 1.2":        tls12,
	}
	for name, cfg := range refused {
		t.Run(name, func(t *testing.T) {
			if ok, err := handshake(x.addr, cfg); ok {
				t.Errorf("the handshake succeeded: the server answered the HTTP/2 preface")
			} else {
				t.Logf("refused: %v", err)
			}
			wantCode(t, listAgencies(asConn(x, cfg)), codes.Unavailable)
		})
	}
}

// asConn connects with a TLS configuration built by hand.
func asConn(x *exchange, cfg *tls.Config) as {
	conn := x.dialWith(cfg)
	return as{conn: conn, dir: exchangev1.NewDirectoryServiceClient(conn)}
}
