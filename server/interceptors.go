package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The interceptor chain, outermost first:
//
//  1. recovery: a handler panic becomes INTERNAL; the server keeps serving.
//  2. call log: one structured line per finished call, metadata only
//     (method, code, duration, caller, request id), never payloads;
//     hand-written in call_log.go, as the middleware's logging
//     interceptor cost a tenth of the CPU of a call.
//  3. recovery again, so that the call log sees a panicked call finish
//     as INTERNAL and logs it like any other (the outer one guards the
//     call log itself).
//  4. authentication: the caller is the client certificate's identity; a
//     certificate the store has not recorded or has revoked, an unknown
//     agency or a suspended one is refused.
//  5. authorization: the method's access rule (default deny).
//  6. rate limit: each identity has its own token bucket; a caller over
//     its rate gets RESOURCE_EXHAUSTED while others go on.
//  7. concurrency: each identity has its own bounds on unary calls in
//     flight, streams and watches open (concurrency.go); a caller at one
//     gets RESOURCE_EXHAUSTED that names it.
//  8. validation: protovalidate rules from the .proto files; violations
//     become INVALID_ARGUMENT with a BadRequest naming each field.
//  9. errors: whatever the handler returns becomes a status through the
//     one error table.

func (s *Server) unaryInterceptors() []grpc.UnaryServerInterceptor {
	// Recovery runs twice: inside the call log, so that a handler's panic
	// is logged as a finished call like any other INTERNAL, and outside
	// it, so that a panic in the call log itself still becomes INTERNAL.
	recoverPanics := recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(s.recovered))
	return []grpc.UnaryServerInterceptor{
		recoverPanics,
		s.unaryCallLog,
		recoverPanics,
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			id := requestID(ctx, req)
			rec := callRecordFrom(ctx)
			rec.setRequestID(id)
			grpc.SetHeader(ctx, metadata.Pairs(requestIDHeader, id))
			ctx, err := s.admit(ctx, info.FullMethod, rec)
			if err != nil {
				return nil, err
			}
			return next(ctx, req)
		},
		ratelimit.UnaryServerInterceptor(s.limiter),
		s.unaryConcurrency,
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := s.validate(req); err != nil {
				return nil, err
			}
			resp, err := next(ctx, req)
			return resp, toStatus(ctx, s.log, info.FullMethod, err)
		},
	}
}

func (s *Server) streamInterceptors() []grpc.StreamServerInterceptor {
	recoverPanics := recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(s.recovered))
	return []grpc.StreamServerInterceptor{
		recoverPanics, // twice, as in unaryInterceptors
		s.streamCallLog,
		recoverPanics,
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			id := requestID(ss.Context(), nil)
			rec := callRecordFrom(ss.Context())
			rec.setRequestID(id)
			ss.SetHeader(metadata.Pairs(requestIDHeader, id))
			ctx, err := s.admit(ss.Context(), info.FullMethod, rec)
			if err != nil {
				return err
			}
			return next(srv, &admittedStream{ServerStream: ss, ctx: ctx, server: s})
		},
		ratelimit.StreamServerInterceptor(s.limiter),
		s.streamConcurrency,
		func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			return toStatus(ss.Context(), s.log, info.FullMethod, next(srv, ss))
		},
	}
}

// admittedStream carries the authenticated context and validates every
// message received.
type admittedStream struct {
	grpc.ServerStream
	ctx    context.Context
	server *Server
}

func (a *admittedStream) Context() context.Context { return a.ctx }

// RecvMsg reads a request through requestCodec (answering bytes over
// their bounds or undecodable with INVALID_ARGUMENT) and validates it.
func (a *admittedStream) RecvMsg(m any) error {
	if err := receive(a.ServerStream.RecvMsg, m); err != nil {
		return err
	}
	return a.server.validate(m)
}

func (s *Server) recovered(ctx context.Context, p any) error {
	s.log.ErrorContext(ctx, "handler panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return detailed(codes.Internal, "internal error; the exchange logged the cause", "INTERNAL", "", "", "")
}

// peerCertificate returns the verified client certificate of the call.
func peerCertificate(ctx context.Context) (*credentials.TLSInfo, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return nil, errors.New("no peer information")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, errors.New("not a TLS connection")
	}
	if len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, errors.New("no verified client certificate")
	}
	return &info, nil
}

func unauthenticated(msg string) error {
	return detailed(codes.Unauthenticated, msg, "UNAUTHENTICATED", "", "", "")
}

// admit authenticates the caller from its certificate, checks the
// certificate is recorded and not revoked and the agency is in the
// directory and active, and applies the method's access rule. It returns
// the context carrying the caller. It notes the certificate's identity in
// rec (nil for none) as soon as it has read it, so that the call's log
// line names the caller even when admit refuses the call.
func (s *Server) admit(ctx context.Context, method string, rec *callRecord) (context.Context, error) {
	info, err := peerCertificate(ctx)
	if err != nil {
		return nil, unauthenticated("a client certificate issued by the exchange is required: " + err.Error())
	}
	leaf := info.State.VerifiedChains[0][0]
	id, err := pki.IdentityFromCert(leaf)
	if err != nil {
		return nil, unauthenticated("the client certificate names no identity of the exchange: " + err.Error())
	}
	rec.setCaller(id)
	caller := Caller{Identity: id, Serial: pki.SerialString(leaf.SerialNumber)}
	agency, err := s.checkCredentials(ctx, caller)
	if err != nil {
		return nil, toStatus(ctx, s.log, method, err)
	}
	caller.Agency = agency
	rule, ok := accessRules[method]
	if !ok || !rule.admits(caller) {
		return nil, detailed(codes.PermissionDenied, id.String()+" may not call "+method, "PERMISSION_DENIED", "", "", "")
	}
	ctx = withCaller(ctx, caller)
	return context.WithValue(ctx, methodKey{}, method), nil
}

// checkCredentials reads, in one store read, whether the caller's
// certificate is recorded (issued by this exchange) and not revoked, and
// whether its agency is in the directory and active; it returns the
// agency's record. A certificate the exchange's CA signed but the store
// never recorded is refused like a revoked one: it could not be listed or
// revoked.
func (s *Server) checkCredentials(ctx context.Context, c Caller) (*exchangev1.Agency, error) {
	known, err := s.store.LookupCaller(ctx, c.Serial, c.Identity.AgencyID)
	if err != nil {
		return nil, err
	}
	if known.CertificateRevoked {
		return nil, unauthenticated("the client certificate " + c.Serial + " has been revoked")
	}
	if !known.CertificateRecorded {
		return nil, unauthenticated("the client certificate " + c.Serial + " was not issued by this exchange (it names " + c.Actor() + "); ask the secretariat for one: exchangectl certs issue")
	}
	if c.Identity.Role != pki.RoleAgency {
		return nil, nil
	}
	if known.Agency == nil {
		return nil, unauthenticated("agency " + c.Identity.AgencyID + " is not in the directory")
	}
	if known.Agency.GetState() != exchangev1.AgencyState_AGENCY_STATE_ACTIVE {
		return nil, detailed(codes.PermissionDenied, "agency "+c.Identity.AgencyID+" is suspended; contact the secretariat", "AGENCY_SUSPENDED", "", "", "")
	}
	return known.Agency, nil
}

// stillAdmitted re-checks the caller of a long stream (a watch) before it
// is sent more: a certificate revoked or an agency suspended since the
// stream began ends it, as its next call would be refused.
func (s *Server) stillAdmitted(ctx context.Context) error {
	_, err := s.checkCredentials(ctx, CallerFrom(ctx))
	return err
}

// requestIDHeader carries a call's request id, in both directions: a
// client may send its own, and every response says which id the logs use.
const requestIDHeader = "x-request-id"

var requestIDShape = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// requestID names the call in logs: the request's own request_id when it
// has one, else the client's x-request-id header, else a new random id.
func requestID(ctx context.Context, req any) string {
	if r, ok := req.(interface{ GetRequestId() string }); ok && r.GetRequestId() != "" {
		return r.GetRequestId()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(requestIDHeader); len(v) == 1 && requestIDShape.MatchString(v[0]) {
			return v[0]
		}
	}
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
