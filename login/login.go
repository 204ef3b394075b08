// Package login signs browsers in with an OpenID provider (the
// authorization code flow with PKCE, RFC 6749 §4.1 and RFC 7636) and keeps
// the result in one sealed cookie, so that a web application behind the
// sidecar gets the same verified claim headers as a bearer-token client.
//
// The session is stateless: AES-256-GCM seals the kept claims, their
// expiry and, when asked, the refresh token into one cookie; the sidecar
// stores nothing. The proxy uses four things:
//
//	l.Handler()      serves the callback and sign-out paths (l.Owns(r))
//	l.Session(w, r)  the claims of a valid session, renewed when due
//	l.Wants(r)       whether a request without a token is a browser navigation
//	l.Start(w, r)    redirects that navigation to the provider
package login

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
)

// Login is browser login for one provider. It is safe for concurrent use.
type Login struct {
	opts     Options
	secret   string
	seal     *sealer
	discover *discoverer
	// refreshes joins concurrent refreshes of one session (a page and its
	// assets), so the provider sees one refresh-token grant, not one per
	// request: with rotating refresh tokens the second would fail.
	refreshes singleflight.Group
	renewed   *renewals
}

// New checks the options and reads the client secret and cookie key files.
// Discovery happens on first use (or by Discover), so a provider that is
// down at start-up delays logins instead of the sidecar.
func New(o Options) (*Login, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	secret, err := readSecret(o.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("client secret file: %w", err)
	}
	seal, err := readKeys(o.CookieKeyFile)
	if err != nil {
		return nil, fmt.Errorf("cookie key file: %w", err)
	}
	return &Login{
		opts:     o,
		secret:   secret,
		seal:     seal,
		discover: &discoverer{issuer: o.Issuer, client: o.HTTPClient, now: o.Now},
		renewed:  newRenewals(),
	}, nil
}

// Discover fetches the provider's discovery document now, so that main can
// report a wrong issuer at start-up. Logins fetch it themselves otherwise.
func (l *Login) Discover(ctx context.Context) error {
	_, err := l.discover.get(ctx)
	return err
}

// Owns reports whether r is for the callback or the sign-out path: the
// proxy hands those to Handler, before any authentication.
func (l *Login) Owns(r *http.Request) bool {
	return r.URL.Path == l.opts.CallbackPath || r.URL.Path == l.opts.SignOutPath
}

// Handler serves the callback and sign-out paths; any other path is 404.
func (l *Login) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Nothing these paths answer may be stored by a cache (RFC 9111
		// §5.2.2.5): each answer sets or clears a cookie.
		w.Header().Set("Cache-Control", "no-store")
		switch r.URL.Path {
		case l.opts.CallbackPath:
			if r.Method != http.MethodGet {
				w.Header().Set("Allow", "GET")
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			l.callback(w, r)
		case l.opts.SignOutPath:
			if r.Method != http.MethodGet && r.Method != http.MethodPost {
				w.Header().Set("Allow", "GET, POST")
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			l.signOut(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// CookieName is the session cookie's name: the proxy removes it before
// forwarding (Claims.From names it too).
func (l *Login) CookieName() string { return l.opts.CookieName }

// base is the scheme and host the browser used: https unless the listener
// is plain HTTP on loopback (a TLS terminator in front of the sidecar
// serves https while the sidecar itself sees plain HTTP).
func (l *Login) base(r *http.Request) string {
	scheme := "https"
	if l.opts.PlainHTTP {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

// setCookie sets a cookie with the attributes every cookie of this package
// has: HttpOnly, SameSite=Lax, Secure unless plain HTTP on loopback.
func (l *Login) setCookie(w http.ResponseWriter, name, value, path, domain string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		Domain:   domain,
		HttpOnly: true,
		Secure:   !l.opts.PlainHTTP,
		// Lax: the cookie travels on top-level navigations from the
		// provider (the callback) and links from other sites, never on
		// cross-site subrequests or form POSTs.
		SameSite: http.SameSiteLaxMode,
	}
	switch {
	case maxAge > 0:
		c.MaxAge = int((maxAge + time.Second - 1) / time.Second)
		c.Expires = l.opts.Now().Add(maxAge)
	default:
		c.MaxAge = -1 // Max-Age=0 on the wire: delete now
	}
	http.SetCookie(w, c)
}

// clearSession deletes the session cookie.
func (l *Login) clearSession(w http.ResponseWriter) {
	l.setCookie(w, l.opts.CookieName, "", "/", l.opts.CookieDomain, 0)
}

// redirect answers 302 to target, the answer to a navigation that goes
// elsewhere, with a body for clients that do not follow it.
func redirect(w http.ResponseWriter, target string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", target)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusFound)
	fmt.Fprintf(w, "<a href=\"%s\">Continue</a>\n", htmlEscape(target))
}

// failPage answers a failed login: the status, a short page with a link
// to start again, and no detail of why (that is in the log and metrics).
func failPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>Sign-in failed</title><p>%s</p><p><a href=\"/\">Start again</a></p>\n", htmlEscape(msg))
}

var htmlReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")

func htmlEscape(s string) string { return htmlReplacer.Replace(s) }

// withQuery returns endpoint with the parameters q added to its own.
func withQuery(endpoint string, q url.Values) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint // discovery checked it; unreachable
	}
	merged := u.Query()
	for k, vs := range q {
		merged[k] = vs
	}
	u.RawQuery = merged.Encode()
	return u.String()
}
