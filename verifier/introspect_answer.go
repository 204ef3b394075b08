package verifier

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// answer is a token cache entry of introspection mode: an active answer,
// held until its own deadline, min(INTROSPECTION_CACHE_TTL, exp). Unlike
// jwt mode's entries, which live until the key set changes, every entry
// expires on its own, which is the whole point: a revoked token passes for
// at most the TTL.
type answer struct {
	claims *Claims
	until  time.Time
}

// expiredAt is the staleness rule of answers at now.
func expiredAt(now time.Time) func(answer) bool {
	return func(a answer) bool { return !now.Before(a.until) }
}

// decide reads a 200 answer (RFC 7662 §2.2). Only the JSON boolean true is
// active and only false is inactive: a missing active, "true" as a string,
// 1 or null is an answer the sidecar cannot read, so it cannot decide
// (Unavailable), rather than guess either way. An active answer then passes
// the same checks as a verified JWT.
func (in *Introspector) decide(body []byte, now time.Time) (*Claims, *Error) {
	values, err := decodeObject(body)
	if err != nil {
		return nil, in.unavailable(IntrospectionBadResponse, fmt.Errorf("the introspection answer is not a JSON object: %w", err))
	}
	switch values["active"] {
	case true:
	case false:
		in.rec.Introspection(IntrospectionInactive)
		return nil, Fail(Inactive, "the token service says the token is not active")
	default:
		return nil, in.unavailable(IntrospectionBadResponse, fmt.Errorf("the introspection answer's active is %#v, not a boolean", values["active"]))
	}
	c := NewClaims(values)
	for _, d := range []struct {
		name string
		to   *time.Time
	}{{"exp", &c.Expiry}, {"nbf", &c.NotBefore}, {"iat", &c.IssuedAt}} {
		t, ok := numericClaim(values, d.name)
		if !ok {
			return nil, in.unavailable(IntrospectionBadResponse, fmt.Errorf("the introspection answer's %s is %#v, not a NumericDate", d.name, values[d.name]))
		}
		*d.to = t
	}
	in.rec.Introspection(IntrospectionActive)
	c.Payload = base64.RawURLEncoding.EncodeToString(body)
	c.Subject, _ = values["sub"].(string)
	c.Issuer, _ = values["iss"].(string)
	if e := in.check(&c, values, now); e != nil {
		e.Issuer = c.Issuer
		return nil, e
	}
	return &c, nil
}

// decodeObject decodes exactly one JSON object, numbers as json.Number so
// that claim headers render them as the token service wrote them.
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var values map[string]any
	if err := dec.Decode(&values); err != nil {
		return nil, err
	}
	if values == nil {
		return nil, errors.New("null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return values, nil
}

// numericClaim reads an optional NumericDate of an answer: absent is the
// zero time; ok is false for anything but a finite number of seconds.
func numericClaim(values map[string]any, name string) (t time.Time, ok bool) {
	v, present := values[name]
	if !present {
		return time.Time{}, true
	}
	n, isNumber := v.(json.Number)
	if !isNumber {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.Abs(f) > 1e15 {
		return time.Time{}, false
	}
	return numericDate(n), true
}

// check applies jwt mode's checks to an active answer, in jwt mode's order:
// exp, nbf and iat with the clock skew, iss (when ISSUERS is set), aud,
// scopes. The token service has said the token is active; these are the
// sidecar's own policy on top of that.
func (in *Introspector) check(c *Claims, values map[string]any, now time.Time) *Error {
	if c.Expiry.IsZero() && in.requireExp {
		return Fail(Malformed, "the active token has no exp, and exp is required")
	}
	switch in.checks.checkTimes(c, now) {
	case Expired:
		return Fail(Expired, "exp %s has passed, beyond the clock skew of %s", c.Expiry.Format(time.RFC3339), in.checks.skew)
	case NotYetValid:
		return Fail(NotYetValid, "nbf %s is in the future, beyond the clock skew of %s", c.NotBefore.Format(time.RFC3339), in.checks.skew)
	}
	if !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(in.checks.skew)) {
		return Fail(NotYetValid, "iat %s is in the future", c.IssuedAt.Format(time.RFC3339))
	}
	if len(in.issuers) > 0 {
		iss, ok := values["iss"].(string)
		if !ok {
			return Fail(BadIssuer, "iss is missing or not a string")
		}
		if !slices.Contains(in.issuers, iss) {
			return Fail(BadIssuer, "iss %q is not accepted", iss)
		}
	}
	if e := in.checks.afterSignature(values); e != nil {
		return e
	}
	return nil
}

// b64tokenChars marks RFC 6750 §2.1's b64token characters, without the
// trailing '=' padding, which checkB64Token handles.
var b64tokenChars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		t[c] = true
	}
	return t
}()

// checkB64Token refuses a token that is not an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". Opaque
// tokens are not JWTs, but nothing else can be a bearer token.
func checkB64Token(token string) error {
	body := strings.TrimRight(token, "=")
	if body == "" {
		return Fail(Malformed, "token is only padding")
	}
	for i := 0; i < len(body); i++ {
		if !b64tokenChars[body[i]] {
			return Fail(Malformed, "token has a character outside RFC 6750's b64token")
		}
	}
	return nil
}
