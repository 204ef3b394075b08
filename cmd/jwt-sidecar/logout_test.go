package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwt-sidecar/jwt-sidecar/revocation"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// TestBackChannelLogoutThroughSidecar: the wired sidecar's listener handler
// takes an OpenID Connect back-channel logout at BACKCHANNEL_LOGOUT_PATH,
// verified with the provider's keys; the subject's tokens issued before it
// are then refused as revoked (a cached one too) and never reach the
// upstream; a token issued after passes; a replayed logout is refused.
func TestBackChannelLogoutThroughSidecar(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, jwttest.JWKS(t, k), 0o600); err != nil {
		t.Fatal(err)
	}
	up, seen := recordingUpstream(t)
	_, a, err := quietApp(map[string]string{
		"UPSTREAM_URL": up.URL, "JWKS_FILE": jwks, "ISSUERS": testIssuer, "AUDIENCES": "api",
		"REQUIRED_SCOPES":         "read", // logout tokens have no scope, and still pass
		"BACKCHANNEL_LOGOUT_PATH": "/backchannel-logout",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.rt.loadOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	access := func(iat time.Time) string {
		return k.Sign(t, jwt.MapClaims{"iss": testIssuer, "sub": "alice", "aud": "api", "scope": "read",
			"iat": iat.Unix(), "exp": now.Add(time.Hour).Unix()})
	}
	serve := func(tok string) int {
		r := httptest.NewRequest(http.MethodGet, "/orders", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		a.handler.ServeHTTP(rec, r)
		return rec.Code
	}
	logout := k.Sign(t, jwt.MapClaims{"iss": testIssuer, "sub": "alice", "aud": "api", "jti": "logout-1",
		"iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"events": map[string]any{revocation.BackChannelLogoutEvent: map[string]any{}}})
	post := func(tok string) int {
		r := httptest.NewRequest(http.MethodPost, "/backchannel-logout", strings.NewReader(url.Values{"logout_token": {tok}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		a.handler.ServeHTTP(rec, r)
		return rec.Code
	}

	old := access(now.Add(-time.Minute))
	if got := serve(old); got != http.StatusOK {
		t.Fatalf("before the logout = %d", got)
	}
	reached := seen.Load()
	if got := post(logout); got != http.StatusOK {
		t.Fatalf("logout = %d", got)
	}
	if got := serve(old); got != http.StatusUnauthorized {
		t.Errorf("a cached token of the logged-out subject = %d, want 401", got)
	}
	if got := post(logout); got != http.StatusBadRequest {
		t.Errorf("a replayed logout = %d, want 400", got)
	}
	if got := post(access(now)); got != http.StatusBadRequest {
		t.Errorf("an access token as logout token = %d, want 400", got)
	}
	if seen.Load() != reached {
		t.Errorf("the upstream saw %d refused or logout requests", seen.Load()-reached)
	}
	if got := serve(access(now.Add(2 * time.Second))); got != http.StatusOK {
		t.Errorf("a token issued after the logout = %d", got)
	}
	want := `# HELP jwt_sidecar_backchannel_logouts_total OpenID Connect back-channel logout requests by result (ok, invalid, replayed, unsupported).
# TYPE jwt_sidecar_backchannel_logouts_total counter
jwt_sidecar_backchannel_logouts_total{result="invalid"} 1
jwt_sidecar_backchannel_logouts_total{result="ok"} 1
jwt_sidecar_backchannel_logouts_total{result="replayed"} 1
jwt_sidecar_backchannel_logouts_total{result="unsupported"} 0
`
	if err := testutil.GatherAndCompare(a.reg, strings.NewReader(want), "jwt_sidecar_backchannel_logouts_total"); err != nil {
		t.Error(err)
	}
}
