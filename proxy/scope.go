package proxy

import (
	"net/http"
	"slices"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/dpop"
)

// scoped is ref, an insufficient_scope refusal, whose challenge names the
// scopes the request needed (RFC 6750 §3.1: "the scope necessary to access
// the protected resource"), so a client can ask its authorization server
// for them. A request that presented a DPoP token (RFC 9449 §7.1) gets the
// DPoP challenge, with the same attributes. It is built per refusal: the
// scopes depend on the provider and the rule.
func (p *Proxy) scoped(ref *refusal, r *http.Request, scope string) *refusal {
	v := scopeAttr(scope)
	if v == "" {
		return ref
	}
	out := *ref
	if len(p.dpopAlgs) > 0 && presentedDPoP(r) {
		out.challenge = []string{dpop.Challenge(realm, p.dpopAlgs, "") +
			`, error="` + ref.code + `", error_description="` + ref.desc + `", scope="` + v + `"`}
		return &out
	}
	out.challenge = []string{`Bearer realm="` + realm + `", error="` + ref.code + `", error_description="` + ref.desc + `", scope="` + v + `"`}
	return &out
}

// presentedDPoP reports whether the request's Authorization header uses
// the DPoP scheme (compared case-insensitively, RFC 9110 §11.1).
func presentedDPoP(r *http.Request) bool {
	for _, v := range r.Header["Authorization"] {
		if len(v) > 5 && strings.EqualFold(v[:5], "dpop ") {
			return true
		}
	}
	return false
}

// scopeAttr is the scope attribute's value: the space-separated scopes
// that RFC 6750 §3 lets a challenge carry (scope-token = 1*(%x21 / %x23-5B
// / %x5D-7E)), each once. A scope outside that grammar (a quote, a
// backslash, a control byte, non-ASCII) cannot be named without breaking
// the header, and no conforming token carries it: it is left out.
func scopeAttr(scope string) string {
	var kept []string
	for _, s := range strings.Fields(scope) {
		if scopeToken(s) && !slices.Contains(kept, s) {
			kept = append(kept, s)
		}
	}
	return strings.Join(kept, " ")
}

func scopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}
