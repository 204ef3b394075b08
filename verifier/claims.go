package verifier

import (
	"encoding/hex"
	"maps"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/dpop"
)

// Claims is what a verified token says. It is immutable once Verify returns
// it, so the token cache can hand the same value to many requests at once.
type Claims struct {
	// Payload is the token's payload segment exactly as it arrived:
	// base64url without padding, ready for PAYLOAD_HEADER.
	Payload string
	// From says where the token was found, so the proxy can remove it.
	From config.Lookup
	// Issuer, Subject and KeyID are copied out for logs.
	Issuer  string
	Subject string
	KeyID   string
	// Expiry is the token's exp (zero when exp is absent and not required).
	Expiry time.Time
	// NotBefore is the token's nbf (zero when absent).
	NotBefore time.Time
	// IssuedAt is the token's iat (zero when absent).
	IssuedAt time.Time
	// JTI is the token's jti (empty when absent), for the revocation list.
	JTI string
	// CacheHit is true when the verdict came from the token cache (no
	// signature check or introspection call was needed): for traces.
	CacheHit bool

	// hash is the start of the token's SHA-256, which log lines show
	// (TokenHash): a refusal decided after verification (a rule's scopes
	// or claims) names the token like every other.
	hash [6]byte

	// cnf is the token's sender constraint (RFC 7800), read once when the
	// token is verified; zero for a bearer token.
	cnf dpop.Confirmation

	// values is the decoded payload. Numbers are json.Number, so that they
	// render exactly as the issuer wrote them.
	values map[string]any
}

// NewClaims wraps an already verified payload. Introspection mode and tests use
// it; Verify builds Claims itself.
func NewClaims(values map[string]any) Claims {
	return Claims{values: values}
}

// Lookup finds a claim by a dotted path such as "realm_access.roles". A claim
// whose own name contains dots (e.g. "https://example.com/roles") is found
// too: at each level the longest name that matches a prefix of the rest of
// the path wins, without backtracking, so a lookup costs at most one map
// access per dot and level, whatever the token holds.
func (c Claims) Lookup(path string) (any, bool) {
	return lookup(c.values, path)
}

func lookup(m map[string]any, path string) (any, bool) {
	for {
		if v, ok := m[path]; ok {
			return v, true
		}
		next, rest, found := map[string]any(nil), "", false
		for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
			if v, ok := m[path[:i]]; ok {
				next, _ = v.(map[string]any)
				rest, found = path[i+1:], true
				break
			}
		}
		if !found || next == nil {
			return nil, false
		}
		m, path = next, rest
	}
}

// HasScope reports whether the token grants scope want (scope or scp).
func (c *Claims) HasScope(want string) bool { return HasScope(c.values, want) }

// Values is a copy of the top level of the decoded payload, for a caller
// that needs every claim (back-channel logout). Nested values are shared:
// do not modify them.
func (c Claims) Values() map[string]any {
	return maps.Clone(c.values)
}

// TokenHash is the short hash of the token that log lines show (the one
// Error.TokenHash carries); empty when the claims came from no token.
func (c *Claims) TokenHash() string {
	if c.hash == ([6]byte{}) {
		return ""
	}
	return hex.EncodeToString(c.hash[:])
}
