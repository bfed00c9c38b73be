// Package clienttest runs a fake exchange for tests of the client and of
// exchangectl: a real gRPC server on a 127.0.0.1 listener with real mutual
// TLS 1.3, serving in-memory DirectoryService, CertificateService,
// ReferralService, DatasetService and PlanService implementations. It
// records every call and can be told to fail calls, or to drop watch and
// pull streams, so tests can check retries, request ids, stream
// resumption and error handling.
//
// The fake checks only a little of what the real server checks; tests of
// server behaviour belong with the server.
package clienttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Server is a running fake exchange.
type Server struct {
	// Addr is the address the server listens on, 127.0.0.1:port.
	Addr string
	// PKI holds the CA the server trusts and its own certificate.
	PKI *PKI

	state *state

	mu         sync.Mutex
	calls      []Call
	failBefore map[string][]error
	failAfter  map[string][]error
	// watchBreaks and heartbeat shape WatchReferrals streams (see
	// BreakWatch and SetWatchHeartbeat).
	watchBreaks []int
	heartbeat   time.Duration
	// pullBreaks, rowWatchBreaks and rowBatch shape PullDatasetRows and
	// WatchDatasetRows streams (see BreakPull, BreakRowWatch and
	// SetRowBatch).
	pullBreaks     []int
	rowWatchBreaks []int
	rowBatch       int

	// credentials holds the certificate and key files Config made for
	// each identity, so that a second Config for the same identity does
	// not rewrite files a client dialling in another goroutine is
	// reading.
	credentials map[string][2]string
}

// Call is one call the server received, one per attempt.
type Call struct {
	// Method is the full method name, for example
	// "/alltogether.exchange.v1.DirectoryService/GetAgency".
	Method string
	// Request is a copy of the request message.
	Request proto.Message
	// Caller is the URI SAN of the client certificate, for example
	// "spiffe://alltogether/secretariat".
	Caller string
	// Attempt is the x-retry-attempt header the client's retry interceptor
	// sets on retries ("1", "2", ...), or "" on a first attempt.
	Attempt string
}

// NewServer starts a fake exchange with an empty directory on a free port
// of 127.0.0.1 and stops it when t ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	p := NewPKI(t)
	cert, err := tls.LoadX509KeyPair(p.ServerCertFile, p.ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CAPEM())
	tlsConfig := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Addr:       lis.Addr().String(),
		PKI:        p,
		state:      newState(p),
		failBefore: map[string][]error{},
		failAfter:  map[string][]error{},
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsConfig)), grpc.UnaryInterceptor(s.intercept), grpc.StreamInterceptor(s.interceptStream))
	exchangev1.RegisterDirectoryServiceServer(gs, &directoryService{state: s.state})
	exchangev1.RegisterCertificateServiceServer(gs, &certificateService{state: s.state})
	exchangev1.RegisterReferralServiceServer(gs, &referralService{server: s, state: s.state})
	exchangev1.RegisterDatasetServiceServer(gs, &datasetService{server: s, state: s.state})
	exchangev1.RegisterPlanServiceServer(gs, &planService{server: s, state: s.state})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return s
}

// Config returns a client configuration for the server with a client
// certificate for identity ("secretariat" or "agency/ilo"), made on the
// first call for identity and reused after.
func (s *Server) Config(t testing.TB, identity string) client.Config {
	t.Helper()
	s.mu.Lock()
	files, ok := s.credentials[identity]
	if !ok {
		certFile, keyFile := s.PKI.ClientFiles(t, identity)
		files = [2]string{certFile, keyFile}
		if s.credentials == nil {
			s.credentials = map[string][2]string{}
		}
		s.credentials[identity] = files
	}
	s.mu.Unlock()
	return client.Config{Address: s.Addr, CertFile: files[0], KeyFile: files[1], CAFile: s.PKI.CAFile}
}

// Dial connects to the server as identity and closes the client when t
// ends.
func (s *Server) Dial(t testing.TB, identity string) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), s.Config(t, identity))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// FailNext makes the next len(errs) calls of method fail with errs, in
// order, without running the handler: the request never arrives. A nil
// entry lets its call through, so FailNext(m, nil, err) fails the second
// call.
func (s *Server) FailNext(method string, errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failBefore[method] = append(s.failBefore[method], errs...)
}

// FailAfterNext makes the next len(errs) calls of method run the handler and
// then fail with errs instead of returning the response: the request takes
// effect but the answer is lost, as when a connection breaks. A nil entry
// lets its call's response through.
func (s *Server) FailAfterNext(method string, errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAfter[method] = append(s.failAfter[method], errs...)
}

// Calls returns the calls of method received so far, or of every method if
// method is "".
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// intercept records the call and applies the failures queued for it.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if before := s.record(ctx, info.FullMethod, req); before != nil {
		return nil, before
	}
	resp, err := handler(ctx, req)
	s.mu.Lock()
	after := pop(s.failAfter, info.FullMethod)
	s.mu.Unlock()
	if after != nil {
		return nil, after
	}
	return resp, err
}

// record records a call of method with req and returns the error
// FailNext queued for it, if any.
func (s *Server) record(ctx context.Context, method string, req any) error {
	call := Call{Method: method, Caller: callerURI(ctx)}
	if m, ok := req.(proto.Message); ok {
		call.Request = proto.Clone(m)
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-retry-attempt"); len(v) > 0 {
			call.Attempt = v[0]
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call)
	return pop(s.failBefore, method)
}

// interceptStream records a server-streaming call when its request
// arrives, and fails it with the error FailNext queued for it, if any.
// (FailAfterNext does not apply to streams.)
func (s *Server) interceptStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &recordingStream{ServerStream: ss, server: s, method: info.FullMethod})
}

// recordingStream records the first message a streaming call receives.
type recordingStream struct {
	grpc.ServerStream
	server   *Server
	method   string
	recorded bool
}

func (r *recordingStream) RecvMsg(m any) error {
	if err := r.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if r.recorded {
		return nil
	}
	r.recorded = true
	return r.server.record(r.Context(), r.method, m)
}

// pop removes and returns the first error queued for method, or nil.
func pop(queue map[string][]error, method string) error {
	errs := queue[method]
	if len(errs) == 0 {
		return nil
	}
	queue[method] = errs[1:]
	return errs[0]
}

// callerURI returns the URI SAN of the verified client certificate.
func callerURI(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	if uris := info.State.VerifiedChains[0][0].URIs; len(uris) > 0 {
		return uris[0].String()
	}
	return ""
}
