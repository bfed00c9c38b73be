package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/alltogether/exchange/auditchain"
	"github.com/alltogether/exchange/pki"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
)

// Exit codes of exchangectl, documented in the root command's help.
const (
	// ExitOK means success.
	ExitOK = 0
	// ExitError is any error without a more specific code.
	ExitError = 1
	// ExitUsage means bad flags or arguments, found before any call.
	ExitUsage = 2
	// ExitNotFound means NOT_FOUND: the resource does not exist or the
	// caller may not see it.
	ExitNotFound = 3
	// ExitDenied means PERMISSION_DENIED or UNAUTHENTICATED.
	ExitDenied = 4
	// ExitConflict means ALREADY_EXISTS or ABORTED (a stale etag).
	ExitConflict = 5
	// ExitInvalid means INVALID_ARGUMENT, FAILED_PRECONDITION or
	// OUT_OF_RANGE, that a push had records or rows rejected, or that an
	// input file is invalid.
	ExitInvalid = 6
	// ExitUnavailable means UNAVAILABLE or DEADLINE_EXCEEDED.
	ExitUnavailable = 7
)

// usageError is a mistake in the command line, found before any call.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usageErrorf returns a usageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// rejectedError reports that some records (or rows) of a push were
// rejected, each listed in the command's output; the command exits with
// ExitInvalid.
type rejectedError struct {
	rejected, total int
	// what names the things pushed, "records" if empty.
	what string
}

func (e rejectedError) Error() string {
	what := e.what
	if what == "" {
		what = "records"
	}
	return fmt.Sprintf("%d of %d %s were rejected (see the results for each line)", e.rejected, e.total, what)
}

// exitError ends a command that has printed its results with a given
// exit code: 'plans apply' exits 1 when plans changed and 5 on conflicts.
// An empty message prints nothing more; another is printed like any
// error.
type exitError struct {
	code    int
	message string
}

func (e exitError) Error() string { return e.message }

// exitCode maps an error to the exit code the root help documents.
func exitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if e, ok := errors.AsType[exitError](err); ok {
		return e.code
	}
	if errors.As(err, new(usageError)) {
		return ExitUsage
	}
	if errors.As(err, new(rejectedError)) {
		return ExitInvalid
	}
	if errors.As(err, new(*inputError)) {
		return ExitInvalid
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ExitUnavailable
	}
	if errors.Is(err, pki.ErrClientCertificateNotFromCA) {
		return ExitDenied // the exchange would refuse the certificate
	}
	if errors.Is(err, auditchain.ErrBroken) {
		return ExitInvalid
	}
	st, ok := grpcStatus(err)
	if !ok {
		return ExitError
	}
	switch st.Code() {
	case codes.NotFound:
		return ExitNotFound
	case codes.PermissionDenied, codes.Unauthenticated:
		return ExitDenied
	case codes.AlreadyExists, codes.Aborted:
		return ExitConflict
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return ExitInvalid
	case codes.Unavailable, codes.DeadlineExceeded:
		return ExitUnavailable
	default:
		return ExitError
	}
}

// grpcStatus returns the status of the outermost gRPC status error in
// err's chain.
func grpcStatus(err error) (*status.Status, bool) {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil, false
	}
	return se.GRPCStatus(), true
}

// codeNames are the canonical names of the status codes, as in
// google.rpc.Code.
var codeNames = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// printError writes err for people: "exchangectl: CODE: message" and one
// line per invalid field for a status error (or a local timeout), a pointer
// to the help for a usage error, the bare message otherwise.
func printError(w io.Writer, cmd *cobra.Command, err error) {
	if e, ok := errors.AsType[exitError](err); ok && e.message == "" {
		return
	}
	st, ok := grpcStatus(err)
	switch {
	case errors.As(err, new(usageError)):
		fmt.Fprintf(w, "exchangectl: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	case ok:
		name, known := codeNames[st.Code()]
		if !known {
			name = st.Code().String()
		}
		fmt.Fprintf(w, "exchangectl: %s: %s\n", name, st.Message())
		for _, v := range client.FieldViolations(err) {
			fmt.Fprintf(w, "  field %s: %s\n", v.GetField(), v.GetDescription())
		}
		if st.Code() == codes.Aborted && client.Reason(err) == "ETAG_MISMATCH" {
			fmt.Fprintln(w, "  (someone changed it since it was read; run the command again)")
		}
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(w, "exchangectl: DEADLINE_EXCEEDED: %v\n", err)
	default:
		fmt.Fprintf(w, "exchangectl: %v\n", err)
	}
}
