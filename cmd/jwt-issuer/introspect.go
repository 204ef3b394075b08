package main

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// inactive is the whole RFC 7662 §2.2 answer for a token that is not valid
// now: nothing about why, so introspection leaks nothing to its caller.
var inactive = []byte(`{"active":false}` + "\n")

// Why a token of this issuer is refused before its signature is checked.
var (
	errCrit       = errors.New("the token has a crit header, which this issuer never sets")
	errUnknownKID = errors.New("no published key has the token's kid")
	errBadKID     = errors.New("the token's kid is not a string")
)

// revocationKey names a revoked token: its jti, or the SHA-256 of the token
// itself for a token without one (made by mint -jti ""), which can then
// still be revoked.
type revocationKey struct {
	jti  string
	hash [sha256.Size]byte
}

// revocationKeyOf returns the key under which tok is revoked.
func revocationKeyOf(tok string, claims jwt.MapClaims) revocationKey {
	if jti, ok := claims["jti"].(string); ok && jti != "" {
		return revocationKey{jti: jti}
	}
	return revocationKey{hash: sha256.Sum256([]byte(tok))}
}

// newOwnParser builds the parser of this issuer's own tokens, made once
// because /introspect uses it on every request: only SIGNING_ALG (so never
// none, never HS*), exp required, iss exactly ISSUER_URL, no leeway (this
// service is the clock that issued them), numbers kept as written so the
// introspection answer repeats them exactly.
func (s *server) newOwnParser() *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{s.keys.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(s.cfg.IssuerURL),
		jwt.WithJSONNumber(),
		jwt.WithTimeFunc(func() time.Time { return s.now() }),
	)
}

// verifyOwn returns the claims of tok if it is a token of this issuer valid
// now: signed by a key the JWKS publishes now (a retired key included, until
// its tokens have expired), exp in the future, nbf passed, iss this issuer.
// Revocation is the caller's check.
func (s *server) verifyOwn(tok string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	if _, err := s.ownParser.ParseWithClaims(tok, claims, s.ownKeyfunc); err != nil {
		return nil, err
	}
	return claims, nil
}

// ownKey is the jwt.Keyfunc of verifyOwn: the published key named by kid,
// or every published key for a token without a kid.
func (s *server) ownKey(tok *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: an extension this issuer does not understand (it
	// understands none) makes the token invalid.
	if _, ok := tok.Header["crit"]; ok {
		return nil, errCrit
	}
	now := s.now()
	switch kid := tok.Header["kid"].(type) {
	case nil:
		keys := s.keys.published(now)
		set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
		for i, k := range keys {
			set.Keys[i] = k.public
		}
		return set, nil
	case string:
		k, ok := s.keys.lookup(kid, now)
		if !ok {
			return nil, errUnknownKID
		}
		return k.public, nil
	default:
		return nil, errBadKID
	}
}

// tokenRequest reads an introspection or revocation request, which both
// carry the token in a form posted by an authenticated client (RFC 7662
// §2.1, RFC 7009 §2.1), and returns the client and the token. When ok is
// false it has answered the request itself.
func (s *server) tokenRequest(w http.ResponseWriter, r *http.Request) (clientID, token string, ok bool) {
	form, err := readForm(w, r)
	if err != nil {
		s.tokenError(w, http.StatusBadRequest, errInvalidRequest, err.Error())
		return "", "", false
	}
	if clientID, ok = s.authenticate(w, r, form); !ok {
		return "", "", false
	}
	if token = form.Get("token"); token == "" {
		s.tokenError(w, http.StatusBadRequest, errInvalidRequest, "token is required")
		return "", "", false
	}
	return clientID, token, true
}

// handleIntrospect answers RFC 7662 token introspection for an
// authenticated client. Any client may introspect any token: the resource
// servers that call it (the sidecar in introspection mode) hold other
// clients' tokens by design. token_type_hint is accepted and ignored
// (§2.1: there is only one kind of token here).
func (s *server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	_, tok, ok := s.tokenRequest(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	claims, err := s.verifyOwn(tok)
	if err != nil || s.revoked.contains(revocationKeyOf(tok, claims), s.now()) || s.subjectRevoked(claims) {
		s.metrics.introspection(false)
		_, _ = w.Write(inactive)
		return
	}
	s.metrics.introspection(true)
	// RFC 7662 §2.2: the token's own claims (scope, client_id, sub, exp,
	// iat, nbf, aud, iss, jti, ...) plus active and token_type, which no
	// claim of the token may override.
	claims["active"] = true
	claims["token_type"] = "Bearer"
	if _, bound := claims["cnf"]; bound {
		claims["token_type"] = tokenTypeDPoP // RFC 9449 §6.2
	}
	_ = json.NewEncoder(w).Encode(claims) // the client went away; nothing to do
}

// handleRevoke implements RFC 7009 token revocation for an authenticated
// client. A token that is invalid, unknown or already revoked gets 200
// (§2.2). A valid token issued to another client is refused with 400
// invalid_grant and stays valid (§2.1: the server checks that the token was
// issued to the requesting client; RFC 6749 §5.2 names that case
// invalid_grant). A revoked token is remembered by jti until its exp, then
// forgotten: it has expired by then.
func (s *server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	clientID, tok, ok := s.tokenRequest(w, r)
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	claims, err := s.verifyOwn(tok)
	if err != nil {
		w.WriteHeader(http.StatusOK) // §2.2: an invalid token is no error
		return
	}
	if owner := tokenClient(claims); owner != clientID {
		s.log.Warn("revocation refused: token issued to another client", "client_id", clientID, "owner", owner)
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, "the token was issued to another client")
		return
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // verifyOwn required a valid exp
		s.log.Error("revoke: verified token without exp", "err", err)
		s.tokenError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	key := revocationKeyOf(tok, claims)
	if s.revoked.add(key, exp.Time, s.now()) {
		s.metrics.revocations.Inc()
		s.log.Info("revoked token", "client_id", clientID, "jti", key.jti, "exp", exp.Time)
	}
	w.WriteHeader(http.StatusOK)
}

// tokenClient is the client a token was issued to: client_id, else sub
// (tokens made by mint have no client_id).
func tokenClient(claims jwt.MapClaims) string {
	if id, ok := claims["client_id"].(string); ok && id != "" {
		return id
	}
	sub, _ := claims.GetSubject()
	return sub
}
