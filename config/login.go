package config

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// MinCookieKeyBytes is the least length of one LOGIN_COOKIE_KEY_FILE line.
const MinCookieKeyBytes = 32

// LoginEnabled reports whether the environment turns browser login on.
func (c *Config) LoginEnabled() bool { return c.LoginClientID != "" }

// loginProblems is browser login's part of Validate: what LOGIN_* needs,
// checked without reading the files (the login reads them at start).
func (c *Config) loginProblems() []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if !c.LoginEnabled() {
		for name, set := range map[string]bool{
			"LOGIN_CLIENT_SECRET_FILE": c.LoginClientSecretFile != "",
			"LOGIN_COOKIE_KEY_FILE":    c.LoginCookieKeyFile != "",
			"LOGIN_COOKIE_DOMAIN":      c.LoginCookieDomain != "",
			"LOGIN_PLAIN_HTTP":         c.LoginPlainHTTP,
			"LOGIN_KEEP_ID_TOKEN":      c.LoginKeepIDToken,
		} {
			if set {
				bad(name, "set without LOGIN_CLIENT_ID, which turns browser login on")
			}
		}
		return errs
	}
	switch {
	case c.ConfigFile != "":
		bad("LOGIN_CLIENT_ID", "not read with CONFIG_FILE: a file's providers each carry their own login settings")
	case c.AuthMode != "jwt":
		bad("LOGIN_CLIENT_ID", "browser login needs AUTH_MODE=jwt: the ID token is verified with the provider's keys")
	case c.OIDCIssuerURL == "":
		bad("LOGIN_CLIENT_ID", "browser login needs OIDC_ISSUER_URL: the provider's endpoints come from OIDC discovery")
	}
	if c.LoginClientSecretFile == "" {
		bad("LOGIN_CLIENT_SECRET_FILE", "required with LOGIN_CLIENT_ID")
	}
	if c.LoginCookieKeyFile == "" {
		bad("LOGIN_COOKIE_KEY_FILE", "required with LOGIN_CLIENT_ID: one or more keys of at least %d bytes, one per line", MinCookieKeyBytes)
	}
	for name, p := range map[string]string{"LOGIN_CALLBACK_PATH": c.LoginCallbackPath, "LOGIN_SIGN_OUT_PATH": c.LoginSignOutPath} {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# ") || CleanPath(p) != p {
			bad(name, "%q is not a clean absolute path", p)
		}
	}
	if c.LoginCallbackPath == c.LoginSignOutPath {
		bad("LOGIN_SIGN_OUT_PATH", "must differ from LOGIN_CALLBACK_PATH")
	}
	if c.LoginRefreshAhead <= 0 {
		bad("LOGIN_REFRESH_AHEAD", "must be positive")
	}
	if c.LoginMaxAge < time.Minute {
		bad("LOGIN_MAX_AGE", "must be at least 1m")
	}
	for _, lk := range c.TokenLookup {
		if lk.Kind == InCookie && lk.Name == c.LoginCookieName {
			bad("LOGIN_COOKIE_NAME", "%s is also a TOKEN_LOOKUP cookie", lk.Name)
		}
	}
	if c.LoginPlainHTTP && !LoopbackAddr(c.ListenAddr) {
		bad("LOGIN_PLAIN_HTTP", "LISTEN_ADDR %s is not a loopback address: cookies without Secure are allowed only where nothing crosses a network", c.ListenAddr)
	}
	return errs
}

// LoopbackAddr reports whether the listen address addr (host:port) binds
// only loopback: 127.0.0.0/8, ::1 or localhost. ":7070" binds every
// interface and is not.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
