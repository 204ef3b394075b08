package policy

import (
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"go.yaml.in/yaml/v3"
)

// Browser login defaults of a CONFIG_FILE provider: those of the LOGIN_*
// variables.
const (
	defaultLoginScopes   = "openid profile email"
	defaultCallbackPath  = "/oauth2/callback"
	defaultSignOutPath   = "/oauth2/sign_out"
	defaultCookieName    = "_jwt_sidecar"
	defaultRefreshAhead  = time.Minute
	defaultLoginMaxAge   = 12 * time.Hour
	minLoginMaxAge       = time.Minute
	loginNeedsDiscovery  = "browser login needs oidc_issuer_url: the provider's endpoints come from OIDC discovery"
	loginPathRequirement = "want a clean absolute path such as /oauth2/callback"
)

// login reads a provider's login settings: the LOGIN_* variables, per
// provider. Files (secret, cookie keys) are read when the policy is built.
func (d *decoder) login(n *yaml.Node, path string, p *ProviderSpec) *LoginSpec {
	o := d.object(n, path, "login")
	if o == nil {
		return nil
	}
	defer o.done()
	ls := &LoginSpec{
		Scopes:       strings.Fields(defaultLoginScopes),
		CallbackPath: defaultCallbackPath,
		SignOutPath:  defaultSignOutPath,
		CookieName:   defaultCookieName,
		Refresh:      true,
		RefreshAhead: defaultRefreshAhead,
		MaxAge:       defaultLoginMaxAge,
	}
	field := func(name string) (*yaml.Node, string) { return o.get(name), path + "." + name }
	str := func(name string, dst *string, required bool) {
		n, fp := field(name)
		if n == nil {
			if required {
				d.errorf(o.node, fp, "required")
			}
			return
		}
		if s, ok := d.str(n, fp); ok {
			*dst = s
		}
	}
	str("client_id", &ls.ClientID, true)
	str("client_secret_file", &ls.ClientSecretFile, true)
	str("cookie_key_file", &ls.CookieKeyFile, true)
	str("cookie_name", &ls.CookieName, false)
	str("cookie_domain", &ls.CookieDomain, false)
	for _, f := range []struct {
		name string
		dst  *string
	}{{"callback_path", &ls.CallbackPath}, {"sign_out_path", &ls.SignOutPath}} {
		str(f.name, f.dst, false)
		if p := *f.dst; !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# ") || strings.Contains(p, "//") {
			d.errorf(o.node, path+"."+f.name, "%q: %s", p, loginPathRequirement)
		}
	}
	if ls.CallbackPath == ls.SignOutPath {
		d.errorf(o.node, path+".sign_out_path", "must differ from callback_path")
	}
	if n, fp := field("scopes"); n != nil {
		ls.Scopes = d.strings(n, fp)
	}
	if n, fp := field("allowed_redirect_hosts"); n != nil {
		ls.AllowedRedirectHosts = d.strings(n, fp)
	}
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"refresh", &ls.Refresh}, {"keep_id_token", &ls.KeepIDToken}, {"plain_http", &ls.PlainHTTP}} {
		if n, fp := field(f.name); n != nil {
			*f.dst = d.boolean(n, fp)
		}
	}
	if n, fp := field("refresh_ahead"); n != nil {
		if ls.RefreshAhead = d.duration(n, fp); ls.RefreshAhead <= 0 {
			d.errorf(n, fp, "must be positive")
		}
	}
	if n, fp := field("max_age"); n != nil {
		if ls.MaxAge = d.duration(n, fp); ls.MaxAge < minLoginMaxAge {
			d.errorf(n, fp, "must be at least 1m")
		}
	}
	if p.OIDCIssuerURL == "" {
		d.errorf(o.node, path, "%s", loginNeedsDiscovery)
	}
	for _, l := range p.TokenLookup {
		if l.Name == ls.CookieName && l.Kind == config.InCookie {
			d.errorf(o.node, path+".cookie_name", "%s is also a token_lookup cookie", ls.CookieName)
		}
	}
	return ls
}
