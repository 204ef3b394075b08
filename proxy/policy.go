package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// SetPolicy replaces the policy atomically: requests already being decided
// finish under the old one, every later request gets the new one, and none
// is dropped. Rule series of rules the new policy lacks are removed.
func (p *Proxy) SetPolicy(pol *policy.Policy) {
	p.policy.Store(pol)
	pol.KeepRules()
}

// Policy returns the policy in force.
func (p *Proxy) Policy() *policy.Policy { return p.policy.Load() }

// scrubRequest removes every header the proxy itself sets (the claim
// headers and payload headers of every provider) from r, so a client can
// never forge them (SPEC, CLAIMS_TO_HEADERS).
func scrubRequest(pol *policy.Policy, r *http.Request) {
	scrub := pol.ScrubbedHeaders()
	if len(scrub) == 0 {
		return
	}
	scrubHeaders(r.Header, scrub)
	if r.Trailer != nil {
		scrubHeaders(r.Trailer, scrub)
	}
	if conn := r.Header["Connection"]; conn != nil {
		r.Header["Connection"] = scrubConnection(conn, scrub)
	}
}

// decide is the proxy's decision for r under pol, shared by the handler and
// Explain: an ambiguous path is refused before any rule; otherwise the first
// matching rule applies: a bypassed CORS preflight skips its authentication
// only (a deny rule, or the fail-closed default, still refuses it), and
// verification (only) is timed.
func (p *Proxy) decide(pol *policy.Policy, r *http.Request, d *policy.Decision, tr *policy.Trace) {
	var rule *policy.Rule
	if !p.lax {
		if why := config.AmbiguousPath(r.URL.Path); why != "" {
			if rule = rawRule(pol, r, tr); rule == nil {
				d.Err = &verifier.Error{Reason: verifier.AmbiguousPath, Err: ambiguous{why, r.URL.EscapedPath()}}
				return
			}
		}
	}
	if rule == nil {
		rule = pol.Match(r, config.CleanPath(r.URL.Path), tr)
	}
	switch rule.Require.Kind {
	case policy.RequirePublic, policy.RequireDeny:
		pol.Check(r.Context(), r, rule, d, tr)
		return
	}
	if p.preflight(r) {
		d.Rule, d.Public = rule, true
		return
	}
	start := time.Now()
	pol.Check(r.Context(), r, rule, d, tr)
	p.observeVerification(r.Context(), pol.Mode(), time.Since(start))
}

// rawRule is the rule that may take r, whose path is ambiguous, as it
// is: the rule its cleaned path matches, when that rule has raw_paths and
// every reading a backend may make of the path (config.PathReadings)
// matches that same rule, so no reading reaches a path another rule
// governs. Otherwise nil: the path is refused. Only ambiguous paths get
// here, so the readings cost nothing on the common path.
func rawRule(pol *policy.Policy, r *http.Request, tr *policy.Trace) *policy.Rule {
	readings := config.PathReadings(r.URL.Path)
	rule := pol.Match(r, readings[0], tr)
	if !rule.RawPaths {
		return nil
	}
	for _, p := range readings[1:] {
		if pol.Match(r, p, nil) != rule {
			return nil
		}
	}
	return rule
}

// ambiguous is the log detail of an ambiguous_path refusal.
type ambiguous struct{ why, raw string }

func (a ambiguous) Error() string { return "path " + strconv.Quote(a.raw) + ": " + a.why }

// forward prepares an allowed request: each verified token is removed from
// where it was found (unless its provider forwards tokens), and its
// provider's claim headers are set. Only the providers that verified set
// headers; every other provider's were scrubbed.
func (p *Proxy) forward(pol *policy.Policy, r *http.Request, d *policy.Decision) {
	apply(r.Context(), p.log, pol, r, &d.First)
	for i := range d.More {
		apply(r.Context(), p.log, pol, r, &d.More[i])
	}
}

func apply(ctx context.Context, log *slog.Logger, pol *policy.Policy, r *http.Request, v *policy.Verified) {
	fw := &pol.Providers()[v.Provider].Forward
	if !fw.ForwardToken {
		stripToken(r, v.Claims.From)
	}
	setHeaders(ctx, log, r.Header, fw, &v.Claims)
}

// Explanation is what the proxy would do with a request, and why: the
// answer of jwt-sidecar explain.
type Explanation struct {
	// Rule is the rule that applied; nil for a path refused as ambiguous.
	Rule *policy.Rule
	// RawPath is the path as the client sent it (escaped); CleanedPath is
	// the path rules match and the upstream receives.
	RawPath, CleanedPath string
	// Trace lists the rules tried and the providers asked.
	Trace policy.Trace
	// Forwarded is true when the request would reach the upstream.
	Forwarded bool
	// Outcome is the outcome label of jwt_sidecar_requests_total.
	Outcome verifier.Outcome
	// Verified names the providers whose tokens were verified.
	Verified []string
	// Headers are the claim and payload headers the upstream would get.
	Headers http.Header
	// Removed are the headers removed because a token travelled in them.
	Removed []string
	// Status, Reason, Error and Description are the refusal the client
	// would get; Detail is the error field of the proxy's log line.
	Status      int
	Reason      verifier.Reason
	Error       string
	Description string
	Detail      error
}

// Explain runs the proxy's own decision on r, under the policy in force,
// without forwarding it. r is changed as the proxy would change it (claim
// headers scrubbed and set, tokens removed).
func (p *Proxy) Explain(r *http.Request) Explanation {
	pol := p.policy.Load()
	scrubRequest(pol, r)
	var (
		d  policy.Decision
		ex Explanation
	)
	before := r.Header.Clone()
	ex.RawPath, ex.CleanedPath = r.URL.EscapedPath(), config.CleanPath(r.URL.Path)
	p.decide(pol, r, &d, &ex.Trace)
	ex.Rule = d.Rule
	switch {
	case d.Err != nil:
		e, ok := errors.AsType[*verifier.Error](d.Err)
		if !ok {
			ex.Status, ex.Outcome, ex.Detail = p.internal.status, "internal_error", d.Err
			ex.Error, ex.Description = "internal_error", "the request could not be authenticated"
			return ex
		}
		ref := p.refusalFor(e.Reason)
		ex.Status, ex.Outcome, ex.Reason, ex.Detail = ref.status, ref.outcome, e.Reason, e.Err
		ex.Error, ex.Description = ref.code, ref.desc
	case d.Public || d.Anonymous:
		ex.Forwarded, ex.Outcome = true, verifier.Public
	default:
		ex.Forwarded, ex.Outcome = true, verifier.Allowed
		ex.Verified = append(ex.Verified, pol.Providers()[d.First.Provider].Name)
		for _, v := range d.More {
			ex.Verified = append(ex.Verified, pol.Providers()[v.Provider].Name)
		}
		p.forward(pol, r, &d)
		ex.Headers = http.Header{}
		for k, v := range r.Header {
			if !slices.Equal(before[k], v) {
				ex.Headers[k] = v
			}
		}
		for k := range before {
			if _, ok := r.Header[k]; !ok {
				ex.Removed = append(ex.Removed, k)
			}
		}
		slices.Sort(ex.Removed)
	}
	return ex
}
