package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

func challenge(desc string) string {
	return `Bearer realm="jwt-sidecar", error="invalid_token", error_description="` + desc + `"`
}

// TestSpecResponses drives every SPEC response with real tokens and checks
// status, challenge, body, metrics, and that refusals never reach upstream.
func TestSpecResponses(t *testing.T) {
	k := allKeys(t)
	valid := claims(issA)
	tests := []struct {
		name          string
		req           func() *http.Request
		wantStatus    int
		wantChallenge string
		wantError     string
		wantDesc      string
		wantOutcome   string
		wantReason    string
	}{
		{
			name:          "no token",
			req:           func() *http.Request { return get("/api") },
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: `Bearer realm="jwt-sidecar"`,
			wantError:     "unauthorized",
			wantDesc:      "a bearer token is required",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "missing",
		},
		{
			name:          "basic credentials are no token",
			req:           func() *http.Request { r := get("/api"); r.SetBasicAuth("u", "p"); return r },
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: `Bearer realm="jwt-sidecar"`,
			wantError:     "unauthorized",
			wantDesc:      "a bearer token is required",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "missing",
		},
		{
			name:          "malformed",
			req:           func() *http.Request { return bearer("/api", "not-a-jwt") },
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: challenge("the token is malformed"),
			wantError:     "invalid_token",
			wantDesc:      "the token is malformed",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "malformed",
		},
		{
			name:          "bad signature",
			req:           func() *http.Request { return bearer("/api", k.other.Sign(t, valid)) },
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: challenge("the token signature is invalid"),
			wantError:     "invalid_token",
			wantDesc:      "the token signature is invalid",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "bad_signature",
		},
		{
			name: "expired",
			req: func() *http.Request {
				return bearer("/api", k.rsa.Sign(t, with(valid, "exp", base.Add(-time.Hour).Unix())))
			},
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: challenge("the token has expired"),
			wantError:     "invalid_token",
			wantDesc:      "the token has expired",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "expired",
		},
		{
			name: "not yet valid",
			req: func() *http.Request {
				return bearer("/api", k.rsa.Sign(t, with(valid, "nbf", base.Add(time.Hour).Unix())))
			},
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: challenge("the token is not valid yet"),
			wantError:     "invalid_token",
			wantDesc:      "the token is not valid yet",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "not_yet_valid",
		},
		{
			name:          "bad issuer",
			req:           func() *http.Request { return bearer("/api", k.rsa.Sign(t, with(valid, "iss", "https://evil.test"))) },
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: challenge("the token issuer is not accepted"),
			wantError:     "invalid_token",
			wantDesc:      "the token issuer is not accepted",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "bad_issuer",
		},
		{
			name:          "bad audience",
			req:           func() *http.Request { return bearer("/api", k.rsa.Sign(t, with(valid, "aud", "other"))) },
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: challenge("the token audience is not accepted"),
			wantError:     "invalid_token",
			wantDesc:      "the token audience is not accepted",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "bad_audience",
		},
		{
			name: "bad algorithm",
			req: func() *http.Request {
				tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, valid).SignedString([]byte(strings.Repeat("s", 32)))
				if err != nil {
					t.Fatal(err)
				}
				return bearer("/api", tok)
			},
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: challenge("the token algorithm is not allowed"),
			wantError:     "invalid_token",
			wantDesc:      "the token algorithm is not allowed",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "bad_algorithm",
		},
		{
			name: "unknown key",
			req: func() *http.Request {
				return bearer("/api", signer{KID: "nope", Alg: "RS256", Key: k.rsa.Key}.Sign(t, valid))
			},
			wantStatus:    http.StatusUnauthorized,
			wantChallenge: challenge("the token signing key is unknown"),
			wantError:     "invalid_token",
			wantDesc:      "the token signing key is unknown",
			wantOutcome:   string(verifier.Unauthenticated),
			wantReason:    "unknown_key",
		},
		{
			name: "two tokens",
			req: func() *http.Request {
				r := bearer("/api", k.rsa.Sign(t, valid))
				r.Header.Add("Authorization", "Bearer "+k.ec.Sign(t, valid))
				return r
			},
			wantStatus:    http.StatusBadRequest,
			wantChallenge: `Bearer realm="jwt-sidecar", error="invalid_request", error_description="the request must carry exactly one bearer token, as Authorization: Bearer <token>"`,
			wantError:     "invalid_request",
			wantDesc:      "the request must carry exactly one bearer token, as Authorization: Bearer <token>",
			wantOutcome:   string(verifier.BadRequest),
			wantReason:    "invalid_request",
		},
		{
			name:          "insufficient scope",
			req:           func() *http.Request { return bearer("/api", k.rsa.Sign(t, with(valid, "scope", "write"))) },
			wantStatus:    http.StatusForbidden,
			wantChallenge: `Bearer realm="jwt-sidecar", error="insufficient_scope", error_description="the token lacks a required scope or claim", scope="read"`,
			wantError:     "insufficient_scope",
			wantDesc:      "the token lacks a required scope or claim",
			wantOutcome:   string(verifier.Forbidden),
			wantReason:    "insufficient_scope",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, nil)
			rec := h.serve(tt.req())
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Values("WWW-Authenticate"); len(got) != 1 || got[0] != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.wantChallenge)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			body := errorBodyOf(t, rec)
			if body["error"] != tt.wantError || body["error_description"] != tt.wantDesc || len(body) != 2 {
				t.Errorf("body = %v, want error %q, error_description %q", body, tt.wantError, tt.wantDesc)
			}
			if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": tt.wantOutcome, "reason": tt.wantReason}); got != 1 {
				t.Errorf("requests_total{%s,%s} = %v, want 1", tt.wantOutcome, tt.wantReason, got)
			}
			if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": string(verifier.Allowed), "reason": ""}); got != 0 {
				t.Errorf("requests_total{allowed} = %v, want 0", got)
			}
			if got := histogramCount(t, h.reg, "jwt_sidecar_verification_duration_seconds", map[string]string{"mode": "jwt"}); got != 1 {
				t.Errorf("verification observations = %d, want 1", got)
			}
			if got := len(h.upstream.requests()); got != 0 {
				t.Errorf("upstream saw %d requests, want 0", got)
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	k := allKeys(t)
	tests := []struct {
		name   string
		signer signer
	}{
		{name: "RS256", signer: k.rsa},
		{name: "ES256", signer: k.ec},
		{name: "EdDSA", signer: k.ed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.PayloadHeader = "X-Auth-Payload" })
			tok := tt.signer.Sign(t, claims(issA))
			rec := h.serve(bearer("/api/items?x=1", tok))
			if rec.Code != http.StatusOK || rec.Body.String() != "upstream ok" {
				t.Fatalf("got %d %q, want 200 from upstream", rec.Code, rec.Body.String())
			}
			got := h.upstream.only(t)
			if got.Path != "/api/items" || got.RawQuery != "x=1" {
				t.Errorf("upstream path = %q?%q, want /api/items?x=1", got.Path, got.RawQuery)
			}
			if v := got.Header.Get("X-Auth-Subject"); v != "alice" {
				t.Errorf("X-Auth-Subject = %q, want alice", v)
			}
			if v := got.Header.Get("X-Auth-Roles"); v != "admin,user" {
				t.Errorf("X-Auth-Roles = %q, want admin,user", v)
			}
			if v, want := got.Header.Get("X-Auth-Payload"), strings.Split(tok, ".")[1]; v != want {
				t.Errorf("X-Auth-Payload = %q, want the payload segment %q", v, want)
			}
			if v := got.Header.Get("Authorization"); v != "" {
				t.Errorf("Authorization = %q, want it stripped", v)
			}
			if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": string(verifier.Allowed), "reason": ""}); got != 1 {
				t.Errorf("requests_total{allowed} = %v, want 1", got)
			}
			if got := histogramCount(t, h.reg, "jwt_sidecar_upstream_duration_seconds", nil); got != 1 {
				t.Errorf("upstream observations = %d, want 1", got)
			}
		})
	}
}

// faultyVerifier breaks the Verifier contract: its error carries no Reason.
// It stands in for a bug, which the real verifier cannot be made to have.
type faultyVerifier struct{}

func (faultyVerifier) Verify(context.Context, *http.Request) (verifier.Claims, error) {
	return verifier.Claims{}, errors.New("boom")
}

func TestInternalError(t *testing.T) {
	h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.Verifier = faultyVerifier{} })
	rec := h.serve(bearer("/api", "a.b.c"))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", rec.Code)
	}
	if body := errorBodyOf(t, rec); body["error"] != "internal_error" {
		t.Errorf("body = %v, want error internal_error", body)
	}
	if got := counter(t, h.reg, "jwt_sidecar_internal_errors_total", nil); got != 1 {
		t.Errorf("internal_errors_total = %v, want 1", got)
	}
	if got := len(h.upstream.requests()); got != 0 {
		t.Errorf("upstream saw %d requests, want 0", got)
	}
}

func TestRefusalLog(t *testing.T) {
	k := allKeys(t)
	h := newHarness(t, verifierConfig{}, nil)
	tok := k.rsa.Sign(t, with(claims(issA), "exp", base.Add(-time.Hour).Unix()))
	r := bearer("/secret", tok)
	r.RemoteAddr = "198.51.100.9:4444"
	h.serve(r)
	lines := logLines(t, h.logs)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1: %s", len(lines), h.logs)
	}
	got := lines[0]
	want := map[string]any{
		"level": "INFO", "msg": "request refused", "reason": "expired", "status": float64(401),
		"kid": "rsa-1", "iss": issA, "method": "GET", "path": "/secret", "remote_addr": "198.51.100.9:4444",
	}
	for key, w := range want {
		if got[key] != w {
			t.Errorf("log %s = %v, want %v", key, got[key], w)
		}
	}
	if hash, _ := got["token_hash"].(string); hash == "" {
		t.Errorf("log token_hash is empty")
	}
	if strings.Contains(h.logs.String(), tok) || strings.Contains(h.logs.String(), strings.Split(tok, ".")[2]) {
		t.Errorf("the log contains the token")
	}
	if n := len(h.upstream.requests()); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}

func TestPublicPaths(t *testing.T) {
	k := allKeys(t)
	tok := k.rsa.Sign(t, claims(issA))
	tests := []struct {
		name         string
		target       string
		token        string
		wantStatus   int
		wantOutcome  string
		wantUpstream string // the path the upstream saw; "" for none
	}{
		{name: "public prefix", target: "/public/app.js", wantStatus: 200, wantOutcome: string(verifier.Public), wantUpstream: "/public/app.js"},
		{name: "public exact", target: "/healthz", wantStatus: 200, wantOutcome: string(verifier.Public), wantUpstream: "/healthz"},
		{name: "exact is not a prefix", target: "/healthz/x", wantStatus: 401, wantOutcome: string(verifier.Unauthenticated)},
		{name: "prefix needs its slash", target: "/public", wantStatus: 401, wantOutcome: string(verifier.Unauthenticated)},
		{name: "dot-dot escapes the prefix", target: "/public/../admin", wantStatus: 401, wantOutcome: string(verifier.Unauthenticated)},
		{name: "dot-dot with a token goes to the cleaned path", target: "/public/../admin", token: tok, wantStatus: 200, wantOutcome: string(verifier.Allowed), wantUpstream: "/admin"},
		{name: "encoded slashes are decoded once", target: "/public%2F..%2Fadmin", wantStatus: 401, wantOutcome: string(verifier.Unauthenticated)},
		{name: "encoded slashes with a token", target: "/public%2F..%2Fadmin", token: tok, wantStatus: 200, wantOutcome: string(verifier.Allowed), wantUpstream: "/admin"},
		{name: "double slash", target: "//public/x", wantStatus: 200, wantOutcome: string(verifier.Public), wantUpstream: "/public/x"},
		{name: "double slash exact", target: "//healthz", wantStatus: 200, wantOutcome: string(verifier.Public), wantUpstream: "/healthz"},
		{name: "dot segment", target: "/public/./a//b", wantStatus: 200, wantOutcome: string(verifier.Public), wantUpstream: "/public/a/b"},
		{name: "trailing slash kept", target: "/docs/", wantStatus: 200, wantOutcome: string(verifier.Public), wantUpstream: "/docs/"},
		{name: "trailing slash after cleaning", target: "/docs/x/../", wantStatus: 200, wantOutcome: string(verifier.Public), wantUpstream: "/docs/"},
		{name: "no trailing slash is another path", target: "/docs", wantStatus: 401, wantOutcome: string(verifier.Unauthenticated)},
		{name: "public path with a bad token is still public", target: "/healthz", token: "garbage", wantStatus: 200, wantOutcome: string(verifier.Public), wantUpstream: "/healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, nil)
			r := get(tt.target)
			if tt.token != "" {
				r.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := h.serve(r)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			reqs := h.upstream.requests()
			switch {
			case tt.wantUpstream == "" && len(reqs) != 0:
				t.Errorf("upstream saw %d requests, want 0", len(reqs))
			case tt.wantUpstream != "" && len(reqs) != 1:
				t.Errorf("upstream saw %d requests, want 1", len(reqs))
			case tt.wantUpstream != "" && (reqs[0].Path != tt.wantUpstream || reqs[0].RawPath != ""):
				t.Errorf("upstream path = %q (raw %q), want %q", reqs[0].Path, reqs[0].RawPath, tt.wantUpstream)
			}
			reason := ""
			if tt.wantOutcome == string(verifier.Unauthenticated) {
				reason = "missing"
			}
			if got := counter(t, h.reg, "jwt_sidecar_requests_total", map[string]string{"outcome": tt.wantOutcome, "reason": reason}); got != 1 {
				t.Errorf("requests_total{%s,%s} = %v, want 1", tt.wantOutcome, reason, got)
			}
		})
	}
}

// TestRealServerPaths sends raw request lines through a real listener, so
// that nothing in the test client cleans the path first.
func TestRealServerPaths(t *testing.T) {
	h := newHarness(t, verifierConfig{}, nil)
	front := httptest.NewServer(h.handler)
	t.Cleanup(front.Close)
	tests := []struct {
		name       string
		target     string
		wantStatus int
	}{
		{name: "dot-dot", target: "/public/../admin", wantStatus: 401},
		{name: "encoded", target: "/public%2F..%2Fadmin", wantStatus: 401},
		{name: "encoded dots", target: "/public/%2e%2e/admin", wantStatus: 401},
		{name: "double slash", target: "//public/a", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawRequest(t, front.Listener.Addr().String(), "GET "+tt.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
	for _, r := range h.upstream.requests() {
		if r.Path != "/public/a" {
			t.Errorf("upstream saw %q, want only /public/a", r.Path)
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	tests := []struct {
		name         string
		enabled      bool
		origin       string
		method       string
		wantStatus   int
		wantUpstream int
	}{
		{name: "off by default", enabled: false, origin: "https://app.test", method: "POST", wantStatus: 401, wantUpstream: 0},
		{name: "on", enabled: true, origin: "https://app.test", method: "POST", wantStatus: 200, wantUpstream: 1},
		{name: "on, no Origin", enabled: true, method: "POST", wantStatus: 401, wantUpstream: 0},
		{name: "on, no request method", enabled: true, origin: "https://app.test", wantStatus: 401, wantUpstream: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.CORSPreflight = tt.enabled })
			r := httptest.NewRequest(http.MethodOptions, "/api", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.method != "" {
				r.Header.Set("Access-Control-Request-Method", tt.method)
			}
			rec := h.serve(r)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := len(h.upstream.requests()); got != tt.wantUpstream {
				t.Errorf("upstream saw %d requests, want %d", got, tt.wantUpstream)
			}
		})
	}
	t.Run("a GET with Origin is not a preflight", func(t *testing.T) {
		h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.CORSPreflight = true })
		r := get("/api")
		r.Header.Set("Origin", "https://app.test")
		r.Header.Set("Access-Control-Request-Method", "GET")
		if rec := h.serve(r); rec.Code != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", rec.Code)
		}
		if n := len(h.upstream.requests()); n != 0 {
			t.Errorf("upstream saw %d requests, want 0", n)
		}
	})
}

func TestTokenStripping(t *testing.T) {
	k := allKeys(t)
	tok := k.rsa.Sign(t, claims(issA))
	tests := []struct {
		name       string
		lookups    string
		forward    bool
		req        func() *http.Request
		wantHeader http.Header // headers the upstream must see exactly
		wantQuery  string
	}{
		{
			name:       "header",
			lookups:    "header:Authorization",
			req:        func() *http.Request { return bearer("/a?x=1", tok) },
			wantHeader: http.Header{"Authorization": nil},
			wantQuery:  "x=1",
		},
		{
			name:    "custom header",
			lookups: "header:X-Token",
			req: func() *http.Request {
				r := get("/a")
				r.Header.Set("X-Token", tok)
				r.Header.Set("Authorization", "Basic dTpw")
				return r
			},
			wantHeader: http.Header{"X-Token": nil, "Authorization": {"Basic dTpw"}},
		},
		{
			name:    "cookie",
			lookups: "cookie:session",
			req: func() *http.Request {
				r := get("/a")
				r.Header.Add("Cookie", "theme=dark; session="+tok+"; lang=en")
				r.Header.Add("Cookie", "other=1")
				return r
			},
			wantHeader: http.Header{"Cookie": {"theme=dark; lang=en", "other=1"}},
		},
		{
			name:    "only cookie",
			lookups: "cookie:session",
			req: func() *http.Request {
				r := get("/a")
				r.Header.Add("Cookie", "session="+tok)
				return r
			},
			wantHeader: http.Header{"Cookie": nil},
		},
		{
			name:      "query",
			lookups:   "query:access_token",
			req:       func() *http.Request { return get("/a?a=1&access_token=" + tok + "&b=%20two&c") },
			wantQuery: "a=1&b=%20two&c",
		},
		{
			name:      "query with an escaped name",
			lookups:   "query:access_token",
			req:       func() *http.Request { return get("/a?access%5Ftoken=" + tok + "&b=2") },
			wantQuery: "b=2",
		},
		{
			name:       "forward header",
			lookups:    "header:Authorization",
			forward:    true,
			req:        func() *http.Request { return bearer("/a", tok) },
			wantHeader: http.Header{"Authorization": {"Bearer " + tok}},
		},
		{
			name:    "forward cookie",
			lookups: "cookie:session",
			forward: true,
			req: func() *http.Request {
				r := get("/a")
				r.Header.Add("Cookie", "theme=dark; session="+tok)
				return r
			},
			wantHeader: http.Header{"Cookie": {"theme=dark; session=" + tok}},
		},
		{
			name:      "forward query",
			lookups:   "query:access_token",
			forward:   true,
			req:       func() *http.Request { return get("/a?access_token=" + tok + "&b=2") },
			wantQuery: "access_token=" + tok + "&b=2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookups, err := config.ParseLookups(tt.lookups)
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, verifierConfig{lookups: lookups}, func(o *testOptions) { o.ForwardToken = tt.forward })
			rec := h.serve(tt.req())
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200: %s", rec.Code, rec.Body)
			}
			got := h.upstream.only(t)
			for name, want := range tt.wantHeader {
				if got := got.Header.Values(name); strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("upstream %s = %q, want %q", name, got, want)
				}
			}
			if got.RawQuery != tt.wantQuery {
				t.Errorf("upstream query = %q, want %q", got.RawQuery, tt.wantQuery)
			}
			if got.Header.Get("X-Auth-Subject") != "alice" {
				t.Errorf("X-Auth-Subject = %q, want alice", got.Header.Get("X-Auth-Subject"))
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	k := allKeys(t)
	h := newHarness(t, verifierConfig{}, nil)
	r := bearer("http://app.example/a", k.rsa.Sign(t, claims(issA)))
	r.RemoteAddr = "192.0.2.10:5555"
	r.Header.Add("X-Forwarded-For", "203.0.113.1")
	r.Header.Add("X-Forwarded-For", "198.51.100.2")
	r.Header.Set("X-Forwarded-Host", "forged.example")
	r.Header.Set("Forwarded", "for=1.2.3.4")
	if rec := h.serve(r); rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", rec.Code)
	}
	got := h.upstream.only(t)
	tests := []struct {
		header string
		want   string
	}{
		{header: "X-Forwarded-For", want: "203.0.113.1, 198.51.100.2, 192.0.2.10"},
		{header: "X-Forwarded-Host", want: "app.example"},
		{header: "X-Forwarded-Proto", want: "http"},
		{header: "Forwarded", want: ""},
	}
	for _, tt := range tests {
		if v := strings.Join(got.Header.Values(tt.header), ", "); v != tt.want {
			t.Errorf("%s = %q, want %q", tt.header, v, tt.want)
		}
	}
	if want := h.upstream.Listener.Addr().String(); got.Host != want {
		t.Errorf("upstream Host = %q, want %q", got.Host, want)
	}
}

func TestUpstreamDown(t *testing.T) {
	k := allKeys(t)
	h := newHarness(t, verifierConfig{}, nil)
	h.upstream.Close() // nothing listens on its port any more
	rec := h.serve(bearer("/a", k.rsa.Sign(t, claims(issA))))
	if rec.Code != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", rec.Code)
	}
	if body := errorBodyOf(t, rec); body["error"] != "bad_gateway" {
		t.Errorf("body = %v, want error bad_gateway", body)
	}
	want := `
# HELP jwt_sidecar_upstream_errors_total Forwarded requests that got no upstream response, by kind (timeout, unreachable, canceled).
# TYPE jwt_sidecar_upstream_errors_total counter
jwt_sidecar_upstream_errors_total{kind="canceled"} 0
jwt_sidecar_upstream_errors_total{kind="timeout"} 0
jwt_sidecar_upstream_errors_total{kind="unreachable"} 1
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "jwt_sidecar_upstream_errors_total"); err != nil {
		t.Error(err)
	}
}

// blockingUpstream is an upstream whose handler waits until the test ends.
func blockingUpstream(t *testing.T) (srv *httptest.Server, arrived <-chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	got := make(chan struct{}, 16)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv, got
}

func TestUpstreamTimeout(t *testing.T) {
	k := allKeys(t)
	slow, _ := blockingUpstream(t)
	h := newHarness(t, verifierConfig{}, func(o *testOptions) {
		o.Upstream = mustURL(t, slow.URL)
		o.UpstreamTimeout = 50 * time.Millisecond
	})
	rec := h.serve(bearer("/a", k.rsa.Sign(t, claims(issA))))
	if rec.Code != http.StatusGatewayTimeout {
		t.Errorf("status = %d, want 504", rec.Code)
	}
	if body := errorBodyOf(t, rec); body["error"] != "gateway_timeout" {
		t.Errorf("body = %v, want error gateway_timeout", body)
	}
	if got := counter(t, h.reg, "jwt_sidecar_upstream_errors_total", map[string]string{"kind": "timeout"}); got != 1 {
		t.Errorf("upstream_errors_total{timeout} = %v, want 1", got)
	}
}

func TestClientGone(t *testing.T) {
	k := allKeys(t)
	slow, arrived := blockingUpstream(t)
	h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.Upstream = mustURL(t, slow.URL) })
	ctx, cancel := context.WithCancel(context.Background())
	r := bearer("/a", k.rsa.Sign(t, claims(issA))).WithContext(ctx)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.handler.ServeHTTP(rec, r)
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after the client left")
	}
	if rec.Body.Len() != 0 || rec.Flushed {
		t.Errorf("wrote %q to a client that has gone", rec.Body.String())
	}
	if got := counter(t, h.reg, "jwt_sidecar_upstream_errors_total", map[string]string{"kind": "canceled"}); got != 1 {
		t.Errorf("upstream_errors_total{canceled} = %v, want 1", got)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	up := mustURL(t, "http://127.0.0.1:1")
	v := newVerifier(t, verifierConfig{}, nil)
	tests := []struct {
		name string
		o    testOptions
	}{
		{name: "relative upstream", o: testOptions{Options: Options{Upstream: mustURL(t, "/x")}, Verifier: v}},
		{name: "ftp upstream", o: testOptions{Options: Options{Upstream: mustURL(t, "ftp://h/")}, Verifier: v}},
		{name: "no verifier", o: testOptions{Options: Options{Upstream: up}}},
		{name: "reserved claim header", o: testOptions{Options: Options{Upstream: up}, Verifier: v, ClaimHeaders: []config.ClaimHeader{{Claim: "sub", Header: "Host"}}}},
		{name: "empty claim", o: testOptions{Options: Options{Upstream: up}, Verifier: v, ClaimHeaders: []config.ClaimHeader{{Header: "X-A"}}}},
		{name: "duplicate header", o: testOptions{Options: Options{Upstream: up}, Verifier: v, ClaimHeaders: []config.ClaimHeader{{Claim: "a", Header: "X-A"}, {Claim: "b", Header: "x-a"}}}},
		{name: "payload header is a claim header", o: testOptions{Options: Options{Upstream: up}, Verifier: v, ClaimHeaders: []config.ClaimHeader{{Claim: "a", Header: "X-A"}}, PayloadHeader: "X_A"}},
		{name: "bad payload header", o: testOptions{Options: Options{Upstream: up}, Verifier: v, PayloadHeader: "X A"}},
		{name: "unclean public path", o: testOptions{Options: Options{Upstream: up}, Verifier: v, PublicPaths: []string{"/a/../b"}}},
		{name: "negative timeout", o: testOptions{Options: Options{Upstream: up, UpstreamTimeout: -1}, Verifier: v}},
		{name: "negative idle conns", o: testOptions{Options: Options{Upstream: up, MaxIdleConns: -1}, Verifier: v}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.o.build(); err == nil {
				t.Errorf("New succeeded, want an error")
			}
		})
	}
	if _, err := New(Options{Upstream: up}); err == nil {
		t.Errorf("New without a policy succeeded, want an error")
	}
}

func TestTransport(t *testing.T) {
	p, err := testOptions{Options: Options{Upstream: mustURL(t, "http://127.0.0.1:1"), UpstreamTimeout: 7 * time.Second}, Verifier: newVerifier(t, verifierConfig{}, nil)}.build()
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := p.transport.(*timedTransport).next.(*http.Transport)
	if !ok {
		t.Fatalf("transport is %T, want *http.Transport", p.transport.(*timedTransport).next)
	}
	if tr.MaxIdleConns != DefaultMaxIdleConns || tr.MaxIdleConnsPerHost != DefaultMaxIdleConns {
		t.Errorf("idle conns = %d/%d, want %d", tr.MaxIdleConns, tr.MaxIdleConnsPerHost, DefaultMaxIdleConns)
	}
	if tr.ResponseHeaderTimeout != 7*time.Second {
		t.Errorf("ResponseHeaderTimeout = %v, want 7s", tr.ResponseHeaderTimeout)
	}
	if tr.Proxy != nil || !tr.DisableCompression {
		t.Errorf("transport uses an environment proxy or compression")
	}
}

func TestMetricsSatisfyRecorder(t *testing.T) {
	var _ Recorder = testMetrics(prometheus.NewRegistry())
}
