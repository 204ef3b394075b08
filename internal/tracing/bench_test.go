package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

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

// inProcess is an upstream inside the benchmark, as in proxy's benchmarks:
// the numbers are the sidecar's alone.
type inProcess struct{}

func (inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"text/plain"}},
		Body:    io.NopCloser(strings.NewReader("upstream ok")),
		Request: r, ContentLength: 11,
	}, nil
}

// benchHandler is the sidecar's handler (ES256 token, token cache on,
// metrics, an in-process upstream) with tracing as sampler says: "" is
// tracing off. Spans go over OTLP/HTTP to a receiver on 127.0.0.1 that
// counts the bytes and drops them.
func benchHandler(b *testing.B, sampler string) (http.Handler, string, *atomic.Int64) {
	signer := jwttest.NewSigner(b, "ES256", "k1")
	jwks := jwttest.JWKS(b, signer)
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwks) }))
	b.Cleanup(issuer.Close)
	var exported atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		exported.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(sink.Close)

	reg := prometheus.NewRegistry()
	m := metrics.New(reg, telemetry.Labels())
	ks := verifytest.Keys(b, keys.KeyOptions{}, m, keys.NewRemoteSource(issuer.URL, []string{jwttest.IssuerA}, nil))
	v := verifytest.Verifier(b, verifier.Options{Keys: ks, Audiences: []string{jwttest.Audience}, CacheSize: 1024, Recorder: m})
	pol, err := policy.New(policy.Options{
		Providers: []policy.Provider{{Name: policy.EnvProvider, Auth: v, Issuers: []string{jwttest.IssuerA}}},
		Default:   policy.Requirement{Kind: policy.RequireAnyOf, Providers: []string{policy.EnvProvider}},
		Mode:      verifier.ModeJWT,
	})
	if err != nil {
		b.Fatal(err)
	}
	o := proxy.Options{Upstream: &url.URL{Scheme: "http", Host: "127.0.0.1:3000"}, Policy: pol, Recorder: m, Transport: inProcess{}}
	if sampler != "" {
		tr, err := tracing.New(tracing.Options{Endpoint: sink.URL + "/v1/traces", ServiceName: "jwt-sidecar", Sampler: sampler, Ratio: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
		o.Tracer = tr
	}
	p, err := proxy.New(o)
	if err != nil {
		b.Fatal(err)
	}
	return p.Handler(), signer.Sign(b, jwttest.Claims(jwttest.IssuerA)), &exported
}

func benchServe(b *testing.B, sampler string) {
	h, tok, exported := benchHandler(b, sampler)
	r := httptest.NewRequest(http.MethodGet, "http://app.example/api/v1/items?page=2", nil)
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		c := *r
		c.Header = r.Header.Clone()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, &c)
		if rec.Code != http.StatusOK {
			b.Fatalf("status = %d", rec.Code)
		}
	}
	b.StopTimer()
	// CPU time of the whole process (the batch exporter included), which
	// other load on the machine inflates less than ns/op.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(exported.Load())/float64(b.N), "exported-B/op")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTracingOff is the handler without a Tracer: the sidecar's
// default. It must cost what proxy's BenchmarkHandler costs.
func BenchmarkTracingOff(b *testing.B) { benchServe(b, "") }

// BenchmarkTracingSampled records and exports a server and an upstream
// span per request.
func BenchmarkTracingSampled(b *testing.B) { benchServe(b, "always_on") }

// BenchmarkTracingUnsampled has tracing on but samples nothing: spans are
// started but neither recorded nor exported; traceparent still goes
// upstream.
func BenchmarkTracingUnsampled(b *testing.B) { benchServe(b, "always_off") }

// discard is an exporter that drops every span.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
