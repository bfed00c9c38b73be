package server

// How a request's bytes become a message, and how the exchange answers
// bytes that do not.
//
// gRPC decodes a request inside the generated handler (unary) or in
// RecvMsg (streams), with the codec of the server, and answers a decoding
// error with INTERNAL ("grpc: failed to unmarshal the received message"),
// for a unary call before any interceptor runs. The exchange's server
// codec, requestCodec, does three things before the message is decoded and
// reports what it found through the decodeTarget it was given:
//
//   - It scans the bytes (no allocation) for a list or map sent with more
//     items than its rule allows (see scanWireBounds) and refuses the
//     request there, INVALID_ARGUMENT naming the field, so that a million
//     empty strings are never decoded into a million-item slice.
//   - It drops the output-only lists the request carries back (a
//     referral's history, a dataset's locks; see output_only.go) from the
//     bytes, so that what the exchange ignores costs nothing to decode.
//   - It decodes; bytes that are not an encoding of the request's type
//     (invalid UTF-8 in a string, a truncated message, random bytes) are
//     refused with INVALID_ARGUMENT, "the request could not be decoded as
//     <type>: <cause>".
//
// The codec is handed a *decodeTarget, not the bare message, by the two
// places that read requests: the wrapped unary handlers of every service
// (guardedRegistrar) and admittedStream.RecvMsg for streams. The target
// lives on the call's stack of calls and holds the refusal the codec
// made; nothing is kept anywhere else, so nothing can outlive the call.
// A message decoded without a target (a service registered around the
// registrar) is scanned and decoded the same way and refused with gRPC's
// own INTERNAL answer. A refused message is left empty.
//
// The refusal of a unary call never reaches the interceptors; the
// refusedCalls stats handler logs and counts it (refused_calls.go).

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	encodingproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// decodeTarget is what a request is decoded into: the message, and the
// refusal requestCodec made of the bytes, if any.
type decodeTarget struct {
	msg     proto.Message
	refusal error
}

// requestCodec is the server's codec: the default proto codec, whose
// Unmarshal first scans the bytes against the request's bounds and turns
// undecodable bytes into a clear refusal (see the top of this file).
type requestCodec struct{}

// protoCodec is gRPC's default proto codec, which requestCodec marshals
// with.
var protoCodec = encoding.GetCodecV2(encodingproto.Name)

// Name is the codec's name: it replaces the proto codec.
func (requestCodec) Name() string { return encodingproto.Name }

// Marshal encodes a response as the default proto codec does, and sends
// an encodedMessage as it is (referral_watch_events.go).
func (requestCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*encodedMessage); ok {
		return m.buffer(), nil
	}
	return protoCodec.Marshal(v)
}

// Unmarshal scans and decodes a request into v, a *decodeTarget or a
// proto.Message. A refusal goes into the target and Unmarshal returns
// nil: gRPC writes the status of a failed RecvMsg at once, INTERNAL,
// before its caller could answer otherwise.
func (requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	target, _ := v.(*decodeTarget)
	var msg proto.Message
	if target != nil {
		msg = target.msg
	} else if m, ok := v.(proto.Message); ok {
		msg = m
	} else {
		return fmt.Errorf("cannot decode into %T, which is not a proto.Message", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	b := buf.ReadOnlyData()
	var report violationReport
	scanWireBounds(b, msg.ProtoReflect().Descriptor(), &report)
	if report.total > 0 {
		if target == nil {
			return report.status()
		}
		target.refusal = report.status()
		return nil
	}
	b = withoutOutputOnlyLists(b, msg.ProtoReflect().Descriptor())
	if err := proto.Unmarshal(b, msg); err != nil {
		if target == nil {
			return err
		}
		proto.Reset(msg)
		target.refusal = detailed(codes.InvalidArgument,
			fmt.Sprintf("the request could not be decoded as %s: %v", msg.ProtoReflect().Descriptor().FullName(), err),
			"INVALID_ARGUMENT", "", "", "")
	}
	return nil
}

// receive reads one request into m through recv (a stream's RecvMsg),
// answering with requestCodec's refusal when it made one.
func receive(recv func(any) error, m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return recv(m)
	}
	target := &decodeTarget{msg: msg}
	err := recv(target)
	if target.refusal != nil {
		return target.refusal
	}
	return err
}

// guardedRegistrar registers services on the gRPC server with every unary
// handler reading its request through receive.
type guardedRegistrar struct {
	server *grpc.Server
}

// RegisterService registers a copy of desc whose unary handlers decode
// through receive.
func (g guardedRegistrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	guarded := *desc
	guarded.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, md := range desc.Methods {
		handler := md.Handler
		md.Handler = func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			return handler(srv, ctx, func(m any) error { return receive(dec, m) }, interceptor)
		}
		guarded.Methods[i] = md
	}
	g.server.RegisterService(&guarded, impl)
}
