package policy_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
)

// publicPolicy is a policy whose rules are all public, to test matching
// alone: the rule Match returns is the answer.
func publicPolicy(t testing.TB, rules ...policy.Rule) *policy.Policy {
	t.Helper()
	for i := range rules {
		rules[i].Require = policy.Requirement{Kind: policy.RequirePublic}
	}
	p, err := policy.New(policy.Options{Providers: nil, Rules: rules, Default: policy.Requirement{Kind: policy.RequireDeny}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRuleMatching(t *testing.T) {
	p := publicPolicy(t,
		policy.Rule{Name: "health", Match: policy.Match{Path: "/healthz", Methods: []string{"GET", "HEAD"}}},
		policy.Rule{Name: "docs-dir", Match: policy.Match{Path: "/docs/"}},
		policy.Rule{Name: "admin-host", Match: policy.Match{Prefix: "/admin", Hosts: []string{"admin.example.com"}}},
		policy.Rule{Name: "admin", Match: policy.Match{Prefix: "/admin"}},
		policy.Rule{Name: "static", Match: policy.Match{Prefix: "/static/"}},
		policy.Rule{Name: "items", Match: policy.Match{Glob: "/api/*/items"}},
		policy.Rule{Name: "reports", Match: policy.Match{Glob: "/reports/**/pdf"}},
		policy.Rule{Name: "v-star", Match: policy.Match{Glob: "/v*/status"}},
		policy.Rule{Name: "tenant", Match: policy.Match{Glob: "/t/**", Hosts: []string{"*.tenants.example"}}},
		policy.Rule{Name: "writes", Match: policy.Match{Prefix: "/", Methods: []string{"POST", "PUT", "DELETE"}}},
	)
	tests := []struct {
		method string
		target string // as on the request line, parsed by net/http
		host   string
		want   string
	}{
		{method: "GET", target: "/healthz", want: "health"},
		{method: "HEAD", target: "/healthz", want: "health"},
		{method: "GET", target: "/healthz/", want: "default"}, // trailing slash: another path
		{method: "get", target: "/healthz", want: "default"},  // methods are case sensitive
		{method: "POST", target: "/healthz", want: "writes"},
		{method: "GET", target: "/docs/", want: "docs-dir"},
		{method: "GET", target: "/docs", want: "default"},
		{method: "GET", target: "/docs/../docs/", want: "docs-dir"},
		{method: "GET", target: "/admin", want: "admin"},
		{method: "GET", target: "/admin/users", want: "admin"},
		{method: "GET", target: "/administrator", want: "default"}, // prefix by whole segments
		{method: "GET", target: "/admin/users", host: "ADMIN.example.com:8443", want: "admin-host"},
		{method: "GET", target: "/static/public/../../admin/x", want: "admin"}, // .. never escapes into a looser rule
		{method: "GET", target: "/static/%2E%2E/admin", want: "admin"},         // %2E%2E is .. after decoding
		{method: "GET", target: "/static%2F..%2Fadmin", want: "admin"},         // encoded slashes decode, then clean
		{method: "GET", target: "//static//app.js", want: "static"},
		{method: "GET", target: "/static", want: "default"}, // "/static/" does not match the bare "/static"
		{method: "GET", target: "/api/v1/items", want: "items"},
		{method: "GET", target: "/api/v1/items/", want: "default"},
		{method: "GET", target: "/api/v1/v2/items", want: "default"}, // * stays within a segment
		{method: "GET", target: "/api//items", want: "default"},      // cleaned to /api/items
		{method: "GET", target: "/api%2Fv1%2Fitems", want: "items"},
		{method: "GET", target: "/reports/pdf", want: "reports"},
		{method: "GET", target: "/reports/2026/q4/pdf", want: "reports"},
		{method: "GET", target: "/reports/2026/q4/pdf/x", want: "default"},
		{method: "GET", target: "/v1/status", want: "v-star"},
		{method: "GET", target: "/v/status", want: "v-star"},
		{method: "GET", target: "/x1/status", want: "default"},
		{method: "GET", target: "/t/a/b", host: "acme.tenants.example", want: "tenant"},
		{method: "GET", target: "/t", host: "a.b.tenants.example", want: "tenant"},
		{method: "GET", target: "/t/a", host: "tenants.example", want: "default"}, // *. needs a label
		{method: "GET", target: "/t/a", host: "eviltenants.example", want: "default"},
		{method: "DELETE", target: "/anything", want: "writes"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target+" "+tt.host, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://app.example"+tt.target, nil)
			if tt.host != "" {
				r.Host = tt.host
			}
			got := p.Match(r, config.CleanPath(r.URL.Path), nil)
			if got.Name != tt.want {
				t.Errorf("rule = %s (cleaned path %q), want %s", got.Name, config.CleanPath(r.URL.Path), tt.want)
			}
		})
	}
}

func TestRuleMatchingDoesNotAllocate(t *testing.T) {
	p := publicPolicy(t,
		policy.Rule{Name: "health", Match: policy.Match{Path: "/healthz", Methods: []string{"GET"}}},
		policy.Rule{Name: "items", Match: policy.Match{Glob: "/api/**/items/*", Hosts: []string{"*.example.com"}}},
		policy.Rule{Name: "api", Match: policy.Match{Prefix: "/api"}},
	)
	r := httptest.NewRequest(http.MethodGet, "http://x.example.com/api/v1/a/items/7", nil)
	if n := testing.AllocsPerRun(100, func() {
		if p.Match(r, config.CleanPath(r.URL.Path), nil).Name != "items" {
			t.Fatal("no match")
		}
	}); n != 0 {
		t.Errorf("matching a clean path allocates %v times, want 0", n)
	}
}

func TestMatchValidate(t *testing.T) {
	tests := []struct {
		name    string
		m       policy.Match
		wantErr string
	}{
		{name: "exact", m: policy.Match{Path: "/a"}},
		{name: "glob", m: policy.Match{Glob: "/a/**/b*c"}},
		{name: "none", m: policy.Match{Methods: []string{"GET"}}, wantErr: "set one of path, prefix or glob"},
		{name: "two", m: policy.Match{Path: "/a", Prefix: "/a"}, wantErr: "only one of path, prefix and glob"},
		{name: "relative", m: policy.Match{Prefix: "api"}, wantErr: "starts with /"},
		{name: "unclean", m: policy.Match{Path: "/a/../b"}, wantErr: `did you mean "/b"`},
		{name: "double slash", m: policy.Match{Prefix: "//a"}, wantErr: "not a clean path"},
		{name: "star outside a glob", m: policy.Match{Prefix: "/public/*"}, wantErr: "only special in a glob"},
		{name: "partial doublestar", m: policy.Match{Glob: "/a/b**"}, wantErr: "whole segment"},
		{name: "question mark", m: policy.Match{Glob: "/a/?"}, wantErr: "only * and **"},
		{name: "lower-case method", m: policy.Match{Path: "/a", Methods: []string{"get"}}, wantErr: `write "GET"`},
		{name: "method twice", m: policy.Match{Path: "/a", Methods: []string{"GET", "GET"}}, wantErr: "listed twice"},
		{name: "host with port", m: policy.Match{Path: "/a", Hosts: []string{"a.example:80"}}, wantErr: "no port"},
		{name: "host URL", m: policy.Match{Path: "/a", Hosts: []string{"https://a.example"}}, wantErr: "no scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "", want: "/"},
		{in: "/a/b/", want: "/a/b/"},
		{in: "//a//b//", want: "/a/b/"},
		{in: "/public/../admin", want: "/admin"},
		{in: "/../../etc/passwd", want: "/etc/passwd"},
		{in: "*", want: "/*"},
	}
	for _, tt := range tests {
		if got := config.CleanPath(tt.in); got != tt.want {
			t.Errorf("config.CleanPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
