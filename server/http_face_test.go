package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/openapi"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// jsonClient calls the exchange's JSON/HTTP face on its one port with a
// client certificate, over HTTP/1.1 or HTTP/2 as asked.
type jsonClient struct {
	t    testing.TB
	base string
	http *http.Client
}

func (x *exchange) jsonClientFor(t testing.TB, id pki.Identity, http2 bool) jsonClient {
	t.Helper()
	certFile, keyFile, _ := x.certFor(id)
	cfg := x.clientConfig(certFile, keyFile)
	return newJSONClient(t, x.addr, cfg, http2)
}

func newJSONClient(t testing.TB, addr string, cfg *tls.Config, useHTTP2 bool) jsonClient {
	// Enough idle HTTP/1.1 connections for a parallel benchmark not to
	// handshake again on every call.
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 128}
	var protocols http.Protocols
	if useHTTP2 {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	tr.Protocols = &protocols
	t.Cleanup(tr.CloseIdleConnections)
	return jsonClient{t: t, base: "https://" + addr, http: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

// call sends a JSON request (body nil for none) and returns the status,
// the protocol used and the body.
func (c jsonClient) call(method, path string, body proto.Message) (int, string, []byte, error) {
	var in io.Reader
	if body != nil {
		b, err := protojson.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, in)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Proto, out, err
}

// mustCall is call that fails the test on a transport error or an
// unexpected HTTP status, and decodes the answer into out.
func (c jsonClient) mustCall(method, path string, body, out proto.Message, wantStatus int) {
	c.t.Helper()
	code, _, b, err := c.call(method, path, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != wantStatus {
		c.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, code, wantStatus, b)
	}
	if err := protojson.Unmarshal(b, out); err != nil {
		c.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
	}
}

// jsonStatusIsGRPCs fails unless the JSON error body is the gRPC error's
// google.rpc.Status: same code, message and details.
func jsonStatusIsGRPCs(t *testing.T, body []byte, grpcErr error) *spb.Status {
	t.Helper()
	var got spb.Status
	if err := protojson.Unmarshal(body, &got); err != nil {
		t.Fatalf("error body is not a google.rpc.Status: %v: %s", err, body)
	}
	want := status.Convert(grpcErr).Proto()
	if !proto.Equal(&got, want) {
		t.Fatalf("JSON error\n%v\nis not the gRPC error\n%v", &got, want)
	}
	return &got
}

func TestJSONAndGRPCShareThePortCertificatesAndRules(t *testing.T) {
	x, _, ilo, iom, unicef := threeAgencies(t)
	for _, h2 := range []bool{false, true} {
		wantProto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
		t.Run(wantProto, func(t *testing.T) {
			iloJSON := x.jsonClientFor(t, pki.Agency("ilo"), h2)
			unicefJSON := x.jsonClientFor(t, pki.Agency("unicef"), h2)

			// ilo sends a referral as JSON and reads it back as JSON.
			var created exchangev1.CreateReferralResponse
			iloJSON.mustCall("POST", "/v1/referrals", &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()}, &created, http.StatusOK)
			name := created.GetReferral().GetName()
			if !strings.HasPrefix(name, "referrals/") || created.GetReferral().GetSender() != "agencies/ilo" {
				t.Fatalf("created %v", created.GetReferral())
			}
			var got exchangev1.GetReferralResponse
			iloJSON.mustCall("GET", "/v1/"+name, nil, &got, http.StatusOK)
			_, gotProto, _, _ := iloJSON.call("GET", "/v1/"+name, nil)
			if gotProto != wantProto {
				t.Fatalf("answered over %s, want %s", gotProto, wantProto)
			}

			// The same referral over native gRPC on the same port.
			viaGRPC, err := ilo.referrals().GetReferral(context.Background(), &exchangev1.GetReferralRequest{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got.GetReferral(), viaGRPC.GetReferral()) {
				t.Fatalf("JSON read\n%v\ndiffers from gRPC read\n%v", got.GetReferral(), viaGRPC.GetReferral())
			}
			var list exchangev1.ListReferralsResponse
			iloJSON.mustCall("GET", "/v1/referrals?direction=REFERRAL_DIRECTION_OUTBOX", nil, &list, http.StatusOK)
			if !containsReferral(list.GetReferrals(), name) {
				t.Fatalf("outbox over JSON lacks %s: %v", name, list.GetReferrals())
			}
			// A poll for what changed since a time (docs/clients.md).
			since := created.GetReferral().GetUpdateTime().AsTime()
			iloJSON.mustCall("GET", "/v1/referrals?updatedSince="+since.Format(time.RFC3339Nano), nil, &list, http.StatusOK)
			if !containsReferral(list.GetReferrals(), name) {
				t.Fatalf("a poll from its update time lacks %s: %v", name, list.GetReferrals())
			}
			iloJSON.mustCall("GET", "/v1/referrals?updatedSince="+since.Add(time.Hour).Format(time.RFC3339Nano), nil, &list, http.StatusOK)
			if containsReferral(list.GetReferrals(), name) {
				t.Fatalf("a poll from an hour later lists %s", name)
			}

			// iom acknowledges over gRPC; ilo sees the new state as JSON.
			if _, err := iom.referrals().AcknowledgeReferral(context.Background(), &exchangev1.AcknowledgeReferralRequest{Name: name}); err != nil {
				t.Fatal(err)
			}
			iloJSON.mustCall("GET", "/v1/"+name, nil, &got, http.StatusOK)
			if got.GetReferral().GetState() != exchangev1.ReferralState_REFERRAL_STATE_RECEIVED {
				t.Fatalf("state over JSON %v, want RECEIVED", got.GetReferral().GetState())
			}

			// unicef is neither side: NOT_FOUND over JSON exactly as over gRPC.
			code, _, body, err := unicefJSON.call("GET", "/v1/"+name, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, grpcErr := unicef.referrals().GetReferral(context.Background(), &exchangev1.GetReferralRequest{Name: name})
			if code != http.StatusNotFound || status.Code(grpcErr) != codes.NotFound {
				t.Fatalf("another agency's read: HTTP %d %s; gRPC %v", code, body, grpcErr)
			}
			jsonStatusIsGRPCs(t, body, grpcErr)
		})
	}
}

// containsReferral reports whether a list of summaries names a referral.
func containsReferral(list []*exchangev1.Referral, name string) bool {
	for _, r := range list {
		if r.GetName() == name {
			return true
		}
	}
	return false
}

func TestJSONBadFieldIsNamedAsOverGRPCAndChangesNothing(t *testing.T) {
	x, _, ilo, _, _ := threeAgencies(t)
	iloJSON := x.jsonClientFor(t, pki.Agency("ilo"), false)
	bad := &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: "not an id!"}
	code, _, body, err := iloJSON.call("POST", "/v1/referrals", bad)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusBadRequest {
		t.Fatalf("HTTP %d, want 400: %s", code, body)
	}
	_, grpcErr := ilo.referrals().CreateReferral(context.Background(), bad)
	st := jsonStatusIsGRPCs(t, body, grpcErr)
	if codes.Code(st.GetCode()) != codes.InvalidArgument {
		t.Fatalf("code %v, want INVALID_ARGUMENT", codes.Code(st.GetCode()))
	}
	var named bool
	for _, d := range st.GetDetails() {
		var br errdetails.BadRequest
		if d.UnmarshalTo(&br) == nil {
			for _, v := range br.GetFieldViolations() {
				named = named || v.GetField() == "request_id"
			}
		}
	}
	if !named || !bytes.Contains(body, []byte(`"field":"request_id"`)) {
		t.Fatalf("the JSON error does not name request_id: %s", body)
	}
	var list exchangev1.ListReferralsResponse
	iloJSON.mustCall("GET", "/v1/referrals", nil, &list, http.StatusOK)
	if len(list.GetReferrals()) != 0 {
		t.Fatalf("a refused request stored %v", list.GetReferrals())
	}
}

func TestJSONWithoutAClientCertificateIsRefused(t *testing.T) {
	x := startExchange(t)
	for _, h2 := range []bool{false, true} {
		cfg := x.clientConfig(x.dev.SecretariatCert, x.dev.SecretariatKey)
		cfg.Certificates = nil
		c := newJSONClient(t, x.addr, cfg, h2)
		code, _, body, err := c.call("GET", "/v1/agencies", nil)
		if err == nil {
			t.Fatalf("a call without a client certificate was answered: HTTP %d %s", code, body)
		}
	}
	// The same call with the certificate is answered, so the refusal
	// above is the missing certificate's.
	x.asSecretariat()
	c := newJSONClient(t, x.addr, x.clientConfig(x.dev.SecretariatCert, x.dev.SecretariatKey), false)
	var list exchangev1.ListAgenciesResponse
	c.mustCall("GET", "/v1/agencies", nil, &list, http.StatusOK)
}

func TestJSONWritesAndAggregatesDatasetRowsAsGRPCDoes(t *testing.T) {
	x, ilo, _, _, _, ngo := jointDataset(t)
	ctx := context.Background()
	const returns = "agencies/ilo/datasets/returns"
	iomJSON := x.jsonClientFor(t, pki.Agency("iom"), false)
	iloJSON := x.jsonClientFor(t, pki.Agency("ilo"), true)
	ngoJSON := x.jsonClientFor(t, pki.Agency("ngo"), false)

	// iom contributes rows as JSON: the dataset from the path, the writes
	// in the body.
	var written exchangev1.WriteDatasetRowsResponse
	iomJSON.mustCall("POST", "/v1/"+returns+":writeRows", &exchangev1.WriteDatasetRowsRequest{Writes: []*exchangev1.RowWrite{
		{Row: row("2026-03", "KH-12", "female", 10)}, {Row: row("2026-03", "KH-2", "male", 3)},
	}}, &written, http.StatusOK)
	if len(written.GetResults()) != 2 {
		t.Fatalf("wrote %v", &written)
	}

	// ilo reads the dataset and its aggregates as JSON, the same as gRPC.
	var got exchangev1.GetDatasetResponse
	iloJSON.mustCall("GET", "/v1/"+returns, nil, &got, http.StatusOK)
	viaGRPC, err := ilo.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: returns})
	if err != nil || !proto.Equal(got.GetDataset(), viaGRPC.GetDataset()) {
		t.Fatalf("JSON read %v, gRPC read %v, %v", got.GetDataset(), viaGRPC.GetDataset(), err)
	}
	var agg exchangev1.AggregateDatasetRowsResponse
	iloJSON.mustCall("POST", "/v1/"+returns+":aggregateRows", &exchangev1.AggregateDatasetRowsRequest{GroupBy: []string{"location", "sex"}}, &agg, http.StatusOK)
	aggGRPC, err := ilo.datasets().AggregateDatasetRows(ctx, &exchangev1.AggregateDatasetRowsRequest{Dataset: returns, GroupBy: []string{"location", "sex"}})
	if err != nil || !proto.Equal(&agg, aggGRPC) || len(agg.GetCells()) != 2 {
		t.Fatalf("JSON aggregates %v, gRPC %v, %v", &agg, aggGRPC, err)
	}

	// ngo is outside the audience: NOT_FOUND as over gRPC.
	code, _, body, err := ngoJSON.call("GET", "/v1/"+returns, nil)
	if err != nil || code != http.StatusNotFound {
		t.Fatalf("ngo reading the dataset: HTTP %d %s %v", code, body, err)
	}
	_, grpcErr := ngo.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: returns})
	jsonStatusIsGRPCs(t, body, grpcErr)
}

func TestJSONAppliesAndListsPlansAsGRPCDoes(t *testing.T) {
	x, _, ilo, _, _, _ := planParties(t)
	ctx := context.Background()
	iloJSON := x.jsonClientFor(t, pki.Agency("ilo"), false)
	var applied exchangev1.ApplyPlansResponse
	iloJSON.mustCall("POST", "/v1/agencies/ilo/plans:apply", &exchangev1.ApplyPlansRequest{Plans: []*exchangev1.Plan{newPlan("kh-safe-1"), newPlan("kh-safe-2")}}, &applied, http.StatusOK)
	if got := sorted(actions(applied.GetResults())); len(got) != 2 {
		t.Fatalf("applied %v", got)
	}
	var list exchangev1.ListPlansResponse
	iloJSON.mustCall("GET", "/v1/agencies/ilo/plans", nil, &list, http.StatusOK)
	viaGRPC, err := ilo.plans().ListPlans(ctx, &exchangev1.ListPlansRequest{Parent: "agencies/ilo"})
	if err != nil {
		t.Fatal(err)
	}
	// The lists are equal but for the revision each was read at.
	list.Revision, viaGRPC.Revision = 0, 0
	if !proto.Equal(&list, viaGRPC) || len(list.GetPlans()) != 2 {
		t.Fatalf("JSON list %v, gRPC list %v, %v", &list, viaGRPC, err)
	}
}

func TestJSONFacePublishesItsOpenAPIDocumentAndHealth(t *testing.T) {
	x := startExchange(t)
	x.asSecretariat()
	c := newJSONClient(t, x.addr, x.clientConfig(x.dev.SecretariatCert, x.dev.SecretariatKey), true)
	code, _, body, err := c.call("GET", "/openapi.json", nil)
	if err != nil || code != http.StatusOK || !bytes.Equal(body, openapi.Document) || len(body) == 0 {
		t.Fatalf("GET /openapi.json: HTTP %d, %d bytes, %v", code, len(body), err)
	}
	// Readiness without gRPC: the health service through Connect's JSON
	// (docs/operations.md).
	req, err := http.NewRequest("POST", c.base+"/grpc.health.v1.Health/Check", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Protocol-Version", "1")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	var health healthpb.HealthCheckResponse
	if err := protojson.Unmarshal(body, &health); err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: HTTP %d %s %v", resp.StatusCode, body, err)
	}
}

// flakyListener fails its first Accept with a temporary error, as a
// listener out of file descriptors does.
type flakyListener struct {
	net.Listener
	failed atomic.Bool
}

type temporaryError struct{}

func (temporaryError) Error() string   { return "accept: too many open files" }
func (temporaryError) Temporary() bool { return true }
func (temporaryError) Timeout() bool   { return false }

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failed.CompareAndSwap(false, true) {
		return nil, temporaryError{}
	}
	return l.Listener.Accept()
}

func TestServeOutlivesATemporaryAcceptError(t *testing.T) {
	x := startExchange(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- x.server.Serve(&flakyListener{Listener: lis}) }()
	x.record(x.dev.SecretariatCert)
	c := newJSONClient(t, lis.Addr().String(), x.clientConfig(x.dev.SecretariatCert, x.dev.SecretariatKey), false)
	c.http.Timeout = 5 * time.Second // no server answers the handshake once Serve has given up
	var list exchangev1.ListAgenciesResponse
	c.mustCall("GET", "/v1/agencies", nil, &list, http.StatusOK)
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v", err)
	default:
	}
}
