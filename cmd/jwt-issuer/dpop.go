package main

import (
	"net/http"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
)

// tokenTypeDPoP is the token_type of a DPoP-bound token (RFC 9449 §5).
const tokenTypeDPoP = "DPoP"

// dpopBinding checks the DPoP proof of a token request (RFC 9449 §5) and
// returns the thumbprint the token is to be bound to, or "" when the
// request has no proof (a Bearer token). The proof's htu must be the token
// endpoint as ISSUER_URL names it: the URL clients address. On a bad
// proof it answers 400 invalid_dpop_proof and returns false.
func (s *server) dpopBinding(w http.ResponseWriter, r *http.Request) (string, bool) {
	p, err := s.dpop.CheckProof(dpop.Request{
		Method: r.Method,
		URI:    s.endpoint("/token"),
		Proofs: r.Header.Values("DPoP"),
	})
	if err != nil {
		s.log.Warn("DPoP proof refused", "err", err)
		s.tokenError(w, http.StatusBadRequest, dpop.CodeInvalidProof, reasonOf(err).Description())
		return "", false
	}
	if p == nil {
		return "", true
	}
	return p.JKT, true
}

// reasonOf is the dpop reason of a CheckProof error.
func reasonOf(err error) dpop.Reason {
	if e, ok := err.(*dpop.Error); ok {
		return e.Reason
	}
	return dpop.Invalid
}
