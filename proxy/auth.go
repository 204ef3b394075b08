package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/dpop"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// realm names the protection space in every challenge (RFC 6750 §3).
const realm = "jwt-sidecar"

// Response header values shared by every error response. They are read-only
// (never modified after start); their capacity equals their length, so an
// append elsewhere copies.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
	noSniff         = []string{"nosniff"}
	retryAfter      = []string{"1"}
)

// scrubConnection drops the Connection options (RFC 9110 §7.6.1) that name
// a claim header: ReverseProxy deletes every header a Connection option
// names, so "Connection: X-Auth-Subject" would otherwise strip a verified
// claim on its way to the upstream.
func scrubConnection(values, names []string) []string {
	out := values[:0:0]
	for _, v := range values {
		var kept []string
		for _, opt := range strings.Split(v, ",") {
			opt = strings.TrimSpace(opt)
			if opt == "" || slices.ContainsFunc(names, func(n string) bool { return len(n) == len(opt) && config.SameHeader(n, opt) }) {
				continue
			}
			kept = append(kept, opt)
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, ", "))
		}
	}
	return out
}

// scrubHeaders deletes every header whose name matches one of names, ignoring
// case and treating '_' as '-': many upstreams (CGI, WSGI, Rack, PHP, nginx
// with underscores_in_headers) fold X_Auth_Subject and X-Auth-Subject into one
// variable, so either spelling could forge the claim.
func scrubHeaders(h http.Header, names []string) {
	for k := range h {
		for _, n := range names {
			if len(k) == len(n) && config.SameHeader(k, n) {
				delete(h, k)
				break
			}
		}
	}
}

// authenticate scrubs the claim headers, applies the policy and answers
// refusals itself: a refused request never reaches next. One policy
// snapshot serves the whole request, so a reload can never pair an old scrub
// list with a new policy's headers.
func (p *Proxy) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pol := p.policy.Load()
		logins := pol.Logins()
		if logins {
			if l := pol.Owner(r); l != nil {
				l.Handler().ServeHTTP(w, r) // the callback and sign-out paths
				return
			}
		}
		scrubRequest(pol, r)
		// SPEC: rules match the cleaned path, the one forwarded.
		var d policy.Decision
		tr := p.traceFor(r.Context()) // nil unless LOG_LEVEL=debug
		p.decide(pol, r, &d, tr)
		if tr != nil {
			p.logTrail(r.Context(), r, tr, &d)
		}
		if p.tracer != nil {
			p.traceDecision(r, pol, &d)
		}
		if logins && (d.Err != nil || d.Anonymous) && p.session(w, r, pol, &d) {
			return // a browser sent to sign in
		}
		if p.access {
			if e := entryOf(r.Context()); e != nil {
				p.noteDecision(e, pol, &d)
			}
		}
		switch {
		case d.Err != nil:
			p.refuse(w, r, pol, &d)
			return
		case d.Public || d.Anonymous:
			p.rec.Request(string(verifier.Public), "")
			pol.Count(d.Rule, verifier.Public)
		default:
			p.rec.Request(string(verifier.Allowed), "")
			pol.Count(d.Rule, verifier.Allowed)
			// The claims go onto the inbound request itself, which
			// ReverseProxy clones for the upstream: no context wrapper, no
			// request copy on the hot path. Connection tokens naming these
			// headers were scrubbed, so hop-by-hop removal cannot drop them.
			p.forward(pol, r, &d)
		}
		if logins {
			stripSessions(pol, r)
		}
		next.ServeHTTP(w, r)
	})
}

// preflight reports whether r is a CORS preflight that may pass without a
// token: browsers never attach credentials to one (Fetch standard, CORS
// protocol), so authenticating it would break every cross-origin call.
func (p *Proxy) preflight(r *http.Request) bool {
	return p.cors && r.Method == http.MethodOptions &&
		len(r.Header["Origin"]) > 0 && len(r.Header["Access-Control-Request-Method"]) > 0
}

// refusal is a fixed error response, built once: one per Reason, and the
// proxy's own 500, 502 and 504.
type refusal struct {
	status     int
	outcome    verifier.Outcome
	code       string   // the body's error
	desc       string   // the body's error_description
	challenge  []string // WWW-Authenticate
	retryAfter []string // Retry-After
	length     []string // Content-Length
	body       []byte
	grpc       grpcAnswer // the same refusal, trailers-only for gRPC calls
}

// newRefusals builds the response of every known Reason once. dpopAlgs are
// the DPoP proof algs accepted, announced in the DPoP challenge; empty when
// DPoP is not accepted.
func newRefusals(dpopAlgs []string) map[verifier.Reason]*refusal {
	m := make(map[verifier.Reason]*refusal, len(verifier.Reasons))
	for _, r := range verifier.Reasons {
		m[r] = newRefusal(r, dpopAlgs)
	}
	return m
}

// newRefusal maps a Reason to its response. This is the one place where
// reasons become statuses; the outcome comes with the reason from the
// taxonomy (verifier.Reason.Outcome):
//   - Missing: 401 with a bare challenge (RFC 6750 §3.1: no error code when
//     the request carries no credentials).
//   - InsufficientScope: 403 insufficient_scope (RFC 6750 §3.1); refuse
//     adds the scopes needed to the challenge (scoped).
//   - Denied: 403 forbidden without a challenge: no rule allows the request,
//     so no token would change the answer.
//   - Unavailable: 503 temporarily_unavailable with Retry-After and no
//     challenge: the token service could not be asked, so nothing is known
//     about the token and the client must not be told to re-authenticate
//     (RFC 9110 §15.6.4; the error code is RFC 6749 §4.1.2.1's).
//   - AmbiguousPath: 400 invalid_request without a challenge: the path,
//     not the token, is refused (config.AmbiguousPath says why).
//   - InvalidRequest: 400 invalid_request with a challenge (RFC 6750 §3.1:
//     more than one token, or a malformed Authorization header).
//   - anything else: 401 invalid_token (RFC 6750 §3.1), including bad_issuer,
//     bad_audience (SPEC: a wrong aud or iss is a bad token), inactive and
//     revoked.
//   - the DPoP reasons: 401 with the DPoP challenge instead (RFC 9449 §7.1),
//     whose error is invalid_dpop_proof, use_dpop_nonce or invalid_token.
//
// With dpopAlgs, Missing also offers the DPoP scheme (RFC 9449 §7.1: the
// client learns the algs it may sign proofs with).
func newRefusal(r verifier.Reason, dpopAlgs []string) *refusal {
	desc := challengeSafe(r.Description())
	ref := &refusal{status: http.StatusUnauthorized, outcome: r.Outcome(), code: "invalid_token", desc: desc}
	switch r {
	case verifier.Unavailable:
		ref.status, ref.code = http.StatusServiceUnavailable, "temporarily_unavailable"
		ref.retryAfter = retryAfter
	case verifier.Denied:
		ref.status, ref.code = http.StatusForbidden, "forbidden"
	case verifier.Missing:
		ref.code = "unauthorized"
		ref.challenge = []string{`Bearer realm="` + realm + `"`}
		if len(dpopAlgs) > 0 {
			ref.challenge = append(ref.challenge, dpop.Challenge(realm, dpopAlgs, ""))
		}
	case verifier.InsufficientScope:
		ref.status, ref.code = http.StatusForbidden, "insufficient_scope"
	case verifier.InvalidRequest:
		ref.status, ref.code = http.StatusBadRequest, "invalid_request"
	case verifier.AmbiguousPath, verifier.BadOriginal:
		// Not about a token: no challenge, since no token would help.
		ref.status, ref.code = http.StatusBadRequest, "invalid_request"
	case verifier.UntrustedProxy:
		// The decision listener's caller, not a token, is refused.
		ref.status, ref.code = http.StatusForbidden, "forbidden"
	}
	if r.DPoP() {
		ref.code = dpop.Reason(r).Code()
		algs := dpopAlgs
		if len(algs) == 0 {
			algs = dpop.DefaultAlgorithms
		}
		ref.challenge = []string{dpop.Challenge(realm, algs, dpop.Reason(r))}
	}
	if ref.challenge == nil && ref.status != http.StatusServiceUnavailable && r != verifier.Denied && r != verifier.AmbiguousPath &&
		r != verifier.BadOriginal && r != verifier.UntrustedProxy {
		ref.challenge = []string{`Bearer realm="` + realm + `", error="` + ref.code + `", error_description="` + desc + `"`}
	}
	ref.body = errorBody(ref.code, desc)
	ref.length = []string{strconv.Itoa(len(ref.body))}
	ref.grpc = newGRPCAnswer(ref.status, desc)
	return ref
}

// challengeSafe keeps an error_description inside RFC 6750 §3's character
// set: printable ASCII except '"' and '\'.
func challengeSafe(s string) string {
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return ' '
		}
		return c
	}, s)
}

// errorBody is the SPEC's JSON error body.
func errorBody(code, desc string) []byte {
	b := make([]byte, 0, 48+len(code)+len(desc))
	b = append(b, `{"error":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"error_description":`...)
	b = appendJSONString(b, desc)
	return append(b, "}\n"...)
}

// refusalFor is the response of a reason.
func (p *Proxy) refusalFor(reason verifier.Reason) *refusal {
	if ref := p.refusals[reason]; ref != nil {
		return ref
	}
	return newRefusal(reason, p.dpopAlgs) // a reason newer than this proxy: still a 401
}

// refuse answers a request the policy refused, counts it and logs it.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, pol *policy.Policy, d *policy.Decision) {
	// AsType, not As: the target pointer of As escapes, one allocation per
	// refusal on the path an unauthenticated flood takes.
	e, ok := errors.AsType[*verifier.Error](d.Err)
	if !ok {
		p.internalError(w, r, d.Err)
		return
	}
	ref := p.refusalFor(e.Reason)
	if e.Scope != "" && e.Reason == verifier.InsufficientScope {
		ref = p.scoped(ref, r, e.Scope) // RFC 6750 §3.1: name the scope needed
	}
	p.rec.Request(string(ref.outcome), string(e.Reason))
	pol.Count(d.Rule, ref.outcome)
	if e.Nonce != "" {
		// RFC 9449 §8: the nonce the client must put in its next proof.
		w.Header().Set("DPoP-Nonce", e.Nonce)
	}
	writeRefusal(w, r, ref)
	if p.access {
		if ae := entryOf(r.Context()); ae != nil {
			// The access line replaces the refusal line: one line per
			// request, with the same detail and the same rate limit.
			ae.outcome, ae.reason, ae.refusal = string(ref.outcome), e.Reason, e
			return
		}
	}
	// One line per refusal, never the token: its hash correlates lines. A
	// 503 is no refusal of the token, and the line says so. A flood of
	// refusals (a scanner without a token) is rate limited and counted.
	dropped, ok := p.sampler.allow(time.Now())
	if !ok {
		p.logs.LogLineDropped()
		return
	}
	level, msg := slog.LevelInfo, "request refused"
	if ref.status == http.StatusServiceUnavailable {
		level, msg = slog.LevelWarn, "could not decide: the token service did not answer usably; answered 503, the client should retry and need not re-authenticate"
	}
	p.log.LogAttrs(r.Context(), level, msg,
		slog.String("request_id", requestIDOf(r)),
		slog.String("reason", string(e.Reason)),
		slog.Int("status", ref.status),
		slog.String("rule", ruleName(d.Rule)),
		slog.String("kid", e.KID),
		slog.String("iss", e.Issuer),
		slog.String("token_hash", e.TokenHash),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("remote_addr", r.RemoteAddr),
		slog.Any("error", e.Err),
		slog.Int64("lines_dropped_before", dropped),
	)
}

// ruleName names the rule of a decision; "" when the request was refused
// before any rule (an ambiguous path).
func ruleName(r *policy.Rule) string {
	if r == nil {
		return ""
	}
	return r.Name
}

// internalError answers a Verifier error that carries no Reason: a fault in
// the sidecar, never a client's mistake, and never forwarded.
func (p *Proxy) internalError(w http.ResponseWriter, r *http.Request, err error) {
	p.rec.InternalError()
	if p.access {
		if e := entryOf(r.Context()); e != nil {
			e.outcome = OutcomeInternalError
		}
	}
	p.log.LogAttrs(r.Context(), slog.LevelError, "authentication failed internally",
		slog.String("request_id", requestIDOf(r)),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("remote_addr", r.RemoteAddr),
		slog.Any("error", err),
	)
	writeRefusal(w, r, p.internal)
}

// fixedError builds a refusal-like response without a challenge: 500, 502
// or 504.
func fixedError(status int, code, desc string) *refusal {
	body := errorBody(code, desc)
	return &refusal{status: status, code: code, desc: desc, body: body, length: []string{strconv.Itoa(len(body))},
		grpc: newGRPCAnswer(status, desc)}
}

// writeError writes a fixed JSON error response that no cache may keep.
func writeError(w http.ResponseWriter, ref *refusal) {
	h := w.Header()
	if ref.challenge != nil {
		h["Www-Authenticate"] = ref.challenge
	}
	if ref.retryAfter != nil {
		h["Retry-After"] = ref.retryAfter
	}
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = ref.length
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(ref.status)
	_, _ = w.Write(ref.body)
}
