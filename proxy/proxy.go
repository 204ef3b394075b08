// Package proxy is jwt-sidecar's HTTP side: it removes forgeable claim
// headers, authenticates each request with a Verifier, maps refusals to the
// SPEC's responses, and forwards allowed requests to the upstream with the
// verified claims as headers.
package proxy

import (
	"errors"
	"fmt"
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
	// Upstream is where allowed requests go (UPSTREAM_URL).
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
	// Transport replaces the pooled upstream transport, for tests.
	Transport http.RoundTripper
	// AllowAmbiguousPaths forwards paths that a backend may read
	// differently (config.AmbiguousPath) instead of refusing them with 400
	// ambiguous_path: PATH_STRICT=false, for upstreams that need such
	// paths and read them exactly as the sidecar does.
	AllowAmbiguousPaths bool
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
	internal  *refusal // 500
	badGW     *refusal // 502
	timeoutGW *refusal // 504
}

// New builds a Proxy. It checks the options but contacts nothing.
func New(o Options) (*Proxy, error) {
	if o.Upstream == nil || o.Upstream.Scheme == "" || o.Upstream.Host == "" {
		return nil, errors.New("upstream: an absolute URL is required")
	}
	if o.Upstream.Scheme != "http" && o.Upstream.Scheme != "https" {
		return nil, fmt.Errorf("upstream: scheme %q is not http or https", o.Upstream.Scheme)
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
		upstream: o.Upstream,
		rec:      o.Recorder,
		log:      o.Logger,
		cors:     o.CORSPreflight,
		lax:      o.AllowAmbiguousPaths,
		buffers:  newBufferPool(),
		refusals: newRefusals(),
		internal: fixedError(http.StatusInternalServerError, "internal_error", "the request could not be authenticated"),
		badGW:    fixedError(http.StatusBadGateway, "bad_gateway", "the upstream could not be reached"),
		timeoutGW: fixedError(http.StatusGatewayTimeout, "gateway_timeout",
			"the upstream did not answer in time"),
	}
	p.policy.Store(o.Policy)
	rt := o.Transport
	if rt == nil {
		rt = newTransport(o.MaxIdleConns, o.UpstreamTimeout)
	}
	p.transport = &timedTransport{next: rt, rec: o.Recorder}
	return p, nil
}

// Handler builds the public chain. Read it bottom-up: the last wrap runs
// first.
func (p *Proxy) Handler() http.Handler {
	var h http.Handler = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,       // cleaned path, SetURL, X-Forwarded-*
		Transport:    p.transport,     // pooled; times the upstream
		BufferPool:   p.buffers,       // 4 KiB copy buffers
		ErrorHandler: p.upstreamError, // 502 or 504 plus a metric
		ErrorLog:     log.New(slogWriter{p.log}, "", 0),
	}
	// First, claim headers are scrubbed (clients cannot forge claims); then
	// the policy decides: public rules pass, refusals never reach the
	// upstream, verified claims become headers.
	h = p.authenticate(h)
	return h
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
