// Package e2etest runs the revocation pieces together before the proxy is
// wired: the real dev issuer binary (its /token, /revoke, /revoke-subject
// and /revocations), its real JWKS for verification, and a revocation
// store polling it.
package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/revocation"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

var issuerBin string

func TestMain(m *testing.M) {
	bin, cleanup, err := proctest.Build("../../cmd/jwt-issuer", "jwt-issuer")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	issuerBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// pollInterval is the store's REVOCATION_REFRESH_INTERVAL here: short, so
// the test is quick, and long enough next to a fetch on a loaded machine.
const pollInterval = 400 * time.Millisecond

// issuer is a running jwt-issuer.
type issuer struct {
	*proctest.Process
	base string
}

func startIssuer(t *testing.T) *issuer {
	t.Helper()
	addr := proctest.FreeAddr(t)
	base := "http://" + addr
	p := proctest.Start(t, issuerBin, []string{"LISTEN_ADDR=" + addr, "ISSUER_URL=" + base, "TOKEN_TTL=10m"})
	p.WaitFor(t, base+"/healthz", http.StatusOK)
	return &issuer{Process: p, base: base}
}

func (is *issuer) post(t *testing.T, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, is.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("demo", "demo-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// token gets a token and verifies it against the issuer's real JWKS, the
// way the sidecar does, returning the raw token and its claims.
func (is *issuer) token(t *testing.T, kf keyfunc.Keyfunc) (string, jwt.MapClaims) {
	t.Helper()
	status, body := is.post(t, "/token", url.Values{"grant_type": {"client_credentials"}})
	tok, _ := body["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("token = %d %v", status, body)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, kf.Keyfunc, jwt.WithIssuer(is.base), jwt.WithValidMethods([]string{"RS256"})); err != nil {
		t.Fatalf("verify: %v", err)
	}
	return tok, claims
}

// revoked asks the store about verified claims, as the verifier will.
func revoked(s *revocation.Store, c jwt.MapClaims) bool {
	iss, _ := c.GetIssuer()
	sub, _ := c.GetSubject()
	jti, _ := c["jti"].(string)
	var at time.Time
	if iat, err := c.GetIssuedAt(); err == nil && iat != nil {
		at = iat.Time
	}
	return s.Revoked(iss, jti, sub, at)
}

// waitUntil polls cond until it holds or the deadline passes, and returns
// how long it took.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond) // the poll interval of the test, not a wait for readiness
	}
	return time.Since(start)
}

// results counts what the store's sources reported.
type results struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *results) Fetch(_, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[result]++
}
func (r *results) Loaded(string, int, int, time.Time) {}
func (r *results) Logout(string)                      {}
func (r *results) count(result string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[result]
}

// TestRevocationThroughIssuer: a token revoked at the issuer's /revoke, and
// then every token of its subject revoked at /revoke-subject, are refused
// by a store polling /revocations within one poll interval; other tokens
// stay valid. Then the issuer goes away: the running store keeps its list
// and reports its age, and a store restarted with the cache dir starts
// with the list while the issuer is down.
func TestRevocationThroughIssuer(t *testing.T) {
	is := startIssuer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	kf, err := keyfunc.NewDefaultCtx(ctx, []string{is.base + "/.well-known/jwks.json"})
	if err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	rec := &results{}
	store, err := revocation.New(revocation.Options{URL: is.base + "/revocations", RefreshInterval: pollInterval, CacheDir: cacheDir, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- store.Run(ctx) }()
	waitUntil(t, "the store loads the list", 10*time.Second, store.Ready)

	tokA, a := is.token(t, kf)
	_, b := is.token(t, kf)
	if revoked(store, a) || revoked(store, b) {
		t.Fatal("fresh tokens are revoked")
	}

	// The unchanged list is polled with If-None-Match and answered 304.
	waitUntil(t, "a poll is answered 304 Not Modified", 5*time.Second, func() bool { return rec.count(revocation.FetchNotModified) > 0 })

	// One token, by jti. Time runs from the issuer's answer: the store
	// learns it at its next poll, at most one interval (plus 10% jitter and
	// the fetch) later.
	if status, body := is.post(t, "/revoke", url.Values{"token": {tokA}}); status != http.StatusOK {
		t.Fatalf("revoke = %d %v", status, body)
	}
	took := waitUntil(t, "the revoked token is refused", 5*time.Second, func() bool { return revoked(store, a) })
	t.Logf("revocation by jti reached the store in %s (poll interval %s)", took.Round(time.Millisecond), pollInterval)
	if limit := pollInterval*11/10 + 300*time.Millisecond; took > limit {
		t.Errorf("the revocation took %s, more than one poll interval (%s with jitter and a fetch)", took, limit)
	}
	if revoked(store, b) {
		t.Fatal("the other token is revoked too")
	}

	// Every token of the subject.
	if status, body := is.post(t, "/revoke-subject", url.Values{}); status != http.StatusOK {
		t.Fatalf("revoke-subject = %d %v", status, body)
	}
	took = waitUntil(t, "the subject's other token is refused", 5*time.Second, func() bool { return revoked(store, b) })
	t.Logf("revocation by subject reached the store in %s", took.Round(time.Millisecond))
	if limit := pollInterval*11/10 + 300*time.Millisecond; took > limit {
		t.Errorf("the subject revocation took %s, more than one poll interval", took)
	}

	// The issuer goes away: the list keeps serving, fetches fail, age grows.
	_ = is.Cmd.Process.Kill()
	is.ExitCode(t)
	waitUntil(t, "a fetch fails", 5*time.Second, func() bool { return rec.count(revocation.FetchError) > 0 })
	if !revoked(store, a) || !revoked(store, b) || !store.Ready() {
		t.Error("an outage of the list server dropped revocations or readiness")
	}
	st := store.Status()[0]
	if st.LastError == "" || st.Age <= 0 {
		t.Errorf("status during the outage = %+v", st)
	}

	// A restart during the outage: the cached list is served at once.
	rec2 := &results{}
	again, err := revocation.New(revocation.Options{URL: is.base + "/revocations", RefreshInterval: pollInterval, CacheDir: cacheDir, Recorder: rec2})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = again.Run(ctx) }()
	waitUntil(t, "the restarted store loads the cache", 5*time.Second, again.Ready)
	if !revoked(again, a) || !revoked(again, b) {
		t.Error("the restarted store does not refuse what was revoked")
	}
	if rec2.count(revocation.FetchFromDisk) != 1 {
		t.Errorf("restart results = %v, want one from_disk", rec2.n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}
