package verifier

import (
	"errors"
	"fmt"
)

// Reason says why a request was refused. The values are the SPEC's `reason`
// label values of jwt_sidecar_requests_total; they are never built at run time.
type Reason string

// The SPEC's reasons, one per way a request can fail authentication.
const (
	Missing           Reason = "missing"
	Malformed         Reason = "malformed"
	BadSignature      Reason = "bad_signature"
	Expired           Reason = "expired"
	NotYetValid       Reason = "not_yet_valid"
	BadIssuer         Reason = "bad_issuer"
	BadAudience       Reason = "bad_audience"
	BadAlgorithm      Reason = "bad_algorithm"
	UnknownKey        Reason = "unknown_key"
	InsufficientScope Reason = "insufficient_scope"
)

// Reasons of introspection mode (AUTH_MODE=introspection), extending the
// SPEC's list. The token service says only "not active" (RFC 7662 §2.2
// allows no detail), so Inactive claims no more than that; Unavailable is
// not a verdict on the token at all: the sidecar could not decide.
const (
	Inactive    Reason = "inactive"
	Unavailable Reason = "unavailable"
)

// Reasons lists every Reason, the SPEC's first and in its order, then the
// introspection ones. The proxy builds each one's response from it.
var Reasons = []Reason{
	Missing, Malformed, BadSignature, Expired, NotYetValid,
	BadIssuer, BadAudience, BadAlgorithm, UnknownKey, InsufficientScope,
	Inactive, Unavailable,
}

// Description is the fixed, client-safe error_description for a reason
// (RFC 6750 §3: printable ASCII without `"` or `\`). Details stay in the logs.
func (r Reason) Description() string {
	switch r {
	case Missing:
		return "a bearer token is required"
	case Malformed:
		return "the token is malformed"
	case BadSignature:
		return "the token signature is invalid"
	case Expired:
		return "the token has expired"
	case NotYetValid:
		return "the token is not valid yet"
	case BadIssuer:
		return "the token issuer is not accepted"
	case BadAudience:
		return "the token audience is not accepted"
	case BadAlgorithm:
		return "the token algorithm is not allowed"
	case UnknownKey:
		return "the token signing key is unknown"
	case InsufficientScope:
		return "the token lacks a required scope or claim"
	case Inactive:
		return "the token is not active"
	case Unavailable:
		return "the token could not be checked; try again later"
	}
	return "the token is invalid"
}

// Error says why a request was refused. Reason is for clients and metrics;
// Err carries the detail for logs and is never sent to a client.
type Error struct {
	Reason Reason
	Err    error
	// KID and Issuer are copied from the token, when it got that far, so that
	// a rejection log line can say which key and issuer were involved.
	KID    string
	Issuer string
	// TokenHash is a short hash of the token for correlating log lines;
	// the token itself is never logged.
	TokenHash string
}

func (e *Error) Error() string {
	if e.Err == nil {
		return string(e.Reason)
	}
	return fmt.Sprintf("%s: %v", e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason carried by err, and false for an error that is
// not an *Error (which the proxy treats as an internal fault).
func ReasonOf(err error) (Reason, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return "", false
}

func fail(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...)}
}
