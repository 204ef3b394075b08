package jwttest

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The sidecar's client credentials. The ':' and '%' only survive HTTP Basic
// if both are form-urlencoded before base64 (RFC 6749 §2.3.1), which the
// token service below insists on.
const (
	IntrospectionClientID     = "sidecar:one"
	IntrospectionClientSecret = "s3cr%t +/é"
)

// TokenService is a real RFC 7662 endpoint on 127.0.0.1. It authenticates
// its caller with HTTP Basic, reads the form, answers {"active":false} for
// any token it does not know, and counts its calls. A test can revoke a
// token, hold calls, or replace the answer with a status or a raw body.
type TokenService struct {
	*httptest.Server
	Calls atomic.Int64

	mu        sync.Mutex
	answers   map[string]map[string]any // token → claims of an active token
	AnyActive map[string]any            // when set, every token is active with these claims
	Status    int                       // when set, every answer has this status
	Raw       []byte                    // when set, every 200 answer is this body
	Block     chan struct{}             // when set, calls wait on it
	lastForm  url.Values
	problems  []string // protocol violations by the caller
}

func NewTokenService(t testing.TB) *TokenService {
	t.Helper()
	ts := &TokenService{answers: map[string]map[string]any{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, p := range ts.problems {
			t.Errorf("token service: %s", p)
		}
	})
	return ts
}

// NewTLSTokenService is NewTokenService over HTTPS with cert (a private
// CA's certificate, say), for tests of the client's trust.
func NewTLSTokenService(t testing.TB, cert tls.Certificate) *TokenService {
	t.Helper()
	ts := &TokenService{answers: map[string]map[string]any{}}
	ts.Server = httptest.NewUnstartedServer(http.HandlerFunc(ts.serve))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func (ts *TokenService) serve(w http.ResponseWriter, r *http.Request) {
	ts.Calls.Add(1)
	ts.mu.Lock()
	block, status, raw := ts.Block, ts.Status, ts.Raw
	ts.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	// RFC 7662 §2.1: POST, a form, and an authenticated caller.
	user, pass, ok := r.BasicAuth()
	id, errID := url.QueryUnescape(user)
	secret, errSecret := url.QueryUnescape(pass)
	if !ok || errID != nil || errSecret != nil || id != IntrospectionClientID || secret != IntrospectionClientSecret {
		w.Header().Set("WWW-Authenticate", `Basic realm="token-service"`)
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		ts.problem("got %s with Content-Type %q, want a POSTed form", r.Method, r.Header.Get("Content-Type"))
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if err := r.ParseForm(); err != nil || len(r.PostForm["token"]) != 1 || r.PostForm.Get("token_type_hint") != "access_token" || len(r.URL.RawQuery) > 0 {
		ts.problem("bad form %v (query %q, err %v)", r.PostForm, r.URL.RawQuery, err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	ts.mu.Lock()
	ts.lastForm = r.PostForm
	claims, known := ts.answers[r.PostForm.Get("token")]
	if ts.AnyActive != nil {
		claims, known = ts.AnyActive, true
	}
	ts.mu.Unlock()
	if status != 0 {
		w.Header().Set("Location", "/elsewhere")
		w.WriteHeader(status)
		io.WriteString(w, `{"error":"server_error"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if raw != nil {
		w.Write(raw)
		return
	}
	answer := map[string]any{"active": false}
	if known {
		answer = map[string]any{"active": true}
		for k, v := range claims {
			answer[k] = v
		}
	}
	json.NewEncoder(w).Encode(answer)
}

func (ts *TokenService) problem(format string, args ...any) {
	b, _ := json.Marshal([]any{format, args})
	ts.mu.Lock()
	ts.problems = append(ts.problems, string(b))
	ts.mu.Unlock()
}

// Activate makes token active with claims.
func (ts *TokenService) Activate(token string, claims map[string]any) {
	ts.mu.Lock()
	ts.answers[token] = claims
	ts.mu.Unlock()
}

// Revoke makes token inactive from now on (RFC 7009).
func (ts *TokenService) Revoke(token string) {
	ts.mu.Lock()
	delete(ts.answers, token)
	ts.mu.Unlock()
}

// Set changes the service under its lock.
func (ts *TokenService) Set(f func(ts *TokenService)) {
	ts.mu.Lock()
	f(ts)
	ts.mu.Unlock()
}

// Form is the last form the service was sent.
func (ts *TokenService) Form() url.Values {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.lastForm
}

// ActiveClaims is what the token service says about a valid token at base:
// RFC 7662 §2.2 members plus a realm claim.
func ActiveClaims() map[string]any {
	return map[string]any{
		"sub":          "alice",
		"scope":        "read write",
		"client_id":    "app",
		"iss":          IssuerA,
		"aud":          Audience,
		"exp":          Now.Add(10 * time.Minute).Unix(),
		"iat":          Now.Add(-time.Minute).Unix(),
		"token_type":   "Bearer",
		"jti":          "jti-1",
		"realm_access": map[string]any{"roles": []string{"admin", "user"}},
	}
}
