package config

import (
	"fmt"
	"net/url"
)

// relayProblems checks JWKS_RELAY_URL: an absolute http(s) URL without
// credentials, query or fragment (the sidecar appends the path and query).
func (c *Config) relayProblems() []error {
	if c.JWKSRelayURL == "" {
		return nil
	}
	u, err := url.Parse(c.JWKSRelayURL)
	if err != nil || !AbsoluteHTTP(c.JWKSRelayURL) || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return []error{fmt.Errorf("JWKS_RELAY_URL: %q: want an absolute http(s) URL without credentials, query or fragment, e.g. http://jwt-key-relay.jwt-sidecar:8080", c.JWKSRelayURL)}
	}
	return nil
}
