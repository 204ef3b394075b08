package config

import (
	"strings"
	"testing"
)

// TestKeySourceAccessProblems: the CA and token files of the environment's
// key sources go only with remote sources and jwt mode, the token only
// over https or to loopback, and not with CONFIG_FILE, whose providers
// have ca_file and bearer_token_file.
func TestKeySourceAccessProblems(t *testing.T) {
	base := map[string]string{"UPSTREAM_URL": "http://127.0.0.1:3000"}
	k8s := map[string]string{"OIDC_ISSUER_URL": "https://kubernetes.default.svc"}
	tests := []struct {
		name string
		set  map[string]string
		want string // "" for valid
	}{
		{name: "kubernetes", set: with(k8s, "JWKS_CA_FILE", "/ca.crt", "JWKS_BEARER_TOKEN_FILE", "/token")},
		{name: "token to loopback over http", set: map[string]string{"JWKS_URLS": "http://127.0.0.1:8080/jwks", "ISSUERS": "x", "JWKS_BEARER_TOKEN_FILE": "/token"}},
		{name: "token over plain http", set: map[string]string{"JWKS_URLS": "http://keys.internal/jwks", "ISSUERS": "x", "JWKS_BEARER_TOKEN_FILE": "/token"},
			want: "JWKS_BEARER_TOKEN_FILE: the token would cross the network in plain text to http://keys.internal/jwks"},
		{name: "CA with a JWKS file", set: map[string]string{"JWKS_FILE": "/jwks.json", "ISSUERS": "x", "JWKS_CA_FILE": "/ca.crt"},
			want: "JWKS_CA_FILE: applies only to JWKS_URLS and OIDC_ISSUER_URL"},
		{name: "token with a PEM key", set: map[string]string{"PUBLIC_KEY_FILES": "/k.pem", "ISSUERS": "x", "JWKS_BEARER_TOKEN_FILE": "/t"},
			want: "JWKS_BEARER_TOKEN_FILE: applies only to JWKS_URLS and OIDC_ISSUER_URL"},
		{name: "with CONFIG_FILE", set: map[string]string{"CONFIG_FILE": "/p.yaml", "JWKS_CA_FILE": "/ca.crt"},
			want: "CONFIG_FILE: cannot be combined with JWKS_CA_FILE"},
		{name: "in introspection mode", set: map[string]string{"AUTH_MODE": "introspection", "INTROSPECTION_URL": "https://id.test/introspect",
			"INTROSPECTION_CLIENT_ID": "c", "INTROSPECTION_CLIENT_SECRET_FILE": "/s", "JWKS_CA_FILE": "/ca.crt"},
			want: "JWKS_CA_FILE: not used with AUTH_MODE=introspection"},
		{name: "introspection CA", set: map[string]string{"AUTH_MODE": "introspection", "INTROSPECTION_URL": "https://id.test/introspect",
			"INTROSPECTION_CLIENT_ID": "c", "INTROSPECTION_CLIENT_SECRET_FILE": "/s", "INTROSPECTION_CA_FILE": "/ca.crt"}},
		{name: "introspection CA in jwt mode", set: with(k8s, "INTROSPECTION_CA_FILE", "/ca.crt"),
			want: "INTROSPECTION_CA_FILE: only used with AUTH_MODE=introspection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := with(base)
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

// with is a copy of m with the key-value pairs kv added.
func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
