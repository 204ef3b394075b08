package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDecisionConfig(t *testing.T) {
	base := func(kv ...string) map[string]string {
		env := map[string]string{"ISSUERS": "https://issuer.test", "JWKS_URLS": "http://127.0.0.1:1/jwks"}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // a substring; "" loads
	}{
		{name: "no upstream, no decision", env: base(), wantErr: "UPSTREAM_URL: required but not set (or set DECISION_ADDR"},
		{name: "decision service only", env: base("DECISION_ADDR", "127.0.0.1:7072")},
		{name: "both", env: base("DECISION_ADDR", "127.0.0.1:7072", "UPSTREAM_URL", "http://127.0.0.1:3000")},
		{name: "envoy prefix", env: base("DECISION_ADDR", "127.0.0.1:7072", "DECISION_PATH_PREFIX", "/authz")},
		{name: "envoy root prefix", env: base("DECISION_ADDR", "127.0.0.1:7072", "DECISION_PATH_PREFIX", "/")},
		{name: "unclean prefix", env: base("DECISION_ADDR", "127.0.0.1:7072", "DECISION_PATH_PREFIX", "/a/../b"), wantErr: "DECISION_PATH_PREFIX"},
		{name: "relative prefix", env: base("DECISION_ADDR", "127.0.0.1:7072", "DECISION_PATH_PREFIX", "authz"), wantErr: "DECISION_PATH_PREFIX"},
		{name: "bad addr", env: base("DECISION_ADDR", "7072"), wantErr: "DECISION_ADDR: want host:port"},
		{name: "same as admin", env: base("DECISION_ADDR", ":7071"), wantErr: "DECISION_ADDR: must differ"},
		{name: "same as listen", env: base("DECISION_ADDR", ":7070", "UPSTREAM_URL", "http://127.0.0.1:3000"), wantErr: "DECISION_ADDR: must differ"},
		{name: "bad cidr", env: base("DECISION_ADDR", "127.0.0.1:7072", "DECISION_TRUSTED_PROXIES", "10.0.0.0/33"), wantErr: "DECISION_TRUSTED_PROXIES"},
		{name: "host bits", env: base("DECISION_ADDR", "127.0.0.1:7072", "DECISION_TRUSTED_PROXIES", "10.0.0.1/8"), wantErr: "did you mean 10.0.0.0/8"},
		{name: "trusted proxies without decision", env: base("UPSTREAM_URL", "http://127.0.0.1:3000", "DECISION_TRUSTED_PROXIES", "10.0.0.0/8"), wantErr: "DECISION_TRUSTED_PROXIES: only used with DECISION_ADDR"},
		{name: "proxy TLS in decision-only mode", env: base("DECISION_ADDR", "127.0.0.1:7072", "TLS_CERT_FILE", "c.pem", "TLS_KEY_FILE", "k.pem"), wantErr: "TLS_CERT_FILE: applies to the proxy listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.env)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got := c.DecisionTrustedProxies; len(got) != 2 || got[0] != netip.MustParsePrefix("127.0.0.0/8") || got[1] != netip.MustParsePrefix("::1/128") {
					t.Errorf("DECISION_TRUSTED_PROXIES default = %v, want loopback", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs(" 10.0.0.0/8, 192.168.1.7 ,::1, ::ffff:127.0.0.1,")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "::1/128", "127.0.0.1/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"x", "10.0.0.0/8/8", "fe80::1%eth0", "10.0.0.0/-1"} {
		if _, err := ParseCIDRs(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
