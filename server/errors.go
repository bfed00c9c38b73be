package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/store"
)

// ErrorDomain is the ErrorInfo domain of every error the exchange returns.
const ErrorDomain = "exchange.alltogether.org"

// errorClass is how one kind of store error appears on the wire.
type errorClass struct {
	code   codes.Code
	reason string
}

// errorTable is the one place that maps store errors to gRPC codes and
// ErrorInfo reasons.
var errorTable = map[store.Kind]errorClass{
	store.KindInvalidArgument:    {codes.InvalidArgument, "INVALID_ARGUMENT"},
	store.KindNotFound:           {codes.NotFound, "NOT_FOUND"},
	store.KindAlreadyExists:      {codes.AlreadyExists, "ALREADY_EXISTS"},
	store.KindEtagMismatch:       {codes.Aborted, "ETAG_MISMATCH"},
	store.KindFailedPrecondition: {codes.FailedPrecondition, "FAILED_PRECONDITION"},
	store.KindPermissionDenied:   {codes.PermissionDenied, "PERMISSION_DENIED"},
	store.KindClosed:             {codes.Unavailable, "SHUTTING_DOWN"},
	store.KindInternal:           {codes.Internal, "INTERNAL"},
	store.KindOutOfRange:         {codes.OutOfRange, "REVISION_COMPACTED"},
	store.KindResourceExhausted:  {codes.ResourceExhausted, "STORAGE_QUOTA"},
	store.KindUnavailable:        {codes.Unavailable, "ERASURE_PENDING"},
}

// toStatus turns any error a handler returns into a gRPC status error.
// Internal errors are logged with their cause and sent without it.
func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "the call was cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the call's deadline passed")
	}
	var e *store.Error
	if !errors.As(err, &e) {
		e = &store.Error{Kind: store.KindInternal, Err: err}
	}
	class := errorTable[e.Kind]
	if e.Kind == store.KindResourceExhausted {
		raiseStorageAlarm(ctx, log, method, e)
	}
	if e.Kind == store.KindInternal {
		log.ErrorContext(ctx, "internal error", "method", method, "error", err.Error())
		return detailed(codes.Internal, "internal error; the exchange logged the cause", class.reason, "", "", "")
	}
	// The status message names the field; the violation's description
	// need not repeat it.
	return detailed(class.code, e.Message, class.reason, e.Resource, e.Field, strings.TrimPrefix(e.Message, e.Field+": "))
}

// detailed builds a status with an ErrorInfo and, when field is set, a
// BadRequest naming it.
func detailed(code codes.Code, msg, reason, resource, field, description string) error {
	st := status.New(code, msg)
	info := &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}
	if resource != "" {
		info.Metadata = map[string]string{"resource": resource}
	}
	var err error
	if field == "" {
		st, err = st.WithDetails(info)
	} else {
		st, err = st.WithDetails(info, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: description}}})
	}
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// invalidField reports a request field that breaks a rule.
func invalidField(field, msg string) error {
	return &store.Error{Kind: store.KindInvalidArgument, Field: field, Message: field + ": " + msg}
}

// permissionDenied reports a caller who may see the resource but not do
// this to it.
func permissionDenied(msg string) error {
	return &store.Error{Kind: store.KindPermissionDenied, Message: msg}
}

// notFound reports a resource that does not exist or that the caller may
// not see; the two are indistinguishable on purpose.
func notFound(name string) error {
	return &store.Error{Kind: store.KindNotFound, Resource: name, Message: name + " not found"}
}

// fieldViolations returns the BadRequest field violations of a status.
func fieldViolations(st *status.Status) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	}
	return out
}
