package verifier

import (
	"crypto/x509"
	"errors"
	"net/http"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
)

// Revocations says whether a genuine token was revoked since it was
// issued. *revocation.Store satisfies it; it must be cheap and allocate
// nothing, since it runs on every request, token-cache hits included.
type Revocations interface {
	Revoked(iss, jti, sub string, iat time.Time) bool
}

// SenderConstraint checks sender-constrained tokens (the cnf claim, RFC
// 7800): DPoP proofs (RFC 9449) with Checker, certificate binding (RFC
// 8705) with the request's TLS state.
type SenderConstraint struct {
	// Checker checks DPoP proofs; shared by every provider, so that one
	// replay cache sees every proof. Nil: DPoP-bound tokens are refused.
	Checker *dpop.Checker
	// Target builds the URI the client addressed (htu).
	Target dpop.Target
	// Nonces, when set, are the server nonces Checker requires; a
	// dpop_nonce refusal then carries a fresh one.
	Nonces *dpop.NonceSource
}

// Algorithms are the DPoP proof algs accepted, for the challenge.
func (s *SenderConstraint) Algorithms() []string {
	if s == nil || s.Checker == nil {
		return nil
	}
	return s.Checker.Algorithms()
}

// parseConfirmation reads cnf at verification time, once per token (the
// cache keeps the result). A cnf that is present but names nothing this
// sidecar can check refuses the token: a sender constraint never
// downgrades to bearer.
func parseConfirmation(cnf any) (dpop.Confirmation, *Error) {
	c, err := dpop.ParseConfirmation(cnf)
	if err != nil {
		return dpop.Confirmation{}, &Error{Reason: DPoPMismatch, Err: err}
	}
	return c, nil
}

// revoked refuses claims that the revocation list names.
func (v *Verifier) revoked(c *Claims) *Error {
	if v.revocations == nil || !v.revocations.Revoked(c.Issuer, c.JTI, c.Subject, c.IssuedAt) {
		return nil
	}
	return &Error{Reason: Revoked, Err: errors.New("the revocation list names this token (by jti, or its subject before its iat)"),
		KID: c.KeyID, Issuer: c.Issuer}
}

// bound is the one place a verified token's cnf is enforced against the
// request: certificate binding first (RFC 8705 §3), then DPoP (RFC 9449
// §7.1). A token without cnf that came as Bearer passes at once, allocating
// nothing; a DPoP-bound token never passes as Bearer, and the DPoP scheme
// never passes without a proof bound to the token.
//
// A provider with AllowSenderConstrained opts out: its cnf tokens pass as
// plain bearer tokens, unproven.
func (v *Verifier) bound(r *http.Request, scheme, token string, c *Claims) *Error {
	if v.rules.senderConstraint && scheme == SchemeBearer {
		return nil
	}
	cnf := c.cnf
	if cnf.X5TS256 != "" {
		var peer []*x509.Certificate
		if r.TLS != nil {
			peer = r.TLS.PeerCertificates
		}
		if err := dpop.CheckCertificate(cnf.X5TS256, peer); err != nil {
			return v.senderError(err, c)
		}
	}
	if cnf.JKT == "" && scheme == SchemeBearer {
		return nil
	}
	s := v.sender
	if s == nil || s.Checker == nil {
		return &Error{Reason: DPoPMismatch, Err: errors.New("DPoP is not enabled for this provider"), KID: c.KeyID, Issuer: c.Issuer}
	}
	req := dpop.Request{Method: r.Method, URI: s.Target.URI(r), Proofs: r.Header.Values("DPoP"), AccessToken: token}
	if _, err := s.Checker.CheckToken(req, scheme, cnf.JKT); err != nil {
		return v.senderError(err, c)
	}
	return nil
}

// senderError turns dpop's refusal into the taxonomy's.
func (v *Verifier) senderError(err error, c *Claims) *Error {
	out := &Error{Reason: DPoPInvalid, Err: err, KID: c.KeyID, Issuer: c.Issuer}
	if de, ok := errors.AsType[*dpop.Error](err); ok {
		out.Reason = Reason(de.Reason)
	}
	if out.Reason == DPoPNonce && v.sender != nil && v.sender.Nonces != nil {
		out.Nonce = v.sender.Nonces.New(v.now())
	}
	return out
}
