package server

import (
	"context"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// Caller is the authenticated identity of the current call, taken from the
// client certificate and nothing else.
type Caller struct {
	// Identity is the agency or the secretariat the certificate names.
	Identity pki.Identity
	// Serial is the client certificate's serial, lowercase hex.
	Serial string
	// Agency is the caller's directory record; nil for the secretariat.
	Agency *exchangev1.Agency
}

// IsSecretariat reports whether the caller is the secretariat.
func (c Caller) IsSecretariat() bool { return c.Identity.Role == pki.RoleSecretariat }

// AgencyName returns "agencies/{id}" for an agency caller, "" otherwise.
func (c Caller) AgencyName() string {
	if c.Identity.Role != pki.RoleAgency {
		return ""
	}
	return store.AgencyPrefix + c.Identity.AgencyID
}

// Actor names the caller in audit entries: "agencies/{id}" or
// "secretariat".
func (c Caller) Actor() string {
	if c.IsSecretariat() {
		return "secretariat"
	}
	return c.AgencyName()
}

type callerKey struct{}

func withCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller of the current call. Handlers run only
// after authentication, so the caller is always there.
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

type methodKey struct{}

// opFor builds the store operation for a change made by the current call;
// its audit entries name the caller and the certificate it presented.
func opFor(ctx context.Context, requestID string) store.Op {
	method, _ := ctx.Value(methodKey{}).(string)
	c := CallerFrom(ctx)
	return store.Op{Actor: c.Actor(), Method: method, RequestID: requestID, ActorCertificate: c.Serial}
}
