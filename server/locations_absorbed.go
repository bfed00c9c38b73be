package server

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/geo"
	"github.com/alltogether/exchange/store"
)

// Codes of units absorbed in Viet Nam's 2025 reorganisation (geo.Absorbed)
// are not locations any more. Asked for one, the exchange answers
// NOT_FOUND with the unit that absorbed it, in the message and in the
// ErrorInfo's metadata (absorbed_into, the location's name, and
// absorbed_on, the date); a row or plan that names one is refused with a
// violation that names that unit, so that the caller can correct it.

// absorbedLocation is the NOT_FOUND answer for the location name of an
// absorbed unit.
func absorbedLocation(name string, a geo.Absorption) error {
	msg := name + " not found: " + a.String() + "; use " + locationPrefix + a.Into.Code
	st, err := status.New(codes.NotFound, msg).WithDetails(&errdetails.ErrorInfo{
		Reason: errorTable[store.KindNotFound].reason, Domain: ErrorDomain,
		Metadata: map[string]string{"resource": name, "absorbed_into": locationPrefix + a.Into.Code, "absorbed_on": a.Since},
	})
	if err != nil {
		return status.Error(codes.NotFound, msg)
	}
	return st.Err()
}

// unknownProvince says why a province code the directory lacks is
// refused: the unit that absorbed it, or that it is not known.
func unknownProvince(code, of string) string {
	if a, ok := geo.Absorbed(code); ok {
		// Short enough for a batch's violation (maxBatchViolationTextBytes).
		return a.Code + " " + a.Name + " was absorbed into " + a.Into.Code + " " + a.Into.Name + " on " + a.Since + "; use " + a.Into.Code
	}
	return code + " is not a known province" + of + " (see ListLocations)"
}
