package proxy

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// MaxHeaderValue bounds one rendered claim header. A longer value is not
// sent at all (and the drop is logged): a truncated list of roles could
// grant or deny more than the token says.
const MaxHeaderValue = 8 << 10

// setHeaders puts the claim headers and the payload header of a verified token on
// h. One allocation holds every value slice.
func setHeaders(ctx context.Context, log *slog.Logger, h http.Header, fw *policy.Forwarding, c *verifier.Claims) {
	n := len(fw.ClaimHeaders)
	if fw.PayloadHeader != "" {
		n++
	}
	if n == 0 {
		return
	}
	vals := make([]string, n)
	i := 0
	for _, ch := range fw.ClaimHeaders {
		v, ok := c.Lookup(ch.Claim)
		if !ok {
			continue
		}
		s, ok := HeaderValue(v)
		if !ok {
			if v != nil {
				log.LogAttrs(ctx, slog.LevelWarn, "claim header dropped: value too long",
					slog.String("claim", ch.Claim), slog.String("header", ch.Header),
					slog.Int("limit", MaxHeaderValue), slog.String("sub", c.Subject))
			}
			continue
		}
		vals[i] = s
		h[ch.Header] = vals[i : i+1 : i+1]
		i++
	}
	if fw.PayloadHeader != "" && c.Payload != "" {
		vals[i] = sanitize(c.Payload)
		h[fw.PayloadHeader] = vals[i : i+1 : i+1]
	}
}

// HeaderValue renders a claim value as a header value:
//   - a string as is;
//   - a number as plain decimal, exactly as the issuer wrote it but without
//     an exponent or trailing fractional zeros (1e21 is
//     1000000000000000000000, 1.50 is 1.5);
//   - a bool as true or false;
//   - an array as its elements joined with commas, each rendered by these
//     rules, except that nested arrays and objects are compact JSON and null
//     elements are left out;
//   - an object as compact JSON with sorted keys.
//
// Control characters (CR, LF, TAB, every byte below 0x20, and DEL) are
// replaced with a space, so a value can never split or smuggle a header.
// ok is false for null and for a value longer than MaxHeaderValue: the
// header is then not set.
func HeaderValue(v any) (s string, ok bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		s = sanitize(v)
	case json.Number:
		s, ok = plainNumber(string(v))
		if !ok {
			return "", false
		}
	case bool:
		s = strconv.FormatBool(v)
	case []any:
		if one, ok := singleString(v); ok {
			s = sanitize(one) // ["admin"]: no copy
			break
		}
		var buf [512]byte
		s = string(sanitizeBytes(appendList(buf[:0], v)))
	default:
		var buf [512]byte
		s = string(sanitizeBytes(appendJSON(buf[:0], v)))
	}
	if len(s) > MaxHeaderValue {
		return "", false
	}
	return s, true
}

// appendList joins the elements of an array with commas.
func appendList(b []byte, list []any) []byte {
	first := true
	for _, e := range list {
		if e == nil {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		switch e := e.(type) {
		case string:
			b = append(b, e...)
		case json.Number:
			if s, ok := plainNumber(string(e)); ok {
				b = append(b, s...)
			} else {
				b = appendJSON(b, e)
			}
		case bool:
			b = strconv.AppendBool(b, e)
		default:
			b = appendJSON(b, e)
		}
		if len(b) > MaxHeaderValue {
			return b // too long already: the caller drops it
		}
	}
	return b
}

// appendJSON writes v as compact JSON. The types are those encoding/json
// decodes into an any (with UseNumber); anything else goes through
// json.Marshal, off the hot path.
func appendJSON(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, v)
	case json.Number:
		if validNumber(string(v)) {
			return append(b, v...)
		}
		return appendJSONString(b, string(v))
	case bool:
		return strconv.AppendBool(b, v)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
			if len(b) > MaxHeaderValue {
				return b
			}
		}
		return append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSON(b, v[k])
			if len(b) > MaxHeaderValue {
				return b
			}
		}
		return append(b, '}')
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, raw...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string. Control characters and DEL are
// escaped, so the result is also safe in a header.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// sanitize replaces control characters with spaces. It does not allocate
// when there are none, which is the common case.
func sanitize(s string) string {
	i := 0
	for i < len(s) && !ctl(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if ctl(b[i]) {
			b[i] = ' '
		}
	}
	return string(b)
}

// sanitizeBytes is sanitize in place.
func sanitizeBytes(b []byte) []byte {
	for i, c := range b {
		if ctl(c) {
			b[i] = ' '
		}
	}
	return b
}

func singleString(list []any) (string, bool) {
	if len(list) != 1 {
		return "", false
	}
	s, ok := list[0].(string)
	return s, ok
}

func ctl(c byte) bool { return c < 0x20 || c == 0x7f }

// number is a JSON number split into its parts (RFC 8259 §6).
type number struct {
	neg       bool
	intPart   string
	fracPart  string
	exp       int
	hasFrac   bool
	hasExp    bool
	expTooBig bool
}

// parseNumber splits s by the JSON number grammar.
func parseNumber(s string) (number, bool) {
	var n number
	i := 0
	if i < len(s) && s[i] == '-' {
		n.neg = true
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	n.intPart = s[start:i]
	if n.intPart == "" || (len(n.intPart) > 1 && n.intPart[0] == '0') {
		return n, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		n.fracPart, n.hasFrac = s[start:i], true
		if n.fracPart == "" {
			return n, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		n.hasExp = true
		neg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			neg = s[i] == '-'
			i++
		}
		start = i
		for i < len(s) && isDigit(s[i]) {
			if n.exp < 1<<20 {
				n.exp = n.exp*10 + int(s[i]-'0')
			} else {
				n.expTooBig = true
			}
			i++
		}
		if i == start {
			return n, false
		}
		if neg {
			n.exp = -n.exp
		}
	}
	return n, i == len(s)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func validNumber(s string) bool {
	_, ok := parseNumber(s)
	return ok
}

// plainNumber rewrites a JSON number as plain decimal: no exponent, no
// trailing fractional zeros, exact (decimal digits are moved, never rounded
// through a float64). A number that is not valid JSON is sanitized and
// returned as it is; ok is false when the plain form would exceed
// MaxHeaderValue (e.g. 1e999999).
func plainNumber(s string) (string, bool) {
	n, valid := parseNumber(s)
	if !valid {
		return sanitize(s), len(s) <= MaxHeaderValue
	}
	if !n.hasExp && (!n.hasFrac || n.fracPart[len(n.fracPart)-1] != '0') {
		return s, true // already plain and minimal: the common case
	}
	if n.expTooBig {
		return "", false
	}
	// The value is 0.digits × 10^point.
	digits := n.intPart + n.fracPart
	point := len(n.intPart) + n.exp
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
		point--
	}
	digits = strings.TrimRight(digits, "0")
	if digits == "" {
		return "0", true
	}
	size := len(digits) + 2 // sign and point
	switch {
	case point <= 0:
		size += 1 - point
	case point > len(digits):
		size += point - len(digits)
	}
	if size > MaxHeaderValue+2 {
		return "", false
	}
	var b strings.Builder
	b.Grow(size)
	if n.neg {
		b.WriteByte('-')
	}
	switch {
	case point <= 0:
		b.WriteString("0.")
		for range -point {
			b.WriteByte('0')
		}
		b.WriteString(digits)
	case point >= len(digits):
		b.WriteString(digits)
		for range point - len(digits) {
			b.WriteByte('0')
		}
	default:
		b.WriteString(digits[:point])
		b.WriteByte('.')
		b.WriteString(digits[point:])
	}
	return b.String(), true
}
