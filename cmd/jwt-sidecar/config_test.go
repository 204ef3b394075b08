package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"
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
	const golden = "testdata/help.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != string(want) {
		t.Errorf("--help differs from %s (run go test -update):\n%s", golden, got)
	}
	// Every variable of Config appears, with its default.
	for _, name := range []string{"UPSTREAM_URL", "CLOCK_SKEW  default: 30s", "ALGORITHMS", "JWKS_CACHE_DIR", "SHUTDOWN_TIMEOUT  default: 20s"} {
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
		{name: "introspection not yet", set: map[string]string{"AUTH_MODE": "introspection"}, wantErr: []string{"AUTH_MODE:"}},
		{name: "several problems at once", set: map[string]string{"CLOCK_SKEW": "-1s", "LOG_LEVEL": "loud"}, wantErr: []string{"CLOCK_SKEW:", "LOG_LEVEL:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := minimal()
			for k, v := range tt.set {
				env[k] = v
			}
			for _, k := range tt.unset {
				delete(env, k)
			}
			var stderr bytes.Buffer
			_, err := loadConfig(env)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			// The process stops with exit code 2 and the same message.
			if code := run(context.Background(), nil, env, &stderr, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.wantErr[0]) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantErr[0])
			}
		})
	}
}

func TestHMACSwitchesDefaultAlgorithms(t *testing.T) {
	env := minimal()
	delete(env, "JWKS_URLS")
	env["HMAC_SECRET_FILE"] = "/secret"
	c, err := loadConfig(env)
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
	c, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Audiences, "|"); got != "a|b" {
		t.Errorf("audiences = %q, want a|b", got)
	}
}
