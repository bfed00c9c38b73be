package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"
)

// panicking is a service whose only method panics.
var panicking = grpc.ServiceDesc{
	ServiceName: "test.Panicking",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Do",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Panicking/Do"}
			return interceptor(ctx, in, info, func(context.Context, any) (any, error) { panic("boom") })
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		Handler:       func(any, grpc.ServerStream) error { panic("boom") },
		ServerStreams: true,
	}},
}

func TestHandlerPanicBecomesInternalAndTheServerKeepsServing(t *testing.T) {
	accessRules["/test.Panicking/Do"] = anyMember
	t.Cleanup(func() { delete(accessRules, "/test.Panicking/Do") })
	x := startExchangeWith(t, func(s *Server) { s.grpc.RegisterService(&panicking, struct{}{}) })
	sec := x.asSecretariat()
	err := sec.conn.Invoke(context.Background(), "/test.Panicking/Do", &emptypb.Empty{}, &emptypb.Empty{})
	st := wantCode(t, err, codes.Internal)
	if st.Message() == "boom" || reason(st) != "INTERNAL" {
		t.Errorf("the panic leaked or lacks its reason: %v", st)
	}
	if err := listAgencies(sec); err != nil {
		t.Fatalf("server stopped serving after a panic: %v", err)
	}
}

func TestMethodWithoutRuleIsDenied(t *testing.T) {
	x := startExchangeWith(t, func(s *Server) { s.grpc.RegisterService(&panicking, struct{}{}) })
	err := x.asSecretariat().conn.Invoke(context.Background(), "/test.Panicking/Do", &emptypb.Empty{}, &emptypb.Empty{})
	wantCode(t, err, codes.PermissionDenied)
}

// TestPanickedCallIsLogged checks that a call whose handler panics, unary
// or streaming, gets its "finished call" line like any other failed call
// (code Internal, its request id), besides the line with the panic.
func TestPanickedCallIsLogged(t *testing.T) {
	for _, m := range []string{"/test.Panicking/Do", "/test.Panicking/Stream"} {
		accessRules[m] = anyMember
	}
	t.Cleanup(func() {
		delete(accessRules, "/test.Panicking/Do")
		delete(accessRules, "/test.Panicking/Stream")
	})
	x := startExchange(t)
	x.stop()
	logs := &lockedBuffer{}
	x.register = func(s *Server) { s.grpc.RegisterService(&panicking, struct{}{}) }
	x.serveWith(func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	sec := x.asSecretariat()
	ctx := metadata.AppendToOutgoingContext(context.Background(), requestIDHeader, "panic-unary-1")
	wantCode(t, sec.conn.Invoke(ctx, "/test.Panicking/Do", &emptypb.Empty{}, &emptypb.Empty{}), codes.Internal)
	ctx = metadata.AppendToOutgoingContext(context.Background(), requestIDHeader, "panic-stream-1")
	stream, err := sec.conn.NewStream(ctx, &panicking.Streams[0], "/test.Panicking/Stream")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, stream.RecvMsg(&emptypb.Empty{}), codes.Internal)
	for method, id := range map[string]string{"Do": "panic-unary-1", "Stream": "panic-stream-1"} {
		line := oneCallLine(t, logs, method)
		wantValues(t, line, map[string]any{"grpc.code": "Internal", "level": "ERROR", "request_id": id})
	}
	if n := strings.Count(logs.String(), `"msg":"handler panic"`); n != 2 {
		t.Errorf("%d panic lines, want 2:\n%s", n, logs.String())
	}
}
