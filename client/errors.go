package client

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the ErrorInfo domain of the errors the exchange returns.
const ErrorDomain = "exchange.alltogether.org"

// The client returns gRPC status errors unchanged, so that status.Code,
// status.FromError and the helpers below work on every error it returns,
// including the few it makes itself (for example CurrentFocalPoint's
// NOT_FOUND).

// IsNotFound reports whether err is a NOT_FOUND status: the resource does
// not exist or the caller may not see it (the exchange answers both alike).
func IsNotFound(err error) bool {
	return err != nil && status.Code(err) == codes.NotFound
}

// Reason returns the reason of the error's ErrorInfo detail, such as
// "NOT_FOUND" or "ETAG_MISMATCH", or "" if err carries none.
func Reason(err error) string {
	if info := errorInfo(err); info != nil {
		return info.GetReason()
	}
	return ""
}

// FieldViolations returns the field violations of the error's BadRequest
// detail, which the exchange attaches to INVALID_ARGUMENT errors to name the
// offending request fields, or nil if err carries none.
func FieldViolations(err error) []*errdetails.BadRequest_FieldViolation {
	var violations []*errdetails.BadRequest_FieldViolation
	for _, d := range details(err) {
		if br, ok := d.(*errdetails.BadRequest); ok {
			violations = append(violations, br.GetFieldViolations()...)
		}
	}
	return violations
}

// errorInfo returns the first ErrorInfo detail of err, or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, d := range details(err) {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// details returns the decoded details of err's status, or nil if err is not
// a status error.
func details(err error) []any {
	if err == nil {
		return nil
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil
	}
	return se.GRPCStatus().Details()
}

// newStatusError returns a status error with an ErrorInfo reason in the
// exchange's domain, shaped like the server's own errors.
func newStatusError(code codes.Code, reason, message string) error {
	st := status.New(code, message)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}
