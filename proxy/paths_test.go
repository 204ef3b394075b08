package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// ambiguousCorpus reads testdata/ambiguous-paths.txt: one request target a
// line, '#' starts a comment.
func ambiguousCorpus(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/ambiguous-paths.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if len(out) < 20 {
		t.Fatalf("corpus has %d paths; it was truncated", len(out))
	}
	return out
}

// exchange sends raw on a fresh connection to addr and returns the status
// and body, so no client library normalises the request line.
func exchange(t *testing.T, addr, raw string) (int, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestAmbiguousPathCorpus sends every path of the corpus through a real
// server in front of the proxy, on a public prefix and without a token:
// each is refused with 400 ambiguous_path, logged with why, counted, and
// the upstream sees nothing.
func TestAmbiguousPathCorpus(t *testing.T) {
	h := newHarness(t, verifierConfig{}, nil)
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	corpus := ambiguousCorpus(t)
	for _, target := range corpus {
		status, body := exchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n\r\n")
		if status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", target, status)
			continue
		}
		var got map[string]string
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("%s: body %q is not the sidecar's JSON error", target, body)
			continue
		}
		if got["error"] != "invalid_request" || got["error_description"] != verifier.AmbiguousPath.Description() {
			t.Errorf("%s: body %v", target, got)
		}
	}
	if reqs := h.upstream.requests(); len(reqs) != 0 {
		t.Fatalf("the upstream saw %d requests, first %+v", len(reqs), reqs[0])
	}
	labels := map[string]string{"outcome": string(verifier.BadRequest), "reason": string(verifier.AmbiguousPath)}
	if got := counter(t, h.reg, "jwt_sidecar_requests_total", labels); got != float64(len(corpus)) {
		t.Errorf("ambiguous_path counted %v times, want %d", got, len(corpus))
	}
	lines := 0
	for _, l := range logLines(t, h.logs) {
		if l["reason"] == string(verifier.AmbiguousPath) {
			lines++
			if e, _ := l["error"].(string); !strings.Contains(e, "path \"") {
				t.Errorf("log line says not which path nor why: %v", l)
			}
		}
	}
	if lines != len(corpus) {
		t.Errorf("%d ambiguous_path log lines, want %d", lines, len(corpus))
	}
}

// TestUnambiguousPaths: paths that every backend reads alike keep working;
// encoded characters that one decode settles are decided on the decoded,
// cleaned path, which is what the upstream receives.
func TestUnambiguousPaths(t *testing.T) {
	tests := []struct {
		target, wantPath string
		wantStatus       int
	}{
		{"/public/a%20b", "/public/a b", 200},
		{"/public/100%25", "/public/100%", 200},           // a lone '%' after the decode: no escape
		{"/public/a;b/c", "/public/a;b/c", 200},           // parameters on a name segment
		{"/public/..%2fpublic/x", "/public/x", 200},       // decoded once, then cleaned
		{"/public/%2e%2e/admin", "", 401},                 // decodes to /admin: a token is needed
		{"/public/..%2fadmin", "", 401},                   // likewise
		{"/public/%2e/x", "/public/x", 200},               // a single dot segment is cleaned away
		{"/public/caf%C3%A9", "/public/café", 200},        // UTF-8 is no control byte
		{"/public/a%2fb", "/public/a/b", 200},             // forwarded as the cleaned, decoded path
		{"/public/..../admin", "/public/..../admin", 200}, // not a dot segment
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			h := newHarness(t, verifierConfig{}, nil)
			rec := h.serve(get(tt.target))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			reqs := h.upstream.requests()
			if tt.wantStatus != 200 {
				if len(reqs) != 0 {
					t.Fatalf("the upstream saw %+v", reqs[0])
				}
				return
			}
			if got := h.upstream.only(t).Path; got != tt.wantPath {
				t.Errorf("upstream path %q, want %q", got, tt.wantPath)
			}
		})
	}
}

// TestAmbiguousPathsAllowed: PATH_STRICT=false (AllowAmbiguousPaths)
// forwards the corpus' paths, cleaned as ever, for upstreams that need them.
func TestAmbiguousPathsAllowed(t *testing.T) {
	h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.AllowAmbiguousPaths = true })
	rec := h.serve(get("/public/%252e%252e/admin"))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200", rec.Code)
	}
	if got := h.upstream.only(t).Path; got != "/public/%2e%2e/admin" {
		t.Errorf("upstream path %q", got)
	}
}

// TestAmbiguousPathBeforeToken: an ambiguous path is refused even with a
// valid token, on a protected path: the sidecar cannot know which resource
// the backend will serve.
func TestAmbiguousPathBeforeToken(t *testing.T) {
	h := newHarness(t, verifierConfig{}, nil)
	tok := allKeys(t).rsa.Sign(t, claims(issA))
	rec := h.serve(bearer("/api/..;/admin", tok))
	if rec.Code != http.StatusBadRequest || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("status %d, challenge %q; want 400 without a challenge", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if n := len(h.upstream.requests()); n != 0 {
		t.Fatalf("the upstream saw %d requests", n)
	}
}

// TestExplainPaths: Explain shows the raw and the cleaned path.
func TestExplainPaths(t *testing.T) {
	h := newHarness(t, verifierConfig{}, nil)
	ex := h.proxy.Explain(get("/public/x/../y%20z"))
	if ex.RawPath != "/public/x/../y%20z" || ex.CleanedPath != "/public/y z" {
		t.Errorf("raw %q cleaned %q", ex.RawPath, ex.CleanedPath)
	}
	ex = h.proxy.Explain(get("/public/..;/admin"))
	if ex.Forwarded || ex.Status != http.StatusBadRequest || ex.Reason != verifier.AmbiguousPath || ex.Detail == nil {
		t.Errorf("explain of an ambiguous path: %+v", ex)
	}
}

// rawPathsHarness: /files is public with raw_paths, /admin needs idp,
// /public is public without raw_paths, anything else is denied.
func rawPathsHarness(t *testing.T) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := testMetrics(reg)
	any := func(p ...string) policy.Requirement {
		return policy.Requirement{Kind: policy.RequireAnyOf, Providers: p}
	}
	pol, err := policy.New(policy.Options{
		Providers: testProviders(t, m),
		Rules: []policy.Rule{
			{Name: "admin", Match: policy.Match{Prefix: "/files/admin"}, Require: any("idp")},
			{Name: "files", Match: policy.Match{Prefix: "/files"}, Require: policy.Requirement{Kind: policy.RequirePublic}, RawPaths: true},
			{Name: "api", Match: policy.Match{Prefix: "/api"}, Require: any("idp"), RawPaths: true},
			{Name: "public", Match: policy.Match{Prefix: "/public"}, Require: policy.Requirement{Kind: policy.RequirePublic}},
			{Name: "top", Match: policy.Match{Prefix: "/admin"}, Require: any("idp")},
		},
		Recorder: metrics.NewRules(reg),
	})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	logs := &proctest.Buffer{}
	p, err := New(Options{Upstream: up.url(t), Policy: pol, Recorder: m, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return &harness{proxy: p, handler: p.Handler(), upstream: up, reg: reg, logs: logs}
}

// TestRawPathsRule: a rule with raw_paths forwards an ambiguous path only
// when every reading a backend may make of it (config.PathReadings)
// matches that rule; a reading that leaves it (to a protected rule, to
// the default) refuses the request with 400, and the upstream sees
// nothing. The corpus runs on the raw rule's prefix: each path is either
// refused, or forwarded with every reading inside /files and outside
// /files/admin. Rules without raw_paths keep refusing the whole corpus.
func TestRawPathsRule(t *testing.T) {
	h := rawPathsHarness(t)
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	send := func(target string) int {
		status, _ := exchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n\r\n")
		return status
	}
	forwarded, refused := 0, 0
	for _, target := range ambiguousCorpus(t) {
		raw := "/files" + strings.TrimPrefix(target, "/public")
		if !strings.HasPrefix(target, "/public") {
			raw = "/files/x" + target
		}
		before := len(h.upstream.requests())
		status := send(raw)
		reached := len(h.upstream.requests()) - before
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		readings := config.PathReadings(u.Path)
		inside := true
		for _, p := range readings {
			if !strings.HasPrefix(p+"/", "/files/") || strings.HasPrefix(p+"/", "/files/admin/") {
				inside = false
			}
		}
		switch {
		case status == http.StatusOK && reached == 1 && inside:
			forwarded++
		case status == http.StatusBadRequest && reached == 0 && !inside:
			refused++
		default:
			t.Errorf("%s: status %d, upstream saw %d; readings %q", raw, status, reached, readings)
		}
		// The same path on a rule without raw_paths: refused, as ever.
		if status := send(target); status != http.StatusBadRequest {
			t.Errorf("%s on a rule without raw_paths: status %d, want 400", target, status)
		}
	}
	if forwarded == 0 || refused == 0 {
		t.Errorf("forwarded %d, refused %d: the corpus should show both", forwarded, refused)
	}
	t.Logf("raw rule: %d forwarded, %d refused", forwarded, refused)

	tests := []struct {
		target   string
		status   int
		upstream string // the path the upstream gets; "" when refused
	}{
		{"/files/..;/admin", 400, ""},         // Tomcat reads /admin
		{"/files/..;/files/admin/x", 400, ""}, // another rule's path below the raw one
		{"/files/%252e%252e/admin", 400, ""},  // a second decode reads /admin
		{"/files/..%5cadmin", 400, ""},        // '\' folded: /admin
		{"/files/admin%00.json", 400, ""},     // cut at NUL: /files/admin
		{"/files/report%2525.pdf", 200, "/files/report%25.pdf"},
		{"/files/a%09b", 200, "/files/a\tb"},
		{"/files/x;v=1/..;/y", 200, "/files/x;v=1/..;/y"}, // every reading stays in /files
		{"/api/%252e%252e/x", 400, ""},                    // a second decode leaves the raw rule
		{"/api/a%2525b", 401, ""},                         // raw, but a token is still needed
	}
	for _, tt := range tests {
		before := len(h.upstream.requests())
		if got := send(tt.target); got != tt.status {
			t.Errorf("%s: status %d, want %d", tt.target, got, tt.status)
			continue
		}
		reqs := h.upstream.requests()[before:]
		switch {
		case tt.upstream == "" && len(reqs) != 0:
			t.Errorf("%s: the upstream saw %+v", tt.target, reqs[0])
		case tt.upstream != "" && (len(reqs) != 1 || reqs[0].Path != tt.upstream):
			t.Errorf("%s: upstream got %+v, want path %q", tt.target, reqs, tt.upstream)
		}
	}
	// A forwarded ambiguous path counts under its rule, like any other.
	if got := counter(t, h.reg, "jwt_sidecar_rule_requests_total", map[string]string{"rule": "files", "outcome": "public"}); got < 3 {
		t.Errorf("files rule counted %v public requests", got)
	}
}
