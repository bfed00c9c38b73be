package server

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
