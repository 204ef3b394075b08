package config

import (
	"maps"
	"slices"
	"testing"
)

func TestVars(t *testing.T) {
	vars := Vars()
	for _, name := range []string{"UPSTREAM_URL", "CLOCK_SKEW", "CONFIG_FILE", "LOG_FORMAT", "PAYLOAD_HEADER"} {
		if !slices.Contains(vars, name) {
			t.Errorf("Vars() lacks %s", name)
		}
	}
	for _, name := range PolicyVars {
		if !slices.Contains(vars, name) {
			t.Errorf("PolicyVars names %s, which is not a variable", name)
		}
	}
	seen := map[string]bool{}
	for _, v := range vars {
		if seen[v] || v == "" {
			t.Errorf("Vars() has %q twice or empty", v)
		}
		seen[v] = true
	}
	// Every variable parses on its own: Load names it when its value is bad.
	if _, err := Load(map[string]string{"UPSTREAM_URL": "http://127.0.0.1:1", "ISSUERS": "a", "JWKS_URLS": "http://x/", "CLOCK_SKEW": "soon"}); err == nil {
		t.Error("CLOCK_SKEW=soon was accepted")
	}
}

func TestRelayURL(t *testing.T) {
	base := map[string]string{"UPSTREAM_URL": "http://127.0.0.1:1", "ISSUERS": "a", "JWKS_URLS": "http://x/"}
	for v, ok := range map[string]bool{
		"http://jwt-key-relay.jwt-sidecar:8080": true, "https://relay.example/base": true,
		"relay:8080": false, "http://u:p@relay": false, "http://relay/?a=b": false,
	} {
		env := maps.Clone(base)
		env["JWKS_RELAY_URL"] = v
		if _, err := Load(env); (err == nil) != ok {
			t.Errorf("JWKS_RELAY_URL=%s: error %v, want ok=%v", v, err, ok)
		}
	}
}
