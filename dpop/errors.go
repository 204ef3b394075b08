package dpop

import (
	"fmt"
	"strings"
)

// Reason says why a sender-constrained request was refused. The values are
// reason labels; the verifier maps each into its one taxonomy.
type Reason string

// Reasons of DPoP (RFC 9449) and mTLS-bound (RFC 8705) checks.
const (
	// Missing: a DPoP-bound token came without a DPoP proof.
	Missing Reason = "dpop_missing"
	// Invalid: the proof is not a valid DPoP proof: malformed, several
	// proofs, wrong typ, an alg not allowed, a jwk that is not a public key,
	// a bad signature, or an iat outside the window.
	Invalid Reason = "dpop_invalid"
	// Replayed: a proof with this jti and key was already used.
	Replayed Reason = "dpop_replayed"
	// Mismatch: the proof does not fit this request or token: htm, htu,
	// ath, or the key's thumbprint against cnf.jkt; or a token that is not
	// DPoP-bound was sent with the DPoP scheme.
	Mismatch Reason = "dpop_mismatch"
	// BoundAsBearer: a DPoP-bound token was sent with the Bearer scheme,
	// which would defeat the binding (RFC 9449 §7.1).
	BoundAsBearer Reason = "dpop_bound_as_bearer"
	// NonceRequired: the server requires a nonce (§8) and the proof has
	// none, or an unknown or expired one; the answer carries a fresh one.
	NonceRequired Reason = "dpop_nonce"
	// CertMissing: an mTLS-bound token came without a client certificate.
	CertMissing Reason = "mtls_missing"
	// CertMismatch: the client certificate is not the one the token is
	// bound to (cnf x5t#S256, RFC 8705 §3).
	CertMismatch Reason = "mtls_mismatch"
)

// Reasons lists every Reason, for metrics that want every series at start.
var Reasons = []Reason{Missing, Invalid, Replayed, Mismatch, BoundAsBearer, NonceRequired, CertMissing, CertMismatch}

// Error codes of the WWW-Authenticate challenge: RFC 9449 §12.2 and RFC
// 6750 §3.1.
const (
	CodeInvalidProof   = "invalid_dpop_proof"
	CodeUseNonce       = "use_dpop_nonce"
	CodeInvalidToken   = "invalid_token"
	CodeInvalidRequest = "invalid_request"
)

// Code is the challenge's error code for r: proof problems are
// invalid_dpop_proof, a binding the token cannot satisfy is invalid_token.
func (r Reason) Code() string {
	switch r {
	case Missing, Invalid, Replayed:
		return CodeInvalidProof
	case NonceRequired:
		return CodeUseNonce
	}
	return CodeInvalidToken
}

// Description is the fixed, client-safe error_description of r (printable
// ASCII without `"` or `\`). Details stay in Error.Err, for logs.
func (r Reason) Description() string {
	switch r {
	case Missing:
		return "a DPoP proof is required for this token"
	case Invalid:
		return "the DPoP proof is invalid"
	case Replayed:
		return "the DPoP proof was already used"
	case Mismatch:
		return "the DPoP proof does not match the request or the token"
	case BoundAsBearer:
		return "the token is DPoP-bound and must be sent with the DPoP scheme"
	case NonceRequired:
		return "a fresh DPoP nonce is required"
	case CertMissing:
		return "the token is certificate-bound and needs a client certificate"
	case CertMismatch:
		return "the client certificate does not match the token"
	}
	return "the sender constraint is not met"
}

// Error is a refusal: Reason for clients and metrics, Err for logs.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return string(e.Reason)
	}
	return fmt.Sprintf("%s: %v", e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func fail(r Reason, format string, a ...any) *Error {
	return &Error{Reason: r, Err: fmt.Errorf(format, a...)}
}

// Challenge is the value of a WWW-Authenticate header for the DPoP scheme
// (RFC 9449 §7.1): realm, the algs the server accepts, and for a refusal
// its error code and description. r == "" gives the bare challenge of a
// request without credentials.
func Challenge(realm string, algs []string, r Reason) string {
	var b strings.Builder
	b.WriteString("DPoP")
	sep := " "
	if realm != "" {
		fmt.Fprintf(&b, `%srealm="%s"`, sep, realm)
		sep = ", "
	}
	fmt.Fprintf(&b, `%salgs="%s"`, sep, strings.Join(algs, " "))
	if r != "" {
		fmt.Fprintf(&b, `, error="%s", error_description="%s"`, r.Code(), r.Description())
	}
	return b.String()
}
