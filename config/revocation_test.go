package config

import (
	"strings"
	"testing"
)

// TestRevocationProblems: each bad revocation or DPoP setting is named by
// its variable; the defaults are valid.
func TestRevocationProblems(t *testing.T) {
	base := map[string]string{"UPSTREAM_URL": "http://127.0.0.1:3000", "JWKS_URLS": "http://127.0.0.1:8080/jwks.json", "ISSUERS": "https://issuer.test"}
	tests := []struct {
		name string
		set  map[string]string
		want string // "" for valid
	}{
		{name: "defaults"},
		{name: "list and file", set: map[string]string{"REVOCATION_LIST_URL": "https://id.test/revocations", "REVOCATION_FILE": "/etc/rev.json"}},
		{name: "list not http", set: map[string]string{"REVOCATION_LIST_URL": "ftp://id.test/r"}, want: "REVOCATION_LIST_URL: "},
		{name: "zero interval", set: map[string]string{"REVOCATION_REFRESH_INTERVAL": "0s"}, want: "REVOCATION_REFRESH_INTERVAL: must be positive"},
		{name: "stale before a poll", set: map[string]string{"REVOCATION_REFRESH_INTERVAL": "1m", "REVOCATION_STALE_AFTER": "10s"}, want: "REVOCATION_STALE_AFTER: "},
		{name: "tiny list", set: map[string]string{"REVOCATION_MAX_BYTES": "10"}, want: "REVOCATION_MAX_BYTES: "},
		{name: "relative logout path", set: map[string]string{"BACKCHANNEL_LOGOUT_PATH": "logout"}, want: "BACKCHANNEL_LOGOUT_PATH: "},
		{name: "a MAC for DPoP", set: map[string]string{"DPOP_ALGORITHMS": "ES256,HS256"}, want: `DPOP_ALGORITHMS: "HS256"`},
		{name: "none for DPoP", set: map[string]string{"DPOP_ALGORITHMS": "none"}, want: `DPOP_ALGORITHMS: "none"`},
		{name: "zero proof age", set: map[string]string{"DPOP_PROOF_MAX_AGE": "0s"}, want: "DPOP_PROOF_MAX_AGE: "},
		{name: "zero replay cache", set: map[string]string{"DPOP_REPLAY_CACHE_SIZE": "0"}, want: "DPOP_REPLAY_CACHE_SIZE: "},
		{name: "nonce secret without nonces", set: map[string]string{"DPOP_NONCE_SECRET_FILE": "/run/s"}, want: "DPOP_NONCE_SECRET_FILE: "},
		{name: "external URL with a query", set: map[string]string{"DPOP_EXTERNAL_URL": "https://api.test/?a=1"}, want: "DPOP_EXTERNAL_URL: "},
		{name: "external URL and forwarded", set: map[string]string{"DPOP_EXTERNAL_URL": "https://api.test", "DPOP_TRUST_FORWARDED": "true"}, want: "DPOP_TRUST_FORWARDED: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.set {
				env[k] = v
			}
			_, err := Load(env)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("valid settings refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}
