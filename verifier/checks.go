package verifier

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
)

func classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Reason: e.Reason, Err: err}
	}
	for _, o := range order {
		if errors.Is(err, o.target) {
			return &Error{Reason: o.reason, Err: err}
		}
	}
	return &Error{Reason: Malformed, Err: err}
}

// afterSignature checks what the signature does not: audience and scopes. It runs
// only after the signature and the registered claims have passed.
func (v *claimChecks) afterSignature(mc jwt.MapClaims) *Error {
	if len(v.audiences) > 0 {
		if err := v.checkAudience(mc["aud"]); err != nil {
			return err
		}
	}
	for _, want := range v.scopes {
		if !HasScope(mc, want) {
			e := Fail(InsufficientScope, "scope %q is required", want)
			e.Scope = strings.Join(v.scopes, " ")
			return e
		}
	}
	return nil
}

// checkAudience passes when aud, a string or an array of strings, names one
// of the accepted audiences. It allocates nothing when it passes.
func (v *claimChecks) checkAudience(aud any) *Error {
	switch a := aud.(type) {
	case string:
		if slices.Contains(v.audiences, a) {
			return nil
		}
	case []any:
		for _, item := range a {
			if s, ok := item.(string); ok && slices.Contains(v.audiences, s) {
				return nil
			}
		}
	case nil:
		return Fail(BadAudience, "aud is missing")
	default:
		return Fail(BadAudience, "aud is neither a string nor an array")
	}
	return Fail(BadAudience, "aud %v names none of the accepted audiences", aud)
}

// HasScope reports whether the token grants want: `scope` is space-delimited
// (RFC 8693 §4.2); `scp` may be such a string or an array of strings.
func HasScope(values map[string]any, want string) bool {
	for _, name := range [...]string{"scope", "scp"} {
		switch s := values[name].(type) {
		case string:
			for f := range strings.FieldsSeq(s) {
				if f == want {
					return true
				}
			}
		case []any:
			for _, item := range s {
				if str, ok := item.(string); ok && str == want {
					return true
				}
			}
		}
	}
	return false
}

// verified is a token cache entry of jwt mode: the claims hold until exp
// (checked on every hit) or until a key is withdrawn (the epoch changes).
type verified struct {
	claims *Claims
	epoch  uint64
}

// checkTimes re-checks exp and nbf, with the skew, for claims already
// verified: Expired, NotYetValid, or "" when they hold now.
func (v *claimChecks) checkTimes(c *Claims, now time.Time) Reason {
	if !c.Expiry.IsZero() && !now.Before(c.Expiry.Add(v.skew)) {
		return Expired
	}
	if !c.NotBefore.IsZero() && now.Before(c.NotBefore.Add(-v.skew)) {
		return NotYetValid
	}
	return ""
}

// accepted records clock-skew telemetry for an accepted token.
func (v *claimChecks) accepted(c *Claims, now time.Time) {
	if !c.IssuedAt.IsZero() {
		v.rec.TokenAge(now.Sub(c.IssuedAt))
		if c.IssuedAt.After(now) {
			v.rec.SkewAccepted(ClaimIat)
		}
	}
	if !c.Expiry.IsZero() && !now.Before(c.Expiry) {
		v.rec.SkewAccepted(ClaimExp)
	}
	if !c.NotBefore.IsZero() && now.Before(c.NotBefore) {
		v.rec.SkewAccepted(ClaimNbf)
	}
}

// order classifies golang-jwt's errors. It joins claim errors, so the order
// matters and the first match wins.
var order = []struct {
	target error
	reason Reason
}{
	{jwt.ErrTokenMalformed, Malformed},
	{keys.ErrKeyNotFound, UnknownKey},
	{keys.ErrUnknownIssuer, BadIssuer},
	{keys.ErrKeyMismatch, BadAlgorithm},
	{jwt.ErrTokenSignatureInvalid, BadSignature},
	{jwt.ErrTokenExpired, Expired},
	{jwt.ErrTokenNotValidYet, NotYetValid},
	{jwt.ErrTokenUsedBeforeIssued, NotYetValid},
	{jwt.ErrTokenRequiredClaimMissing, Malformed},
	{jwt.ErrTokenInvalidClaims, Malformed},
	{jwt.ErrTokenUnverifiable, Malformed},
}
