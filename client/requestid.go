package client

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CreateOption adjusts a create-like call (CreateAgency, CreateFocalPoint,
// CreateWorkingGroup, Issue, Referrals.Create, Referrals.Forward,
// Datasets.Create).
type CreateOption func(*createSettings)

// createSettings are the settings CreateOptions change.
type createSettings struct {
	requestID    string
	validateOnly bool
}

// WithRequestID sets the call's idempotency key. Without it the client
// makes a random one per call. Pass your own to make a create safe to repeat
// across processes, for example a key derived from the record in your own
// system: the exchange returns the first result for a repeated key.
func WithRequestID(id string) CreateOption {
	return func(s *createSettings) { s.requestID = id }
}

// ValidateOnly asks the exchange to check the request without creating
// anything. Only CreateAgency and Datasets.Create support it; other create
// calls fail with INVALID_ARGUMENT when given it.
func ValidateOnly() CreateOption {
	return func(s *createSettings) { s.validateOnly = true }
}

// newCreateSettings applies opts and fills in a random request id if none
// was given. It is called once per logical call, so that every retry of that
// call carries the same id.
func newCreateSettings(method string, validateOnlySupported bool, opts []CreateOption) (createSettings, error) {
	var s createSettings
	for _, o := range opts {
		o(&s)
	}
	if s.validateOnly && !validateOnlySupported {
		return s, status.Errorf(codes.InvalidArgument, "client: %s does not support ValidateOnly", method)
	}
	if s.requestID == "" {
		s.requestID = NewRequestID()
	}
	return s, nil
}

// NewRequestID returns a fresh idempotency key: 32 lowercase hex digits,
// the first 12 the current Unix time in milliseconds and the other 20
// random (80 bits from crypto/rand). Keys made later sort later, so the
// exchange appends them at the end of its idempotency index instead of
// scattering them over it, which keeps each commit small; the random part
// keeps them unguessable and, in practice, unique.
func NewRequestID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	// crypto/rand.Read never returns an error (it panics if the system
	// source fails).
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}
