package policy

import (
	"strings"
	"testing"
	"time"
)

func TestDecodeLogin(t *testing.T) {
	const base = `providers:
  - name: web
    oidc_issuer_url: https://idp.example
    claims_to_headers: {sub: X-Sub}
`
	spec, err := Decode("f.yaml", []byte(base+`    login:
      client_id: web-app
      client_secret_file: /s
      cookie_key_file: /k
      max_age: 1h
      scopes: [openid, email]
rules: []
default: {require: web}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := spec.Providers[0].Login
	if got == nil || got.ClientID != "web-app" || got.CallbackPath != "/oauth2/callback" || got.SignOutPath != "/oauth2/sign_out" ||
		got.CookieName != "_jwt_sidecar" || !got.Refresh || got.MaxAge != time.Hour || got.RefreshAhead != time.Minute ||
		strings.Join(got.Scopes, " ") != "openid email" {
		t.Errorf("login = %+v", got)
	}

	bad := []struct {
		name, yaml, want string
	}{
		{"no client", "    login: {client_secret_file: /s, cookie_key_file: /k}\n", "providers[0].login.client_id: required"},
		{"unknown field", "    login: {client_id: a, client_secret_file: /s, cookie_key_file: /k, secret: x}\n", "secret"},
		{"same paths", "    login: {client_id: a, client_secret_file: /s, cookie_key_file: /k, sign_out_path: /oauth2/callback}\n", "must differ from callback_path"},
		{"relative path", "    login: {client_id: a, client_secret_file: /s, cookie_key_file: /k, callback_path: cb}\n", "clean absolute path"},
		{"short max age", "    login: {client_id: a, client_secret_file: /s, cookie_key_file: /k, max_age: 10s}\n", "at least 1m"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("f.yaml", []byte(base+tt.yaml+"default: {require: web}\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	_, err = Decode("f.yaml", []byte(`providers:
  - name: web
    issuer: https://idp.example
    jwks_url: https://idp.example/jwks
    login: {client_id: a, client_secret_file: /s, cookie_key_file: /k}
default: {require: web}
`))
	if err == nil || !strings.Contains(err.Error(), "needs oidc_issuer_url") {
		t.Errorf("login without discovery: error = %v", err)
	}
}
