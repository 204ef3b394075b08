package verifier

import (
	"net/http"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// extract finds the request's one token, a compact JWS. More than one token,
// across every configured place, is refused as invalid_request (RFC 6750
// §2: a client uses one method; §3.1: 400), and so is a Bearer scheme
// without a token.
func extract(r *http.Request, lookups []config.Lookup, maxSize int) (string, config.Lookup, error) {
	return extractWith(r, lookups, maxSize, checkJWSChars)
}

// extractWith is extract with the token's character check given: a JWS for
// jwt mode, any RFC 6750 b64token for introspection mode.
func extractWith(r *http.Request, lookups []config.Lookup, maxSize int, check func(string) error) (string, config.Lookup, error) {
	var (
		token string
		from  config.Lookup
		found int
	)
	for _, l := range lookups {
		n, v := tokensAt(r, l)
		if n > 0 {
			found += n
			token, from = v, l
		}
	}
	switch {
	case found == 0:
		return "", config.Lookup{}, &Error{Reason: Missing}
	case found > 1:
		return "", from, Fail(InvalidRequest, "%d tokens in the request; send exactly one", found)
	}
	if len(token) > maxSize {
		return "", from, Fail(Malformed, "token of %d bytes exceeds the limit of %d", len(token), maxSize)
	}
	if token == "" {
		return "", from, Fail(InvalidRequest, "the Bearer scheme without a token in %s", from)
	}
	if err := check(token); err != nil {
		return "", from, err
	}
	return token, from, nil
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

// tokensAt counts the tokens found at one place and returns the last. It
// allocates nothing for headers, the hot path.
func tokensAt(r *http.Request, l config.Lookup) (int, string) {
	var (
		n   int
		tok string
	)
	switch l.Kind {
	case config.InHeader:
		for _, v := range r.Header[l.Name] {
			if t, ok := bearer(v, l.Name == "Authorization"); ok {
				n, tok = n+1, t
			}
		}
	case config.InCookie:
		if len(r.Header["Cookie"]) == 0 {
			return 0, ""
		}
		for _, c := range r.CookiesNamed(l.Name) {
			n, tok = n+1, c.Value
		}
	case config.InQuery:
		if r.URL.RawQuery == "" {
			return 0, ""
		}
		vals := r.URL.Query()[l.Name]
		if len(vals) > 0 {
			n, tok = len(vals), vals[len(vals)-1]
		}
	}
	return n, tok
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
