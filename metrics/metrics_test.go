package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwt-sidecar/jwt-sidecar/metrics"
)

func TestEverySPECSeriesExistsFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg, testLabels)
	want := `
# HELP jwt_sidecar_requests_total Requests by outcome (allowed, public, unauthenticated, forbidden, unavailable) and refusal reason.
# TYPE jwt_sidecar_requests_total counter
jwt_sidecar_requests_total{outcome="allowed",reason=""} 0
jwt_sidecar_requests_total{outcome="forbidden",reason="denied"} 0
jwt_sidecar_requests_total{outcome="forbidden",reason="insufficient_scope"} 0
jwt_sidecar_requests_total{outcome="public",reason=""} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="bad_algorithm"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="bad_audience"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="bad_issuer"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="bad_signature"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="expired"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="inactive"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="malformed"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="missing"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="not_yet_valid"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="unknown_key"} 0
jwt_sidecar_requests_total{outcome="unavailable",reason="unavailable"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "jwt_sidecar_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestIntrospectionSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, testLabels)
	// jwt mode: no introspection series.
	if n, err := testutil.GatherAndCount(reg, "jwt_sidecar_introspection_requests_total"); err != nil || n != 0 {
		t.Errorf("jwt mode: %d introspection series (err %v), want 0", n, err)
	}
	jwtSeries, err := testutil.GatherAndCount(reg, "jwt_sidecar_requests_total")
	if err != nil {
		t.Fatal(err)
	}

	m.IntrospectionMode()
	m.Introspection("active")
	m.Introspection("active")
	m.Introspection("timeout")
	m.Request("unavailable", "unavailable")
	want := `
# HELP jwt_sidecar_introspection_requests_total Calls to the RFC 7662 token service (AUTH_MODE=introspection) by result (active, inactive, timeout, error, bad_response).
# TYPE jwt_sidecar_introspection_requests_total counter
jwt_sidecar_introspection_requests_total{result="active"} 2
jwt_sidecar_introspection_requests_total{result="bad_response"} 0
jwt_sidecar_introspection_requests_total{result="error"} 0
jwt_sidecar_introspection_requests_total{result="inactive"} 0
jwt_sidecar_introspection_requests_total{result="timeout"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "jwt_sidecar_introspection_requests_total"); err != nil {
		t.Error(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "jwt_sidecar_requests_total"); n != jwtSeries {
		t.Errorf("requests_total series = %d, want %d (every reason's series exists from the start)", n, jwtSeries)
	}
	if got := counterValue(t, reg, "jwt_sidecar_requests_total", "unavailable"); got != 1 {
		t.Errorf("unavailable = %v, want 1", got)
	}
	if got := counterValue(t, reg, "jwt_sidecar_requests_total", "inactive"); got != 0 {
		t.Errorf("inactive = %v, want 0", got)
	}
}

func TestRecording(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, testLabels)
	m.Request("allowed", "")
	m.Request("unauthenticated", "expired")
	m.Request("unauthenticated", "expired")
	m.Verification("jwt", 3*time.Microsecond)
	m.TokenCache(true)
	m.TokenCache(false)
	m.KeyRefresh("https://idp/jwks", "start", "ok")
	m.KeysLoaded("https://idp/jwks", 2, time.Unix(1700000000, 0))
	m.TokenCacheEntries(func() int { return 7 })

	want := `
# HELP jwt_sidecar_keys Usable verification keys held per key source.
# TYPE jwt_sidecar_keys gauge
jwt_sidecar_keys{source="https://idp/jwks"} 2
# HELP jwt_sidecar_key_last_refresh_timestamp_seconds Unix time of the last successful load of each key source.
# TYPE jwt_sidecar_key_last_refresh_timestamp_seconds gauge
jwt_sidecar_key_last_refresh_timestamp_seconds{source="https://idp/jwks"} 1.7e+09
# HELP jwt_sidecar_token_cache_entries Verified tokens currently cached.
# TYPE jwt_sidecar_token_cache_entries gauge
jwt_sidecar_token_cache_entries 7
# HELP jwt_sidecar_token_cache_hits_total Tokens found in the verified-token cache (no signature check needed).
# TYPE jwt_sidecar_token_cache_hits_total counter
jwt_sidecar_token_cache_hits_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"jwt_sidecar_keys", "jwt_sidecar_key_last_refresh_timestamp_seconds",
		"jwt_sidecar_token_cache_entries", "jwt_sidecar_token_cache_hits_total"); err != nil {
		t.Error(err)
	}
	if got := counterValue(t, reg, "jwt_sidecar_requests_total", "expired"); got != 2 {
		t.Errorf("expired refusals = %v, want 2", got)
	}
	// The 3 µs observation lands in a bucket below 5 µs: microseconds resolve.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "jwt_sidecar_verification_duration_seconds" {
			continue
		}
		for _, metric := range mf.GetMetric() {
			if metric.GetLabel()[0].GetValue() != "jwt" {
				continue
			}
			for _, b := range metric.GetHistogram().GetBucket() {
				if b.GetUpperBound() < 5e-6 && b.GetUpperBound() >= 3e-6 && b.GetCumulativeCount() != 1 {
					t.Errorf("bucket le=%g holds %d, want 1", b.GetUpperBound(), b.GetCumulativeCount())
				}
			}
		}
	}
}

// counterValue reads requests_total for one refusal reason.
func counterValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{reason=%q}", name, reason)
	return 0
}

func TestLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg, testLabels).IntrospectionMode()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "jwt_sidecar_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// testLabels are the label sets main passes, written out: the metrics
// package knows none of them itself.
var testLabels = metrics.Labels{
	Passed: []string{"allowed", "public"},
	Refusals: map[string]string{
		"missing": "unauthenticated", "malformed": "unauthenticated", "bad_signature": "unauthenticated",
		"expired": "unauthenticated", "not_yet_valid": "unauthenticated", "bad_issuer": "unauthenticated",
		"bad_audience": "unauthenticated", "bad_algorithm": "unauthenticated", "unknown_key": "unauthenticated",
		"insufficient_scope": "forbidden", "denied": "forbidden",
		"inactive": "unauthenticated", "unavailable": "unavailable",
	},
	Modes:                []string{"jwt", "introspection"},
	UpstreamErrors:       []string{"timeout", "unreachable", "canceled"},
	SkewClaims:           []string{"exp", "nbf", "iat"},
	IntrospectionResults: []string{"active", "inactive", "timeout", "error", "bad_response"},
}
