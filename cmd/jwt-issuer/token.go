package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// maxFormBytes bounds a token request body.
const maxFormBytes = 64 << 10

// grant_type values of /token.
const (
	grantClientCredentials = "client_credentials"
)

// RFC 6749 §5.2 error codes.
const (
	errInvalidRequest       = "invalid_request"
	errInvalidClient        = "invalid_client"
	errUnsupportedGrantType = "unsupported_grant_type"
	errInvalidScope         = "invalid_scope"
	// errInvalidGrant: a bad jwt-bearer assertion, or the revocation of a
	// token issued to another client (§5.2: "issued to another client").
	errInvalidGrant = "invalid_grant"
)

// tokenResponse is the RFC 6749 §5.1 success body.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

// oauthError is the RFC 6749 §5.2 error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// handleToken implements the client_credentials grant (RFC 6749 §4.4)
// and, with CLIENT_KEYS, the jwt-bearer grant (RFC 7523 §2.1).
func (s *server) handleToken(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(w, r)
	if err != nil {
		s.tokenError(w, http.StatusBadRequest, errInvalidRequest, err.Error())
		return
	}
	gt := form.Get("grant_type")
	var clientID string
	// RFC 7523 §3.1: with jwt-bearer, client authentication is optional
	// (the assertion is the grant), but credentials that are sent must be
	// valid.
	if gt != grantJWTBearer || hasCredentials(r, form) {
		id, ok := s.authenticate(w, r, form)
		if !ok {
			return
		}
		clientID = id
	}
	switch {
	case gt == "":
		s.tokenError(w, http.StatusBadRequest, errInvalidRequest, "grant_type is required")
		return
	case !slices.Contains(s.grantTypes(), gt):
		s.tokenError(w, http.StatusBadRequest, errUnsupportedGrantType, "supported: "+strings.Join(s.grantTypes(), ", "))
		return
	}
	if s.loginGrant(w, form, clientID) {
		return
	}
	scope := form.Get("scope")
	if !validScope(scope) {
		s.tokenError(w, http.StatusBadRequest, errInvalidScope, "scope must be space-separated tokens of printable ASCII without quote or backslash")
		return
	}
	jkt, ok := s.dpopBinding(w, r) // RFC 9449 §5: "" for a Bearer token
	if !ok {
		return
	}
	if gt == grantJWTBearer {
		s.jwtBearer(w, form, clientID, jkt)
		return
	}
	s.issue(w, clientID, scope, grantLabelClientCredentials, jkt)
}

// hasCredentials reports whether a request carries client credentials: an
// Authorization header or a client_secret field.
func hasCredentials(r *http.Request, form url.Values) bool {
	_, secret := form["client_secret"]
	return secret || r.Header.Get("Authorization") != ""
}

// issue answers a token request of clientID with a fresh access token for
// scope; grant is the metric label of the grant that authorized it. A
// token with jkt is DPoP-bound to that key (RFC 9449 §6.1: cnf.jkt).
// The caller has checked scope.
func (s *server) issue(w http.ResponseWriter, clientID, scope, grant, jkt string) {
	key := s.keys.signer()
	now := s.now()
	jti := rand.Text()
	claims := jwt.MapClaims{
		"iss":       s.cfg.IssuerURL,
		"sub":       clientID,
		"aud":       s.cfg.Audience,
		"iat":       jwt.NewNumericDate(now),
		"nbf":       jwt.NewNumericDate(now),
		"exp":       jwt.NewNumericDate(now.Add(s.cfg.TokenTTL)),
		"jti":       jti, // unique: /revoke and /introspect name tokens by it
		"client_id": clientID,
	}
	if scope != "" {
		claims["scope"] = scope
	}
	tokenType := "Bearer"
	if jkt != "" {
		claims["cnf"] = map[string]any{"jkt": jkt}
		tokenType = tokenTypeDPoP
	}
	tok, err := key.sign(claims, nil, true)
	if err != nil {
		s.log.Error("sign token", "err", err)
		s.tokenError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	s.metrics.tokenIssued(grant)
	s.log.Info("issued token", "client_id", clientID, "grant", grant, "jti", jti, "kid", key.kid, "scope", scope, "token_type", tokenType)
	// RFC 6749 §5.1: responses with tokens are never cached.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok,
		TokenType:   tokenType,
		ExpiresIn:   int64(s.cfg.TokenTTL.Seconds()),
		Scope:       scope,
	})
}

// readForm parses the urlencoded body. Query parameters are ignored: RFC
// 6749 §3.2 keeps credentials out of the URI.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errors.New("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errors.New("the body is not a valid form")
	}
	// RFC 6749 §3.1: parameters must not be included more than once.
	for name, vs := range r.PostForm {
		if len(vs) > 1 {
			return nil, errors.New("parameter " + name + " is repeated")
		}
	}
	return r.PostForm, nil
}

// authenticate checks the client by HTTP Basic or by the client_id and
// client_secret form fields (RFC 6749 §2.3.1), never both. On failure it
// writes the error response and returns false.
func (s *server) authenticate(w http.ResponseWriter, r *http.Request, form url.Values) (string, bool) {
	id, secret, basic := r.BasicAuth()
	_, formSecret := form["client_secret"]
	verified := false
	switch {
	case basic && formSecret:
		// RFC 6749 §2.3: one authentication method per request.
		s.tokenError(w, http.StatusBadRequest, errInvalidRequest, "use HTTP Basic or client_secret, not both")
		return "", false
	case basic:
		// RFC 6749 §2.3.1 form-urlencodes both parts before Basic, but many
		// clients (curl -u) do not: accept the decoded or the raw form. The
		// decoded form, which the sidecar sends, is checked once, not twice.
		if did, dsec, err := unescapeBoth(id, secret); err == nil && s.checkSecret(did, dsec) {
			id, verified = did, true
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			s.tokenError(w, http.StatusBadRequest, errInvalidRequest, "client_id does not match HTTP Basic")
			return "", false
		}
	case r.Header.Get("Authorization") != "":
		s.clientError(w, "unsupported authorization scheme; use HTTP Basic")
		return "", false
	case formSecret:
		id, secret = form.Get("client_id"), form.Get("client_secret")
	default:
		s.clientError(w, "client authentication is required")
		return "", false
	}
	if !verified && !s.checkSecret(id, secret) {
		s.log.Warn("client authentication failed", "client_id", id)
		s.clientError(w, "unknown client or wrong secret")
		return "", false
	}
	return id, true
}

// unescapeBoth form-urldecodes a Basic user and password.
func unescapeBoth(id, secret string) (string, string, error) {
	did, err := url.QueryUnescape(id)
	if err != nil {
		return "", "", err
	}
	dsec, err := url.QueryUnescape(secret)
	return did, dsec, err
}

// checkSecret compares in constant time, over fixed-length hashes so the
// length of the secret does not leak, and does the same work for unknown
// clients (their want is the zero hash). The clients' hashes were taken at
// start-up, so a request hashes only the secret it presents.
func (s *server) checkSecret(id, secret string) bool {
	want, known := s.clients[id]
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && known
}

// hashSecrets maps each client id to the SHA-256 of its secret, the form
// checkSecret compares.
func hashSecrets(secrets map[string]string) map[string][sha256.Size]byte {
	hashes := make(map[string][sha256.Size]byte, len(secrets))
	for id, secret := range secrets {
		hashes[id] = sha256.Sum256([]byte(secret))
	}
	return hashes
}

// clientError answers 401 invalid_client with a Basic challenge (RFC 6749
// §5.2).
func (s *server) clientError(w http.ResponseWriter, desc string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="jwt-issuer"`)
	s.tokenError(w, http.StatusUnauthorized, errInvalidClient, desc)
}

// tokenError writes an RFC 6749 §5.2 error response.
func (s *server) tokenError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, oauthError{Error: code, Description: desc})
}

// validScope reports whether scope follows RFC 6749 §3.3: scope-tokens of
// %x21 / %x23-5B / %x5D-7E separated by single spaces. Empty is valid.
func validScope(scope string) bool {
	if scope == "" {
		return true
	}
	for tok := range strings.SplitSeq(scope, " ") {
		if tok == "" {
			return false
		}
		for _, c := range []byte(tok) {
			if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return false
			}
		}
	}
	return true
}
