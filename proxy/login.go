package proxy

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// session is browser login's part of authenticate, for a request that
// carries no token for its rule (refused as missing, or anonymous under
// allow-missing): a valid session of one of the rule's providers stands in
// for the token, and the rule's scopes and claims apply to it unchanged;
// without one, a browser navigation is sent to the provider to sign in.
// It reports whether it answered the request itself (the redirect).
func (p *Proxy) session(w http.ResponseWriter, r *http.Request, pol *policy.Policy, d *policy.Decision) bool {
	if d.Err != nil {
		// A token that is present always wins: only "no token at all"
		// looks at sessions.
		if e, ok := errors.AsType[*verifier.Error](d.Err); !ok || e.Reason != verifier.Missing {
			return false
		}
	}
	providers := pol.SessionProviders(d.Rule)
	if len(providers) == 0 {
		return false
	}
	for _, i := range providers {
		if c, ok := pol.Providers()[i].Login.Session(w, r); ok {
			pol.Admit(d.Rule, i, c, d)
			return false
		}
	}
	if d.Anonymous {
		return false // allow-missing lets it through without a session
	}
	for _, i := range providers {
		l := pol.Providers()[i].Login
		if !l.Wants(r) {
			continue
		}
		// Still a request refused for want of a token: one taxonomy.
		ref := p.refusalFor(verifier.Missing)
		p.rec.Request(string(ref.outcome), string(verifier.Missing))
		pol.Count(d.Rule, ref.outcome)
		p.log.LogAttrs(r.Context(), slog.LevelDebug, "browser sent to sign in",
			slog.String("provider", pol.Providers()[i].Name),
			slog.String("rule", d.Rule.Name),
			slog.String("path", r.URL.Path),
			slog.String("remote_addr", r.RemoteAddr),
		)
		l.Start(w, r)
		return true
	}
	return false
}

// stripSessions removes every login's session cookie from a request about
// to be forwarded, whatever authenticated it: the cookie is the sidecar's,
// it holds a sealed refresh token, and the upstream has the claims as
// headers.
func stripSessions(pol *policy.Policy, r *http.Request) {
	for i := range pol.Providers() {
		if l := pol.Providers()[i].Login; l != nil {
			removeCookie(r.Header, l.CookieName())
		}
	}
}
