package main

import (
	"net/http"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/promtest"
)

// TestHistogramBoundsAreDecimals scrapes the real binary's /metrics: every
// histogram's le bounds are exact decimals, so hand-written PromQL and SLO
// rules (le="0.001") match a bound.
func TestHistogramBoundsAreDecimals(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up, _ := recordingUpstream(t)
	s := startSidecar(t, map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL})
	s.waitFor(t, "/readyz", http.StatusOK)
	if resp := s.get(t, "/x", token(t, k)); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	text := promtest.Scrape(t, "http://"+s.admin+"/metrics")
	got := promtest.CheckBucketBounds(t, text, "jwt_sidecar_verification_duration_seconds",
		"jwt_sidecar_upstream_duration_seconds", "jwt_sidecar_token_age_seconds")
	t.Logf("histograms checked: %v", got)
}
