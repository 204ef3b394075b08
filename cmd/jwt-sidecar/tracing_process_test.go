package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// otlpSink is an OTLP/HTTP receiver on 127.0.0.1 that keeps every span and
// the service.name/version of the exports.
type otlpSink struct {
	*httptest.Server
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource map[string]string
	apiKeys  []string // the X-Api-Key of each export
}

func newOTLPSink(t *testing.T) *otlpSink {
	t.Helper()
	s := &otlpSink{resource: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.apiKeys = append(s.apiKeys, r.Header.Get("X-Api-Key"))
		for _, rs := range req.GetResourceSpans() {
			for _, kv := range rs.GetResource().GetAttributes() {
				s.resource[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				s.spans = append(s.spans, ss.GetSpans()...)
			}
		}
		s.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestTracingProcess: the real binary with OTEL_EXPORTER_OTLP_ENDPOINT
// exports the key fetch, the request's server span and its upstream span;
// the spans still queued at SIGTERM are exported before exit (the batch
// delay is the SDK's 5 s, longer than the test waits for anything else).
func TestTracingProcess(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	sink := newOTLPSink(t)
	var (
		mu          sync.Mutex
		traceparent string
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		traceparent = r.Header.Get("Traceparent")
		mu.Unlock()
	}))
	t.Cleanup(up.Close)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL,
		"OTEL_EXPORTER_OTLP_ENDPOINT": sink.URL,
		"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment=ci",
		"OTEL_EXPORTER_OTLP_HEADERS":  "X-Api-Key=k%201",
	})
	s.waitFor(t, "/readyz", http.StatusOK)
	if res := s.get(t, "/api", token(t, k)); res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	if res := s.get(t, "/api", ""); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", res.StatusCode)
	}
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.ExitCode(t); code != 0 {
		t.Fatalf("exit code = %d, want 0", code)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	byName := map[string][]*tracepb.Span{}
	for _, sp := range sink.spans {
		byName[sp.GetName()] = append(byName[sp.GetName()], sp)
	}
	if len(byName[spanKeyFetch]) == 0 {
		t.Errorf("no %q span among %d spans", spanKeyFetch, len(sink.spans))
	}
	var server, client *tracepb.Span
	for _, sp := range byName["GET"] {
		switch sp.GetKind() {
		case tracepb.Span_SPAN_KIND_SERVER:
			if server == nil {
				server = sp
			}
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = sp
		}
	}
	if server == nil || client == nil {
		t.Fatalf("GET spans = %v, want a server and an upstream span", byName["GET"])
	}
	mu.Lock()
	tp := traceparent
	mu.Unlock()
	want := "00-" + hex.EncodeToString(client.GetTraceId()) + "-" + hex.EncodeToString(client.GetSpanId()) + "-01"
	if tp != want {
		t.Errorf("upstream traceparent = %q, want %q (the upstream span)", tp, want)
	}
	if len(byName["GET"]) != 3 {
		t.Errorf("%d GET spans, want 3: allowed server + upstream, refused server", len(byName["GET"]))
	}
	for _, k := range sink.apiKeys {
		if k != "k 1" {
			t.Errorf("export X-Api-Key = %q, want %q from OTEL_EXPORTER_OTLP_HEADERS", k, "k 1")
		}
	}
	if sink.resource["service.name"] != "jwt-sidecar" || sink.resource["service.version"] == "" || sink.resource["deployment.environment"] != "ci" {
		t.Errorf("resource = %v, want service.name, service.version and deployment.environment", sink.resource)
	}
}

// TestCheckConfigSaysWhereTracesGo: check-config says whether tracing is on
// and where spans go, without a password in the URL.
func TestCheckConfigSaysWhereTracesGo(t *testing.T) {
	base := map[string]string{"UPSTREAM_URL": "http://127.0.0.1:3000", "ISSUERS": testIssuer, "JWKS_URLS": "http://127.0.0.1:1/jwks"}
	tests := []struct {
		name  string
		extra map[string]string
		want  string
	}{
		{name: "off", want: "# tracing is off (no OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)."},
		{name: "none", extra: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, want: "# tracing is off (OTEL_TRACES_EXPORTER=none)."},
		{name: "on", extra: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:pw@collector:4318", "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20pw"},
			want: "# tracing is on: spans go to http://user:xxxxx@collector:4318/v1/traces (OTLP/HTTP), sampler parentbased_always_on."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.extra {
				env[k] = v
			}
			var out, errOut strings.Builder
			if code := checkConfig(nil, env, &out, &errOut); code != 0 {
				t.Fatalf("check-config = %d: %s", code, errOut.String())
			}
			if !strings.Contains(out.String(), tt.want+"\n") {
				t.Errorf("check-config output lacks %q:\n%s", tt.want, out.String())
			}
			if strings.Contains(out.String(), ":pw@") || strings.Contains(out.String(), "Bearer") {
				t.Errorf("check-config shows the collector's password or the export headers:\n%s", out.String())
			}
		})
	}
}
