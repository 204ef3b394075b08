package config

import (
	"errors"
	"net"
	"net/url"
)

// keySourceAccessProblems checks JWKS_CA_FILE and JWKS_BEARER_TOKEN_FILE:
// they need a remote key source, and the token goes only over https (or
// to loopback). CONFIG_FILE providers have ca_file and bearer_token_file
// instead, checked by the policy decoder with the same rule (TokenSafe).
func (c *Config) keySourceAccessProblems() []error {
	var errs []error
	remote := len(c.JWKSURLs) > 0 || c.OIDCIssuerURL != ""
	if c.ConfigFile == "" && c.AuthMode == "jwt" {
		for name, file := range map[string]string{"JWKS_CA_FILE": c.JWKSCAFile, "JWKS_BEARER_TOKEN_FILE": c.JWKSBearerTokenFile} {
			if file != "" && !remote {
				errs = append(errs, errors.New(name+": applies only to JWKS_URLS and OIDC_ISSUER_URL, which are fetched over the network"))
			}
		}
	}
	if c.JWKSBearerTokenFile != "" {
		urls := append([]string{c.OIDCIssuerURL}, c.JWKSURLs...)
		for _, u := range urls {
			if u != "" && AbsoluteHTTP(u) && !TokenSafe(u) {
				errs = append(errs, errors.New("JWKS_BEARER_TOKEN_FILE: the token would cross the network in plain text to "+u+"; use https (plain http only to loopback)"))
			}
		}
	}
	return errs
}

// TokenSafe reports whether a credential may be sent to raw: over https,
// or over plain http only to a loopback address.
func TokenSafe(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}
