package policy

import (
	"net/http"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Login is browser login for one provider (*login.Login satisfies it): a
// session cookie stands in for the provider's token when a request carries
// none. The proxy uses it; the policy only carries it, so a reload swaps
// logins together with the providers they belong to.
type Login interface {
	// Owns reports whether r is for the login's own paths (callback,
	// sign-out), which Handler serves before any authentication.
	Owns(r *http.Request) bool
	Handler() http.Handler
	// Session returns the claims of r's session; it may renew the session
	// and set its cookie on w.
	Session(w http.ResponseWriter, r *http.Request) (verifier.Claims, bool)
	// Wants reports whether r, which has neither token nor session, is a
	// browser navigation to send to the provider (Start) instead of a 401.
	Wants(r *http.Request) bool
	Start(w http.ResponseWriter, r *http.Request)
	// CookieName is the session cookie, never forwarded upstream.
	CookieName() string
}

// LoginSpec is one provider's browser login as declared: the LOGIN_*
// variables, or a CONFIG_FILE provider's login settings. The issuer is the
// provider's OIDCIssuerURL: login needs OIDC discovery.
type LoginSpec struct {
	ClientID             string
	ClientSecretFile     string
	CookieKeyFile        string
	Scopes               []string
	CallbackPath         string
	SignOutPath          string
	CookieName           string
	CookieDomain         string
	Refresh              bool
	RefreshAhead         time.Duration
	MaxAge               time.Duration
	AllowedRedirectHosts []string
	KeepIDToken          bool
	PlainHTTP            bool
}

// Logins reports whether a provider of the policy has browser login.
// It is decided when the policy is built, not per request.
func (p *Policy) Logins() bool { return p.logins }

// Owner returns the login whose own paths r is for, or nil.
func (p *Policy) Owner(r *http.Request) Login {
	for i := range p.providers {
		if l := p.providers[i].Login; l != nil && l.Owns(r) {
			return l
		}
	}
	return nil
}

// SessionProviders are the providers of rule, in its order, whose session
// may stand in for a missing token: those with a login, in an any-of or
// allow-missing rule. An all-of needs each provider's own token.
func (p *Policy) SessionProviders(rule *Rule) []int {
	switch rule.Require.Kind {
	case RequireAnyOf, RequireAllowMissing:
	default:
		return nil
	}
	var out []int
	for _, i := range rule.providers {
		if p.providers[i].Login != nil {
			out = append(out, i)
		}
	}
	return out
}

// Admit decides rule for the claims of provider's session, as Check does
// for a verified token: the rule's scopes and claim requirements apply
// unchanged. d is reset first.
func (p *Policy) Admit(rule *Rule, provider int, c verifier.Claims, d *Decision) {
	*d = Decision{Rule: rule}
	if err := p.meets(rule, provider, &c); err != nil {
		d.Err = err
		return
	}
	d.First = Verified{Provider: provider, Claims: c}
}
