// Package proxy is jwt-sidecar's HTTP side: it removes forgeable claim
// headers, authenticates each request with a Verifier, maps refusals to the
// SPEC's responses, and forwards allowed requests to the upstream with the
// verified claims as headers.
package proxy

import (
	"crypto/tls"
	"errors"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Upstream failure kinds: the `kind` label values of
// jwt_sidecar_upstream_errors_total.
const (
	UpstreamTimeout     = "timeout"
	UpstreamUnreachable = "unreachable"
	UpstreamCanceled    = "canceled"
)

// UpstreamErrorKinds lists every upstream failure kind.
var UpstreamErrorKinds = []string{UpstreamTimeout, UpstreamUnreachable, UpstreamCanceled}

// Recorder receives request telemetry. *metrics.Metrics satisfies it.
type Recorder interface {
	Request(outcome, reason string)
	Verification(mode string, d time.Duration)
	Upstream(d time.Duration)
	UpstreamError(kind string)
	InternalError()
}

type nopRecorder struct{}

func (nopRecorder) Request(string, string)             {}
func (nopRecorder) Verification(string, time.Duration) {}
func (nopRecorder) Upstream(time.Duration)             {}
func (nopRecorder) UpstreamError(string)               {}
func (nopRecorder) InternalError()                     {}

// DefaultMaxIdleConns is the idle upstream connections kept when
// Options.MaxIdleConns is zero.
const DefaultMaxIdleConns = 1024

// Options configure a Proxy. main builds them from the SPEC's variables.
type Options struct {
	// Upstream is where allowed requests go (UPSTREAM_URL): http, https,
	// h2c (HTTP/2 cleartext) or unix (HTTP/1.1 over a unix socket). nil
	// for a decision service only (DecisionHandler): Handler then answers
	// 502 to everything it allows.
	Upstream *url.URL
	// Policy decides every request: its rules, providers and what their
	// verified tokens become on the forwarded request. SetPolicy swaps it.
	Policy *policy.Policy
	// Recorder receives metrics; nil records nothing.
	Recorder Recorder
	// Logger receives one line per refusal and per upstream failure; nil
	// logs nothing.
	Logger *slog.Logger
	// CORSPreflight lets CORS preflight requests (OPTIONS with Origin and
	// Access-Control-Request-Method) through without a token. Off by
	// default: a preflight is then authenticated like any request.
	CORSPreflight bool
	// UpstreamTimeout bounds the wait for the upstream's response headers;
	// past it the client gets 504. Zero waits forever.
	UpstreamTimeout time.Duration
	// MaxIdleConns bounds idle upstream connections (total and per host);
	// default DefaultMaxIdleConns.
	MaxIdleConns int
	// UpstreamTLS is the client TLS configuration for an https upstream
	// (UPSTREAM_CA_FILE, UPSTREAM_CLIENT_CERT_FILE); nil: system roots.
	UpstreamTLS *tls.Config
	// Transport replaces the pooled upstream transport, for tests.
	Transport http.RoundTripper
	// DPoPAlgorithms are the DPoP proof algs the verifiers accept, announced
	// in the DPoP challenges (RFC 9449 §7.1); empty: DPoP is not offered.
	DPoPAlgorithms []string

	// Observability (access log, refusal sampling).

	// AccessLog writes one "request" line per request to Logger (ACCESS_LOG).
	AccessLog bool
	// SubjectClaim is the claim the access log names the caller by; empty
	// means sub (ACCESS_LOG_SUBJECT_CLAIM).
	SubjectClaim string
	// RefusalLogRate bounds refusal lines per second, with a burst of one
	// second's worth; zero logs every refusal (REFUSAL_LOG_RATE).
	RefusalLogRate float64
	// Logs counts the lines the rate limit dropped; nil counts nothing.
	Logs LogRecorder
	// AllowAmbiguousPaths forwards paths that a backend may read
	// differently (config.AmbiguousPath) instead of refusing them with 400
	// ambiguous_path: PATH_STRICT=false, for upstreams that need such
	// paths and read them exactly as the sidecar does.
	AllowAmbiguousPaths bool
	// Tracer puts each request into a trace (OTEL_*); nil traces nothing.
	Tracer Tracer
}

// Proxy authenticates requests and forwards the allowed ones. It is safe for
// concurrent use.
type Proxy struct {
	upstream  *url.URL
	policy    atomic.Pointer[policy.Policy] // swapped whole by SetPolicy
	rec       Recorder
	log       *slog.Logger
	cors      bool
	lax       bool // AllowAmbiguousPaths
	transport http.RoundTripper
	buffers   *bufferPool
	refusals  map[verifier.Reason]*refusal
	dpopAlgs  []string
	internal  *refusal // 500
	badGW     *refusal // 502
	timeoutGW *refusal // 504

	access       bool
	subjectClaim string
	sampler      *sampler
	logs         LogRecorder

	tracer    Tracer           // nil: tracing off
	exemplars ExemplarRecorder // nil unless tracing and the Recorder takes exemplars
}

// New builds a Proxy. It checks the options but contacts nothing.
func New(o Options) (*Proxy, error) {
	var (
		target *url.URL
		socket string
		err    error
	)
	if o.Upstream == nil {
		// Never dialed: noUpstream refuses every round trip.
		target = &url.URL{Scheme: "http", Host: "no-upstream.invalid"}
	} else {
		if target, socket, err = upstreamTarget(o.Upstream); err != nil {
			return nil, err
		}
	}
	if o.Policy == nil {
		return nil, errors.New("no policy")
	}
	if o.Recorder == nil {
		o.Recorder = nopRecorder{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Logs == nil {
		o.Logs = nopLogRecorder{}
	}
	if o.RefusalLogRate < 0 {
		return nil, errors.New("refusal log rate must not be negative")
	}
	if o.UpstreamTimeout < 0 {
		return nil, errors.New("upstream timeout must not be negative")
	}
	if o.MaxIdleConns < 0 {
		return nil, errors.New("max idle connections must not be negative")
	}
	if o.MaxIdleConns == 0 {
		o.MaxIdleConns = DefaultMaxIdleConns
	}
	p := &Proxy{
		upstream: target,
		rec:      o.Recorder,
		log:      o.Logger,
		cors:     o.CORSPreflight,
		lax:      o.AllowAmbiguousPaths,
		buffers:  newBufferPool(),
		refusals: newRefusals(o.DPoPAlgorithms),
		dpopAlgs: o.DPoPAlgorithms,
		internal: fixedError(http.StatusInternalServerError, "internal_error", "the request could not be authenticated"),
		badGW:    fixedError(http.StatusBadGateway, "bad_gateway", "the upstream could not be reached"),
		timeoutGW: fixedError(http.StatusGatewayTimeout, "gateway_timeout",
			"the upstream did not answer in time"),
		access:       o.AccessLog,
		subjectClaim: o.SubjectClaim,
		sampler:      newSampler(o.RefusalLogRate),
		logs:         o.Logs,
	}
	p.policy.Store(o.Policy)
	if o.Tracer != nil {
		p.tracer = o.Tracer
		p.exemplars, _ = o.Recorder.(ExemplarRecorder)
	}
	rt := o.Transport
	if rt == nil && o.Upstream == nil {
		rt = noUpstream{}
	} else if rt == nil {
		rt = upstreamTransport(o.Upstream.Scheme, socket, o.UpstreamTLS, o.MaxIdleConns, o.UpstreamTimeout)
	}
	p.transport = &timedTransport{next: rt, rec: o.Recorder, access: o.AccessLog, tracer: p.tracer, exemplars: p.exemplars}
	return p, nil
}

// Handler builds the public chain. Read it bottom-up: the last wrap runs
// first.
func (p *Proxy) Handler() http.Handler {
	var upstream http.RoundTripper = p.transport
	if p.tracer != nil {
		upstream = p.tracer.Upstream(upstream) // a span; traceparent to the upstream
	}
	var h http.Handler = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,       // cleaned path, SetURL, X-Forwarded-*
		Transport:    upstream,        // pooled; times the upstream
		BufferPool:   p.buffers,       // 4 KiB copy buffers
		ErrorHandler: p.upstreamError, // 502 or 504 plus a metric
		// The client has the sidecar's X-Request-Id already; an HTTP/2
		// stream ends when the upstream ends it (duplex.go).
		ModifyResponse: func(res *http.Response) error {
			endWithResponse(res)
			return dropUpstreamRequestID(res)
		},
		ErrorLog: log.New(slogWriter{p.log}, "", 0),
	}
	h = fullDuplex(h)
	// First, claim headers are scrubbed (clients cannot forge claims); then
	// the policy decides: public rules pass, refusals never reach the
	// upstream, verified claims become headers.
	h = p.authenticate(h)
	// Before authentication, the client certificate headers are scrubbed
	// and, over mutual TLS, set from the verified certificate.
	h = clientCert(h)
	if p.access {
		h = p.accessLog(h) // one line per request, after its answer
	}
	if p.tracer != nil {
		h = p.tracer.Server(h) // one span per request, with its request ID
	}
	h = p.requestID(h) // first: every line and answer carries the ID
	return h
}

// noUpstream is the transport of a decision service only: nothing is ever
// forwarded.
type noUpstream struct{}

func (noUpstream) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no upstream: a decision service only (DECISION_ADDR without UPSTREAM_URL)")
}

// slogWriter sends ReverseProxy's own log lines (e.g. a failed copy of a
// response body) to the structured logger.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	msg := string(b)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.log.Warn(msg, "component", "reverseproxy")
	return len(b), nil
}
