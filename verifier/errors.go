package verifier

import (
	"errors"
	"fmt"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
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

// Reasons of the token-shape checks (RFC 8725), each a 401 invalid_token.
const (
	// BadType: the JOSE typ is not the one required (REQUIRED_TYP, a
	// provider's typ; RFC 8725 §3.11, RFC 9068 §4).
	BadType Reason = "bad_type"
	// ExcessiveLifetime: exp - iat exceeds MAX_TOKEN_LIFETIME, or the
	// token lacks exp or iat while a maximum is set.
	ExcessiveLifetime Reason = "excessive_lifetime"
)

// Denied is the reason of a request that no rule allows: a rule that
// requires deny, or no rule matching under the fail-closed default. It is
// not about a token, so the proxy answers 403 without a Bearer challenge.
const Denied Reason = "denied"

// Revoked is the reason of a genuine token that the revocation list names
// (by iss and jti, or by iss and sub issued before a time): 401
// invalid_token, like any token that is no longer good.
const Revoked Reason = "revoked"

// Reasons of sender-constrained tokens: DPoP (RFC 9449) and mTLS-bound
// (RFC 8705). Their values are dpop's; the proxy answers the DPoP ones with
// the DPoP challenge (RFC 9449 §7.1).
const (
	DPoPMissing       Reason = Reason(dpop.Missing)
	DPoPInvalid       Reason = Reason(dpop.Invalid)
	DPoPReplayed      Reason = Reason(dpop.Replayed)
	DPoPMismatch      Reason = Reason(dpop.Mismatch)
	DPoPBoundAsBearer Reason = Reason(dpop.BoundAsBearer)
	DPoPNonce         Reason = Reason(dpop.NonceRequired)
	MTLSMissing       Reason = Reason(dpop.CertMissing)
	MTLSMismatch      Reason = Reason(dpop.CertMismatch)
)

// DPoP reports whether r is a refusal of a DPoP proof or binding, answered
// with the DPoP challenge rather than the Bearer one.
func (r Reason) DPoP() bool {
	switch r {
	case DPoPMissing, DPoPInvalid, DPoPReplayed, DPoPMismatch, DPoPBoundAsBearer, DPoPNonce:
		return true
	}
	return false
}

// Reasons of a request refused before any token is looked at, answered 400
// (outcome bad_request):
//   - AmbiguousPath: a path that a backend may read differently from the
//     sidecar after one decode (a ';' parameter on a dot segment, an
//     encoded '%', '.', '/' or '\' left by double encoding, a backslash, a
//     NUL or another control byte). PATH_STRICT=false forwards them.
//   - InvalidRequest: more than one token, or an Authorization header that
//     is not one "Bearer <token>" (RFC 6750 §3.1 invalid_request).
const (
	AmbiguousPath  Reason = "ambiguous_path"
	InvalidRequest Reason = "invalid_request"
)

// Reasons of the decision listener (forward-auth, DECISION_ADDR), refused
// before any rule or token applies:
//   - UntrustedProxy: a decision asked from outside DECISION_TRUSTED_PROXIES
//     (403). The original-request headers choose which rule applies, so
//     only a trusted proxy may send them; nobody else gets a decision.
//   - BadOriginal: the decision request does not say, exactly once and
//     well formed, which request it is about (400).
const (
	UntrustedProxy Reason = "untrusted_proxy"
	BadOriginal    Reason = "bad_original"
)

// Reasons lists every Reason, the SPEC's first and in its order, then the
// introspection ones. The proxy builds each one's response from it.
var Reasons = []Reason{
	Missing, Malformed, BadSignature, Expired, NotYetValid,
	BadIssuer, BadAudience, BadAlgorithm, UnknownKey, InsufficientScope,
	Inactive, Unavailable, Denied, Revoked,
	DPoPMissing, DPoPInvalid, DPoPReplayed, DPoPMismatch, DPoPBoundAsBearer, DPoPNonce,
	MTLSMissing, MTLSMismatch,
	AmbiguousPath, InvalidRequest,
	BadType, ExcessiveLifetime,
	UntrustedProxy, BadOriginal,
}

// Outcome is what became of a request: the `outcome` label values of
// jwt_sidecar_requests_total.
type Outcome string

// The outcomes.
const (
	Allowed         Outcome = "allowed"
	Public          Outcome = "public"
	Unauthenticated Outcome = "unauthenticated"
	Forbidden       Outcome = "forbidden"
	// Unavailable: the token service could not be asked, so the request
	// was neither allowed nor refused for its token (503).
	OutcomeUnavailable Outcome = "unavailable"
	// BadRequest: the request itself was refused before any rule or
	// token could apply (400).
	BadRequest Outcome = "bad_request"
)

// Outcomes lists every Outcome.
var Outcomes = []Outcome{Allowed, Public, Unauthenticated, Forbidden, OutcomeUnavailable, BadRequest}

// Outcome is the outcome of a request refused for r: a valid token that
// is not enough (a scope, a claim, a rule) is forbidden (403, RFC 6750
// §3.1); a token service that could not be asked is unavailable (503);
// every other refusal is unauthenticated (401).
func (r Reason) Outcome() Outcome {
	switch r {
	case InsufficientScope, Denied, UntrustedProxy:
		return Forbidden
	case Unavailable:
		return OutcomeUnavailable
	case AmbiguousPath, InvalidRequest, BadOriginal:
		return BadRequest
	}
	return Unauthenticated
}

// Verification modes: the `mode` label values of
// jwt_sidecar_verification_duration_seconds.
const (
	ModeJWT           = "jwt"
	ModeIntrospection = "introspection"
)

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
	case Denied:
		return "no rule allows this request"
	case Revoked:
		return "the token has been revoked"
	case DPoPMissing, DPoPInvalid, DPoPReplayed, DPoPMismatch, DPoPBoundAsBearer, DPoPNonce, MTLSMissing, MTLSMismatch:
		return dpop.Reason(r).Description()
	case BadType:
		return "the token type (typ) is not accepted here"
	case ExcessiveLifetime:
		return "the token lifetime exceeds the accepted maximum"
	case AmbiguousPath:
		return "the request path is ambiguous: a dot segment with ; parameters, a double-encoded character, a backslash or a control byte"
	case InvalidRequest:
		return "the request must carry exactly one bearer token, as Authorization: Bearer <token>"
	case UntrustedProxy:
		return "decisions are answered only to trusted proxies"
	case BadOriginal:
		return "the decision request must name its original request once: X-Original-URI or X-Forwarded-Uri, with an optional method and host"
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
	// Scope is, for InsufficientScope, the scopes the request needed,
	// space-separated: the challenge names them (RFC 6750 §3.1 scope).
	// Empty when a claim, not a scope, was lacking.
	Scope string
	// Nonce is a fresh DPoP nonce for a DPoPNonce refusal (RFC 9449 §8:
	// the DPoP-Nonce response header); empty otherwise.
	Nonce string
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

// Fail is a refusal for reason r with a detail for logs.
func Fail(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...)}
}
