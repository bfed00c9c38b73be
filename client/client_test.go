package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/clienttest"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Method names used throughout the tests.
const (
	createAgency = exchangev1.DirectoryService_CreateAgency_FullMethodName
	listAgencies = exchangev1.DirectoryService_ListAgencies_FullMethodName
	getAgency    = exchangev1.DirectoryService_GetAgency_FullMethodName
	updateAgency = exchangev1.DirectoryService_UpdateAgency_FullMethodName
)

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func unavailable() error { return status.Error(codes.Unavailable, "try again") }

// seedAgencies stores agencies with the given ids, all working in KH.
func seedAgencies(s *clienttest.Server, ids ...string) {
	for _, id := range ids {
		s.PutAgency(&exchangev1.Agency{
			Name:        client.AgencyName(id),
			DisplayName: strings.ToUpper(id),
			Kind:        exchangev1.AgencyKind_AGENCY_KIND_NATIONAL_NGO,
			Countries:   []string{"KH"},
		})
	}
}

// readOnlyVerbs are custom methods that change nothing on the server,
// besides the Get, List, Pull and Watch methods.
var readOnlyVerbs = map[string]bool{"SuggestRecipients": true, "AggregateDatasetRows": true,
	"DiffPlanVersions": true, "FindOverlaps": true, "FindGaps": true}

// idempotentWrites are the methods without a request_id whose repetition
// leaves the same state as one call (upserts keyed by their content, and
// setting a value that the same value again leaves alone).
var idempotentWrites = map[string]bool{"WriteDatasetRows": true, "SetAgencyEncryptionKey": true}

// validateOnlyRetried are the declarative writes without a request_id
// that are retried only as dry runs (validate_only), because the answer
// of a repeat would misreport what a lost first call changed.
var validateOnlyRetried = map[string]bool{"ApplyPlans": true, "ImportIatiActivities": true}

// resumedStreams are the streaming methods, each a read that a typed
// method resumes itself after a broken stream (the client has no stream
// retry interceptor).
var resumedStreams = map[string]string{
	"WatchReferrals":   "ReferralClient.Watch",
	"PullDatasetRows":  "DatasetClient.Pull",
	"WatchDatasetRows": "DatasetClient.WatchRows",
	"WatchPlans":       "PlanClient.Watch",
}

// TestRetryPolicyCoversEveryMethod fails when a service gains a method
// without an explicit retry decision, and checks each decision against the
// method's shape: reads are retried, creates carrying a request_id (or a
// batch of requests that each carry one) are retried, the listed
// idempotent writes are retried, everything else is not.
func TestRetryPolicyCoversEveryMethod(t *testing.T) {
	services := []grpc.ServiceDesc{
		exchangev1.DirectoryService_ServiceDesc,
		exchangev1.CertificateService_ServiceDesc,
		exchangev1.ReferralService_ServiceDesc,
		exchangev1.DatasetService_ServiceDesc,
		exchangev1.PlanService_ServiceDesc,
		exchangev1.ConsultantService_ServiceDesc,
	}
	for _, sd := range services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(sd.ServiceName))
		if err != nil {
			t.Fatal(err)
		}
		svc := d.(protoreflect.ServiceDescriptor)
		if n := len(sd.Methods) + len(sd.Streams); n != svc.Methods().Len() {
			t.Errorf("%s: %d generated methods, %d in the descriptor", sd.ServiceName, n, svc.Methods().Len())
		}
		names := map[string]bool{}
		for _, m := range sd.Methods {
			names[m.MethodName] = false
		}
		for _, st := range sd.Streams {
			// The client's retry interceptor is unary only: a stream
			// must be a read that a typed method resumes itself.
			if _, ok := resumedStreams[st.StreamName]; st.ClientStreams || !ok {
				t.Errorf("%s/%s: only server-streaming reads that a typed method resumes are expected; the client has no stream retry interceptor", sd.ServiceName, st.StreamName)
			}
			names[st.StreamName] = true
		}
		for name := range names {
			full := "/" + sd.ServiceName + "/" + name
			got, ok := client.MethodRetryPolicy(full)
			if !ok {
				t.Errorf("%s has no retry policy: add it to retryPolicies in client/retry.go", full)
				continue
			}
			md := svc.Methods().ByName(protoreflect.Name(name))
			want := client.NoRetry
			switch {
			case strings.HasPrefix(name, "Get"), strings.HasPrefix(name, "List"), strings.HasPrefix(name, "Watch"),
				strings.HasPrefix(name, "Pull"), readOnlyVerbs[name]:
				want = client.RetryAlways
			case carriesRequestID(md.Input()):
				want = client.RetryWithRequestID
			case idempotentWrites[name]:
				want = client.RetryIdempotent
			case validateOnlyRetried[name] && md.Input().Fields().ByName("validate_only") != nil:
				want = client.RetryIfValidateOnly
			}
			if got != want {
				t.Errorf("%s: policy %v, want %v", full, got, want)
			}
		}
	}
	if p, ok := client.MethodRetryPolicy("/alltogether.exchange.v1.Unknown/Do"); ok || p != client.NoRetry {
		t.Errorf("unknown method: policy %v, %v; want no-retry, false", p, ok)
	}
}

// carriesRequestID reports whether a request message has a request_id, or
// is a batch whose requests each have one.
func carriesRequestID(m protoreflect.MessageDescriptor) bool {
	if m.Fields().ByName("request_id") != nil {
		return true
	}
	batch := m.Fields().ByName("requests")
	return batch != nil && batch.IsList() && batch.Message() != nil && batch.Message().Fields().ByName("request_id") != nil
}

func TestDialFailsUsefullyWithMissingFiles(t *testing.T) {
	s := clienttest.NewServer(t)
	good := s.Config(t, "secretariat")
	missing := filepath.Join(t.TempDir(), "nope.crt")
	garbage := filepath.Join(t.TempDir(), "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*client.Config)
		want   []string // substrings of the error
	}{
		{"no address", func(c *client.Config) { c.Address = "" }, []string{"no server address"}},
		{"address without port", func(c *client.Config) { c.Address = "127.0.0.1" }, []string{`"127.0.0.1"`, "host:port"}},
		{"no cert file", func(c *client.Config) { c.CertFile = "" }, []string{"no client certificate file"}},
		{"no CA file", func(c *client.Config) { c.CAFile = "" }, []string{"no CA certificate file"}},
		{"missing cert file", func(c *client.Config) { c.CertFile = missing }, []string{missing, "no such file"}},
		{"missing key file", func(c *client.Config) { c.KeyFile = missing }, []string{missing, "no such file"}},
		{"missing CA file", func(c *client.Config) { c.CAFile = missing }, []string{missing, "no such file"}},
		{"garbage CA file", func(c *client.Config) { c.CAFile = garbage }, []string{garbage}},
		{"key of another cert", func(c *client.Config) { _, c.KeyFile = s.PKI.ClientFiles(t, "agency/ilo") }, []string{"does not match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			c, err := client.Dial(context.Background(), cfg)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDialPresentsClientCertificate(t *testing.T) {
	s := clienttest.NewServer(t)
	seedAgencies(s, "ilo")
	for _, address := range []string{s.Addr, strings.Replace(s.Addr, "127.0.0.1", "localhost", 1)} {
		cfg := s.Config(t, "agency/ilo")
		cfg.Address = address
		c, err := client.Dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Directory.GetAgency(context.Background(), "agencies/ilo"); err != nil {
			t.Fatalf("%s: %v", address, err)
		}
		c.Close()
	}
	for _, call := range s.Calls(getAgency) {
		if call.Caller != "spiffe://alltogether/agency/ilo" {
			t.Errorf("caller %q, want the agency/ilo certificate", call.Caller)
		}
	}
}

func TestDialChecksServerName(t *testing.T) {
	s := clienttest.NewServer(t)
	cfg := s.Config(t, "secretariat")
	cfg.ServerName = "exchange.example.org"
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Directory.GetAgency(context.Background(), "agencies/ilo")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "exchange.example.org") {
		t.Errorf("got %v, want UNAVAILABLE naming the server name", err)
	}
}

func TestConfigTimeoutBoundsCallsWithoutDeadline(t *testing.T) {
	s := clienttest.NewServer(t)
	seedAgencies(s, "ilo")
	cfg := s.Config(t, "secretariat")
	cfg.Timeout = time.Nanosecond
	c, err := client.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Directory.GetAgency(context.Background(), "agencies/ilo"); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("got %v, want DEADLINE_EXCEEDED from Config.Timeout", err)
	}
	// A deadline of the caller's own wins.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Directory.GetAgency(ctx, "agencies/ilo"); err != nil {
		t.Errorf("with the caller's deadline: %v", err)
	}
}

func TestAgenciesIteratorWalksPages(t *testing.T) {
	s := clienttest.NewServer(t)
	s.SetPageSize(2)
	seedAgencies(s, "aaa", "bbb", "ccc", "ddd", "eee")
	s.PutAgency(&exchangev1.Agency{Name: "agencies/zzz", DisplayName: "Z", Countries: []string{"TH"}})
	c := s.Dial(t, "secretariat")

	req := &exchangev1.ListAgenciesRequest{Country: "KH"}
	var got []string
	for a, err := range c.Directory.Agencies(context.Background(), req) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.GetName())
	}
	want := "agencies/aaa agencies/bbb agencies/ccc agencies/ddd agencies/eee"
	if strings.Join(got, " ") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	calls := s.Calls(listAgencies)
	if len(calls) != 3 {
		t.Fatalf("%d ListAgencies calls, want 3", len(calls))
	}
	for i, wantToken := range []string{"", "2", "4"} {
		r := calls[i].Request.(*exchangev1.ListAgenciesRequest)
		if r.PageToken != wantToken || r.Country != "KH" {
			t.Errorf("call %d: token %q country %q, want %q KH", i, r.PageToken, r.Country, wantToken)
		}
	}
	if req.PageToken != "" {
		t.Errorf("iterator changed the caller's request: page_token %q", req.PageToken)
	}
}

func TestIteratorStopsOnError(t *testing.T) {
	s := clienttest.NewServer(t)
	s.SetPageSize(2)
	seedAgencies(s, "aaa", "bbb", "ccc", "ddd", "eee")
	c := s.Dial(t, "secretariat")
	s.FailNext(listAgencies, nil, status.Error(codes.PermissionDenied, "no"))

	var got []string
	var errs []error
	for a, err := range c.Directory.Agencies(context.Background(), nil) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, a.GetName())
	}
	if len(got) != 2 || len(errs) != 1 || status.Code(errs[0]) != codes.PermissionDenied {
		t.Errorf("got %v and errors %v; want two agencies, then one PERMISSION_DENIED", got, errs)
	}
	if n := len(s.Calls(listAgencies)); n != 2 {
		t.Errorf("%d ListAgencies calls, want 2", n)
	}

	all, err := client.Collect(c.Directory.Agencies(context.Background(), nil))
	if err != nil || len(all) != 5 {
		t.Errorf("Collect: %d agencies, %v; want 5, nil", len(all), err)
	}
}

func TestIteratorStopsWhenCallerStops(t *testing.T) {
	s := clienttest.NewServer(t)
	s.SetPageSize(2)
	seedAgencies(s, "aaa", "bbb", "ccc", "ddd", "eee")
	c := s.Dial(t, "secretariat")
	for range c.Directory.Agencies(context.Background(), nil) {
		break
	}
	if n := len(s.Calls(listAgencies)); n != 1 {
		t.Errorf("%d ListAgencies calls, want 1", n)
	}
}

func TestCreateSetsRequestIDAndReusesItOnRetry(t *testing.T) {
	s := clienttest.NewServer(t)
	c := s.Dial(t, "secretariat")
	s.FailNext(createAgency, unavailable())

	a, err := c.Directory.CreateAgency(context.Background(), "ilo", &exchangev1.Agency{
		DisplayName: "International Labour Organization",
		Kind:        exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.GetName() != "agencies/ilo" {
		t.Errorf("name %q", a.GetName())
	}
	calls := s.Calls(createAgency)
	if len(calls) != 2 {
		t.Fatalf("%d CreateAgency calls, want 2 (one failed, one retry)", len(calls))
	}
	first := calls[0].Request.(*exchangev1.CreateAgencyRequest).GetRequestId()
	second := calls[1].Request.(*exchangev1.CreateAgencyRequest).GetRequestId()
	if !requestIDPattern.MatchString(first) || first != second {
		t.Errorf("request ids %q, %q: want the same 32 hex digits on both attempts", first, second)
	}
	if calls[0].Attempt != "" || calls[1].Attempt != "1" {
		t.Errorf("attempt headers %q, %q; want \"\", \"1\"", calls[0].Attempt, calls[1].Attempt)
	}

	// A second logical call gets a new id.
	if _, err := c.Directory.CreateAgency(context.Background(), "iom", &exchangev1.Agency{
		DisplayName: "IOM", Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY,
	}); err != nil {
		t.Fatal(err)
	}
	calls = s.Calls(createAgency)
	if third := calls[2].Request.(*exchangev1.CreateAgencyRequest).GetRequestId(); third == first {
		t.Errorf("two logical calls share request id %q", third)
	}
}

func TestCreateRetryAfterLostResponseDoesNotDuplicate(t *testing.T) {
	s := clienttest.NewServer(t)
	seedAgencies(s, "ilo")
	c := s.Dial(t, "secretariat")
	method := exchangev1.DirectoryService_CreateFocalPoint_FullMethodName
	s.FailAfterNext(method, unavailable())

	fp, err := c.Directory.CreateFocalPoint(context.Background(), "agencies/ilo", &exchangev1.FocalPoint{
		DisplayName: "Somchai",
		Topic:       "referrals",
		Tenure:      &exchangev1.DatePeriod{Start: &exchangev1.CalendarDate{Year: 2026, Month: 1, Day: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Calls(method)); n != 2 {
		t.Errorf("%d CreateFocalPoint calls, want 2", n)
	}
	stored := s.FocalPoints()
	if len(stored) != 1 || stored[0].GetName() != fp.GetName() {
		t.Errorf("stored %v; want exactly the one focal point returned", stored)
	}
}

func TestCreateHonoursCallerRequestID(t *testing.T) {
	s := clienttest.NewServer(t)
	c := s.Dial(t, "secretariat")
	wg := &exchangev1.WorkingGroup{DisplayName: "UN WG", Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP}
	for range 2 {
		if _, err := c.Directory.CreateWorkingGroup(context.Background(), "un-wg", wg, client.WithRequestID("sync-un-wg-1")); err != nil {
			t.Fatal(err)
		}
	}
	for _, call := range s.Calls(exchangev1.DirectoryService_CreateWorkingGroup_FullMethodName) {
		if id := call.Request.(*exchangev1.CreateWorkingGroupRequest).GetRequestId(); id != "sync-un-wg-1" {
			t.Errorf("request id %q", id)
		}
	}
	if n := len(s.WorkingGroups()); n != 1 {
		t.Errorf("%d working groups after a repeated create, want 1", n)
	}
	if _, err := c.Directory.CreateWorkingGroup(context.Background(), "x-wg", wg, client.ValidateOnly()); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ValidateOnly on CreateWorkingGroup: %v, want INVALID_ARGUMENT", err)
	}
}

func TestWritesAreNotRetried(t *testing.T) {
	s := clienttest.NewServer(t)
	seedAgencies(s, "ilo")
	c := s.Dial(t, "secretariat")
	ctx := context.Background()
	tests := []struct {
		method string
		call   func() error
	}{
		{updateAgency, func() error {
			_, err := c.Directory.UpdateAgency(ctx, &exchangev1.Agency{Name: "agencies/ilo", DisplayName: "ILO"}, "display_name")
			return err
		}},
		{exchangev1.DirectoryService_SuspendAgency_FullMethodName, func() error {
			_, err := c.Directory.SuspendAgency(ctx, "agencies/ilo", "audit", "")
			return err
		}},
		{exchangev1.DirectoryService_DeleteWorkingGroup_FullMethodName, func() error {
			return c.Directory.DeleteWorkingGroup(ctx, "workingGroups/un-wg", "")
		}},
		{exchangev1.CertificateService_RevokeCertificate_FullMethodName, func() error {
			_, err := c.Certificates.Revoke(ctx, "certificates/1f", "rotated")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			s.FailNext(tt.method, unavailable())
			if err := tt.call(); status.Code(err) != codes.Unavailable {
				t.Errorf("got %v, want UNAVAILABLE passed through", err)
			}
			if n := len(s.Calls(tt.method)); n != 1 {
				t.Errorf("%d calls, want exactly 1", n)
			}
		})
	}
}

func TestReadsAreRetriedAFewTimes(t *testing.T) {
	s := clienttest.NewServer(t)
	seedAgencies(s, "ilo")
	c := s.Dial(t, "secretariat")

	s.FailNext(getAgency, unavailable(), unavailable())
	if _, err := c.Directory.GetAgency(context.Background(), "agencies/ilo"); err != nil {
		t.Fatalf("GetAgency after two UNAVAILABLE: %v", err)
	}
	if n := len(s.Calls(getAgency)); n != 3 {
		t.Errorf("%d calls, want 3", n)
	}

	s.FailNext(getAgency, unavailable(), unavailable(), unavailable(), unavailable())
	if _, err := c.Directory.GetAgency(context.Background(), "agencies/ilo"); status.Code(err) != codes.Unavailable {
		t.Errorf("got %v, want UNAVAILABLE after the last attempt", err)
	}
	if n := len(s.Calls(getAgency)); n != 3+4 {
		t.Errorf("%d calls, want 4 more attempts", n-3)
	}

	s.FailNext(getAgency, status.Error(codes.PermissionDenied, "no"))
	if _, err := c.Directory.GetAgency(context.Background(), "agencies/ilo"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("got %v, want PERMISSION_DENIED", err)
	}
	if n := len(s.Calls(getAgency)); n != 8 {
		t.Errorf("PERMISSION_DENIED was retried: %d calls", n)
	}
}

func TestErrorHelpers(t *testing.T) {
	s := clienttest.NewServer(t)
	seedAgencies(s, "ilo")
	c := s.Dial(t, "secretariat")
	ctx := context.Background()

	_, err := c.Directory.GetAgency(ctx, "agencies/nobody")
	if !client.IsNotFound(err) || client.Reason(err) != "NOT_FOUND" {
		t.Errorf("GetAgency of a missing agency: %v (IsNotFound %v, reason %q)", err, client.IsNotFound(err), client.Reason(err))
	}

	_, err = c.Directory.CreateAgency(ctx, "new", &exchangev1.Agency{Kind: exchangev1.AgencyKind_AGENCY_KIND_DONOR})
	v := client.FieldViolations(err)
	if status.Code(err) != codes.InvalidArgument || len(v) != 1 || v[0].GetField() != "agency.display_name" {
		t.Errorf("create without display name: %v, violations %v", err, v)
	}

	a, err := c.Directory.GetAgency(ctx, "agencies/ilo")
	if err != nil {
		t.Fatal(err)
	}
	stale := proto.CloneOf(a)
	a.ShortName = "ILO"
	if _, err := c.Directory.UpdateAgency(ctx, a, "short_name"); err != nil {
		t.Fatal(err)
	}
	stale.ShortName = "I.L.O."
	_, err = c.Directory.UpdateAgency(ctx, stale, "short_name")
	if status.Code(err) != codes.Aborted || client.Reason(err) != "ETAG_MISMATCH" {
		t.Errorf("update with a stale etag: %v, reason %q", err, client.Reason(err))
	}

	wrapped := errors.Join(errors.New("context"), err)
	if client.Reason(wrapped) != "ETAG_MISMATCH" {
		t.Errorf("Reason of a wrapped error: %q", client.Reason(wrapped))
	}
	for _, e := range []error{nil, errors.New("plain")} {
		if client.IsNotFound(e) || client.Reason(e) != "" || client.FieldViolations(e) != nil {
			t.Errorf("helpers on %v report something", e)
		}
	}
}

func TestCurrentFocalPoint(t *testing.T) {
	s := clienttest.NewServer(t)
	seedAgencies(s, "ilo")
	c := s.Dial(t, "agency/ilo")
	ctx := context.Background()
	today := client.CalendarDate(time.Now())
	create := func(name string, start *exchangev1.CalendarDate) *exchangev1.FocalPoint {
		fp, err := c.Directory.CreateFocalPoint(ctx, "agencies/ilo", &exchangev1.FocalPoint{
			DisplayName: name, Topic: "referrals", Tenure: &exchangev1.DatePeriod{Start: start},
		})
		if err != nil {
			t.Fatal(err)
		}
		return fp
	}
	create("Before", &exchangev1.CalendarDate{Year: 2020, Month: 1, Day: 1})
	now := create("Now", today)

	got, err := c.Directory.CurrentFocalPoint(ctx, "agencies/ilo", "referrals")
	if err != nil || got.GetName() != now.GetName() {
		t.Fatalf("CurrentFocalPoint: %v, %v; want %s", got.GetDisplayName(), err, now.GetName())
	}
	old, err := c.Directory.FocalPointOn(ctx, "agencies/ilo", "referrals", &exchangev1.CalendarDate{Year: 2021, Month: 6, Day: 1})
	if err != nil || old.GetDisplayName() != "Before" {
		t.Errorf("FocalPointOn 2021-06-01: %v, %v", old.GetDisplayName(), err)
	}

	_, err = c.Directory.CurrentFocalPoint(ctx, "agencies/ilo", "data")
	if !client.IsNotFound(err) || client.Reason(err) != "NOT_FOUND" || !strings.Contains(err.Error(), `"data"`) {
		t.Errorf("no focal point for data: %v", err)
	}

	ended, err := c.Directory.EndFocalPoint(ctx, now.GetName(), today)
	if err != nil || ended.GetTenure().GetEnd().GetDay() != today.GetDay() || ended.GetTenure().GetStart().GetDay() != today.GetDay() {
		t.Fatalf("EndFocalPoint: %v, %v", ended, err)
	}
	update := s.Calls(exchangev1.DirectoryService_UpdateFocalPoint_FullMethodName)[0].Request.(*exchangev1.UpdateFocalPointRequest)
	if update.GetFocalPoint().GetEtag() != now.GetEtag() || strings.Join(update.GetUpdateMask().GetPaths(), ",") != "tenure" {
		t.Errorf("EndFocalPoint sent etag %q mask %v; want %q [tenure]", update.GetFocalPoint().GetEtag(), update.GetUpdateMask().GetPaths(), now.GetEtag())
	}
}

func TestIssueKeepsKeyLocal(t *testing.T) {
	s := clienttest.NewServer(t)
	seedAgencies(s, "ilo")
	c := s.Dial(t, "secretariat")
	ctx := context.Background()

	certPEM, keyPEM, caPEM, cert, err := c.Certificates.Issue(ctx, "agencies/ilo", 30)
	if err != nil {
		t.Fatal(err)
	}
	if cert.GetSubject() != "agencies/ilo" || string(certPEM) != cert.GetCertificatePem() || string(caPEM) != string(s.PKI.CAPEM()) {
		t.Errorf("Issue returned subject %q, cert PEM match %v, CA match %v", cert.GetSubject(), string(certPEM) == cert.GetCertificatePem(), string(caPEM) == string(s.PKI.CAPEM()))
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("issued certificate and local key do not match: %v", err)
	}
	req := s.Calls(exchangev1.CertificateService_IssueCertificate_FullMethodName)[0].Request.(*exchangev1.IssueCertificateRequest)
	if req.GetValidityDays() != 30 || !requestIDPattern.MatchString(req.GetRequestId()) {
		t.Errorf("request: validity %d, request id %q", req.GetValidityDays(), req.GetRequestId())
	}
	wire, _ := proto.Marshal(req)
	if strings.Contains(string(wire), "PRIVATE KEY") {
		t.Error("the private key went over the wire")
	}
	parsed, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := pki.IdentityFromCert(parsed); err != nil || id != pki.Agency("ilo") {
		t.Errorf("identity %v, %v", id, err)
	}

	// The issued files work against the server.
	dir := t.TempDir()
	files := map[string][]byte{"ilo.crt": certPEM, "ilo.key": keyPEM, "ca.crt": caPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ilo, err := client.Dial(ctx, client.Config{
		Address:  s.Addr,
		CertFile: filepath.Join(dir, "ilo.crt"),
		KeyFile:  filepath.Join(dir, "ilo.key"),
		CAFile:   filepath.Join(dir, "ca.crt"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ilo.Close()
	got, err := ilo.Certificates.Get(ctx, cert.GetName())
	if err != nil || got.GetName() != cert.GetName() {
		t.Fatalf("Get as the new agency: %v", err)
	}
	if calls := s.Calls(exchangev1.CertificateService_GetCertificate_FullMethodName); calls[0].Caller != "spiffe://alltogether/agency/ilo" {
		t.Errorf("caller %q", calls[0].Caller)
	}

	list, err := client.Collect(c.Certificates.Certificates(ctx, "agencies/ilo"))
	if err != nil || len(list) != 1 {
		t.Errorf("Certificates: %d, %v", len(list), err)
	}
	revoked, err := c.Certificates.Revoke(ctx, cert.GetName(), "rotated")
	if err != nil || revoked.GetState() != exchangev1.CertificateState_CERTIFICATE_STATE_REVOKED {
		t.Errorf("Revoke: %v, %v", revoked.GetState(), err)
	}

	for _, bad := range []string{"ilo", "agencies/I", "agency/ilo", ""} {
		if _, _, _, _, err := c.Certificates.Issue(ctx, bad, 0); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Issue(%q): %v, want INVALID_ARGUMENT", bad, err)
		}
	}
	if n := len(s.Calls(exchangev1.CertificateService_IssueCertificate_FullMethodName)); n != 1 {
		t.Errorf("bad subjects reached the server: %d calls", n)
	}
}
