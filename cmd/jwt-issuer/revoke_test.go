package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// revoke posts token to /revoke as client id:secret.
func revoke(t *testing.T, base, id, secret, token string) (*http.Response, []byte) {
	t.Helper()
	return postForm(t, base+"/revoke", basic(id, secret), url.Values{"token": {token}, "token_type_hint": {"access_token"}})
}

func TestRevokeThenIntrospect(t *testing.T) {
	s, base := testServer(t, nil)
	newTestClock(s, t0)
	tok := issueToken(t, base, nil)
	other := issueToken(t, base, nil)
	if got := introspect(t, base, tok); got["active"] != true {
		t.Fatalf("before revocation: %v, want active", got)
	}

	resp, body := revoke(t, base, "demo", "demo-secret", tok)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("revoke = %d %q, want 200 and no body", resp.StatusCode, body)
	}
	if got := introspect(t, base, tok); got["active"] != false {
		t.Errorf("after revocation: %v, want active false", got)
	}
	if got := introspect(t, base, other); got["active"] != true {
		t.Errorf("another token of the same client: %v, want still active", got)
	}
	if got := testutil.ToFloat64(s.metrics.revocations); got != 1 {
		t.Errorf("revocations_total = %v, want 1", got)
	}

	// Again, and with tokens that are not valid: 200 each time (RFC 7009
	// §2.2), and nothing more is counted.
	expired := signOwn(t, s, t0, func(c jwt.MapClaims) { c["exp"] = t0.Add(-time.Minute).Unix() })
	for name, token := range map[string]string{"again": tok, "garbage": "garbage", "expired": expired} {
		if resp, body := revoke(t, base, "demo", "demo-secret", token); resp.StatusCode != http.StatusOK {
			t.Errorf("revoke %s = %d %s, want 200", name, resp.StatusCode, body)
		}
	}
	if got := testutil.ToFloat64(s.metrics.revocations); got != 1 {
		t.Errorf("revocations_total = %v, want still 1", got)
	}
}

// TestRevokeOtherClientsToken: RFC 7009 §2.1 has the server check that the
// token was issued to the requesting client. A valid token of another client
// is refused with 400 invalid_grant and stays active.
func TestRevokeOtherClientsToken(t *testing.T) {
	s, base := testServer(t, func(c *config) { c.Clients = []string{"demo:demo-secret", "mallory:m-secret"} })
	newTestClock(s, t0)
	tok := issueToken(t, base, nil) // issued to demo
	resp, body := revoke(t, base, "mallory", "m-secret", tok)
	var got oauthError
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body is not JSON: %s", body)
	}
	if resp.StatusCode != http.StatusBadRequest || got.Error != "invalid_grant" {
		t.Errorf("revoke by another client = %d %v, want 400 invalid_grant", resp.StatusCode, got)
	}
	if got := introspect(t, base, tok); got["active"] != true {
		t.Errorf("after a refused revocation: %v, want still active", got)
	}
	// A token of mint without client_id belongs to its sub.
	minted := signOwn(t, s, t0, func(c jwt.MapClaims) { delete(c, "client_id"); c["sub"] = "mallory" })
	if resp, body := revoke(t, base, "mallory", "m-secret", minted); resp.StatusCode != http.StatusOK {
		t.Errorf("revoke of own sub token = %d %s, want 200", resp.StatusCode, body)
	}
	if got := introspect(t, base, minted); got["active"] != false {
		t.Errorf("after revocation by its sub: %v, want active false", got)
	}
}

// TestRevokeWithoutJTI: a token without jti is revoked by its hash.
func TestRevokeWithoutJTI(t *testing.T) {
	s, base := testServer(t, nil)
	newTestClock(s, t0)
	a := signOwn(t, s, t0, func(c jwt.MapClaims) { delete(c, "jti") })
	b := signOwn(t, s, t0, func(c jwt.MapClaims) { delete(c, "jti"); c["scope"] = "other" })
	if resp, _ := revoke(t, base, "demo", "demo-secret", a); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke = %d", resp.StatusCode)
	}
	if got := introspect(t, base, a); got["active"] != false {
		t.Errorf("revoked token without jti: %v, want active false", got)
	}
	if got := introspect(t, base, b); got["active"] != true {
		t.Errorf("another token without jti: %v, want active true", got)
	}
}

// TestRevocationsAreForgotten: a revoked jti is kept until the token's exp,
// and swept after it, so the list does not grow without bound.
func TestRevocationsAreForgotten(t *testing.T) {
	s, base := testServer(t, func(c *config) { c.TokenTTL = 5 * time.Minute })
	clock := newTestClock(s, t0)
	for range 3 {
		if resp, _ := revoke(t, base, "demo", "demo-secret", issueToken(t, base, nil)); resp.StatusCode != http.StatusOK {
			t.Fatal("revoke failed")
		}
	}
	if n := s.revoked.len(); n != 3 {
		t.Fatalf("revoked entries = %d, want 3", n)
	}
	clock.Set(t0.Add(5*time.Minute + sweepInterval + time.Second))
	if resp, _ := revoke(t, base, "demo", "demo-secret", issueToken(t, base, nil)); resp.StatusCode != http.StatusOK {
		t.Fatal("revoke failed")
	}
	if n := s.revoked.len(); n != 1 {
		t.Errorf("revoked entries after the first tokens expired = %d, want 1", n)
	}
}

func TestExpirySet(t *testing.T) {
	set := newExpirySet[string]()
	if !set.add("a", t0.Add(time.Minute), t0) {
		t.Fatal("first add refused")
	}
	if set.add("a", t0.Add(time.Hour), t0.Add(30*time.Second)) {
		t.Error("second add of a live key accepted")
	}
	if !set.contains("a", t0.Add(time.Minute)) || set.contains("a", t0.Add(time.Minute+time.Nanosecond)) {
		t.Error("a is not held exactly until its deadline")
	}
	if !set.add("a", t0.Add(time.Hour), t0.Add(2*time.Minute)) {
		t.Error("add of an expired key refused")
	}
	if !set.add("past", t0, t0.Add(3*time.Minute)) || set.len() != 1 {
		t.Errorf("a key already past its deadline was stored (len %d)", set.len())
	}
}
