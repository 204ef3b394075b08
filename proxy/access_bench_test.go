package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// sidecarWith is sidecar with adjusted options.
func sidecarWith(b *testing.B, adjust func(*Options)) (http.Handler, string) {
	reg := prometheus.NewRegistry()
	m := testMetrics(reg)
	o := testOptions{
		Options: Options{
			Upstream:  mustURL(b, "http://127.0.0.1:3000"),
			Recorder:  m,
			Logger:    discardLogger(),
			Transport: inProcess{},
		},
		Verifier:     newVerifier(b, verifierConfig{cacheSize: 1024}, m),
		ClaimHeaders: []config.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}, {Claim: "realm_access.roles", Header: "X-Auth-Roles"}},
		PublicPaths:  []string{"/public/*", "/healthz"},
	}
	adjust(&o.Options)
	p, err := o.build()
	if err != nil {
		b.Fatal(err)
	}
	return p.Handler(), benchToken(b)
}

// BenchmarkHandlerClientRequestID is BenchmarkHandler with a well-formed
// X-Request-Id from the client: kept, so no ID is generated.
func BenchmarkHandlerClientRequestID(b *testing.B) {
	h, tok := sidecar(b)
	r := benchRequest(tok)
	r.Header.Set(RequestIDHeader, "3f1c2a9e-7b4d-4e0a-9c1f-2d5b8e6a4c10")
	serveLoop(b, h, r)
}

// BenchmarkHandlerAccessLog is BenchmarkHandler with ACCESS_LOG on, each
// line encoded as JSON (and discarded), as the sidecar would write it.
func BenchmarkHandlerAccessLog(b *testing.B) {
	h, tok := sidecarWith(b, func(o *Options) {
		o.AccessLog = true
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	})
	serveLoop(b, h, benchRequest(tok))
}

// BenchmarkHandlerRefusedSampled is the tokenless flood with the default
// refusal rate: nearly every line is dropped and counted.
func BenchmarkHandlerRefusedSampled(b *testing.B) {
	h, _ := sidecarWith(b, func(o *Options) {
		o.RefusalLogRate = 100
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	})
	r := benchRequest("")
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(discardWriter{}, r)
	}
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
