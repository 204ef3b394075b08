package main

import (
	"context"
	"net/http"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/internal/tracing"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
)

// tracingShutdownTimeout bounds the export of the last spans at shutdown.
const tracingShutdownTimeout = 5 * time.Second

// Span names of the sidecar's own calls; upstream calls are named by their
// method, as the HTTP semantic conventions name client spans.
const (
	spanKeyFetch      = "jwt-sidecar key fetch"
	spanIntrospection = "jwt-sidecar introspection"
)

// newTracer builds the tracer the OTEL_* variables describe, or nil when
// tracing is off (no endpoint, OTEL_TRACES_EXPORTER=none or
// OTEL_SDK_DISABLED=true): then nothing is wrapped and the request path
// is unchanged.
func newTracer(cfg *config.Config) (*tracing.Tracer, error) {
	endpoint := cfg.TracesEndpoint()
	if endpoint == "" {
		return nil, nil
	}
	attrs, _ := config.ParseResourceAttributes(cfg.OTelResourceAttrs) // validated
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		m[a.Key] = a.Value
	}
	headers, _ := config.ParseOTLPHeaders(cfg.OTelHeaders) // validated
	return tracing.New(tracing.Options{
		Endpoint:       endpoint,
		Headers:        headers,
		ServiceName:    cfg.OTelServiceName,
		ServiceVersion: cli.Version(version),
		Attributes:     m,
		Sampler:        cfg.OTelTracesSampler,
		Ratio:          cfg.SamplerRatio(),
		Propagators:    cfg.OTelPropagators,
	})
}

// proxyTracer is t as the proxy's Tracer: a nil interface when tracing is
// off, never a typed nil.
func proxyTracer(t *tracing.Tracer) proxy.Tracer {
	if t == nil {
		return nil
	}
	return t
}

// wrapFor is the transport wrapper that makes each call of a client a span
// named name; nil when tracing is off.
func wrapFor(t *tracing.Tracer, name string) func(http.RoundTripper) http.RoundTripper {
	if t == nil {
		return nil
	}
	return func(rt http.RoundTripper) http.RoundTripper { return t.Client(name, rt) }
}

// stopTracing exports the spans still queued, bounded by
// tracingShutdownTimeout.
func (a *app) stopTracing() {
	if a.tracer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
	defer cancel()
	if err := a.tracer.Shutdown(ctx); err != nil {
		a.log.Warn("tracing: the last spans could not be exported", "error", err)
	}
}

// tracingSummary is check-config's line about tracing: on and where to,
// or off and why.
func tracingSummary(cfg *config.Config) string {
	switch {
	case cfg.OTelSDKDisabled:
		return "tracing is off (OTEL_SDK_DISABLED=true)"
	case cfg.OTelTracesExporter == "none":
		return "tracing is off (OTEL_TRACES_EXPORTER=none)"
	case cfg.TracesEndpoint() == "":
		return "tracing is off (no OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"
	}
	return "tracing is on: spans go to " + maskURL(cfg.TracesEndpoint()) + " (OTLP/HTTP), sampler " + cfg.OTelTracesSampler
}
