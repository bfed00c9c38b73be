package store

import (
	"errors"
	"fmt"
)

// Kind classifies a store error so that callers can map it to a response
// without parsing messages.
type Kind int

const (
	// KindInternal is a failure of the store itself: disk, corruption, bug.
	KindInternal Kind = iota
	// KindInvalidArgument means the caller asked for something malformed,
	// such as a page token from another query.
	KindInvalidArgument
	// KindNotFound means the resource does not exist.
	KindNotFound
	// KindAlreadyExists means a resource with that name exists already.
	KindAlreadyExists
	// KindEtagMismatch means the caller's etag is stale: someone changed the
	// resource since the caller read it.
	KindEtagMismatch
	// KindFailedPrecondition means the request is well formed but the
	// resource is not in a state that allows it.
	KindFailedPrecondition
	// KindPermissionDenied means the caller may see the resource but not do
	// this to it.
	KindPermissionDenied
	// KindClosed means the store has been closed.
	KindClosed
	// KindOutOfRange means a revision is older than the change log keeps.
	KindOutOfRange
	// KindResourceExhausted means the database reached its size quota.
	KindResourceExhausted
	// KindUnavailable means the change was made but what must follow it
	// could not finish in time; the message says what happens next, and
	// the call need not be repeated.
	KindUnavailable
)

var kindNames = map[Kind]string{
	KindInternal:           "internal",
	KindInvalidArgument:    "invalid argument",
	KindNotFound:           "not found",
	KindAlreadyExists:      "already exists",
	KindEtagMismatch:       "etag mismatch",
	KindFailedPrecondition: "failed precondition",
	KindPermissionDenied:   "permission denied",
	KindClosed:             "closed",
	KindOutOfRange:         "out of range",
	KindResourceExhausted:  "resource exhausted",
	KindUnavailable:        "unavailable",
}

// String names the kind.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is the one error type the store returns. Messages never contain
// personal data: only resource names, field names and states.
type Error struct {
	// Kind classifies the error.
	Kind Kind
	// Resource is the resource name concerned, if any.
	Resource string
	// Field is the request field at fault, if any.
	Field string
	// Message says what went wrong, for the caller.
	Message string
	// Err is the underlying cause, for logs; never shown to callers.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Kind.String()
	}
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of err: its Kind if it is (or wraps) an *Error,
// KindInternal otherwise.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

func notFound(name string) error {
	return &Error{Kind: KindNotFound, Resource: name, Message: name + " not found"}
}

func alreadyExists(name string) error {
	return &Error{Kind: KindAlreadyExists, Resource: name, Message: name + " already exists"}
}

func etagMismatch(name string) error {
	return &Error{Kind: KindEtagMismatch, Resource: name, Field: "etag",
		Message: "etag does not match the current version of " + name + "; read it again and retry"}
}

func internal(what string, err error) error {
	if e, ok := kvError(err); ok {
		return e // the storage engine refused or could not be reached: not the store's fault
	}
	return &Error{Kind: KindInternal, Message: what, Err: err}
}

// fieldIndex names an element of a repeated field: fieldIndex("a.b", 2,
// "c") is "a.b[2].c".
func fieldIndex(list string, i int, sub string) string {
	return fmt.Sprintf("%s[%d].%s", list, i, sub)
}
