package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/pki"
)

// refusedCalls is a gRPC stats handler that gives the calls gRPC answers
// before any interceptor runs their call-log line and counts them in
// exchange_calls_refused_total: unary requests requestCodec refused
// (undecodable, or over a list's bound), requests over the receive limit,
// and calls to methods the exchange does not have. Every call passes
// through it; the call-log interceptor marks the calls it logs (and the
// metrics interceptor counts), so that each call is logged and counted
// exactly once.
type refusedCalls struct {
	server *Server
	// refused counts the calls; nil without Config.Metrics.
	refused *prometheus.CounterVec

	methodsOnce sync.Once
	methods     map[string]bool // full names of the registered methods
}

// newRefusedCalls makes the handler, registering its counter in m when m
// is set.
func newRefusedCalls(s *Server, m *Metrics) *refusedCalls {
	r := &refusedCalls{server: s}
	if m != nil {
		r.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchange_calls_refused_total",
			Help: "Calls refused before the interceptors saw them (grpc_server_handled_total counts the others), by method (unknown for a method the exchange does not have) and code.",
		}, []string{"grpc_service", "grpc_method", "grpc_code"})
		m.Registry.MustRegister(r.refused)
	}
	return r
}

// callTrace is what the handler keeps about one call.
type callTrace struct {
	fullMethod string
	methodType string
	start      time.Time
	// seen is set by the call-log interceptor when the call reaches it.
	seen atomic.Bool
}

// callTraceKey is the context key of a call's *callTrace.
type callTraceKey struct{}

// markSeen notes that the interceptors saw the call of ctx.
func markSeen(ctx context.Context) {
	if t, ok := ctx.Value(callTraceKey{}).(*callTrace); ok {
		t.seen.Store(true)
	}
}

// TagRPC gives the call its trace.
func (r *refusedCalls) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, callTraceKey{}, &callTrace{fullMethod: info.FullMethodName, methodType: "unary", start: time.Now()})
}

// HandleRPC logs and counts a call that ended without the interceptors
// seeing it; a call to a method the exchange does not have never ends
// for the handler, so it is logged and counted when its header arrives.
func (r *refusedCalls) HandleRPC(ctx context.Context, s stats.RPCStats) {
	t, ok := ctx.Value(callTraceKey{}).(*callTrace)
	if !ok {
		return
	}
	switch s := s.(type) {
	case *stats.InHeader:
		if !r.known(t.fullMethod) {
			t.methodType = "unknown"
			r.record(ctx, t, status.Error(codes.Unimplemented, "unknown method "+cutText(t.fullMethod)))
		}
	case *stats.Begin:
		t.methodType = methodTypeOf(s.IsClientStream, s.IsServerStream)
	case *stats.End:
		if !t.seen.Load() {
			r.record(ctx, t, s.Error)
		}
	}
}

// record logs the call's line and counts it.
func (r *refusedCalls) record(ctx context.Context, t *callTrace, err error) {
	service, method := "unknown", "unknown"
	if r.known(t.fullMethod) {
		service, method = splitFullMethod(t.fullMethod)
	}
	if r.refused != nil {
		r.refused.WithLabelValues(service, method, status.Code(err).String()).Inc()
	}
	rec := &callRecord{}
	if info, err := peerCertificate(ctx); err == nil {
		if id, err := pki.IdentityFromCert(info.State.VerifiedChains[0][0]); err == nil {
			rec.setCaller(id)
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(requestIDHeader); len(v) == 1 && requestIDShape.MatchString(v[0]) {
			rec.setRequestID(v[0])
		}
	}
	r.server.logCall(ctx, cutText(t.fullMethod), t.methodType, t.start, rec, err)
}

// known reports whether the exchange has the method.
func (r *refusedCalls) known(fullMethod string) bool {
	r.methodsOnce.Do(func() {
		r.methods = map[string]bool{}
		for _, m := range r.server.Methods() {
			r.methods[m] = true
		}
	})
	return r.methods[fullMethod]
}

// methodTypeOf names a call's kind as grpc.method_type does.
func methodTypeOf(clientStream, serverStream bool) string {
	switch {
	case !clientStream && !serverStream:
		return "unary"
	case clientStream && !serverStream:
		return "client_stream"
	case !clientStream && serverStream:
		return "server_stream"
	default:
		return "bidi_stream"
	}
}

// TagConn leaves the connection's context as it is.
func (r *refusedCalls) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn ignores connection events.
func (r *refusedCalls) HandleConn(context.Context, stats.ConnStats) {}
