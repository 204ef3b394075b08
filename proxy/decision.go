package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/statuswriter"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// DecisionOptions configure the decision listener (DECISION_ADDR).
type DecisionOptions struct {
	// TrustedProxies are the sources answered (DECISION_TRUSTED_PROXIES);
	// every other source is refused untrusted_proxy. Empty: nobody.
	TrustedProxies []netip.Prefix
	// PathPrefix turns on Envoy's ext_authz HTTP service shape for
	// decision requests under it (DECISION_PATH_PREFIX): the request's own
	// method, host and path, minus the prefix, are the original ones, and
	// the original-request headers are not read. "/" strips nothing.
	// Empty: off, and every decision request must name its original.
	PathPrefix string
	// Recorder counts decisions by outcome (beside the proxy's Recorder,
	// which counts them as requests); nil counts nothing more.
	// *metrics.Decisions satisfies it.
	Recorder DecisionRecorder
}

// DecisionRecorder counts decisions by outcome.
type DecisionRecorder interface{ Decision(outcome string) }

type nopDecisionRecorder struct{}

func (nopDecisionRecorder) Decision(string) {}

// decider answers forward-auth decision requests with the proxy's one
// decision: the same scrub, rules, verification, refusals, claim headers,
// metrics and log lines as a proxied request, but nothing is forwarded.
type decider struct {
	p       *Proxy
	rec     DecisionRecorder
	trusted []netip.Prefix
	prefix  string // without a trailing '/'; set says Envoy shape is on
	envoy   bool
}

// DecisionHandler answers "may this request pass?" for a proxy in front of
// the application (nginx auth_request, Traefik forwardAuth, Caddy
// forward_auth, Envoy ext_authz): 200 with the verified claim headers, or
// the refusal the proxy itself would answer. It follows the proxy's policy,
// including every SetPolicy.
func (p *Proxy) DecisionHandler(o DecisionOptions) http.Handler {
	d := &decider{p: p, trusted: o.TrustedProxies, rec: o.Recorder}
	if d.rec == nil {
		d.rec = nopDecisionRecorder{}
	}
	if o.PathPrefix != "" {
		d.envoy, d.prefix = true, strings.TrimSuffix(o.PathPrefix, "/")
	}
	var h http.Handler = d
	// A client certificate on the decision listener itself is scrubbed and
	// set as on the proxy listener, and answered among the headers.
	h = clientCert(h)
	h = p.requestID(h)
	return h
}

func (d *decider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := d.p
	pol := p.policy.Load()
	// A decision answers no body: gRPC's trailers-only refusals (HTTP 200)
	// must never be chosen by the original request's Content-Type, or a
	// refusal would read as "allowed" to the proxy asking.
	delete(r.Header, "Content-Type")
	if !p.access {
		_, outcome := d.answer(w, r, pol)
		d.rec.Decision(outcome)
		return
	}
	// The access line names the original request, not the decision path.
	e := &accessEntry{start: time.Now()}
	sw := statuswriter.New(w)
	r = r.WithContext(context.WithValue(r.Context(), accessKey{}, e))
	o, outcome := d.answer(sw, r, pol)
	d.rec.Decision(outcome)
	e.status = sw.Status()
	p.writeAccess(r.Context(), r, o.Method, config.CleanPath(o.URL.Path), e)
}

// answer decides r and answers it; it returns the request decided (the
// original one, when r named it) and the outcome.
func (d *decider) answer(w http.ResponseWriter, r *http.Request, pol *policy.Policy) (*http.Request, string) {
	p := d.p
	o, err := d.original(r)
	if err != nil {
		p.refuse(w, r, pol, &policy.Decision{Err: err})
		return r, p.outcomeOf(err)
	}
	scrubRequest(pol, o)
	var dec policy.Decision
	tr := p.traceFor(o.Context())
	p.decide(pol, o, &dec, tr)
	if tr != nil {
		p.logTrail(o.Context(), o, tr, &dec)
	}
	if p.access {
		if e := entryOf(o.Context()); e != nil {
			p.noteDecision(e, pol, &dec)
		}
	}
	outcome := verifier.Allowed
	switch {
	case dec.Err != nil:
		p.refuse(w, o, pol, &dec)
		return o, p.outcomeOf(dec.Err)
	case dec.Public || dec.Anonymous:
		outcome = verifier.Public
		p.rec.Request(string(verifier.Public), "")
		pol.Count(dec.Rule, verifier.Public)
	default:
		p.rec.Request(string(verifier.Allowed), "")
		pol.Count(dec.Rule, verifier.Allowed)
		p.forward(pol, o, &dec)
	}
	// The answer carries exactly the headers the proxy would have set on
	// the forwarded request: every scrubbed name now present was set by
	// forward, and the client certificate's by clientCert.
	h := w.Header()
	for k, v := range o.Header {
		if isSetHeader(k, pol.ScrubbedHeaders()) || isSetHeader(k, clientCertHeaders) {
			h[k] = v
		}
	}
	h["Cache-Control"] = noStore
	h["Content-Length"] = zeroLength
	w.WriteHeader(http.StatusOK)
	return o, string(outcome)
}

// outcomeOf is the outcome of a refusal: the taxonomy's for a reason, and
// internal_error for a fault.
func (p *Proxy) outcomeOf(err error) string {
	if e, ok := errors.AsType[*verifier.Error](err); ok {
		return string(p.refusalFor(e.Reason).outcome)
	}
	return OutcomeInternalError
}

var zeroLength = []string{"0"}

func isSetHeader(k string, names []string) bool {
	for _, n := range names {
		if len(k) == len(n) && config.SameHeader(k, n) {
			return true
		}
	}
	return false
}

// original is the request r asks about, sharing r's headers and context:
// refused untrusted_proxy unless r comes from a trusted proxy; in Envoy's
// shape, r itself minus the path prefix; otherwise the one the
// original-request headers describe, refused bad_original when they are
// missing or malformed.
func (d *decider) original(r *http.Request) (*http.Request, error) {
	if !d.trustedSource(r.RemoteAddr) {
		return nil, verifier.Fail(verifier.UntrustedProxy, "decision request from %s, outside DECISION_TRUSTED_PROXIES", r.RemoteAddr)
	}
	o := new(http.Request)
	*o = *r
	if d.envoy {
		if rest, ok := d.strip(r.URL.EscapedPath()); ok {
			if r.URL.RawQuery != "" {
				rest += "?" + r.URL.RawQuery
			}
			u, err := parseRequestURI(rest)
			if err != nil {
				return nil, &verifier.Error{Reason: verifier.BadOriginal, Err: err}
			}
			o.URL, o.RequestURI = u, rest
			return o, nil
		}
	}
	if !hasOriginal(r.Header) {
		return nil, verifier.Fail(verifier.BadOriginal, "decision request for %q names no original request (X-Original-URI, X-Forwarded-Uri or X-Original-URL)", r.URL.Path)
	}
	orig, err := ParseOriginal(r.Header)
	if err != nil {
		return nil, &verifier.Error{Reason: verifier.BadOriginal, Err: err}
	}
	o.URL, o.RequestURI = orig.URL, orig.URL.RequestURI()
	if orig.Method != "" {
		o.Method = orig.Method
	}
	if orig.Host != "" {
		o.Host = orig.Host
	}
	return o, nil
}

// strip removes the Envoy path prefix from an escaped path; ok is false
// when the path is not under it.
func (d *decider) strip(path string) (string, bool) {
	if d.prefix == "" {
		return path, strings.HasPrefix(path, "/")
	}
	rest, ok := strings.CutPrefix(path, d.prefix)
	if !ok || !strings.HasPrefix(rest, "/") {
		return "", false
	}
	return rest, true
}

// trustedSource reports whether addr (a RemoteAddr) is in a trusted
// prefix. IPv4-mapped IPv6 addresses count as IPv4.
func (d *decider) trustedSource(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, pfx := range d.trusted {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}
