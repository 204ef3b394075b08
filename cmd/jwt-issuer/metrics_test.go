package main

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/test/promtest"
)

// scrape fetches /metrics over HTTP and parses the text exposition.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := get(t, http.DefaultClient, base+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics status = %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// series finds the metric of family name whose labels are exactly labels
// ("k=v" pairs), or nil.
func series(families map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	f := families[name]
	if f == nil {
		return nil
	}
	want := strings.Join(labels, ",")
	for _, m := range f.GetMetric() {
		pairs := make([]string, 0, len(m.GetLabel()))
		for _, l := range m.GetLabel() {
			pairs = append(pairs, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(pairs, ",") == want {
			return m
		}
	}
	return nil
}

// value is the counter or gauge value of a series; it fails when the series
// does not exist.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := series(families, name, labels...)
	switch {
	case m == nil:
		t.Fatalf("series %s{%s} does not exist", name, strings.Join(labels, ","))
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("series %s is neither counter nor gauge", name)
	return 0
}

// observations is the sample count of a histogram series.
func observations(t *testing.T, families map[string]*dto.MetricFamily, name string, labels ...string) uint64 {
	t.Helper()
	m := series(families, name, labels...)
	if m == nil || m.Histogram == nil {
		t.Fatalf("histogram %s{%s} does not exist", name, strings.Join(labels, ","))
	}
	return m.Histogram.GetSampleCount()
}

// TestMetricsSeriesExistAtStart: every known series is there, at zero,
// before any request (the first scrape counts only after it is answered).
func TestMetricsSeriesExistAtStart(t *testing.T) {
	_, base := testServer(t, nil)
	fams := scrape(t, base)
	// Every histogram's bounds are exact decimals (le="0.001").
	promtest.CheckBucketBounds(t, promtest.Scrape(t, base+"/metrics"), "jwt_issuer_request_duration_seconds")
	for ep, codes := range endpointCodes {
		for _, c := range codes {
			if v := value(t, fams, "jwt_issuer_requests_total", "code="+strconv.Itoa(c), "endpoint="+ep); v != 0 {
				t.Errorf("requests_total{%s,%d} = %v, want 0", ep, c, v)
			}
		}
		if n := observations(t, fams, "jwt_issuer_request_duration_seconds", "endpoint="+ep); n != 0 {
			t.Errorf("duration{%s} count = %d, want 0", ep, n)
		}
	}
	for _, ep := range []string{"token", "introspect", "revoke", "jwks", "discovery", "healthz", "metrics"} {
		if _, ok := endpointCodes[ep]; !ok {
			t.Errorf("endpoint %s has no series", ep)
		}
	}
	zero := [][]string{
		{"jwt_issuer_tokens_issued_total", "grant=client_credentials"},
		{"jwt_issuer_tokens_issued_total", "grant=jwt_bearer"},
		{"jwt_issuer_introspections_total", "active=true"},
		{"jwt_issuer_introspections_total", "active=false"},
		{"jwt_issuer_revocations_total"},
	}
	for _, z := range zero {
		if v := value(t, fams, z[0], z[1:]...); v != 0 {
			t.Errorf("%v = %v, want 0", z, v)
		}
	}
	if v := value(t, fams, "jwt_issuer_build_info", "version="+cli.Version(version)); v != 1 {
		t.Errorf("build_info = %v, want 1", v)
	}
	if fams["go_goroutines"] == nil || fams["process_cpu_seconds_total"] == nil {
		t.Error("the Go and process collectors are missing")
	}
}

// TestMetricsCountRequests drives every endpoint over HTTP and reads the
// counts back from /metrics.
func TestMetricsCountRequests(t *testing.T) {
	s, base := testServer(t, nil)
	newTestClock(s, t0)
	tokA := issueToken(t, base, nil)
	tokB := issueToken(t, base, nil)
	if resp, _ := postForm(t, base+"/token", basic("demo", "wrong"), url.Values{"grant_type": {"client_credentials"}}); resp.StatusCode != 401 {
		t.Fatalf("bad secret: status %d", resp.StatusCode)
	}
	if resp, _ := postForm(t, base+"/token", basic("demo", "demo-secret"), url.Values{"grant_type": {"password"}}); resp.StatusCode != 400 {
		t.Fatalf("bad grant: status %d", resp.StatusCode)
	}
	introspect(t, base, tokA)
	introspect(t, base, tokB)
	introspect(t, base, "garbage")
	if resp, _ := revoke(t, base, "demo", "demo-secret", tokA); resp.StatusCode != 200 {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}
	if got := introspect(t, base, tokA); got["active"] != false {
		t.Fatalf("revoked token still active")
	}
	for _, path := range []string{"/token", "/healthz", "/.well-known/jwks.json", "/.well-known/openid-configuration", "/metrics"} {
		get(t, http.DefaultClient, base+path)
	}
	// Unknown paths belong to no endpoint.
	if resp, _ := get(t, http.DefaultClient, base+"/nope"); resp.StatusCode != 404 {
		t.Fatalf("/nope status %d, want 404", resp.StatusCode)
	}

	fams := scrape(t, base)
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"jwt_issuer_requests_total", []string{"code=200", "endpoint=token"}, 2},
		{"jwt_issuer_requests_total", []string{"code=401", "endpoint=token"}, 1},
		{"jwt_issuer_requests_total", []string{"code=400", "endpoint=token"}, 1},
		{"jwt_issuer_requests_total", []string{"code=405", "endpoint=token"}, 1},
		{"jwt_issuer_requests_total", []string{"code=200", "endpoint=introspect"}, 4},
		{"jwt_issuer_requests_total", []string{"code=200", "endpoint=revoke"}, 1},
		{"jwt_issuer_requests_total", []string{"code=200", "endpoint=healthz"}, 1},
		{"jwt_issuer_requests_total", []string{"code=200", "endpoint=jwks"}, 1},
		{"jwt_issuer_requests_total", []string{"code=200", "endpoint=discovery"}, 1},
		{"jwt_issuer_requests_total", []string{"code=200", "endpoint=metrics"}, 1}, // this scrape is not counted yet
		{"jwt_issuer_tokens_issued_total", []string{"grant=client_credentials"}, 2},
		{"jwt_issuer_tokens_issued_total", []string{"grant=jwt_bearer"}, 0},
		{"jwt_issuer_introspections_total", []string{"active=true"}, 2},
		{"jwt_issuer_introspections_total", []string{"active=false"}, 2},
		{"jwt_issuer_revocations_total", nil, 1},
	}
	for _, w := range want {
		if got := value(t, fams, w.name, w.labels...); got != w.value {
			t.Errorf("%s{%s} = %v, want %v", w.name, strings.Join(w.labels, ","), got, w.value)
		}
	}
	for ep, n := range map[string]uint64{"token": 5, "introspect": 4, "revoke": 1, "metrics": 1} {
		if got := observations(t, fams, "jwt_issuer_request_duration_seconds", "endpoint="+ep); got != n {
			t.Errorf("duration{%s} count = %d, want %d", ep, got, n)
		}
	}
	if f := fams["jwt_issuer_requests_total"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && endpointCodes[l.GetValue()] == nil {
					t.Errorf("unexpected endpoint label %q", l.GetValue())
				}
			}
		}
	}
}

// TestMetricsLint runs client_golang's linter (the checks of promtool
// check metrics) over the issuer's registry.
func TestMetricsLint(t *testing.T) {
	s, _ := testServer(t, nil)
	problems, err := testutil.GatherAndLint(s.registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, namespace) {
			t.Errorf("lint %s: %s", p.Metric, p.Text)
		}
	}
}
