package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// TestCORSPreflightUnderRules: with CORS_PREFLIGHT_BYPASS a preflight
// skips authentication only. A deny rule and the fail-closed default still
// refuse it (the upstream sees nothing), a forged claim header is still
// scrubbed, and each preflight is counted under its rule like any request.
func TestCORSPreflightUnderRules(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := testMetrics(reg)
	pm := metrics.NewRules(reg)
	pol, err := policy.New(policy.Options{Providers: testProviders(t, m), Rules: testRules(), Recorder: pm})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	p, err := New(Options{Upstream: up.url(t), Policy: pol, Recorder: m, CORSPreflight: true,
		Logger: slog.New(slog.NewJSONHandler(&proctest.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)

	tests := []struct {
		name, path, rule, outcome string
		status                    int
	}{
		{"a protected rule: authentication skipped", "/api/orders", "api", "public", http.StatusOK},
		{"a rule needing two providers: skipped too", "/both/x", "both", "public", http.StatusOK},
		{"a deny rule still refuses", "/blocked/x", "blocked", "forbidden", http.StatusForbidden},
		{"the fail-closed default still refuses", "/nowhere", "default", "forbidden", http.StatusForbidden},
		{"a GET-only public rule: OPTIONS falls to the default", "/healthz", "default", "forbidden", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.requests())
			counted := counter(t, reg, "jwt_sidecar_rule_requests_total", map[string]string{"rule": tt.rule, "outcome": tt.outcome})
			req, _ := http.NewRequest(http.MethodOptions, srv.URL+tt.path, nil)
			req.Header.Set("Origin", "https://app.test")
			req.Header.Set("Access-Control-Request-Method", "DELETE")
			req.Header.Set("X-Auth-Subject", "mallory")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			reqs := up.requests()[before:]
			switch {
			case tt.status != http.StatusOK && len(reqs) != 0:
				t.Errorf("a refused preflight reached the upstream: %+v", reqs[0])
			case tt.status == http.StatusOK && len(reqs) != 1:
				t.Errorf("upstream saw %d requests, want the preflight", len(reqs))
			case tt.status == http.StatusOK && reqs[0].Header.Get("X-Auth-Subject") != "":
				t.Errorf("a forged claim header reached the upstream: %q", reqs[0].Header.Get("X-Auth-Subject"))
			}
			if got := counter(t, reg, "jwt_sidecar_rule_requests_total", map[string]string{"rule": tt.rule, "outcome": tt.outcome}); got != counted+1 {
				t.Errorf("rule %s outcome %s counted %v, want %v", tt.rule, tt.outcome, got, counted+1)
			}
		})
	}
}
