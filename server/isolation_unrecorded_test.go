package server

// Only certificates the exchange issued and recorded are accepted: a
// certificate signed with the CA key but never recorded (never issued
// through the API) is refused on every method, as a revoked one is.

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// notIssued is what the refusal of an unrecorded certificate says.
func notIssued(serial string) string {
	return "the client certificate " + serial + " was not issued by this exchange"
}

func TestIsolationAnUnrecordedCertificateIsRefusedOnEveryMethod(t *testing.T) {
	t.Parallel()
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	refer(t, x.asAgency("ilo"), "iom") // something to read, were the call let through

	for _, id := range []pki.Identity{pki.Agency("ilo"), pki.Secretariat()} {
		certFile, keyFile, serial := x.unrecordedCertFor(id)
		conn := x.dialWith(x.clientConfig(certFile, keyFile))
		methods := x.server.Methods()
		refused := 0
		for _, method := range methods {
			md, err := methodDescriptor(method)
			if err != nil {
				t.Fatal(err)
			}
			req, err := newMessageOf(md.Input())
			if err != nil {
				t.Fatal(err)
			}
			out, err := newMessageOf(md.Output())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if md.IsStreamingServer() || md.IsStreamingClient() {
				err = callStream(ctx, conn, md, method, req, out)
			} else {
				err = conn.Invoke(ctx, method, req, out)
			}
			cancel()
			st := wantCode(t, err, codes.Unauthenticated)
			if !strings.Contains(st.Message(), notIssued(serial)) || reason(st) != "UNAUTHENTICATED" {
				t.Errorf("%s as an unrecorded %s: %q (reason %q), want the message %q", method, id, st.Message(), reason(st), notIssued(serial))
				continue
			}
			refused++
		}
		t.Logf("%s, signed by the CA but not recorded: refused on %d of %d methods", id, refused, len(methods))
	}
}

func TestACertificateSignedOfflineIsAcceptedOnlyOnceRecordedAndUntilRevoked(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ctx := context.Background()

	certFile, keyFile, serial := x.unrecordedCertFor(pki.Agency("ilo"))
	forged := as{conn: x.dialWith(x.clientConfig(certFile, keyFile))}
	forged.dir = exchangev1.NewDirectoryServiceClient(forged.conn)
	st := wantCode(t, listAgencies(forged), codes.Unauthenticated)
	if want := notIssued(serial) + " (it names agencies/ilo)"; !strings.HasPrefix(st.Message(), want) {
		t.Errorf("message %q, want it to start with %q", st.Message(), want)
	}
	_, err := sec.certs.RevokeCertificate(ctx, &exchangev1.RevokeCertificateRequest{Name: "certificates/" + serial, Reason: "forged"})
	wantCode(t, err, codes.NotFound) // the exchange never heard of it

	// Recorded (as `exchanged certs record` does), the same connection is
	// accepted at its next call.
	x.record(certFile)
	if err := listAgencies(forged); err != nil {
		t.Fatalf("after recording: %v", err)
	}
	if _, err := sec.certs.RevokeCertificate(ctx, &exchangev1.RevokeCertificateRequest{Name: "certificates/" + serial, Reason: "key lost"}); err != nil {
		t.Fatal(err)
	}
	st = wantCode(t, listAgencies(forged), codes.Unauthenticated)
	if !strings.Contains(st.Message(), "has been revoked") {
		t.Errorf("after revocation: %q", st.Message())
	}
}
