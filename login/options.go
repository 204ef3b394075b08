package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Defaults of Options.
const (
	DefaultScopes       = "openid profile email"
	DefaultCallbackPath = "/oauth2/callback"
	DefaultSignOutPath  = "/oauth2/sign_out"
	DefaultCookieName   = "_jwt_sidecar"
	DefaultMaxAge       = 12 * time.Hour
	DefaultRefreshAhead = time.Minute
	DefaultFlowTTL      = 10 * time.Minute
)

// MaxCookieBytes is the largest session cookie (name, "=" and value) this
// package sets. RFC 6265 §6.1 asks browsers for at least 4096 bytes per
// cookie, name, value and attributes together; the attributes take the
// rest.
const MaxCookieBytes = 3800

// Options configure browser login for one OpenID provider.
type Options struct {
	// Issuer is the provider's issuer URL. Its discovery document
	// (Issuer + /.well-known/openid-configuration) names the endpoints, and
	// the issuer it states must equal this exactly.
	Issuer string
	// ClientID is the client registered at the provider.
	ClientID string
	// ClientSecretFile holds the client secret (surrounding white space
	// trimmed); it is sent with client_secret_basic.
	ClientSecretFile string
	// CookieKeyFile holds the cookie keys, one per line, each at least
	// MinKeyBytes: the first seals, all open.
	CookieKeyFile string
	// Scopes requested; default DefaultScopes. openid is added if missing.
	Scopes []string
	// CallbackPath is the redirect URI's path; default DefaultCallbackPath.
	CallbackPath string
	// SignOutPath clears the session; default DefaultSignOutPath.
	SignOutPath string
	// CookieName names the session cookie; default DefaultCookieName. A
	// __Host- name needs Secure cookies and no CookieDomain.
	CookieName string
	// CookieDomain is the session cookie's Domain; empty: this host only.
	CookieDomain string
	// Refresh keeps the provider's refresh token (sealed) and uses it to
	// renew a session before it ends, without a redirect.
	Refresh bool
	// RefreshAhead is how long before its end a session is renewed;
	// default DefaultRefreshAhead.
	RefreshAhead time.Duration
	// MaxAge bounds a session from the login on, refreshes included;
	// default DefaultMaxAge.
	MaxAge time.Duration
	// AllowedRedirectHosts are the hosts, besides the request's own, that
	// a return URL may name: "app.example.com" exactly, or ".example.com"
	// for any subdomain.
	AllowedRedirectHosts []string
	// PlainHTTP says the listener is plain HTTP on a loopback address:
	// cookies then lack Secure and the redirect URI is http. New refuses
	// it unless LoopbackListener is true.
	PlainHTTP bool
	// LoopbackListener says the listener's address is loopback (main knows
	// it; this package does not see the listener).
	LoopbackListener bool
	// KeepClaims are the claim paths (Claims.Lookup syntax) the session
	// keeps: those of the claim headers and of the rules. iss, sub and
	// exp are always kept.
	KeepClaims []string
	// KeepIDToken keeps the raw ID token in the session, for id_token_hint
	// at sign-out. It costs about its own length in cookie bytes.
	KeepIDToken bool
	// VerifyIDToken verifies an ID token: signature, keys, exp and the
	// other checks of the bearer path. The login adds the OpenID Connect
	// ones: issuer, audience, azp and nonce.
	VerifyIDToken func(ctx context.Context, raw string) (verifier.Claims, error)

	HTTPClient *http.Client     // default: 10 s timeout
	Recorder   Recorder         // default: records nothing
	Log        *slog.Logger     // default: discards
	Now        func() time.Time // default time.Now
}

// withDefaults fills in the defaults and checks what needs no file.
func (o Options) withDefaults() (Options, error) {
	if len(o.Scopes) == 0 {
		o.Scopes = strings.Fields(DefaultScopes)
	}
	if !slices.Contains(o.Scopes, "openid") {
		o.Scopes = append([]string{"openid"}, o.Scopes...)
	}
	if o.CallbackPath == "" {
		o.CallbackPath = DefaultCallbackPath
	}
	if o.SignOutPath == "" {
		o.SignOutPath = DefaultSignOutPath
	}
	if o.CookieName == "" {
		o.CookieName = DefaultCookieName
	}
	if o.RefreshAhead <= 0 {
		o.RefreshAhead = DefaultRefreshAhead
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Recorder == nil {
		o.Recorder = nopRecorder{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var errs []error
	if o.Issuer == "" {
		errs = append(errs, errors.New("issuer: login needs the provider's issuer URL (OIDC discovery)"))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("client id: must not be empty"))
	}
	if o.VerifyIDToken == nil {
		errs = append(errs, errors.New("no ID token verifier"))
	}
	for _, p := range []struct{ name, path string }{{"callback path", o.CallbackPath}, {"sign-out path", o.SignOutPath}} {
		if !strings.HasPrefix(p.path, "/") || strings.ContainsAny(p.path, "?#") {
			errs = append(errs, fmt.Errorf("%s: %q is not an absolute path", p.name, p.path))
		}
	}
	if o.CallbackPath == o.SignOutPath {
		errs = append(errs, errors.New("callback path and sign-out path must differ"))
	}
	if !validCookieName(o.CookieName) {
		errs = append(errs, fmt.Errorf("cookie name: %q is not a cookie name", o.CookieName))
	}
	if o.PlainHTTP && !o.LoopbackListener {
		errs = append(errs, errors.New("plain HTTP: cookies without Secure are allowed only on a loopback listener"))
	}
	if strings.HasPrefix(o.CookieName, "__Host-") && (o.PlainHTTP || o.CookieDomain != "") {
		errs = append(errs, errors.New("cookie name: a __Host- cookie needs Secure and no domain"))
	}
	if strings.HasPrefix(o.CookieName, "__Secure-") && o.PlainHTTP {
		errs = append(errs, errors.New("cookie name: a __Secure- cookie needs Secure"))
	}
	for _, h := range o.AllowedRedirectHosts {
		if h == "" || h == "." || strings.ContainsAny(h, "/\\@:?#* ") {
			errs = append(errs, fmt.Errorf("allowed redirect hosts: %q is not a host name or .domain", h))
		}
	}
	return o, errors.Join(errs...)
}

// validCookieName reports whether name is an RFC 6265 §4.1.1 cookie-name
// (an RFC 9110 token) short enough to leave room for the value.
func validCookieName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range []byte(name) {
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// readSecret reads a one-line secret file.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("the file is empty")
	}
	return s, nil
}
