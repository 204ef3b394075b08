package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
)

var generatedIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestID(t *testing.T) {
	k := allKeys(t)
	tok := k.rsa.Sign(t, claims(issA))
	long := strings.Repeat("a", MaxRequestIDLen+1)
	tests := []struct {
		name     string
		sent     []string // X-Request-Id lines from the client
		token    string
		wantKept string // "" when a new ID must be generated
	}{
		{name: "none sent, allowed", token: tok},
		{name: "none sent, refused"},
		{name: "uuid kept, allowed", sent: []string{"3f1c2a9e-7b4d-4e0a-9c1f-2d5b8e6a4c10"}, token: tok, wantKept: "3f1c2a9e-7b4d-4e0a-9c1f-2d5b8e6a4c10"},
		{name: "base64 kept, refused", sent: []string{"q/8+Zm9v=@edge:1.2_3"}, wantKept: "q/8+Zm9v=@edge:1.2_3"},
		{name: "longest kept", sent: []string{long[1:]}, token: tok, wantKept: long[1:]},
		{name: "too long replaced", sent: []string{long}, token: tok},
		{name: "space replaced", sent: []string{"abc def"}, token: tok},
		{name: "quote replaced", sent: []string{`abc"def`}},
		{name: "control byte replaced", sent: []string{"abc\x01"}, token: tok},
		{name: "empty replaced", sent: []string{""}, token: tok},
		{name: "two lines replaced", sent: []string{"a", "b"}, token: tok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, nil)
			r := get("/api")
			if tt.token != "" {
				r = bearer("/api", tt.token)
			}
			r.Header[RequestIDHeader] = tt.sent
			rec := h.serve(r)
			got := rec.Header().Values(RequestIDHeader)
			if len(got) != 1 {
				t.Fatalf("response X-Request-Id = %q, want one value", got)
			}
			id := got[0]
			if tt.wantKept != "" && id != tt.wantKept {
				t.Errorf("response X-Request-Id = %q, want the client's %q", id, tt.wantKept)
			}
			if tt.wantKept == "" && !generatedIDPattern.MatchString(id) {
				t.Errorf("response X-Request-Id = %q, want a generated 32-hex ID", id)
			}
			if tt.token != "" {
				if rec.Code != http.StatusOK {
					t.Fatalf("status = %d, want 200", rec.Code)
				}
				if up := h.upstream.only(t).Header.Values(RequestIDHeader); len(up) != 1 || up[0] != id {
					t.Errorf("upstream X-Request-Id = %q, want [%q]", up, id)
				}
				return
			}
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", rec.Code)
			}
			if n := len(h.upstream.requests()); n != 0 {
				t.Errorf("upstream saw %d requests, want 0", n)
			}
			lines := logLines(t, h.logs)
			if len(lines) != 1 || lines[0]["request_id"] != id {
				t.Errorf("refusal log lines = %v, want one with request_id %q", lines, id)
			}
		})
	}
}

func TestRequestIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()[0]
		if seen[id] || !generatedIDPattern.MatchString(id) {
			t.Fatalf("generated ID %q repeats or is malformed", id)
		}
		seen[id] = true
	}
}

// TestRequestIDUpstreamEcho: an upstream that echoes (or invents) an
// X-Request-Id must not give the client two.
func TestRequestIDUpstreamEcho(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(RequestIDHeader, "upstream-own-id")
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(echo.Close)
	h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.Upstream = mustURL(t, echo.URL) })
	r := get("/public/x")
	r.Header.Set(RequestIDHeader, "client-id-1")
	rec := h.serve(r)
	if got := rec.Header().Values(RequestIDHeader); len(got) != 1 || got[0] != "client-id-1" {
		t.Errorf("response X-Request-Id = %q, want [client-id-1]", got)
	}
}

func TestAccessLog(t *testing.T) {
	k := allKeys(t)
	tok := k.rsa.Sign(t, claims(issA))
	expired := k.rsa.Sign(t, with(claims(issA), "exp", base.Add(-time.Hour).Unix()))
	tests := []struct {
		name         string
		req          func() *http.Request
		wantStatus   int
		wantUpstream bool
		want         map[string]any
	}{
		{
			name: "allowed", req: func() *http.Request { return bearer("/api/../items?x=1", tok) },
			wantStatus: 200, wantUpstream: true,
			want: map[string]any{
				"level": "INFO", "msg": "request", "method": "GET", "path": "/items", "status": float64(200),
				"outcome": "allowed", "reason": "", "rule": policy.DefaultRule, "provider": policy.EnvProvider,
				"subject": "alice", "remote_addr": "192.0.2.1:1234",
			},
		},
		{
			name: "public", req: func() *http.Request { return get("/public/app.js") },
			wantStatus: 200, wantUpstream: true,
			want: map[string]any{
				"msg": "request", "path": "/public/app.js", "status": float64(200), "outcome": "public",
				"reason": "", "provider": "", "subject": "",
			},
		},
		{
			name: "expired", req: func() *http.Request { return bearer("/api", expired) },
			wantStatus: 401,
			want: map[string]any{
				"msg": "request", "path": "/api", "status": float64(401), "outcome": "unauthenticated",
				"reason": "expired", "rule": policy.DefaultRule, "provider": "", "subject": "",
				"kid": "rsa-1", "iss": issA, "upstream_duration": float64(0),
			},
		},
		{
			name: "missing", req: func() *http.Request { return get("/api") },
			wantStatus: 401,
			want: map[string]any{
				"msg": "request", "status": float64(401), "outcome": "unauthenticated", "reason": "missing",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.AccessLog = true })
			r := tt.req()
			r.Header.Set(RequestIDHeader, "req-"+tt.name)
			rec := h.serve(r)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := len(h.upstream.requests()); (got == 1) != tt.wantUpstream || got > 1 {
				t.Fatalf("upstream saw %d requests, want upstream=%v", got, tt.wantUpstream)
			}
			lines := logLines(t, h.logs)
			if len(lines) != 1 {
				t.Fatalf("got %d log lines, want exactly one per request: %s", len(lines), h.logs)
			}
			got := lines[0]
			tt.want["request_id"] = "req-" + tt.name
			for key, w := range tt.want {
				if got[key] != w {
					t.Errorf("log %s = %#v, want %#v", key, got[key], w)
				}
			}
			for _, key := range []string{"time", "duration", "upstream_duration"} {
				if _, ok := got[key]; !ok {
					t.Errorf("log has no %s", key)
				}
			}
			dur, _ := got["duration"].(float64)
			updur, _ := got["upstream_duration"].(float64)
			if tt.wantUpstream && (updur <= 0 || dur < updur) {
				t.Errorf("duration = %v, upstream_duration = %v: want 0 < upstream <= total", dur, updur)
			}
			if strings.Contains(h.logs.String(), strings.Split(tok, ".")[2]) ||
				strings.Contains(h.logs.String(), strings.Split(expired, ".")[2]) {
				t.Errorf("the log contains a token")
			}
		})
	}
}

func TestAccessLogSubjectClaim(t *testing.T) {
	k := allKeys(t)
	h := newHarness(t, verifierConfig{}, func(o *testOptions) {
		o.AccessLog, o.SubjectClaim = true, "client.name"
	})
	tok := k.rsa.Sign(t, with(claims(issA), "client", map[string]any{"name": "billing"}))
	if rec := h.serve(bearer("/api", tok)); rec.Code != 200 {
		t.Fatalf("status = %d", rec.Code)
	}
	lines := logLines(t, h.logs)
	if len(lines) != 1 || lines[0]["subject"] != "billing" {
		t.Errorf("log lines = %v, want one with subject billing", lines)
	}
}

// TestRefusalSampling floods the proxy with tokenless requests: the lines
// written stay within the bucket, and every line not written is counted.
func TestRefusalSampling(t *testing.T) {
	for _, access := range []bool{false, true} {
		name := "refusal lines"
		if access {
			name = "access lines"
		}
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			const rate, flood = 5, 200
			h := newHarness(t, verifierConfig{}, func(o *testOptions) {
				o.AccessLog, o.RefusalLogRate, o.Logs = access, rate, metrics.NewLogLines(reg)
			})
			start := time.Now()
			for range flood {
				if rec := h.serve(get("/api")); rec.Code != http.StatusUnauthorized {
					t.Fatalf("status = %d", rec.Code)
				}
			}
			elapsed := time.Since(start).Seconds()
			written := len(logLines(t, h.logs))
			// The bucket starts full (rate lines) and refills at rate per second.
			if limit := rate + int(elapsed*rate) + 1; written < rate || written > limit {
				t.Errorf("wrote %d lines in %.2fs, want between %d and %d", written, elapsed, rate, limit)
			}
			if got := counter(t, reg, "jwt_sidecar_log_lines_dropped_total", nil); int(got) != flood-written {
				t.Errorf("dropped counter = %v, want %d", got, flood-written)
			}
			if n := len(h.upstream.requests()); n != 0 {
				t.Errorf("upstream saw %d requests, want 0", n)
			}
		})
	}
}

func TestSampler(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := newSampler(2)
	steps := []struct {
		at          time.Duration
		wantOK      bool
		wantDropped int64
	}{
		{at: 0, wantOK: true},
		{at: 0, wantOK: true},
		{at: 0, wantOK: false},
		{at: 100 * time.Millisecond, wantOK: false},
		{at: 500 * time.Millisecond, wantOK: true, wantDropped: 2},
		{at: 500 * time.Millisecond, wantOK: false},
		{at: 10 * time.Second, wantOK: true, wantDropped: 1},
		{at: 10 * time.Second, wantOK: true}, // refilled to the burst, no more
		{at: 10 * time.Second, wantOK: false},
	}
	for i, st := range steps {
		dropped, ok := s.allow(t0.Add(st.at))
		if ok != st.wantOK || dropped != st.wantDropped {
			t.Errorf("step %d: allow = (%d, %v), want (%d, %v)", i, dropped, ok, st.wantDropped, st.wantOK)
		}
	}
	unlimited := newSampler(0)
	for range 100 {
		if _, ok := unlimited.allow(t0); !ok {
			t.Fatal("a zero rate dropped a line")
		}
	}
}

func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"", "abc", "3f1c2a9e-7b4d-4e0a-9c1f-2d5b8e6a4c10", "a b", "\x00", strings.Repeat("x", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !validRequestID(id) {
			return
		}
		if len(id) > MaxRequestIDLen || strings.ContainsAny(id, " \t\r\n\"\\,;") {
			t.Fatalf("accepted %q", id)
		}
	})
}

func TestDecisionTrail(t *testing.T) {
	k := allKeys(t)
	expired := k.rsa.Sign(t, with(claims(issA), "exp", base.Add(-time.Hour).Unix()))
	tests := []struct {
		name string
		req  *http.Request
		want map[string]any
	}{
		{
			name: "refused", req: bearer("/api", expired),
			want: map[string]any{
				"rule": policy.DefaultRule, "decision": "refuse",
				"rules_tried":     []any{"public:/public/*: path", "public:/healthz: path", "public:/docs/: path", "default: matched"},
				"providers_asked": []any{"env: expired"},
			},
		},
		{
			name: "public", req: get("/healthz"),
			want: map[string]any{
				"rule": "public:/healthz", "decision": "forward public",
				"rules_tried":     []any{"public:/public/*: path", "public:/healthz: matched"},
				"providers_asked": []any{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, nil)
			h.proxy.log = slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			h.serve(tt.req)
			var trail map[string]any
			for _, l := range logLines(t, h.logs) {
				if l["msg"] == "decision trail" {
					trail = l
				}
			}
			if trail == nil {
				t.Fatalf("no decision trail at debug level: %s", h.logs)
			}
			for key, w := range tt.want {
				if !reflect.DeepEqual(trail[key], w) {
					t.Errorf("trail %s = %#v, want %#v", key, trail[key], w)
				}
			}
			if strings.Contains(h.logs.String(), strings.Split(expired, ".")[2]) {
				t.Errorf("the trail contains a token")
			}
		})
	}
	// At info level no trace is built at all.
	h := newHarness(t, verifierConfig{}, nil)
	if tr := h.proxy.traceFor(t.Context()); tr != nil {
		t.Errorf("traceFor at info level = %v, want nil", tr)
	}
}
