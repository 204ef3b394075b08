package config

import (
	"slices"
	"strings"
)

// DPoPAlgorithmChoices are the DPoP proof algs the sidecar can check:
// asymmetric only (RFC 9449 §4.2: never none, never a MAC).
var DPoPAlgorithmChoices = []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"}

// checkRevocation is Validate's part for the revocation list and
// sender-constrained tokens.
func (c *Config) checkRevocation(bad func(name, format string, args ...any)) {
	if c.RevocationListURL != "" && !AbsoluteHTTP(c.RevocationListURL) {
		bad("REVOCATION_LIST_URL", "%q is not an absolute http(s) URL", c.RevocationListURL)
	}
	if (c.RevocationListURL != "" || c.RevocationFile != "") && c.AuthMode == "introspection" {
		bad("AUTH_MODE", "a revocation list is for jwt mode; the token service already answers for revocations in introspection mode")
	}
	if c.RevocationRefreshInterval <= 0 {
		bad("REVOCATION_REFRESH_INTERVAL", "must be positive")
	}
	if c.RevocationStaleAfter < c.RevocationRefreshInterval {
		bad("REVOCATION_STALE_AFTER", "must be at least REVOCATION_REFRESH_INTERVAL")
	}
	if c.RevocationMaxBytes < 1024 {
		bad("REVOCATION_MAX_BYTES", "must be at least 1024")
	}
	if p := c.BackchannelLogoutPath; p != "" {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#*") {
			bad("BACKCHANNEL_LOGOUT_PATH", "want an absolute path such as /backchannel-logout")
		}
		if c.AuthMode == "introspection" {
			bad("BACKCHANNEL_LOGOUT_PATH", "needs AUTH_MODE=jwt: logout tokens are verified with the keys")
		}
	}
	if c.BackchannelTokenLifetime <= 0 {
		bad("BACKCHANNEL_LOGOUT_TOKEN_LIFETIME", "must be positive")
	}
	for _, a := range c.DPoPAlgorithms {
		if !slices.Contains(DPoPAlgorithmChoices, strings.TrimSpace(a)) {
			bad("DPOP_ALGORITHMS", "%q is not one of %s", a, strings.Join(DPoPAlgorithmChoices, ", "))
		}
	}
	if c.DPoPProofMaxAge <= 0 {
		bad("DPOP_PROOF_MAX_AGE", "must be positive")
	}
	if c.DPoPReplayCacheSize < 1 {
		bad("DPOP_REPLAY_CACHE_SIZE", "must be at least 1")
	}
	if c.DPoPNonceSecretFile != "" && !c.DPoPNonce {
		bad("DPOP_NONCE_SECRET_FILE", "only used with DPOP_NONCE=true")
	}
	if u := c.DPoPExternalURL; u != nil && ((u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "") {
		bad("DPOP_EXTERNAL_URL", "want an absolute http(s) URL without query, e.g. https://api.example.com")
	}
	if c.DPoPExternalURL != nil && c.DPoPTrustForwarded {
		bad("DPOP_TRUST_FORWARDED", "cannot be combined with DPOP_EXTERNAL_URL, which already names the target")
	}
}
