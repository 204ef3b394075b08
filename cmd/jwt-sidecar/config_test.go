package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli/clitest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// minimal is the smallest valid environment.
func minimal() map[string]string {
	return map[string]string{
		"UPSTREAM_URL": "http://127.0.0.1:3000",
		"JWKS_URLS":    "http://127.0.0.1:8080/jwks.json",
		"ISSUERS":      "https://issuer.test",
	}
}

func TestHelpGolden(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit code = %d, want 0", code)
	}
	// The golden file, and every variable of Config with its default.
	clitest.Help[config.Config](t, out.Bytes(), "testdata/help.golden", *update)
	for _, name := range []string{"CLOCK_SKEW  default: 30s", "SHUTDOWN_TIMEOUT  default: 20s"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("--help lacks %q", name)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		unset   []string
		wantErr []string
	}{
		{name: "valid"},
		{name: "upstream missing", unset: []string{"UPSTREAM_URL"}, wantErr: []string{"UPSTREAM_URL: required but not set"}},
		{name: "upstream not http", set: map[string]string{"UPSTREAM_URL": "ftp://x"}, wantErr: []string{"UPSTREAM_URL:"}},
		{name: "negative skew", set: map[string]string{"CLOCK_SKEW": "-1s"}, wantErr: []string{"CLOCK_SKEW: must not be negative"}},
		{name: "skew not a duration", set: map[string]string{"CLOCK_SKEW": "soon"}, wantErr: []string{"CLOCK_SKEW:"}},
		{name: "cache size not a number", set: map[string]string{"TOKEN_CACHE_SIZE": "many"}, wantErr: []string{"TOKEN_CACHE_SIZE:"}},
		{name: "no issuer", unset: []string{"ISSUERS"}, wantErr: []string{"ISSUERS:"}},
		{name: "no key source", unset: []string{"JWKS_URLS"}, wantErr: []string{"no key source"}},
		{name: "alg none", set: map[string]string{"ALGORITHMS": "RS256,none"}, wantErr: []string{"ALGORITHMS: none is never allowed"}},
		{name: "HS256 without a secret", set: map[string]string{"ALGORITHMS": "HS256"}, wantErr: []string{"ALGORITHMS: HS256 needs HMAC_SECRET_FILE"}},
		{name: "unknown alg", set: map[string]string{"ALGORITHMS": "XS1"}, wantErr: []string{"ALGORITHMS:"}},
		{name: "HMAC with public keys", set: map[string]string{"HMAC_SECRET_FILE": "/s"}, wantErr: []string{"HMAC_SECRET_FILE: cannot be combined"}},
		{name: "HMAC with RS256", set: map[string]string{"HMAC_SECRET_FILE": "/s", "ALGORITHMS": "RS256"}, unset: []string{"JWKS_URLS"}, wantErr: []string{"ALGORITHMS: RS256 cannot be used with HMAC_SECRET_FILE"}},
		{name: "bad token lookup", set: map[string]string{"TOKEN_LOOKUP": "body:x"}, wantErr: []string{"TOKEN_LOOKUP:"}},
		{name: "claims entry without =", set: map[string]string{"CLAIMS_TO_HEADERS": "sub"}, wantErr: []string{"CLAIMS_TO_HEADERS:"}},
		{name: "payload header is a claim header", set: map[string]string{"CLAIMS_TO_HEADERS": "sub=X-Auth", "PAYLOAD_HEADER": "x-auth"}, wantErr: []string{"PAYLOAD_HEADER: x-auth is also named in CLAIMS_TO_HEADERS"}},
		{name: "claim header is where the token travels", set: map[string]string{"CLAIMS_TO_HEADERS": "sub=X-Token", "TOKEN_LOOKUP": "header:X_Token"}, wantErr: []string{"CLAIMS_TO_HEADERS: X-Token is also a TOKEN_LOOKUP header"}},
		{name: "bad public path", set: map[string]string{"PUBLIC_PATHS": "health"}, wantErr: []string{"PUBLIC_PATHS:"}},
		{name: "same listen and admin", set: map[string]string{"ADMIN_ADDR": ":7070"}, wantErr: []string{"ADMIN_ADDR: must differ"}},
		{name: "bad log format", set: map[string]string{"LOG_FORMAT": "xml"}, wantErr: []string{"LOG_FORMAT:"}},
		{name: "unknown auth mode", set: map[string]string{"AUTH_MODE": "opa"}, wantErr: []string{"AUTH_MODE: want jwt or introspection"}},
		{name: "introspection variable in jwt mode", set: map[string]string{"INTROSPECTION_URL": "http://127.0.0.1:8080/introspect"},
			wantErr: []string{"INTROSPECTION_URL: only used with AUTH_MODE=introspection"}},
		{name: "introspection default given in jwt mode", set: map[string]string{"INTROSPECTION_TIMEOUT": "2s", "INTROSPECTION_CACHE_TTL": "0"},
			wantErr: []string{"INTROSPECTION_CACHE_TTL: only used with AUTH_MODE=introspection", "INTROSPECTION_TIMEOUT: only used"}},
		{name: "several problems at once", set: map[string]string{"CLOCK_SKEW": "-1s", "LOG_LEVEL": "loud"}, wantErr: []string{"CLOCK_SKEW:", "LOG_LEVEL:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loadAndCheck(t, minimal(), tt.set, tt.unset, tt.wantErr)
		})
	}
}

// loadAndCheck loads base changed by set and unset, and checks that it is
// valid (no wantErr) or that the error, and the stopped process's stderr
// with exit code 2, name every wantErr.
func loadAndCheck(t *testing.T, base, set map[string]string, unset, wantErr []string) {
	t.Helper()
	env := base
	for k, v := range set {
		env[k] = v
	}
	for _, k := range unset {
		delete(env, k)
	}
	var stderr bytes.Buffer
	_, err := config.Load(env)
	if len(wantErr) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %q", wantErr)
	}
	for _, want := range wantErr {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The process stops with exit code 2 and the same message.
	if code := run(context.Background(), nil, env, &stderr, &stderr); code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), wantErr[0]) {
		t.Errorf("stderr %q lacks %q", stderr.String(), wantErr[0])
	}
}

// minimalIntrospection is the smallest valid environment of
// AUTH_MODE=introspection: no key source, no ISSUERS.
func minimalIntrospection() map[string]string {
	return map[string]string{
		"UPSTREAM_URL":                     "http://127.0.0.1:3000",
		"AUTH_MODE":                        "introspection",
		"INTROSPECTION_URL":                "http://127.0.0.1:8080/introspect",
		"INTROSPECTION_CLIENT_ID":          "sidecar",
		"INTROSPECTION_CLIENT_SECRET_FILE": "/run/secrets/introspection",
	}
}

func TestIntrospectionConfig(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		unset   []string
		wantErr []string
	}{
		{name: "valid"},
		{name: "valid with every option", set: map[string]string{"ISSUERS": "https://issuer.test", "AUDIENCES": "api",
			"INTROSPECTION_TIMEOUT": "500ms", "INTROSPECTION_CACHE_TTL": "30s", "INTROSPECTION_MAX_BYTES": "4096", "REQUIRED_SCOPES": "read"}},
		{name: "URL missing", unset: []string{"INTROSPECTION_URL"}, wantErr: []string{"INTROSPECTION_URL: required with AUTH_MODE=introspection"}},
		{name: "URL relative", set: map[string]string{"INTROSPECTION_URL": "/introspect"}, wantErr: []string{"INTROSPECTION_URL: \"/introspect\" is not an absolute http(s) URL"}},
		{name: "URL with credentials", set: map[string]string{"INTROSPECTION_URL": "https://id:pw@idp.test/introspect"}, wantErr: []string{"INTROSPECTION_URL: must not carry credentials"}},
		{name: "client ID missing", unset: []string{"INTROSPECTION_CLIENT_ID"}, wantErr: []string{"INTROSPECTION_CLIENT_ID: required"}},
		{name: "secret file missing", unset: []string{"INTROSPECTION_CLIENT_SECRET_FILE"}, wantErr: []string{"INTROSPECTION_CLIENT_SECRET_FILE: required"}},
		{name: "timeout zero", set: map[string]string{"INTROSPECTION_TIMEOUT": "0s"}, wantErr: []string{"INTROSPECTION_TIMEOUT: must be positive"}},
		{name: "timeout not a duration", set: map[string]string{"INTROSPECTION_TIMEOUT": "soon"}, wantErr: []string{"INTROSPECTION_TIMEOUT:"}},
		{name: "negative cache TTL", set: map[string]string{"INTROSPECTION_CACHE_TTL": "-1s"}, wantErr: []string{"INTROSPECTION_CACHE_TTL: must not be negative"}},
		{name: "cache TTL with the cache off", set: map[string]string{"INTROSPECTION_CACHE_TTL": "1m", "TOKEN_CACHE_SIZE": "0"}, wantErr: []string{"INTROSPECTION_CACHE_TTL: needs TOKEN_CACHE_SIZE"}},
		{name: "max bytes too small", set: map[string]string{"INTROSPECTION_MAX_BYTES": "100"}, wantErr: []string{"INTROSPECTION_MAX_BYTES: must be at least 1024"}},
		{name: "a key source", set: map[string]string{"JWKS_URLS": "http://127.0.0.1:8080/jwks.json"}, wantErr: []string{"JWKS_URLS: not used with AUTH_MODE=introspection"}},
		{name: "every key source, each named", set: map[string]string{"OIDC_ISSUER_URL": "https://idp.test", "JWKS_FILE": "/jwks.json", "PUBLIC_KEY_FILES": "/k.pem", "HMAC_SECRET_FILE": "/s"},
			wantErr: []string{"HMAC_SECRET_FILE: not used", "JWKS_FILE: not used", "OIDC_ISSUER_URL: not used", "PUBLIC_KEY_FILES: not used"}},
		{name: "a jwt tunable", set: map[string]string{"JWKS_REFRESH_INTERVAL": "1h", "ALGORITHMS": "RS256"}, wantErr: []string{"ALGORITHMS: not used", "JWKS_REFRESH_INTERVAL: not used"}},
		{name: "an empty jwt variable counts as unset", set: map[string]string{"JWKS_URLS": " "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loadAndCheck(t, minimalIntrospection(), tt.set, tt.unset, tt.wantErr)
		})
	}
}

func TestIntrospectionSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{name: "absent", path: dir + "/nope", wantErr: "INTROSPECTION_CLIENT_SECRET_FILE:"},
		{name: "empty", path: write("empty", ""), wantErr: "INTROSPECTION_CLIENT_SECRET_FILE: " + dir + "/empty: the secret is empty"},
		{name: "only a newline", path: write("newline", "\n"), wantErr: "the secret is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := minimalIntrospection()
			env["INTROSPECTION_CLIENT_SECRET_FILE"] = tt.path
			// Unusable addresses: were the secret accepted, the start would
			// fail at once instead of serving until the test times out.
			env["LISTEN_ADDR"], env["ADMIN_ADDR"] = "127.0.0.1:0", "127.0.0.1:1"
			var stderr bytes.Buffer
			if code := run(context.Background(), nil, env, &stderr, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestHMACSwitchesDefaultAlgorithms(t *testing.T) {
	env := minimal()
	delete(env, "JWKS_URLS")
	env["HMAC_SECRET_FILE"] = "/secret"
	c, err := config.Load(env)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Algorithms, ","); got != "HS256,HS384,HS512" {
		t.Errorf("algorithms = %s, want HS256,HS384,HS512", got)
	}
}

func TestListsAreTrimmed(t *testing.T) {
	env := minimal()
	env["AUDIENCES"] = " a, b ,,"
	c, err := config.Load(env)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Audiences, "|"); got != "a|b" {
		t.Errorf("audiences = %q, want a|b", got)
	}
}
