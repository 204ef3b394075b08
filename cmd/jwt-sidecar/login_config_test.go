package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// minimalLogin is the smallest valid environment with browser login.
func minimalLogin() map[string]string {
	return map[string]string{
		"UPSTREAM_URL":             "http://127.0.0.1:3000",
		"OIDC_ISSUER_URL":          "http://127.0.0.1:8080",
		"LOGIN_CLIENT_ID":          "web-app",
		"LOGIN_CLIENT_SECRET_FILE": "/run/secret",
		"LOGIN_COOKIE_KEY_FILE":    "/run/keys",
	}
}

func TestLoginConfig(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		unset   []string
		wantErr []string
	}{
		{name: "valid"},
		{name: "no discovery", set: map[string]string{"JWKS_URLS": "http://127.0.0.1:8080/jwks", "ISSUERS": "x"}, unset: []string{"OIDC_ISSUER_URL"},
			wantErr: []string{"LOGIN_CLIENT_ID: browser login needs OIDC_ISSUER_URL"}},
		{name: "no files", unset: []string{"LOGIN_CLIENT_SECRET_FILE", "LOGIN_COOKIE_KEY_FILE"},
			wantErr: []string{"LOGIN_CLIENT_SECRET_FILE: required", "LOGIN_COOKIE_KEY_FILE: required"}},
		{name: "plain http on every interface", set: map[string]string{"LOGIN_PLAIN_HTTP": "true", "LISTEN_ADDR": ":7070"},
			wantErr: []string{"LOGIN_PLAIN_HTTP: LISTEN_ADDR :7070 is not a loopback address"}},
		{name: "plain http on loopback", set: map[string]string{"LOGIN_PLAIN_HTTP": "true", "LISTEN_ADDR": "127.0.0.1:7070"}},
		{name: "same paths", set: map[string]string{"LOGIN_SIGN_OUT_PATH": "/oauth2/callback"},
			wantErr: []string{"LOGIN_SIGN_OUT_PATH: must differ from LOGIN_CALLBACK_PATH"}},
		{name: "unclean path", set: map[string]string{"LOGIN_CALLBACK_PATH": "/a/../cb"},
			wantErr: []string{"LOGIN_CALLBACK_PATH"}},
		{name: "cookie is a token lookup", set: map[string]string{"TOKEN_LOOKUP": "cookie:_jwt_sidecar"},
			wantErr: []string{"LOGIN_COOKIE_NAME: _jwt_sidecar is also a TOKEN_LOOKUP cookie"}},
		{name: "short max age", set: map[string]string{"LOGIN_MAX_AGE": "30s"}, wantErr: []string{"LOGIN_MAX_AGE: must be at least 1m"}},
		{name: "settings without a client", unset: []string{"LOGIN_CLIENT_ID"},
			wantErr: []string{"LOGIN_CLIENT_SECRET_FILE: set without LOGIN_CLIENT_ID", "LOGIN_COOKIE_KEY_FILE: set without LOGIN_CLIENT_ID"}},
		{name: "with CONFIG_FILE", set: map[string]string{"CONFIG_FILE": "/etc/policy.yaml"}, unset: []string{"OIDC_ISSUER_URL"},
			wantErr: []string{"LOGIN_CLIENT_ID: not read with CONFIG_FILE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loadAndCheck(t, minimalLogin(), tt.set, tt.unset, tt.wantErr)
		})
	}
}

// TestLoginFilesAtStart: a missing cookie key file or a short key stops
// the sidecar at start with exit code 2, naming the problem.
func TestLoginFilesAtStart(t *testing.T) {
	dir := t.TempDir()
	secret, keys := filepath.Join(dir, "secret"), filepath.Join(dir, "keys")
	writeTestFile(t, secret, "s3cret\n")
	writeTestFile(t, keys, "too-short\n")
	for name, edit := range map[string]func(map[string]string){
		"missing key file": func(env map[string]string) { env["LOGIN_COOKIE_KEY_FILE"] = filepath.Join(dir, "nope") },
		"short key":        func(env map[string]string) { env["LOGIN_COOKIE_KEY_FILE"] = keys },
	} {
		t.Run(name, func(t *testing.T) {
			env := minimalLogin()
			env["LOGIN_CLIENT_SECRET_FILE"] = secret
			edit(env)
			var stderr bytes.Buffer
			if code := run(context.Background(), nil, env, &stderr, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), "browser login: cookie key file") {
				t.Errorf("stderr %q does not name the cookie key file", stderr.String())
			}
		})
	}
}
