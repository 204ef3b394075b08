package tracing_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/internal/telemetry"
	"github.com/jwt-sidecar/jwt-sidecar/internal/tracing"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/verifytest"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// receiver is an OTLP/HTTP collector on 127.0.0.1: it decodes each export
// request with the OTLP protobuf types and keeps the spans.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource []*commonpb.KeyValue
	problems []string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/v1/traces":
			rc.problem("export to %s %s, want POST /v1/traces", r.Method, r.URL.Path)
		case r.Header.Get("Content-Type") != "application/x-protobuf":
			rc.problem("export as %q, want application/x-protobuf", r.Header.Get("Content-Type"))
		case err != nil:
			rc.problem("reading an export: %v", err)
		default:
			if err := proto.Unmarshal(body, &req); err != nil {
				rc.problem("decoding an export: %v", err)
			}
		}
		rc.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			rc.resource = rs.GetResource().GetAttributes()
			for _, ss := range rs.GetScopeSpans() {
				rc.spans = append(rc.spans, ss.GetSpans()...)
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(rc.Close)
	t.Cleanup(func() {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, p := range rc.problems {
			t.Errorf("receiver: %s", p)
		}
	})
	return rc
}

func (rc *receiver) problem(format string, args ...any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.problems = append(rc.problems, fmt.Sprintf(format, args...))
}

// await flushes tr and polls, with a deadline, until ok holds for the
// spans received.
func (rc *receiver) await(t *testing.T, tr *tracing.Tracer, what string, ok func([]*tracepb.Span) bool) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := tr.ForceFlush(t.Context()); err != nil {
			t.Fatalf("flush: %v", err)
		}
		rc.mu.Lock()
		spans := append([]*tracepb.Span(nil), rc.spans...)
		rc.mu.Unlock()
		if ok(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s among %d spans received: %v", what, len(spans), names(spans))
		}
		time.Sleep(10 * time.Millisecond) // polling an external receiver, bounded by the deadline
	}
}

func names(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.GetName())
	}
	return out
}

// attr is a span attribute's value as a string ("" when absent).
func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			v := kv.GetValue()
			switch x := v.GetValue().(type) {
			case *commonpb.AnyValue_StringValue:
				return x.StringValue
			case *commonpb.AnyValue_IntValue:
				return fmt.Sprint(x.IntValue)
			case *commonpb.AnyValue_BoolValue:
				return fmt.Sprint(x.BoolValue)
			}
			return v.String()
		}
	}
	return ""
}

// upstream records the trace headers of every request it gets.
type upstream struct {
	*httptest.Server
	mu     sync.Mutex
	got    []http.Header
	status int
}

func newUpstream(t *testing.T) *upstream {
	up := &upstream{status: http.StatusOK}
	up.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.mu.Lock()
		up.got = append(up.got, r.Header.Clone())
		status := up.status
		up.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(up.Close)
	return up
}

func (up *upstream) requests() []http.Header {
	up.mu.Lock()
	defer up.mu.Unlock()
	return append([]http.Header(nil), up.got...)
}

// stack is the sidecar's request path, wired as main wires it: a real
// JWKS endpoint, keys fetched through a traced transport, the verifier with
// its token cache, the policy, the proxy with a Tracer, the metrics.
type stack struct {
	tracer   *tracing.Tracer
	recv     *receiver
	up       *upstream
	sidecar  *httptest.Server
	admin    http.Handler
	signer   jwttest.Signer
	logs     *bytes.Buffer
	keyFetch string // the JWKS URL
}

func newStack(t *testing.T, sampler string) *stack {
	t.Helper()
	s := &stack{recv: newReceiver(t), up: newUpstream(t), signer: jwttest.NewSigner(t, "ES256", "k1"), logs: &bytes.Buffer{}}
	jwks := jwttest.JWKS(t, s.signer)
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(issuer.Close)
	s.keyFetch = issuer.URL + "/jwks.json"
	var err error
	s.tracer, err = tracing.New(tracing.Options{
		Endpoint:    s.recv.URL + "/v1/traces",
		ServiceName: "jwt-sidecar",
		Attributes:  map[string]string{"deployment.environment": "test"},
		Sampler:     sampler,
		Ratio:       1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.tracer.Shutdown(context.Background()) })

	reg := prometheus.NewRegistry()
	m := metrics.New(reg, telemetry.Labels())
	s.admin = cli.AdminHandler(reg, slog.New(slog.DiscardHandler), func() error { return nil })
	src := keys.NewRemoteSource(s.keyFetch, []string{jwttest.IssuerA}, nil)
	ks := verifytest.Keys(t, keys.KeyOptions{WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
		return s.tracer.Client("jwt-sidecar key fetch", rt)
	}}, m, src)
	v := verifytest.Verifier(t, verifier.Options{Keys: ks, Audiences: []string{jwttest.Audience}, CacheSize: 100, Recorder: m})
	rules, err := policy.PublicPathRules([]string{"/public/*"})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(policy.Options{
		Providers: []policy.Provider{{Name: policy.EnvProvider, Auth: v, Issuers: []string{jwttest.IssuerA}}},
		Rules:     rules,
		Default:   policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{policy.EnvProvider}},
		Mode:      verifier.ModeJWT,
	})
	if err != nil {
		t.Fatal(err)
	}
	upURL, _ := url.Parse(s.up.URL)
	p, err := proxy.New(proxy.Options{
		Upstream: upURL,
		Policy:   pol,
		Recorder: m,
		Logger:   slog.New(slog.NewJSONHandler(s.logs, nil)),
		Tracer:   s.tracer,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	s.sidecar = httptest.NewServer(p.Handler())
	t.Cleanup(s.sidecar.Close)
	return s
}

// send sends one request through the sidecar.
func (s *stack) send(t *testing.T, path, token string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.sidecar.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

// spansOf are the spans of trace id.
func spansOf(spans []*tracepb.Span, traceID string) []*tracepb.Span {
	var out []*tracepb.Span
	for _, s := range spans {
		if hexID(s.GetTraceId()) == traceID {
			out = append(out, s)
		}
	}
	return out
}

func kindOf(spans []*tracepb.Span, k tracepb.Span_SpanKind) *tracepb.Span {
	for _, s := range spans {
		if s.GetKind() == k {
			return s
		}
	}
	return nil
}

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$`)

// TestTraceOfAnAllowedRequest: the client's trace is continued; the
// server span carries the decision; the upstream call is its child, and
// the traceparent the upstream received names that child.
func TestTraceOfAnAllowedRequest(t *testing.T) {
	s := newStack(t, "parentbased_always_on")
	tok := s.signer.Sign(t, jwttest.Claims(jwttest.IssuerA))
	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	h := http.Header{
		"Traceparent": {"00-" + clientTrace + "-" + clientSpan + "-01"},
		"Tracestate":  {"vendor=abc"},
		"User-Agent":  {"trace-test/1"},
	}
	res := s.send(t, "/api/orders?page=2", tok, h)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	spans := s.recv.await(t, s.tracer, "server and upstream spans", func(sp []*tracepb.Span) bool {
		return len(spansOf(sp, clientTrace)) >= 2
	})
	mine := spansOf(spans, clientTrace)
	server, client := kindOf(mine, tracepb.Span_SPAN_KIND_SERVER), kindOf(mine, tracepb.Span_SPAN_KIND_CLIENT)
	if server == nil || client == nil {
		t.Fatalf("spans of the client's trace = %v, want a server and a client span", names(mine))
	}
	if got := hexID(server.GetParentSpanId()); got != clientSpan {
		t.Errorf("server span's parent = %s, want the client's span %s", got, clientSpan)
	}
	if server.GetName() != "GET" || client.GetName() != "GET" {
		t.Errorf("span names = %q, %q, want GET, GET", server.GetName(), client.GetName())
	}
	if !bytes.Equal(client.GetParentSpanId(), server.GetSpanId()) {
		t.Errorf("upstream span's parent = %x, want the server span %x", client.GetParentSpanId(), server.GetSpanId())
	}
	want := map[string]string{
		"jwt_sidecar.outcome":       "allowed",
		"jwt_sidecar.provider":      "env",
		"jwt_sidecar.rule":          policy.DefaultRule,
		"jwt_sidecar.mode":          "jwt",
		"jwt_sidecar.cache_hit":     "false",
		"jwt_sidecar.request_id":    res.Header.Get("X-Request-Id"),
		"http.request.method":       "GET",
		"http.response.status_code": "200",
		"url.path":                  "/api/orders",
		"url.scheme":                "http",
		"user_agent.original":       "trace-test/1",
		"client.address":            "127.0.0.1",
	}
	for k, v := range want {
		if got := attr(server, k); got != v {
			t.Errorf("server span %s = %q, want %q", k, got, v)
		}
	}
	if attr(server, "jwt_sidecar.reason") != "" || attr(server, "jwt_sidecar.token_hash") != "" {
		t.Errorf("an allowed request's span has a reason or token hash: %v", server.GetAttributes())
	}
	if server.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("server span status = %v, want unset", server.GetStatus())
	}
	if got := attr(client, "http.response.status_code"); got != "200" {
		t.Errorf("upstream span status code = %q, want 200", got)
	}
	if got := attr(client, "url.full"); got != s.up.URL+"/api/orders" {
		t.Errorf("upstream span url.full = %q, want %q (no query: it may hold a token)", got, s.up.URL+"/api/orders")
	}
	// The upstream got the upstream span's context, and the client's
	// tracestate.
	got := s.up.requests()
	if len(got) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(got))
	}
	m := traceparentRE.FindStringSubmatch(got[0].Get("Traceparent"))
	if m == nil {
		t.Fatalf("upstream traceparent = %q, want a W3C traceparent", got[0].Get("Traceparent"))
	}
	if m[1] != clientTrace || m[2] != hexID(client.GetSpanId()) {
		t.Errorf("upstream traceparent = %q, want trace %s and the upstream span %x", got[0].Get("Traceparent"), clientTrace, client.GetSpanId())
	}
	if ts := got[0].Get("Tracestate"); ts != "vendor=abc" {
		t.Errorf("upstream tracestate = %q, want the client's vendor=abc", ts)
	}
	if got[0].Get("X-Request-Id") != res.Header.Get("X-Request-Id") {
		t.Errorf("upstream request ID = %q, want %q", got[0].Get("X-Request-Id"), res.Header.Get("X-Request-Id"))
	}
	assertNoToken(t, spans, tok)

	// The same token again: a cache hit, in a new trace of its own.
	res = s.send(t, "/api/orders", tok, nil)
	id := res.Header.Get("X-Request-Id")
	spans = s.recv.await(t, s.tracer, "the second request's span", func(sp []*tracepb.Span) bool {
		return findServer(sp, id) != nil
	})
	second := findServer(spans, id)
	if attr(second, "jwt_sidecar.cache_hit") != "true" {
		t.Errorf("second request cache_hit = %q, want true", attr(second, "jwt_sidecar.cache_hit"))
	}
	if hexID(second.GetTraceId()) == clientTrace || len(second.GetParentSpanId()) != 0 {
		t.Errorf("a request without traceparent continued a trace: trace %x parent %x", second.GetTraceId(), second.GetParentSpanId())
	}
	// The service's resource.
	s.recv.mu.Lock()
	res0 := map[string]string{}
	for _, kv := range s.recv.resource {
		res0[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	s.recv.mu.Unlock()
	if res0["service.name"] != "jwt-sidecar" || res0["deployment.environment"] != "test" {
		t.Errorf("resource = %v, want service.name jwt-sidecar and deployment.environment test", res0)
	}
}

func findServer(spans []*tracepb.Span, requestID string) *tracepb.Span {
	for _, s := range spans {
		if s.GetKind() == tracepb.Span_SPAN_KIND_SERVER && attr(s, "jwt_sidecar.request_id") == requestID {
			return s
		}
	}
	return nil
}

// assertNoToken fails when any attribute of any span holds the token or
// its signature.
func assertNoToken(t *testing.T, spans []*tracepb.Span, tok string) {
	t.Helper()
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	for _, s := range spans {
		for _, kv := range s.GetAttributes() {
			v := kv.GetValue().String()
			if strings.Contains(v, tok) || strings.Contains(v, sig) {
				t.Errorf("span %s attribute %s holds the token", s.GetName(), kv.GetKey())
			}
		}
	}
}

// TestTraceOfRefusals: a refused request is a server span with the
// refusal (reason, outcome, status) and no upstream span, its status left
// unset (a refusal is the sidecar working); the upstream sees nothing.
func TestTraceOfRefusals(t *testing.T) {
	s := newStack(t, "always_on")
	expired := jwttest.Claims(jwttest.IssuerA)
	expired["exp"] = jwttest.Now.Add(-time.Hour).Unix()
	expired["iat"] = jwttest.Now.Add(-2 * time.Hour).Unix()
	expired["nbf"] = jwttest.Now.Add(-2 * time.Hour).Unix()
	badTok := s.signer.Sign(t, expired)
	tests := []struct {
		name       string
		token      string
		wantStatus int
		wantReason string
		wantOut    string
	}{
		{name: "no token", wantStatus: http.StatusUnauthorized, wantReason: "missing", wantOut: "unauthenticated"},
		{name: "expired", token: badTok, wantStatus: http.StatusUnauthorized, wantReason: "expired", wantOut: "unauthenticated"},
		{name: "garbage", token: "not-a-jwt", wantStatus: http.StatusUnauthorized, wantReason: "malformed", wantOut: "unauthenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.send(t, "/api/admin", tt.token, nil)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			id := res.Header.Get("X-Request-Id")
			spans := s.recv.await(t, s.tracer, "the refusal's span", func(sp []*tracepb.Span) bool { return findServer(sp, id) != nil })
			server := findServer(spans, id)
			if got := attr(server, "jwt_sidecar.reason"); got != tt.wantReason {
				t.Errorf("reason = %q, want %q", got, tt.wantReason)
			}
			if got := attr(server, "jwt_sidecar.outcome"); got != tt.wantOut {
				t.Errorf("outcome = %q, want %q", got, tt.wantOut)
			}
			if got := attr(server, "http.response.status_code"); got != fmt.Sprint(tt.wantStatus) {
				t.Errorf("status code attribute = %q, want %d", got, tt.wantStatus)
			}
			if server.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_UNSET {
				t.Errorf("refusal span status = %v, want unset: a refusal is no error of the sidecar", server.GetStatus())
			}
			if tt.token != "" && attr(server, "jwt_sidecar.token_hash") == "" {
				t.Errorf("refusal of a token has no token_hash; the log line has one")
			}
			if tt.token != "" && !strings.Contains(s.logs.String(), attr(server, "jwt_sidecar.token_hash")) {
				t.Errorf("span token_hash %q is not in the log", attr(server, "jwt_sidecar.token_hash"))
			}
			for _, sp := range spansOf(spans, hexID(server.GetTraceId())) {
				if sp.GetKind() == tracepb.Span_SPAN_KIND_CLIENT {
					t.Errorf("a refused request has an upstream span %s", sp.GetName())
				}
			}
			if tt.token != "" {
				assertNoToken(t, spans, tt.token)
			}
		})
	}
	if n := len(s.up.requests()); n != 0 {
		t.Errorf("upstream got %d requests, want none: every one was refused", n)
	}
}

// TestTraceOfAFailingUpstream: a 5xx is the span's Error status, on the
// server span and on the upstream span.
func TestTraceOfAFailingUpstream(t *testing.T) {
	s := newStack(t, "always_on")
	s.up.mu.Lock()
	s.up.status = http.StatusServiceUnavailable
	s.up.mu.Unlock()
	res := s.send(t, "/api", s.signer.Sign(t, jwttest.Claims(jwttest.IssuerA)), nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want the upstream's 503", res.StatusCode)
	}
	id := res.Header.Get("X-Request-Id")
	spans := s.recv.await(t, s.tracer, "server and upstream spans", func(sp []*tracepb.Span) bool {
		srv := findServer(sp, id)
		return srv != nil && len(spansOf(sp, hexID(srv.GetTraceId()))) >= 2
	})
	server := findServer(spans, id)
	client := kindOf(spansOf(spans, hexID(server.GetTraceId())), tracepb.Span_SPAN_KIND_CLIENT)
	for _, sp := range []*tracepb.Span{server, client} {
		if sp.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("%v span status = %v, want Error", sp.GetKind(), sp.GetStatus())
		}
		if got := attr(sp, "error.type"); got != "503" {
			t.Errorf("%v span error.type = %q, want 503", sp.GetKind(), got)
		}
	}
	if attr(server, "jwt_sidecar.outcome") != "allowed" {
		t.Errorf("outcome = %q, want allowed: the token was fine", attr(server, "jwt_sidecar.outcome"))
	}
}

// TestKeyFetchIsARootSpan: the key load at start has no request around it,
// so it is a trace of its own.
func TestKeyFetchIsARootSpan(t *testing.T) {
	s := newStack(t, "parentbased_always_on")
	spans := s.recv.await(t, s.tracer, "the key fetch span", func(sp []*tracepb.Span) bool {
		for _, x := range sp {
			if x.GetName() == "jwt-sidecar key fetch" {
				return true
			}
		}
		return false
	})
	for _, x := range spans {
		if x.GetName() != "jwt-sidecar key fetch" {
			continue
		}
		if len(x.GetParentSpanId()) != 0 {
			t.Errorf("key fetch span has parent %x, want a root span", x.GetParentSpanId())
		}
		if x.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("key fetch span kind = %v, want client", x.GetKind())
		}
		if got := attr(x, "url.full"); got != s.keyFetch {
			t.Errorf("key fetch url.full = %q, want %q", got, s.keyFetch)
		}
		if got := attr(x, "http.response.status_code"); got != "200" {
			t.Errorf("key fetch status = %q, want 200", got)
		}
	}
}

// TestExemplars: with a sampled span, the verification and upstream
// histograms carry the trace ID as an exemplar in the OpenMetrics
// exposition that the admin listener serves.
func TestExemplars(t *testing.T) {
	s := newStack(t, "always_on")
	res := s.send(t, "/api", s.signer.Sign(t, jwttest.Claims(jwttest.IssuerA)), nil)
	id := res.Header.Get("X-Request-Id")
	spans := s.recv.await(t, s.tracer, "the request's span", func(sp []*tracepb.Span) bool { return findServer(sp, id) != nil })
	traceID := hexID(findServer(spans, id).GetTraceId())

	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	rec := httptest.NewRecorder()
	s.admin.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("Content-Type = %q, want OpenMetrics", ct)
	}
	body := rec.Body.String()
	for _, name := range []string{`jwt_sidecar_verification_duration_seconds_bucket{mode="jwt"`, `jwt_sidecar_upstream_duration_seconds_bucket{`} {
		re := regexp.MustCompile(regexp.QuoteMeta(name) + `[^\n]*# \{trace_id="([0-9a-f]{32})"\}`)
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Errorf("no exemplar on %s…:\n%s", name, grepLines(body, name))
			continue
		}
		if m[1] != traceID {
			t.Errorf("%s exemplar trace_id = %s, want the request's trace %s", name, m[1], traceID)
		}
		t.Logf("%s", m[0])
	}
}

func grepLines(body, prefix string) string {
	var out []string
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestUnsampledRequestsHaveNoExemplar: always_off records no span, so no
// exemplar names a trace that was never exported.
func TestUnsampledRequestsHaveNoExemplar(t *testing.T) {
	s := newStack(t, "always_off")
	res := s.send(t, "/api", s.signer.Sign(t, jwttest.Claims(jwttest.IssuerA)), nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	rec := httptest.NewRecorder()
	s.admin.ServeHTTP(rec, req)
	if strings.Contains(rec.Body.String(), "trace_id=") {
		t.Errorf("an unsampled request left an exemplar:\n%s", grepLines(rec.Body.String(), "jwt_sidecar_verification_duration_seconds_bucket"))
	}
	// The upstream still gets a traceparent (not sampled), so its own
	// spans join the same decision.
	if got := s.up.requests(); len(got) != 1 || !strings.HasSuffix(got[0].Get("Traceparent"), "-00") {
		t.Errorf("upstream headers = %v, want one unsampled traceparent", got)
	}
}

// TestTraceOfIntrospection: each call to the token service is a client
// span, a child of the request's span; a token service that fails makes
// the request 503 unavailable, an Error on both spans. The token travels in
// the call's form body, never in a span.
func TestTraceOfIntrospection(t *testing.T) {
	recv := newReceiver(t)
	up := newUpstream(t)
	ts := jwttest.NewTokenService(t)
	tr, err := tracing.New(tracing.Options{Endpoint: recv.URL + "/v1/traces", ServiceName: "jwt-sidecar", Sampler: "always_on"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	in, err := verifier.NewIntrospector(verifier.IntrospectionOptions{
		URL: ts.URL, ClientID: jwttest.IntrospectionClientID, ClientSecret: jwttest.IntrospectionClientSecret,
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return tr.Client("jwt-sidecar introspection", rt) },
		Now:           func() time.Time { return jwttest.Now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.CloseIdleConnections)
	pol, err := policy.New(policy.Options{
		Providers: []policy.Provider{{Name: policy.EnvProvider, Auth: in}},
		Default:   policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{policy.EnvProvider}},
		Mode:      verifier.ModeIntrospection,
	})
	if err != nil {
		t.Fatal(err)
	}
	upURL, _ := url.Parse(up.URL)
	p, err := proxy.New(proxy.Options{Upstream: upURL, Policy: pol, Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	sidecar := httptest.NewServer(p.Handler())
	t.Cleanup(sidecar.Close)
	s := &stack{tracer: tr, recv: recv, up: up, sidecar: sidecar}

	const tok = "opaque-access-token-0123456789"
	claims := jwttest.ActiveClaims()
	ts.Activate(tok, claims)
	tests := []struct {
		name       string
		status     int // the token service's failure; 0: answers
		wantStatus int
		wantOut    string
		wantCode   tracepb.Status_StatusCode
	}{
		{name: "active", wantStatus: http.StatusOK, wantOut: "allowed", wantCode: tracepb.Status_STATUS_CODE_UNSET},
		{name: "token service fails", status: http.StatusInternalServerError, wantStatus: http.StatusServiceUnavailable, wantOut: "unavailable", wantCode: tracepb.Status_STATUS_CODE_ERROR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.Set(func(ts *jwttest.TokenService) { ts.Status = tt.status })
			res := s.send(t, "/api", tok, nil)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			id := res.Header.Get("X-Request-Id")
			var server, call *tracepb.Span
			s.recv.await(t, tr, "server and introspection spans", func(sp []*tracepb.Span) bool {
				server = findServer(sp, id)
				if server == nil {
					return false
				}
				for _, x := range spansOf(sp, hexID(server.GetTraceId())) {
					if x.GetName() == "jwt-sidecar introspection" {
						call = x
					}
				}
				return call != nil
			})
			if !bytes.Equal(call.GetParentSpanId(), server.GetSpanId()) {
				t.Errorf("introspection span's parent = %x, want the server span %x", call.GetParentSpanId(), server.GetSpanId())
			}
			if got := attr(server, "jwt_sidecar.outcome"); got != tt.wantOut {
				t.Errorf("outcome = %q, want %q", got, tt.wantOut)
			}
			if got := attr(server, "jwt_sidecar.mode"); got != "introspection" {
				t.Errorf("mode = %q, want introspection", got)
			}
			if server.GetStatus().GetCode() != tt.wantCode || call.GetStatus().GetCode() != tt.wantCode {
				t.Errorf("span statuses = %v (server), %v (call), want %v", server.GetStatus().GetCode(), call.GetStatus().GetCode(), tt.wantCode)
			}
			if got := attr(call, "url.full"); got != ts.URL {
				t.Errorf("introspection url.full = %q, want %q", got, ts.URL)
			}
			assertNoToken(t, []*tracepb.Span{server, call}, tok+"."+tok)
		})
	}
}
