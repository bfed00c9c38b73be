package server

// The per-call log line is written here by hand rather than by
// go-grpc-middleware's logging interceptor. A CPU profile of
// CreateReferral showed that interceptor costing about a tenth of the
// server's CPU per call, most of it building, copying and de-duplicating
// logging.Fields slices (Fields.WithUnique, AppendUnique, the reporter it
// builds per call) before slog ran at all. The line below carries the
// same keys with the same values, built straight into slog.LogAttrs, and
// nothing at all is built when the logger would drop the line.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/pki"
)

// callLogMessage is the message of the line logged when a call finishes;
// it is the one the logging middleware used, so queries on it still work.
const callLogMessage = "finished call"

// callLogTimeFormat formats grpc.start_time and grpc.request.deadline, as
// the middleware's default did.
const callLogTimeFormat = time.RFC3339

// callRecord collects what the interceptors inside the call log learn
// about a call and its line reports: the request id and the caller. The
// call-log interceptor puts one in the context; the admitting interceptor
// fills it in. A call runs its interceptors one after another, so the
// record needs no lock.
type callRecord struct {
	// requestID is the id the response's x-request-id header names.
	requestID string
	// caller is the identity the client certificate names; its Role is
	// pki.RoleUnknown until admit has read one.
	caller pki.Identity
}

// setRequestID records the call's request id. A nil record (a chain
// without the call log) ignores it.
func (r *callRecord) setRequestID(id string) {
	if r != nil {
		r.requestID = id
	}
}

// setCaller records the caller's identity. A nil record ignores it.
func (r *callRecord) setCaller(id pki.Identity) {
	if r != nil {
		r.caller = id
	}
}

// callRecordKey is the context key of a call's *callRecord.
type callRecordKey struct{}

// callRecordFrom returns the call's record, or nil when the call log is
// not in the chain.
func callRecordFrom(ctx context.Context) *callRecord {
	r, _ := ctx.Value(callRecordKey{}).(*callRecord)
	return r
}

// unaryCallLog is the unary interceptor that logs one line per finished
// call (see logCall).
func (s *Server) unaryCallLog(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	start := time.Now()
	markSeen(ctx) // the refusedCalls stats handler leaves the call to this line
	rec := &callRecord{}
	resp, err := next(context.WithValue(ctx, callRecordKey{}, rec), req)
	s.logCall(ctx, info.FullMethod, "unary", start, rec, err)
	return resp, err
}

// streamCallLog is the stream interceptor that logs one line per finished
// call (see logCall).
func (s *Server) streamCallLog(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	start := time.Now()
	markSeen(ss.Context())
	rec := &callRecord{}
	err := next(srv, &recordedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), callRecordKey{}, rec)})
	if err == nil {
		// A watch returns nil when its context ends. When the server's
		// copy of the deadline fires first, the client would otherwise get
		// a clean end (OK) where it asked for a deadline: it gets
		// DEADLINE_EXCEEDED, as the line says.
		err = contextEnd(ss.Context())
	}
	s.logCall(ss.Context(), info.FullMethod, streamMethodType(info), start, rec, err)
	return err
}

// recordedStream is a server stream whose context carries the call's
// record.
type recordedStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context with the call's record.
func (r *recordedStream) Context() context.Context { return r.ctx }

// streamMethodType names a stream's kind as grpc.method_type does.
func streamMethodType(info *grpc.StreamServerInfo) string {
	switch {
	case info.IsClientStream && !info.IsServerStream:
		return "client_stream"
	case !info.IsClientStream && info.IsServerStream:
		return "server_stream"
	default:
		return "bidi_stream"
	}
}

// logCall writes the line of a finished call: metadata only, never a
// payload. Its keys are the ones the logging middleware wrote (with
// WithLogOnEvents(FinishCall) and the caller from the certificate), in
// the same order and with the same value formats:
//
//	caller, protocol, grpc.component, grpc.service, grpc.method,
//	grpc.method_type, peer.address, grpc.start_time,
//	grpc.request.deadline (when the call has one), request_id, grpc.code,
//	grpc.error (when the call failed), grpc.time_ms
//
// The level follows the call's code (callLogLevel). A call that returned
// no error after its context ended is logged with the context's end.
func (s *Server) logCall(ctx context.Context, fullMethod, methodType string, start time.Time, rec *callRecord, err error) {
	if errors.Is(err, io.EOF) {
		err = nil // a stream that ended as streams do, as the middleware took it
	}
	if err == nil {
		err = contextEnd(ctx)
	}
	code := status.Code(err)
	level := callLogLevel(code)
	if !s.log.Enabled(ctx, level) {
		return
	}
	elapsed := time.Since(start)
	service, method := splitFullMethod(fullMethod)

	var buf [13]slog.Attr
	attrs := buf[:0]
	if rec.caller.Role != pki.RoleUnknown {
		attrs = append(attrs, slog.String("caller", rec.caller.String()))
	}
	attrs = append(attrs,
		slog.String("protocol", "grpc"),
		slog.String("grpc.component", "server"),
		slog.String("grpc.service", service),
		slog.String("grpc.method", method),
		slog.String("grpc.method_type", methodType),
	)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer.address", p.Addr.String()))
	}
	attrs = append(attrs, slog.String("grpc.start_time", start.Format(callLogTimeFormat)))
	if d, ok := ctx.Deadline(); ok {
		attrs = append(attrs, slog.String("grpc.request.deadline", d.Format(callLogTimeFormat)))
	}
	if rec.requestID != "" {
		attrs = append(attrs, slog.String("request_id", rec.requestID))
	}
	attrs = append(attrs, slog.String("grpc.code", code.String()))
	if err != nil {
		attrs = append(attrs, slog.String("grpc.error", err.Error()))
	}
	attrs = append(attrs, slog.String("grpc.time_ms", formatMillis(elapsed)))
	s.log.LogAttrs(ctx, level, callLogMessage, attrs...)
}

// deadlineMargin is how close to its deadline a call may be cancelled and
// still count as ended by the deadline (contextEnd).
const deadlineMargin = time.Second

// contextEnd is the status of a call whose handler returned no error, as
// a watch does when its context ends: nil while the context is live, else
// DEADLINE_EXCEEDED or CANCELED, which is what the client saw. A client
// whose deadline passes resets the stream, and the reset often cancels the
// server's context a moment before the server's own copy of the deadline
// (taken when the call arrived) would: a call cancelled within
// deadlineMargin of its deadline ended by the deadline.
func contextEnd(ctx context.Context) error {
	cerr := ctx.Err()
	if cerr == nil {
		return nil
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < deadlineMargin {
		cerr = context.DeadlineExceeded
	}
	return status.FromContextError(cerr).Err()
}

// splitFullMethod splits "/package.Service/Method" into its service and
// method, or gives "unknown" for both, as the middleware did.
func splitFullMethod(fullMethod string) (service, method string) {
	fullMethod = strings.TrimPrefix(fullMethod, "/")
	if i := strings.IndexByte(fullMethod, '/'); i >= 0 {
		return fullMethod[:i], fullMethod[i+1:]
	}
	return "unknown", "unknown"
}

// formatMillis formats a duration as grpc.time_ms always has: a string
// of milliseconds to the microsecond, printed as fmt's %v prints a
// float32 (strconv's shortest 'g' form).
func formatMillis(d time.Duration) string {
	ms := float32(d.Nanoseconds()/1000) / 1000
	return strconv.FormatFloat(float64(ms), 'g', -1, 32)
}

// callLogLevel is the level of a call's line by its code: the mapping of
// the middleware's logging.DefaultServerCodeToLevel, which a test holds
// this to. Refusals a client brings on itself are Info, conditions an
// operator may want to see are Warn, and faults of the exchange are
// Error.
func callLogLevel(code codes.Code) slog.Level {
	switch code {
	case codes.OK, codes.NotFound, codes.Canceled, codes.AlreadyExists, codes.InvalidArgument, codes.Unauthenticated:
		return slog.LevelInfo
	case codes.DeadlineExceeded, codes.PermissionDenied, codes.ResourceExhausted, codes.FailedPrecondition, codes.Aborted,
		codes.OutOfRange, codes.Unavailable:
		return slog.LevelWarn
	default: // Unknown, Unimplemented, Internal, DataLoss and codes not yet defined
		return slog.LevelError
	}
}
