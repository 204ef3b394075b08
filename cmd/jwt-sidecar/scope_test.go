package main

import (
	"net/http"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// TestScopeChallengeFromConfigFile: the scopes a CONFIG_FILE rule
// requires are named in its 403 challenge (RFC 6750 §3.1), and the
// environment's REQUIRED_SCOPES in the one provider's.
func TestScopeChallengeFromConfigFile(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	jwks, _ := countingJWKS(t, k)
	f := startFileApp(t, t.TempDir(), `providers:
  - {name: idp, issuer: `+idpIssuer+`, jwks_url: `+jwks.URL+`, audiences: [api]}
rules:
  - {name: orders, match: {prefix: /orders}, require: idp, scopes: [orders:read, orders:write]}
`, nil)
	tok := signFor(t, k, idpIssuer, "api", "scope", "orders:read")
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `Bearer realm="jwt-sidecar", error="insufficient_scope", error_description="the token lacks a required scope or claim", scope="orders:read orders:write"`
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("status %d, challenge %q\nwant 403, %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	if n := f.seen.Load(); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}

	k2 := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k2, true)
	up, seen := recordingUpstream(t)
	s := startSidecar(t, map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL, "REQUIRED_SCOPES": "read,write"})
	s.waitFor(t, "/readyz", http.StatusOK)
	resp = s.get(t, "/x", token(t, k2))
	want = `Bearer realm="jwt-sidecar", error="insufficient_scope", error_description="the token lacks a required scope or claim", scope="read write"`
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("REQUIRED_SCOPES: status %d, challenge %q\nwant 403, %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}
