package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// grantJWTBearer is the RFC 7523 §2.1 grant_type.
	grantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// assertionLeeway is the clock skew allowed for an assertion's exp, nbf
	// and iat: the client's clock is not ours (RFC 7523 §3 items 4-6).
	assertionLeeway = 30 * time.Second
	// maxAssertionLifetime bounds how far ahead an assertion's exp may be,
	// and with it how long its jti must be remembered against replay.
	maxAssertionLifetime = time.Hour
)

// Why an assertion is refused before its signature is checked.
var (
	errUnknownClient = errors.New("the assertion's iss is not a client of CLIENT_KEYS")
	errNoClientKey   = errors.New("no registered key of the client fits the assertion's kid and alg")
)

// assertionError is an invalid_grant refusal; its text is the
// error_description.
type assertionError struct{ desc string }

func (e assertionError) Error() string { return e.desc }

// assertionProblems turn a parse error into an error_description. The first
// match wins: golang-jwt joins claim errors.
var assertionProblems = []struct {
	target error
	desc   string
}{
	{jwt.ErrTokenMalformed, "the assertion is not a well-formed JWT"},
	{errCrit, "the assertion has a crit header; no extension is understood"},
	{errUnknownClient, errUnknownClient.Error()},
	{errNoClientKey, errNoClientKey.Error()},
	{errBadKID, "the assertion's kid is not a string"},
	{jwt.ErrTokenSignatureInvalid, "the assertion's alg is not one the client's key allows, or its signature does not verify"},
	{jwt.ErrTokenRequiredClaimMissing, "the assertion has no exp"},
	{jwt.ErrTokenExpired, "the assertion has expired"},
	{jwt.ErrTokenNotValidYet, "the assertion is not valid yet (nbf)"},
	{jwt.ErrTokenUsedBeforeIssued, "the assertion's iat is in the future"},
}

// describeAssertionError is the error_description of a parse error.
func describeAssertionError(err error) string {
	for _, p := range assertionProblems {
		if errors.Is(err, p.target) {
			return p.desc
		}
	}
	return "the assertion is invalid"
}

// assertionKey names a used assertion: jti is unique per issuer (RFC 7519
// §4.1.7), and each client is its own issuer.
type assertionKey struct{ iss, jti string }

// newAssertionParser builds the parser of jwt-bearer assertions: asymmetric
// algs only (the client's key narrows them further), exp required, nbf and
// iat honoured with assertionLeeway.
func (s *server) newAssertionParser() *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods(allAlgs()), // RS*, PS*, ES*, EdDSA: never none, never HS*
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(assertionLeeway),
		jwt.WithTimeFunc(func() time.Time { return s.now() }),
	)
}

// clientKey is the jwt.Keyfunc of assertions: the registered keys of the
// client named by iss that allow the assertion's alg and match its kid.
// Choosing keys by the unverified iss is safe: only that client's keys are
// tried, so a signature that verifies proves the client wrote the claims.
func (s *server) clientKey(tok *jwt.Token) (any, error) {
	if _, ok := tok.Header["crit"]; ok {
		return nil, errCrit
	}
	iss, err := tok.Claims.GetIssuer()
	if err != nil {
		return nil, err
	}
	keys := s.clientKeys[iss]
	if len(keys) == 0 {
		return nil, errUnknownClient
	}
	var kid string
	switch v := tok.Header["kid"].(type) {
	case nil:
	case string:
		kid = v
	default:
		return nil, errBadKID
	}
	alg := tok.Method.Alg()
	set := jwt.VerificationKeySet{}
	for _, k := range keys {
		if slices.Contains(k.algs, alg) && (k.kid == "" || kid == "" || k.kid == kid) {
			set.Keys = append(set.Keys, k.public)
		}
	}
	if len(set.Keys) == 0 {
		return nil, errNoClientKey
	}
	return set, nil
}

// checkAssertion validates a jwt-bearer assertion by RFC 7523 §3 and
// returns the client it authorizes. sender is the client that sent it
// (authenticated or named by client_id), or "". Only a fully valid
// assertion spends its jti.
func (s *server) checkAssertion(assertion, sender string) (string, error) {
	tok, err := s.assertionParser.Parse(assertion, s.clientKeyfunc)
	if err != nil {
		return "", assertionError{describeAssertionError(err)}
	}
	claims := tok.Claims.(jwt.MapClaims)
	now := s.now()
	client, _ := claims.GetIssuer() // clientKey found keys for it
	// §3 item 2: the subject is the client itself, acting on its own
	// behalf; it becomes the issued token's sub.
	if sub, err := claims.GetSubject(); err != nil || sub != client {
		return "", assertionError{"the assertion's sub must equal its iss, the client_id"}
	}
	if sender != "" && sender != client {
		return "", assertionError{"the assertion's iss is not the client that sent it"}
	}
	// §3 item 3: aud identifies this authorization server.
	aud, err := claims.GetAudience()
	if err != nil || (!slices.Contains(aud, s.cfg.IssuerURL) && !slices.Contains(aud, s.endpoint("/token"))) {
		return "", assertionError{fmt.Sprintf("the assertion's aud must contain %s or %s", s.cfg.IssuerURL, s.endpoint("/token"))}
	}
	// §3 item 4: exp limits the time window; a far one would make the jti
	// memory below unbounded.
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return "", assertionError{"the assertion has no exp"}
	}
	if exp.After(now.Add(maxAssertionLifetime + assertionLeeway)) {
		return "", assertionError{fmt.Sprintf("the assertion's exp is more than %s ahead", maxAssertionLifetime)}
	}
	// §3 item 7: jti, and a used one is refused until the assertion has
	// expired (the leeway included).
	jti, _ := claims["jti"].(string)
	if jti == "" {
		return "", assertionError{"the assertion has no jti"}
	}
	if !s.usedAssertions.add(assertionKey{iss: client, jti: jti}, exp.Add(assertionLeeway), now) {
		return "", assertionError{"the assertion's jti was already used"}
	}
	return client, nil
}

// jwtBearer answers the jwt-bearer grant (RFC 7523 §2.1): the assertion is
// the authorization grant, and its client gets a token. sender is the
// authenticated client, or "" when none authenticated; jkt binds the token
// to a DPoP key.
func (s *server) jwtBearer(w http.ResponseWriter, form url.Values, sender, jkt string) {
	assertion := form.Get("assertion")
	if assertion == "" {
		s.tokenError(w, http.StatusBadRequest, errInvalidRequest, "assertion is required")
		return
	}
	if sender == "" {
		sender = form.Get("client_id") // RFC 7523 §3.1: may name the client
	}
	client, err := s.checkAssertion(assertion, sender)
	if err != nil {
		s.log.Warn("jwt-bearer assertion refused", "reason", err.Error(), "client_id", sender)
		s.tokenError(w, http.StatusBadRequest, errInvalidGrant, err.Error())
		return
	}
	s.issue(w, client, form.Get("scope"), grantLabelJWTBearer, jkt)
}
