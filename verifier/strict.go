package verifier

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// maxSegment is the largest header or payload checked without a heap
// buffer; a larger one (up to MaxTokenSize) costs one allocation.
const maxSegment = 2048

// checkSegments refuses a compact JWS whose header or payload is not
// exactly one JSON object in valid UTF-8 (RFC 7519 §7.2 steps 3 and 10,
// RFC 7515 §5.2): golang-jwt decodes the payload with a json.Decoder, which
// ignores bytes after the first value, and encoding/json replaces invalid
// UTF-8 silently. It runs before the signature, so the answer does not
// depend on it. It does not allocate for segments up to maxSegment bytes.
func checkSegments(token string) *Error {
	rest := token
	for _, name := range [...]string{"header", "payload"} {
		seg, after, ok := strings.Cut(rest, ".")
		if !ok {
			return nil // golang-jwt refuses the segment count
		}
		rest = after
		var stack [maxSegment]byte
		buf := stack[:]
		if n := base64.RawURLEncoding.DecodedLen(len(seg)); n > len(buf) {
			buf = make([]byte, n)
		}
		n, ok := decodeSegment(buf, seg)
		if !ok {
			return nil // golang-jwt refuses it, naming the segment
		}
		if why := oneObject(buf[:n]); why != "" {
			return Fail(Malformed, "the %s is %s", name, why)
		}
	}
	return nil
}

// decodeSegment decodes base64url seg into dst, which is large enough,
// through a stack buffer: a []byte(seg) conversion would allocate.
func decodeSegment(dst []byte, seg string) (int, bool) {
	var src [512]byte // a multiple of 4: each chunk decodes on its own
	n := 0
	for len(seg) > 0 {
		c := copy(src[:], seg)
		seg = seg[c:]
		m, err := base64.RawURLEncoding.Decode(dst[n:], src[:c])
		if err != nil {
			return 0, false
		}
		n += m
	}
	return n, true
}

// oneObject says why b is not exactly one JSON object in valid UTF-8.
func oneObject(b []byte) string {
	if !utf8.Valid(b) {
		return "not valid UTF-8"
	}
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	if i == len(b) || b[i] != '{' {
		return "not a JSON object"
	}
	if !json.Valid(b) {
		return "not one JSON object (trailing bytes, a second value or bad syntax)"
	}
	return ""
}

// tokenRules are the per-provider checks of a token's shape, after its
// signature: typ, lifetime and cnf.
type tokenRules struct {
	typ              string // normalised (lower case, no "application/"); "" = unchecked
	maxLifetime      time.Duration
	senderConstraint bool // cnf allowed
}

// normaliseTyp folds a typ value as RFC 7515 §4.1.9 compares media types:
// case-insensitively, with "application/" optional.
func normaliseTyp(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.TrimPrefix(s, "application/")
}

// check applies the rules to a verified token's header and claims.
func (r *tokenRules) check(header map[string]any, mc jwt.MapClaims) *Error {
	if r.typ != "" {
		typ, _ := header["typ"].(string)
		if !typEqual(typ, r.typ) {
			if typ == "" {
				return Fail(BadType, "typ is missing; %q is required", r.typ)
			}
			return Fail(BadType, "typ %q is not the required %q", typ, r.typ)
		}
	}
	if r.maxLifetime > 0 {
		exp, iat := numericDate(mc["exp"]), numericDate(mc["iat"])
		switch {
		case exp.IsZero() || iat.IsZero():
			return Fail(ExcessiveLifetime, "exp and iat are both required with a maximum lifetime of %s", r.maxLifetime)
		case exp.Sub(iat) > r.maxLifetime:
			return Fail(ExcessiveLifetime, "lifetime %s (exp - iat) exceeds the maximum of %s", exp.Sub(iat), r.maxLifetime)
		}
	}
	return nil
}

// typEqual compares a token's typ with the normalised required one
// without allocating.
func typEqual(got, want string) bool {
	got = strings.TrimSpace(got)
	if len(got) > len("application/") && strings.EqualFold(got[:len("application/")], "application/") {
		got = got[len("application/"):]
	}
	return strings.EqualFold(got, want)
}
