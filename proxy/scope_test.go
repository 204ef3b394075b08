package proxy

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// TestInsufficientScopeNamesTheScope: a 403 insufficient_scope names the
// scopes the request needed (RFC 6750 §3.1), whether the provider's
// REQUIRED_SCOPES or a rule's scopes asked for them; a lacking claim names
// no scope. Every refusal leaves the upstream untouched and its log line
// carries the token's hash.
func TestInsufficientScopeNamesTheScope(t *testing.T) {
	k := allKeys(t)
	reg := prometheus.NewRegistry()
	m := testMetrics(reg)
	orders := policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{"idp"}, Scopes: []string{"orders:read", "orders:write", "orders:read"}}
	admins := policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{"idp"},
		Claims: []policy.ClaimRequirement{{Claim: "groups", Values: []any{"admins"}}}}
	pol, err := policy.New(policy.Options{
		Providers: []policy.Provider{{Name: "idp", Issuers: []string{issA}, Auth: newVerifier(t, verifierConfig{}, m)}},
		Rules: []policy.Rule{
			{Name: "orders", Match: policy.Match{Prefix: "/orders"}, Require: orders},
			{Name: "admin", Match: policy.Match{Prefix: "/admin"}, Require: admins},
			{Name: "api", Match: policy.Match{Prefix: "/api"}, Require: policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{"idp"}}},
		},
		Recorder: metrics.NewRules(reg),
	})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	logs := &proctest.Buffer{}
	p, err := New(Options{Upstream: up.url(t), Policy: pol, Recorder: m, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	h := &harness{proxy: p, handler: p.Handler(), upstream: up, reg: reg, logs: logs}

	const prefix = `Bearer realm="jwt-sidecar", error="insufficient_scope", error_description="the token lacks a required scope or claim"`
	readOnly := k.ec.Sign(t, claims(issA)) // scope "read"
	tests := []struct {
		name, target, token, challenge string
	}{
		{"provider's REQUIRED_SCOPES", "/api/x", k.ec.Sign(t, with(claims(issA), "scope", "write")), prefix + `, scope="read"`},
		{"rule's scopes, each once", "/orders/1", readOnly, prefix + `, scope="orders:read orders:write"`},
		{"a lacking claim names no scope", "/admin/x", readOnly, prefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.upstream.requests())
			seenLines := len(logLines(t, logs))
			rec := h.serve(bearer(tt.target, tt.token))
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status %d, want 403", rec.Code)
			}
			if got := rec.Header().Values("WWW-Authenticate"); len(got) != 1 || got[0] != tt.challenge {
				t.Errorf("challenge %q\nwant      %q", got, tt.challenge)
			}
			if n := len(h.upstream.requests()) - before; n != 0 {
				t.Errorf("upstream saw %d requests, want 0", n)
			}
			lines := logLines(t, logs)[seenLines:]
			if len(lines) != 1 || lines[0]["reason"] != "insufficient_scope" || len(lines[0]["token_hash"].(string)) != 12 {
				t.Errorf("log %v, want one refusal line with the token's hash", lines)
			}
		})
	}
}

// TestScopeAttr: scopes that RFC 6750 §3's scope-token grammar cannot
// carry are left out rather than break the header.
func TestScopeAttr(t *testing.T) {
	for in, want := range map[string]string{
		"read write":                "read write",
		"read  read write":          "read write",
		`a"b c\d e`:                 "e",
		"caf\u00e9 ok":              "ok",
		"x\x01y ok":                 "ok",
		`"`:                         "",
		"orders:read https://x/y#z": "orders:read https://x/y#z",
	} {
		if got := scopeAttr(in); got != want {
			t.Errorf("scopeAttr(%q) = %q, want %q", in, got, want)
		}
	}
	// A scope that cannot be named leaves the fixed challenge as it is.
	h := newHarness(t, verifierConfig{}, nil)
	ref := h.proxy.refusalFor("insufficient_scope")
	if got := h.proxy.scoped(ref, get("/x"), `a"b`); got != ref {
		t.Errorf("scoped with no nameable scope built %q", got.challenge)
	}
	if strings.Contains(ref.challenge[0], "scope=") {
		t.Errorf("the shared refusal was modified: %q", ref.challenge)
	}
}
