package tracing_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/jwt-sidecar/jwt-sidecar/internal/tracing"
)

// flaky is an OTLP endpoint that answers the statuses in plan, in turn,
// then 200, and keeps what each export carried.
type flaky struct {
	*httptest.Server
	mu      sync.Mutex
	plan    []int
	calls   int
	spans   []*tracepb.Span
	headers []http.Header
}

func newFlaky(t *testing.T, plan ...int) *flaky {
	f := &flaky{plan: plan}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls++
		f.headers = append(f.headers, r.Header.Clone())
		if len(f.plan) > 0 {
			status := f.plan[0]
			f.plan = f.plan[1:]
			w.WriteHeader(status)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("export is not an ExportTraceServiceRequest: %v", err)
		}
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				f.spans = append(f.spans, ss.GetSpans()...)
			}
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// oneSpan records one client span through tr and flushes it.
func oneSpan(t *testing.T, tr *tracing.Tracer) {
	t.Helper()
	rt := tr.Client("export test", roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	}))
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:1/x", nil)
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if err := tr.ForceFlush(t.Context()); err != nil {
		t.Logf("flush: %v", err)
	}
}

// TestExportRetriesAndHeaders: throttling and unavailability are retried
// until the batch is delivered, with OTEL_EXPORTER_OTLP_HEADERS on every
// attempt; a client error drops the batch at once.
func TestExportRetriesAndHeaders(t *testing.T) {
	tests := []struct {
		name      string
		plan      []int
		wantCalls int
		wantSpans int
	}{
		{name: "delivered", wantCalls: 1, wantSpans: 1},
		{name: "throttled then unavailable, then delivered", plan: []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}, wantCalls: 3, wantSpans: 1},
		{name: "refused: dropped without retry", plan: []int{http.StatusBadRequest}, wantCalls: 1, wantSpans: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFlaky(t, tt.plan...)
			tr, err := tracing.New(tracing.Options{
				Endpoint: f.URL + "/v1/traces", ServiceName: "jwt-sidecar", Sampler: "always_on",
				Headers: map[string]string{"X-Api-Key": "k1"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(t.Context())
			oneSpan(t, tr)
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.calls != tt.wantCalls || len(f.spans) != tt.wantSpans {
				t.Errorf("calls = %d, spans = %d; want %d, %d", f.calls, len(f.spans), tt.wantCalls, tt.wantSpans)
			}
			for _, h := range f.headers {
				if h.Get("X-Api-Key") != "k1" || h.Get("Content-Type") != "application/x-protobuf" {
					t.Errorf("export headers = %v, want X-Api-Key and application/x-protobuf", h)
				}
			}
			if len(f.spans) == 1 {
				s := f.spans[0]
				if s.GetName() != "export test" || s.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || len(s.GetTraceId()) != 16 || len(s.GetSpanId()) != 8 ||
					s.GetEndTimeUnixNano() < s.GetStartTimeUnixNano() || attr(s, "url.full") != "http://127.0.0.1:1/x" || attr(s, "server.port") != "1" {
					t.Errorf("span = %v", s)
				}
			}
		})
	}
}
