package proxy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// opaque is an opaque token using every RFC 6750 b64token character class,
// so that the tests also prove it reaches the token service form-encoded
// and intact.
const opaque = "op/aq+ue~to.ken_1-X=="

func TestIntrospectionActive(t *testing.T) {
	f := newIntrospection(t, nil)
	f.ts.Activate(opaque, jwttest.ActiveClaims())

	// A forged claim header is scrubbed and replaced by the verified one.
	r := f.get(t, opaque, "X-Auth-Subject", "mallory")
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", r.status, r.body)
	}
	if got := f.ts.Form().Get("token"); got != opaque {
		t.Errorf("token service got token %q, want %q", got, opaque)
	}
	h := f.up.lastHeader()
	for name, want := range map[string]string{
		"X-Auth-Subject": "alice", "X-Auth-Scope": "read write", "X-Auth-Client": "app", "X-Auth-Roles": "admin,user",
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("upstream %s = %q, want %q", name, got, want)
		}
	}
	if got := h.Get("Authorization"); got != "" {
		t.Errorf("upstream saw the token: Authorization %q", got)
	}
	// PAYLOAD_HEADER carries the token service's answer, base64url.
	payload, err := base64.RawURLEncoding.DecodeString(h.Get("X-Auth-Payload"))
	if err != nil {
		t.Fatalf("payload header: %v", err)
	}
	var answer map[string]any
	if err := json.Unmarshal(payload, &answer); err != nil || answer["active"] != true || answer["client_id"] != "app" {
		t.Errorf("payload = %s (%v), want the introspection answer", payload, err)
	}
	if n := f.ts.Calls.Load(); n != 1 {
		t.Errorf("token service calls = %d, want 1", n)
	}
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"jwt_sidecar_requests_total", []string{"outcome", "allowed"}, 1},
		{"jwt_sidecar_introspection_requests_total", []string{"result", "active"}, 1},
		{"jwt_sidecar_verification_duration_seconds", []string{"mode", "introspection"}, 1},
		{"jwt_sidecar_token_age_seconds", nil, 1},
	} {
		if got := f.metric(t, m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
}

func TestIntrospectionRefusals(t *testing.T) {
	bigPad := strings.Repeat("x", verifier.DefaultIntrospectionMaxBytes)
	answerWith := func(k string, v any) map[string]any {
		c := jwttest.ActiveClaims()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name       string
		token      string // "" sends none
		claims     map[string]any
		setup      func(*jwttest.TokenService)
		options    func(*verifier.IntrospectionOptions)
		wantStatus int
		wantReason verifier.Reason
		wantResult string // "" when the token service must not be called
	}{
		{name: "inactive", token: "unknown-token", wantStatus: 401, wantReason: verifier.Inactive, wantResult: verifier.IntrospectionInactive},
		{name: "missing token", wantStatus: 401, wantReason: verifier.Missing},
		{name: "not a b64token", token: "to%ken", wantStatus: 401, wantReason: verifier.Malformed},
		{name: "padding inside", token: "a=b", wantStatus: 401, wantReason: verifier.Malformed},
		{name: "only padding", token: "==", wantStatus: 401, wantReason: verifier.Malformed},
		{name: "oversized token", token: strings.Repeat("a", 9000), wantStatus: 401, wantReason: verifier.Malformed},
		{name: "token service down", token: opaque, options: func(o *verifier.IntrospectionOptions) { o.URL = closedURL(t) },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionError},
		{name: "status 500", token: opaque, setup: func(ts *jwttest.TokenService) { ts.Status = 500 },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionError},
		{name: "redirect not followed", token: opaque, setup: func(ts *jwttest.TokenService) { ts.Status = http.StatusFound },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionError},
		{name: "wrong client secret", token: opaque, options: func(o *verifier.IntrospectionOptions) { o.ClientSecret = "guess" },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionError},
		{name: "bad JSON", token: opaque, setup: func(ts *jwttest.TokenService) { ts.Raw = []byte(`{"active":tru`) },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionBadResponse},
		{name: "not an object", token: opaque, setup: func(ts *jwttest.TokenService) { ts.Raw = []byte(`[true]`) },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionBadResponse},
		{name: "null", token: opaque, setup: func(ts *jwttest.TokenService) { ts.Raw = []byte(`null`) },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionBadResponse},
		{name: "two objects", token: opaque, setup: func(ts *jwttest.TokenService) { ts.Raw = []byte(`{"active":false}{"active":true}`) },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionBadResponse},
		{name: "oversized answer", token: opaque, setup: func(ts *jwttest.TokenService) {
			ts.Raw = []byte(`{"active":true,"sub":"alice","pad":"` + bigPad + `"}`)
		},
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionBadResponse},
		{name: `active "true" as a string`, token: opaque, setup: func(ts *jwttest.TokenService) { ts.Raw = []byte(`{"active":"true","sub":"alice","scope":"read"}`) },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionBadResponse},
		{name: "active 1", token: opaque, setup: func(ts *jwttest.TokenService) { ts.Raw = []byte(`{"active":1}`) },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionBadResponse},
		{name: "active missing", token: opaque, setup: func(ts *jwttest.TokenService) { ts.Raw = []byte(`{"sub":"alice","scope":"read"}`) },
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionBadResponse},
		{name: "exp not a number", token: opaque, claims: answerWith("exp", "tomorrow"),
			wantStatus: 503, wantReason: verifier.Unavailable, wantResult: verifier.IntrospectionBadResponse},
		{name: "required scope missing", token: opaque, claims: answerWith("scope", "write"),
			wantStatus: 403, wantReason: verifier.InsufficientScope, wantResult: verifier.IntrospectionActive},
		{name: "wrong audience", token: opaque, claims: answerWith("aud", []string{"other-api"}),
			wantStatus: 401, wantReason: verifier.BadAudience, wantResult: verifier.IntrospectionActive},
		{name: "no audience", token: opaque, claims: answerWith("aud", nil),
			wantStatus: 401, wantReason: verifier.BadAudience, wantResult: verifier.IntrospectionActive},
		{name: "wrong issuer", token: opaque, claims: answerWith("iss", "https://evil.test"),
			wantStatus: 401, wantReason: verifier.BadIssuer, wantResult: verifier.IntrospectionActive},
		{name: "expired by exp", token: opaque, claims: answerWith("exp", base.Add(-time.Minute).Unix()),
			wantStatus: 401, wantReason: verifier.Expired, wantResult: verifier.IntrospectionActive},
		{name: "nbf in the future", token: opaque, claims: answerWith("nbf", base.Add(time.Minute).Unix()),
			wantStatus: 401, wantReason: verifier.NotYetValid, wantResult: verifier.IntrospectionActive},
		{name: "no exp while required", token: opaque, claims: answerWith("exp", nil),
			wantStatus: 401, wantReason: verifier.Malformed, wantResult: verifier.IntrospectionActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newIntrospection(t, tt.options)
			if tt.claims != nil {
				f.ts.Activate(tt.token, tt.claims)
			} else {
				f.ts.Activate(opaque, jwttest.ActiveClaims())
			}
			if tt.setup != nil {
				f.ts.Set(tt.setup)
			}
			r := f.get(t, tt.token)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", r.status, tt.wantStatus, r.body)
			}
			checkRefusal(t, r, tt.wantReason)
			if n := f.up.n.Load(); n != 0 {
				t.Errorf("upstream saw %d requests, want 0", n)
			}
			outcome := map[int]string{401: "unauthenticated", 403: "forbidden", 503: "unavailable"}[tt.wantStatus]
			if got := f.metric(t, "jwt_sidecar_requests_total", "outcome", outcome, "reason", string(tt.wantReason)); got != 1 {
				t.Errorf("requests_total{%s,%s} = %v, want 1", outcome, tt.wantReason, got)
			}
			calls := f.ts.Calls.Load()
			if tt.wantResult == "" {
				if calls != 0 {
					t.Errorf("token service calls = %d, want 0", calls)
				}
				return
			}
			if tt.options == nil && calls != 1 {
				t.Errorf("token service calls = %d, want 1", calls)
			}
			if got := f.metric(t, "jwt_sidecar_introspection_requests_total", "result", tt.wantResult); got != 1 {
				t.Errorf("introspection_requests_total{result=%q} = %v, want 1", tt.wantResult, got)
			}
		})
	}
}

// checkRefusal checks the response of a refusal: the SPEC's JSON body, whose
// error_description names the reason (each has its own), the challenge of a
// 401 or 403, Retry-After and no challenge for a 503.
func checkRefusal(t *testing.T, r response, reason verifier.Reason) {
	t.Helper()
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("body %q (%v), Content-Type %q: want a JSON error", r.body, err, r.header.Get("Content-Type"))
	}
	if body.Description != reason.Description() {
		t.Errorf("error_description = %q, want %q (%s)", body.Description, reason.Description(), reason)
	}
	challenge := r.header.Get("WWW-Authenticate")
	switch {
	case reason == verifier.Unavailable:
		if body.Error != "temporarily_unavailable" {
			t.Errorf("body = %+v, want temporarily_unavailable", body)
		}
		if got := r.header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want 1", got)
		}
		if challenge != "" {
			t.Errorf("WWW-Authenticate = %q on a 503, want none: the token was not judged", challenge)
		}
	case reason == verifier.Missing:
		if challenge != `Bearer realm="jwt-sidecar"` {
			t.Errorf("WWW-Authenticate = %q, want a bare Bearer challenge", challenge)
		}
	default:
		code := "invalid_token"
		if reason == verifier.InsufficientScope {
			code = "insufficient_scope"
		}
		if body.Error != code || !strings.Contains(challenge, `error="`+code+`"`) {
			t.Errorf("body error %q, challenge %q; want %s", body.Error, challenge, code)
		}
		if r.header.Get("Retry-After") != "" {
			t.Errorf("Retry-After on a %d", r.status)
		}
	}
}

func TestIntrospectionSlowTokenService(t *testing.T) {
	const timeout = 100 * time.Millisecond
	f := newIntrospection(t, func(o *verifier.IntrospectionOptions) { o.Timeout = timeout })
	f.ts.Activate(opaque, jwttest.ActiveClaims())
	block := make(chan struct{})
	t.Cleanup(func() { close(block) }) // runs before the servers close
	f.ts.Set(func(ts *jwttest.TokenService) { ts.Block = block })

	start := time.Now()
	r := f.get(t, opaque)
	elapsed := time.Since(start)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", r.status)
	}
	checkRefusal(t, r, verifier.Unavailable)
	// The call gives up at the timeout. The bound only guards against
	// waiting for the token service at all; it is far from the timeout so
	// that a loaded machine cannot make it flake.
	if elapsed > 5*time.Second {
		t.Errorf("answered after %s with a %s timeout", elapsed, timeout)
	}
	if got := f.metric(t, "jwt_sidecar_introspection_requests_total", "result", verifier.IntrospectionTimeout); got != 1 {
		t.Errorf("timeouts = %v, want 1", got)
	}
	if n := f.up.n.Load(); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}
}

func TestIntrospectionRevocationIsImmediate(t *testing.T) {
	f := newIntrospection(t, nil)
	f.ts.Activate(opaque, jwttest.ActiveClaims())
	if r := f.get(t, opaque); r.status != http.StatusOK {
		t.Fatalf("before revocation: status %d, want 200", r.status)
	}
	f.ts.Revoke(opaque)
	r := f.get(t, opaque)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("after revocation: status %d, want 401", r.status)
	}
	checkRefusal(t, r, verifier.Inactive)
	if n := f.up.n.Load(); n != 1 {
		t.Errorf("upstream saw %d requests, want only the one before revocation", n)
	}
}

func TestIntrospectionUnavailableLogLine(t *testing.T) {
	f := newIntrospection(t, func(o *verifier.IntrospectionOptions) { o.URL = closedURL(t) })
	if r := f.get(t, opaque); r.status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", r.status)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(f.logs.String())), &line); err != nil {
		t.Fatalf("want one JSON log line, got %q: %v", f.logs.String(), err)
	}
	msg, _ := line["msg"].(string)
	for _, want := range []string{"could not decide", "need not re-authenticate"} {
		if !strings.Contains(msg, want) {
			t.Errorf("log message %q lacks %q", msg, want)
		}
	}
	if line["level"] != "WARN" || line["status"] != float64(503) || line["reason"] != "unavailable" || line["token_hash"] == "" {
		t.Errorf("log line = %v", line)
	}
	if strings.Contains(f.logs.String(), opaque) {
		t.Error("the token was logged")
	}
}

func TestIntrospectionCache(t *testing.T) {
	const n = 3
	t.Run("off: every request asks", func(t *testing.T) {
		f := newIntrospection(t, nil)
		f.ts.Activate(opaque, jwttest.ActiveClaims())
		for range n {
			if r := f.get(t, opaque); r.status != http.StatusOK {
				t.Fatalf("status = %d, want 200", r.status)
			}
		}
		if got := f.ts.Calls.Load(); got != n {
			t.Errorf("token service calls = %d, want %d", got, n)
		}
		if got := f.metric(t, "jwt_sidecar_token_cache_misses_total"); got != 0 {
			t.Errorf("cache misses = %v with the cache off, want 0", got)
		}
	})
	t.Run("on: one call, revocation waits for the TTL", func(t *testing.T) {
		f := newIntrospection(t, func(o *verifier.IntrospectionOptions) { o.CacheTTL, o.CacheSize = time.Minute, 100 })
		f.ts.Activate(opaque, jwttest.ActiveClaims())
		for range n {
			if r := f.get(t, opaque); r.status != http.StatusOK {
				t.Fatalf("status = %d, want 200", r.status)
			}
		}
		if got := f.ts.Calls.Load(); got != 1 {
			t.Errorf("token service calls = %d, want 1", got)
		}
		if h, m := f.metric(t, "jwt_sidecar_token_cache_hits_total"), f.metric(t, "jwt_sidecar_token_cache_misses_total"); h != n-1 || m != 1 {
			t.Errorf("cache hits, misses = %v, %v; want %d, 1", h, m, n-1)
		}
		if got := f.up.lastHeader().Get("X-Auth-Subject"); got != "alice" {
			t.Errorf("a cache hit forwarded X-Auth-Subject %q, want alice", got)
		}
		// The documented trade-off: a revoked token passes until its entry
		// expires, then never again.
		f.ts.Revoke(opaque)
		f.advance(59 * time.Second)
		if r := f.get(t, opaque); r.status != http.StatusOK {
			t.Errorf("revoked within the TTL: status %d, want 200 from the cache", r.status)
		}
		f.advance(time.Second)
		if r := f.get(t, opaque); r.status != http.StatusUnauthorized {
			t.Errorf("revoked, TTL over: status %d, want 401", r.status)
		} else {
			checkRefusal(t, r, verifier.Inactive)
		}
		if got := f.ts.Calls.Load(); got != 2 {
			t.Errorf("token service calls = %d, want 2", got)
		}
	})
	t.Run("never past exp", func(t *testing.T) {
		f := newIntrospection(t, func(o *verifier.IntrospectionOptions) { o.CacheTTL, o.CacheSize = time.Hour, 100 })
		c := jwttest.ActiveClaims()
		c["exp"] = base.Add(2 * time.Minute).Unix()
		f.ts.Activate(opaque, c)
		if r := f.get(t, opaque); r.status != http.StatusOK {
			t.Fatalf("status = %d, want 200", r.status)
		}
		f.advance(3 * time.Minute) // past exp and the skew, within the TTL
		r := f.get(t, opaque)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("after exp: status = %d, want 401", r.status)
		}
		checkRefusal(t, r, verifier.Expired)
		if got := f.ts.Calls.Load(); got != 2 {
			t.Errorf("token service calls = %d, want 2: the entry ended at exp", got)
		}
	})
	t.Run("inactive answers and failures are not cached", func(t *testing.T) {
		f := newIntrospection(t, func(o *verifier.IntrospectionOptions) { o.CacheTTL, o.CacheSize = time.Minute, 100 })
		for range 2 {
			if r := f.get(t, "unknown-token"); r.status != http.StatusUnauthorized {
				t.Fatalf("inactive: status %d, want 401", r.status)
			}
		}
		f.ts.Activate(opaque, jwttest.ActiveClaims())
		f.ts.Set(func(ts *jwttest.TokenService) { ts.Status = http.StatusInternalServerError })
		if r := f.get(t, opaque); r.status != http.StatusServiceUnavailable {
			t.Fatalf("failing token service: status %d, want 503", r.status)
		}
		f.ts.Set(func(ts *jwttest.TokenService) { ts.Status = 0 })
		if r := f.get(t, opaque); r.status != http.StatusOK {
			t.Fatalf("recovered token service: status %d, want 200", r.status)
		}
		if got := f.ts.Calls.Load(); got != 4 {
			t.Errorf("token service calls = %d, want 4", got)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		f := newIntrospection(t, func(o *verifier.IntrospectionOptions) { o.CacheTTL, o.CacheSize = time.Minute, 16 })
		f.ts.Set(func(ts *jwttest.TokenService) { ts.AnyActive = jwttest.ActiveClaims() })
		errs := make(chan error, 8)
		for g := range 8 {
			go func() {
				var err error
				for i := range 40 {
					if _, err = f.in.IntrospectToken(t.Context(), fmt.Sprintf("token-%d", (g*7+i)%40)); err != nil {
						break
					}
				}
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if got := f.in.CacheLen(); got > 32 || got == 0 {
			t.Errorf("cache holds %d answers, want 1..32 (16 rounded up per shard)", got)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		f := newIntrospection(t, func(o *verifier.IntrospectionOptions) { o.CacheTTL, o.CacheSize = time.Minute, 64 })
		f.ts.Set(func(ts *jwttest.TokenService) { ts.AnyActive = jwttest.ActiveClaims() })
		for i := range 300 {
			if _, err := f.in.IntrospectToken(t.Context(), fmt.Sprintf("token-%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if got := f.in.CacheLen(); got > 64 || got == 0 {
			t.Errorf("cache holds %d answers, want 1..64", got)
		}
	})
}

func TestNewIntrospectorRefusesUnsafeOptions(t *testing.T) {
	valid := func() verifier.IntrospectionOptions {
		return verifier.IntrospectionOptions{URL: "https://idp.test/introspect", ClientID: "id", ClientSecret: "secret"}
	}
	if _, err := verifier.NewIntrospector(valid()); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*verifier.IntrospectionOptions)
	}{
		{name: "relative URL", mutate: func(o *verifier.IntrospectionOptions) { o.URL = "/introspect" }},
		{name: "not http", mutate: func(o *verifier.IntrospectionOptions) { o.URL = "ftp://idp.test/x" }},
		{name: "credentials in the URL", mutate: func(o *verifier.IntrospectionOptions) { o.URL = "https://id:secret@idp.test/x" }},
		{name: "no client ID", mutate: func(o *verifier.IntrospectionOptions) { o.ClientID = "" }},
		{name: "no secret", mutate: func(o *verifier.IntrospectionOptions) { o.ClientSecret = "" }},
		{name: "negative timeout", mutate: func(o *verifier.IntrospectionOptions) { o.Timeout = -time.Second }},
		{name: "negative TTL", mutate: func(o *verifier.IntrospectionOptions) { o.CacheTTL = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.mutate(&o)
			if _, err := verifier.NewIntrospector(o); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestReadClientSecret(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		want    string
		wantErr bool
	}{
		{name: "bare", content: "s3cret", want: "s3cret"},
		{name: "one newline dropped", content: "s3cret\n", want: "s3cret"},
		{name: "CRLF dropped", content: "s3cret\r\n", want: "s3cret"},
		{name: "only one newline dropped", content: "s3cret\n\n", want: "s3cret\n"},
		{name: "spaces kept", content: " s3cret ", want: " s3cret "},
		{name: "empty", content: "", wantErr: true},
		{name: "only a newline", content: "\n", wantErr: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("%s/secret-%d", dir, i)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := verifier.ReadClientSecret(path)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ReadClientSecret = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if _, err := verifier.ReadClientSecret(dir + "/absent"); err == nil {
		t.Error("an absent file gave no error")
	}
}
