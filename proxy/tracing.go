package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Tracer puts requests into traces (OpenTelemetry). *tracing.Tracer
// satisfies it; the proxy imports no tracing library. Nil, the default,
// traces nothing and adds nothing to the request path.
type Tracer interface {
	// Server wraps the chain: one server span per request, continuing the
	// client's trace context.
	Server(next http.Handler) http.Handler
	// Upstream wraps the upstream transport: a client span per forwarded
	// request, whose context the upstream receives (traceparent).
	Upstream(next http.RoundTripper) http.RoundTripper
	// Decision records the authentication decision on the request's span.
	Decision(ctx context.Context, d *SpanDecision)
	// TraceID is the trace ID of ctx's span when it is sampled, else "":
	// the exemplar of the latency histograms.
	TraceID(ctx context.Context) string
}

// SpanDecision is what a request's span says about its authentication:
// the access log's fields, never the token. TokenHash is set for a
// refusal only, as in the refusal's log line.
type SpanDecision struct {
	Outcome   string
	Reason    string
	Rule      string
	Provider  string
	Mode      string
	Verified  bool // a token was verified; CacheHit says how
	CacheHit  bool // the verdict came from the token cache
	TokenHash string
}

// ExemplarRecorder is a Recorder whose latency observations can name the
// trace they belong to (a Prometheus exemplar). *metrics.Metrics satisfies
// it; the proxy uses it only with a Tracer, for sampled spans.
type ExemplarRecorder interface {
	VerificationInTrace(mode string, d time.Duration, traceID string)
	UpstreamInTrace(d time.Duration, traceID string)
}

// traceDecision records d on r's span.
func (p *Proxy) traceDecision(r *http.Request, pol *policy.Policy, d *policy.Decision) {
	sd := SpanDecision{Rule: ruleName(d.Rule), Mode: pol.Mode()}
	switch {
	case d.Err != nil:
		if e, ok := errors.AsType[*verifier.Error](d.Err); ok {
			sd.Outcome, sd.Reason, sd.TokenHash = string(p.refusalFor(e.Reason).outcome), string(e.Reason), e.TokenHash
		} else {
			sd.Outcome = OutcomeInternalError
		}
	case d.Public || d.Anonymous:
		sd.Outcome = string(verifier.Public)
	default:
		sd.Outcome = string(verifier.Allowed)
		sd.Provider = pol.Providers()[d.First.Provider].Name
		sd.Verified, sd.CacheHit = true, d.First.Claims.CacheHit
	}
	p.tracer.Decision(r.Context(), &sd)
}

// observeVerification records one verification's time, with the trace as
// exemplar when the request's span is sampled.
func (p *Proxy) observeVerification(ctx context.Context, mode string, d time.Duration) {
	if p.exemplars != nil {
		if id := p.tracer.TraceID(ctx); id != "" {
			p.exemplars.VerificationInTrace(mode, d, id)
			return
		}
	}
	p.rec.Verification(mode, d)
}
