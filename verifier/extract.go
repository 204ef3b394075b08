package verifier

import (
	"net/http"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// extract finds the request's one token, a compact JWS. More than one token,
// across every configured place, is refused as invalid_request (RFC 6750
// §2: a client uses one method; §3.1: 400), and so is a Bearer scheme
// without a token. The Authorization header may use the DPoP scheme (RFC
// 9449 §7.1) as well as Bearer; scheme says which (SchemeBearer for every
// other place).
func extract(r *http.Request, lookups []config.Lookup, maxSize int) (token string, from config.Lookup, scheme string, err error) {
	return extractWith(r, lookups, maxSize, checkJWSChars, true)
}

// The Authorization schemes a token may come with.
const (
	SchemeBearer = "Bearer"
	SchemeDPoP   = "DPoP"
)

// extractWith is extract with the token's character check given: a JWS for
// jwt mode, any RFC 6750 b64token for introspection mode; dpop accepts the
// DPoP scheme in Authorization (jwt mode, which checks the proof).
func extractWith(r *http.Request, lookups []config.Lookup, maxSize int, check func(string) error, dpop bool) (string, config.Lookup, string, error) {
	var (
		token  string
		from   config.Lookup
		scheme = SchemeBearer
		found  int
	)
	for _, l := range lookups {
		n, v, s := tokensAt(r, l, dpop)
		if n > 0 {
			found += n
			token, from, scheme = v, l, s
		}
	}
	switch {
	case found == 0:
		return "", config.Lookup{}, "", &Error{Reason: Missing}
	case found > 1:
		return "", from, "", Fail(InvalidRequest, "%d tokens in the request; send exactly one", found)
	}
	if len(token) > maxSize {
		return "", from, "", Fail(Malformed, "token of %d bytes exceeds the limit of %d", len(token), maxSize)
	}
	if token == "" {
		return "", from, "", Fail(InvalidRequest, "the Bearer scheme without a token in %s", from)
	}
	if err := check(token); err != nil {
		return "", from, "", err
	}
	return token, from, scheme, nil
}

// checkJWSChars refuses anything but base64url and '.': a compact JWS is three
// base64url segments, and anything else is refused before any decoding work.
func checkJWSChars(token string) error {
	for i := 0; i < len(token); i++ {
		if !jwsChar(token[i]) {
			return Fail(Malformed, "token has a character outside base64url and '.'")
		}
	}
	return nil
}

// jwsChars marks the bytes of a compact JWS: base64url and '.'. A table,
// because this loop runs over every byte of every token.
var jwsChars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") {
		t[c] = true
	}
	return t
}()

func jwsChar(c byte) bool { return jwsChars[c] }

// tokensAt counts the tokens found at one place and returns the last, with
// its scheme. It allocates nothing for headers, the hot path.
func tokensAt(r *http.Request, l config.Lookup, dpop bool) (int, string, string) {
	var (
		n      int
		tok    string
		scheme = SchemeBearer
	)
	switch l.Kind {
	case config.InHeader:
		auth := l.Name == "Authorization"
		for _, v := range r.Header[l.Name] {
			if auth && dpop {
				if t, ok := dpopScheme(v); ok {
					n, tok, scheme = n+1, t, SchemeDPoP
					continue
				}
			}
			if t, ok := bearer(v, auth); ok {
				n, tok, scheme = n+1, t, SchemeBearer
			}
		}
	case config.InCookie:
		if len(r.Header["Cookie"]) == 0 {
			return 0, "", scheme
		}
		for _, c := range r.CookiesNamed(l.Name) {
			n, tok = n+1, c.Value
		}
	case config.InQuery:
		if r.URL.RawQuery == "" {
			return 0, "", scheme
		}
		vals := r.URL.Query()[l.Name]
		if len(vals) > 0 {
			n, tok = len(vals), vals[len(vals)-1]
		}
	}
	return n, tok, scheme
}

// dpopScheme reads an Authorization value of the DPoP scheme (RFC 9449
// §7.1, scheme case-insensitive).
func dpopScheme(v string) (string, bool) {
	const prefix = "dpop "
	if len(v) >= len(prefix) && strings.EqualFold(v[:len(prefix)], prefix) {
		return strings.TrimLeft(v[len(prefix):], " "), true
	}
	if strings.EqualFold(strings.TrimSpace(v), "dpop") {
		return "", true // "DPoP" with no token: malformed, not missing
	}
	return "", false
}

// bearer reads a header value. Authorization must use the Bearer scheme
// (RFC 6750 §2.1, scheme case-insensitive); another scheme such as Basic is
// not a token here. Other headers carry the token bare or after "Bearer ".
func bearer(v string, authorization bool) (string, bool) {
	const prefix = "bearer "
	if len(v) >= len(prefix) && strings.EqualFold(v[:len(prefix)], prefix) {
		return strings.TrimLeft(v[len(prefix):], " "), true
	}
	if authorization {
		if strings.EqualFold(strings.TrimSpace(v), "bearer") {
			return "", true // "Bearer" with no token: malformed, not missing
		}
		return "", false
	}
	return strings.TrimSpace(v), true
}
