// Package tracing puts the sidecar's work into OpenTelemetry traces: one
// server span per proxied request (continuing the client's W3C trace
// context), a client span for its upstream call (whose context goes to the
// upstream as traceparent), and client spans for token introspection and
// key fetches. Spans are exported over OTLP/HTTP in batches.
//
// It is the only package that imports the OpenTelemetry SDK: the proxy
// declares the small interface it needs (proxy.Tracer) and main wires a
// *Tracer in when an exporter endpoint is configured. Without one, nothing
// here runs and the request path is unchanged.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/jwt-sidecar/jwt-sidecar/internal/statuswriter"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
)

// scope is the instrumentation scope of every span the sidecar makes.
const scope = "github.com/jwt-sidecar/jwt-sidecar"

// Span attributes of the authentication decision. The token itself never
// appears in a span; a refusal carries the same token hash as its log line.
const (
	AttrOutcome   = attribute.Key("jwt_sidecar.outcome")
	AttrReason    = attribute.Key("jwt_sidecar.reason")
	AttrRule      = attribute.Key("jwt_sidecar.rule")
	AttrProvider  = attribute.Key("jwt_sidecar.provider")
	AttrMode      = attribute.Key("jwt_sidecar.mode")
	AttrCacheHit  = attribute.Key("jwt_sidecar.cache_hit")
	AttrTokenHash = attribute.Key("jwt_sidecar.token_hash")
	AttrRequestID = attribute.Key("jwt_sidecar.request_id")
)

// Options configure a Tracer. main builds them from the OTEL_* variables
// (config.Config); nothing here reads the environment.
type Options struct {
	// Endpoint is the full OTLP/HTTP traces URL (…/v1/traces).
	Endpoint string
	// Headers go with every export (OTEL_EXPORTER_OTLP_HEADERS), e.g. a
	// hosted backend's API key.
	Headers map[string]string
	// ServiceName and ServiceVersion name the sidecar in every trace.
	ServiceName, ServiceVersion string
	// Attributes are extra resource attributes (OTEL_RESOURCE_ATTRIBUTES).
	Attributes map[string]string
	// Sampler is an OTEL_TRACES_SAMPLER name; Ratio its argument.
	Sampler string
	Ratio   float64
	// Propagators are OTEL_PROPAGATORS: tracecontext, baggage, none.
	Propagators []string
	// Exporter replaces the OTLP exporter, for benchmarks.
	Exporter sdktrace.SpanExporter
	// BatchTimeout is the batch processor's export delay; zero: the SDK's
	// default (5 s).
	BatchTimeout time.Duration
}

// Tracer makes the sidecar's spans. It satisfies proxy.Tracer. It is safe
// for concurrent use.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
}

// New builds a Tracer exporting to o.Endpoint over OTLP/HTTP. It contacts
// nothing: spans are sent in the background, in batches, and a collector
// that is down costs dropped spans, never a slower request.
func New(o Options) (*Tracer, error) {
	exp := o.Exporter
	if exp == nil {
		if o.Endpoint == "" {
			return nil, errNoEndpoint
		}
		exp = newExporter(o.Endpoint, o.Headers)
	}
	sampler, err := newSampler(o.Sampler, o.Ratio)
	if err != nil {
		return nil, err
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(o.ServiceName)}
	if o.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(o.ServiceVersion))
	}
	for k, v := range o.Attributes {
		if k == string(semconv.ServiceNameKey) {
			continue // OTEL_SERVICE_NAME wins, as the SDK specification says
		}
		attrs = append(attrs, attribute.String(k, v))
	}
	var batch []sdktrace.BatchSpanProcessorOption
	if o.BatchTimeout > 0 {
		batch = append(batch, sdktrace.WithBatchTimeout(o.BatchTimeout))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, batch...),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
	)
	return &Tracer{
		provider: tp,
		tracer:   tp.Tracer(scope),
		prop:     newPropagator(o.Propagators),
	}, nil
}

// newSampler is the OTEL_TRACES_SAMPLER of the SDK specification.
func newSampler(name string, ratio float64) (sdktrace.Sampler, error) {
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("tracing: unknown sampler %q", name)
}

// newPropagator is OTEL_PROPAGATORS: W3C trace context and baggage by
// default; none propagates nothing (the client's headers still reach the
// upstream untouched, as any header does).
func newPropagator(names []string) propagation.TextMapPropagator {
	if len(names) == 0 {
		names = []string{"tracecontext", "baggage"}
	}
	var ps []propagation.TextMapPropagator
	for _, n := range names {
		switch strings.TrimSpace(n) {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...)
}

// Shutdown exports the spans still queued and stops the exporter; ctx
// bounds the wait.
func (t *Tracer) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// ForceFlush exports every span ended so far.
func (t *Tracer) ForceFlush(ctx context.Context) error { return t.provider.ForceFlush(ctx) }

// Server wraps the proxy's chain: one server span per request, a child of
// the client's span when the request carries a trace context. A 5xx
// answer (the sidecar's own failure, the upstream's, or 503 unavailable)
// sets the span's status to Error; a refusal (4xx) is the sidecar doing its
// job and leaves it unset, as the HTTP semantic conventions say for server
// spans.
func (t *Tracer) Server(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, spanName(r.Method), trace.WithSpanKind(trace.SpanKindServer))
		if !span.IsRecording() {
			// Not sampled: the context still goes upstream, nothing else
			// is worth building.
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		attrs := make([]attribute.KeyValue, 0, 10)
		attrs = append(attrs,
			methodAttr(r.Method),
			semconv.URLPath(r.URL.Path),
			semconv.URLScheme(scheme(r)),
			semconv.NetworkProtocolVersion(protocolVersion(r)),
		)
		if id := r.Header.Get(proxy.RequestIDHeader); id != "" {
			attrs = append(attrs, AttrRequestID.String(id))
		}
		if ua := r.UserAgent(); ua != "" {
			attrs = append(attrs, semconv.UserAgentOriginal(ua))
		}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			attrs = append(attrs, semconv.ClientAddress(host))
		}
		if r.Host != "" {
			attrs = append(attrs, semconv.ServerAddress(hostOnly(r.Host)))
		}
		span.SetAttributes(attrs...)
		defer span.End()
		sw := statuswriter.New(w)
		next.ServeHTTP(sw, r.WithContext(ctx))
		status := sw.Status()
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= 500 {
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// Decision records the authentication decision on the request's span.
func (t *Tracer) Decision(ctx context.Context, d *proxy.SpanDecision) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs, AttrOutcome.String(d.Outcome), AttrMode.String(d.Mode))
	if d.Reason != "" {
		attrs = append(attrs, AttrReason.String(d.Reason))
	}
	if d.Rule != "" {
		attrs = append(attrs, AttrRule.String(d.Rule))
	}
	if d.Provider != "" {
		attrs = append(attrs, AttrProvider.String(d.Provider))
	}
	if d.Verified {
		attrs = append(attrs, AttrCacheHit.Bool(d.CacheHit))
	}
	if d.TokenHash != "" {
		attrs = append(attrs, AttrTokenHash.String(d.TokenHash))
	}
	span.SetAttributes(attrs...)
}

// TraceID is the hex trace ID of ctx's span when it is sampled, else "".
func (t *Tracer) TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return ""
	}
	return sc.TraceID().String()
}

// Upstream wraps the upstream transport: one client span per forwarded
// request, named by its method, whose context the upstream receives as
// traceparent (and tracestate).
func (t *Tracer) Upstream(next http.RoundTripper) http.RoundTripper {
	return t.Client("", next)
}

// Client wraps a transport so that each call is a client span named name
// (the method when empty), a child of the span in the request's context,
// or a root span when there is none (a key refresh in the background). The
// span's context goes out with the request.
func (t *Tracer) Client(name string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &clientTransport{t: t, name: name, next: next}
}

type clientTransport struct {
	t    *Tracer
	name string
	next http.RoundTripper
}

func (c *clientTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	name := c.name
	if name == "" {
		name = spanName(r.Method)
	}
	ctx, span := c.t.tracer.Start(r.Context(), name, trace.WithSpanKind(trace.SpanKindClient))
	recording := span.IsRecording()
	if recording {
		u := *r.URL
		u.User, u.RawQuery, u.Fragment = nil, "", "" // a query may hold a token
		attrs := []attribute.KeyValue{
			methodAttr(r.Method),
			semconv.URLFull(u.String()),
			semconv.ServerAddress(u.Hostname()),
		}
		if n, err := strconv.Atoi(u.Port()); err == nil {
			attrs = append(attrs, semconv.ServerPort(n))
		}
		span.SetAttributes(attrs...)
	}
	defer span.End()
	// RoundTrippers must not change the request they are given: the trace
	// headers go on a copy.
	out := r.WithContext(ctx)
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	c.t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	res, err := c.next.RoundTrip(out)
	if !recording {
		return res, err
	}
	if err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(ctx, err)))
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return res, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(res.StatusCode))
	if res.StatusCode >= 400 {
		// A client span's 4xx is an error too: the call did not do its work.
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(res.StatusCode)))
		span.SetStatus(codes.Error, http.StatusText(res.StatusCode))
	}
	return res, nil
}

// errorType is the error.type of a failed call: timeout, canceled or the
// generic _OTHER (error strings would make the attribute unbounded).
func errorType(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return "canceled"
	}
	return "_OTHER"
}

// knownMethods keep the method attribute and span names bounded (HTTP
// semantic conventions: other methods are _OTHER, their spans "HTTP").
var knownMethods = map[string]attribute.KeyValue{
	http.MethodGet: semconv.HTTPRequestMethodGet, http.MethodHead: semconv.HTTPRequestMethodHead,
	http.MethodPost: semconv.HTTPRequestMethodPost, http.MethodPut: semconv.HTTPRequestMethodPut,
	http.MethodPatch: semconv.HTTPRequestMethodPatch, http.MethodDelete: semconv.HTTPRequestMethodDelete,
	http.MethodOptions: semconv.HTTPRequestMethodOptions, http.MethodConnect: semconv.HTTPRequestMethodConnect,
	http.MethodTrace: semconv.HTTPRequestMethodTrace,
}

func methodAttr(m string) attribute.KeyValue {
	if a, ok := knownMethods[m]; ok {
		return a
	}
	return semconv.HTTPRequestMethodOther
}

func spanName(m string) string {
	if _, ok := knownMethods[m]; ok {
		return m
	}
	return "HTTP"
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func protocolVersion(r *http.Request) string {
	switch r.ProtoMajor {
	case 2:
		return "2"
	case 3:
		return "3"
	}
	return fmt.Sprintf("1.%d", r.ProtoMinor)
}

// hostOnly drops the port of a Host header.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// CloseIdleConnections closes the wrapped transport's idle connections, so
// http.Client.CloseIdleConnections still reaches them.
func (c *clientTransport) CloseIdleConnections() {
	if ci, ok := c.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
