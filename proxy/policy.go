package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Provider is one token issuer as the proxy sees it: how its tokens are
// verified, and what a verified token becomes on the forwarded request.
type Provider struct {
	Name string
	// Verifier verifies the provider's tokens, read from its own token
	// lookup and checked against its own issuer, keys and audiences.
	Verifier Verifier
	// Issuers are the iss values Verifier accepts.
	Issuers []string
	// ClaimHeaders, PayloadHeader and ForwardToken are CLAIMS_TO_HEADERS,
	// PAYLOAD_HEADER and FORWARD_TOKEN for this provider's tokens.
	ClaimHeaders  []config.ClaimHeader
	PayloadHeader string
	ForwardToken  bool
}

// RuleRecorder counts requests per policy rule. *metrics.Policy satisfies
// it. Counters are created when a policy is built, so the request path only
// calls them.
type RuleRecorder interface {
	// RuleCounter returns the increment of one (rule, outcome) series.
	RuleCounter(rule, outcome string) func()
	// KeepRules drops the series of rules not named, after a reload.
	KeepRules(names []string)
}

// PolicyOptions describe a policy: providers, rules (first match wins) and
// the requirement of requests no rule matches.
type PolicyOptions struct {
	Providers []Provider
	Rules     []verifier.Rule
	// Default applies when no rule matches; its zero value denies.
	Default verifier.Requirement
	// Recorder counts requests per rule; nil counts nothing.
	Recorder RuleRecorder
}

// Policy is an immutable, compiled policy: the verifier's decision plus
// what each provider's tokens become on the forwarded request, and the
// headers scrubbed from every request (the claim headers of every
// provider). A Proxy swaps whole policies atomically (SetPolicy), so a
// request is scrubbed, decided and forwarded under one policy.
type Policy struct {
	v        *verifier.Policy
	headers  []headerMap // by provider index
	scrub    []string    // canonical names removed from every request
	rec      RuleRecorder
	counters [][len(ruleOutcomes)]func() // by rule index; nil without a recorder
}

// headerMap is what one provider's verified tokens put on the request.
type headerMap struct {
	claims  []config.ClaimHeader
	payload string // canonical, or ""
	forward bool
}

// ruleOutcomes are the outcome label values of jwt_sidecar_rule_requests_total.
var ruleOutcomes = [...]string{Allowed, Public, Unauthenticated, Forbidden}

// NewPolicy checks and compiles a policy. Beyond what verifier.NewPolicy
// refuses, it refuses invalid or reserved header names, a header mapped
// twice by one provider, and an all-of whose providers would set the same
// header.
func NewPolicy(o PolicyOptions) (*Policy, error) {
	pol := &Policy{rec: o.Recorder}
	var (
		errs      []error
		providers []verifier.Provider
		scrubbed  = map[string]bool{}
	)
	for _, pr := range o.Providers {
		if pr.Verifier == nil {
			errs = append(errs, fmt.Errorf("provider %s: no verifier", pr.Name))
			providers = append(providers, verifier.Provider{Name: pr.Name})
			pol.headers = append(pol.headers, headerMap{})
			continue
		}
		hm, err := compileHeaders(pr.ClaimHeaders, pr.PayloadHeader)
		if err != nil {
			errs = append(errs, fmt.Errorf("provider %s: %w", pr.Name, err))
		}
		hm.forward = pr.ForwardToken
		for _, h := range hm.names() {
			if !scrubbed[config.HeaderKey(h)] {
				scrubbed[config.HeaderKey(h)] = true
				pol.scrub = append(pol.scrub, h)
			}
		}
		providers = append(providers, verifier.Provider{Name: pr.Name, Auth: pr.Verifier, Issuers: pr.Issuers})
		pol.headers = append(pol.headers, hm)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	v, err := verifier.NewPolicy(providers, o.Rules, o.Default)
	if err != nil {
		return nil, err
	}
	pol.v = v
	for _, r := range v.Rules() {
		if r.Require.Kind != verifier.RequireAllOf {
			continue
		}
		if err := pol.disjoint(r); err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Recorder != nil {
		for _, r := range v.Rules() {
			var c [len(ruleOutcomes)]func()
			for i, outcome := range ruleOutcomes {
				c[i] = o.Recorder.RuleCounter(r.Name, outcome)
			}
			pol.counters = append(pol.counters, c)
		}
	}
	return pol, nil
}

// compileHeaders checks one provider's claim headers and payload header.
func compileHeaders(claims []config.ClaimHeader, payload string) (headerMap, error) {
	var hm headerMap
	seen := map[string]bool{}
	for _, c := range claims {
		h, err := config.CheckHeaderName(c.Header)
		if err != nil {
			return hm, fmt.Errorf("claim header for %q: %w", c.Claim, err)
		}
		if c.Claim == "" {
			return hm, fmt.Errorf("claim header %s: empty claim", h)
		}
		if seen[config.HeaderKey(h)] {
			return hm, fmt.Errorf("header %s is mapped twice", h)
		}
		seen[config.HeaderKey(h)] = true
		hm.claims = append(hm.claims, config.ClaimHeader{Claim: c.Claim, Header: h})
	}
	if payload != "" {
		h, err := config.CheckHeaderName(payload)
		if err != nil {
			return hm, fmt.Errorf("payload header: %w", err)
		}
		if seen[config.HeaderKey(h)] {
			return hm, fmt.Errorf("payload header %s is also a claim header", h)
		}
		hm.payload = h
	}
	return hm, nil
}

func (hm *headerMap) names() []string {
	var out []string
	for _, c := range hm.claims {
		out = append(out, c.Header)
	}
	if hm.payload != "" {
		out = append(out, hm.payload)
	}
	return out
}

// disjoint refuses an all-of whose providers map the same header: the
// request would carry two values, one from each token.
func (pol *Policy) disjoint(r *verifier.Rule) error {
	owner := map[string]string{}
	for _, name := range r.Require.Providers {
		i := slices.IndexFunc(pol.v.Providers(), func(p verifier.Provider) bool { return p.Name == name })
		for _, h := range pol.headers[i].names() {
			if other, ok := owner[config.HeaderKey(h)]; ok {
				return fmt.Errorf("providers %s and %s both set header %s; an all-of would set it twice", other, name, h)
			}
			owner[config.HeaderKey(h)] = name
		}
	}
	return nil
}

// Verifier returns the compiled decision, for tools that show it.
func (pol *Policy) Verifier() *verifier.Policy { return pol.v }

// ScrubbedHeaders lists the headers removed from every request.
func (pol *Policy) ScrubbedHeaders() []string { return slices.Clone(pol.scrub) }

// envPolicy is the environment's policy: one provider, PUBLIC_PATHS as
// public rules, and that provider for everything else.
func envPolicy(o Options) (*Policy, error) {
	if o.Verifier == nil {
		return nil, errors.New("no verifier")
	}
	rules, err := PublicPathRules(o.PublicPaths)
	if err != nil {
		return nil, err
	}
	return NewPolicy(PolicyOptions{
		Providers: []Provider{{
			Name:          EnvProvider,
			Verifier:      o.Verifier,
			ClaimHeaders:  o.ClaimHeaders,
			PayloadHeader: o.PayloadHeader,
			ForwardToken:  o.ForwardToken,
		}},
		Rules:   rules,
		Default: verifier.Requirement{Kind: verifier.RequireAnyOf, Providers: []string{EnvProvider}},
	})
}

// EnvProvider names the one provider the environment variables describe.
const EnvProvider = "env"

// SetPolicy replaces the policy atomically: requests already being decided
// finish under the old one, every later request gets the new one, and none
// is dropped. Rule series of rules the new policy lacks are removed.
func (p *Proxy) SetPolicy(pol *Policy) {
	p.policy.Store(pol)
	if pol.rec != nil {
		names := make([]string, 0, len(pol.counters))
		for _, r := range pol.v.Rules() {
			names = append(names, r.Name)
		}
		pol.rec.KeepRules(names)
	}
}

// Policy returns the policy in force.
func (p *Proxy) Policy() *Policy { return p.policy.Load() }

// scrubRequest removes every header the proxy itself sets (the claim
// headers and payload headers of every provider) from r, so a client can
// never forge them (SPEC, CLAIMS_TO_HEADERS).
func (pol *Policy) scrubRequest(r *http.Request) {
	if len(pol.scrub) == 0 {
		return
	}
	scrubHeaders(r.Header, pol.scrub)
	if r.Trailer != nil {
		scrubHeaders(r.Trailer, pol.scrub)
	}
	if conn := r.Header["Connection"]; conn != nil {
		r.Header["Connection"] = scrubConnection(conn, pol.scrub)
	}
}

// decide is the proxy's decision for r under pol, shared by the handler and
// Explain: a CORS preflight passes when bypassed; otherwise the first
// matching rule applies, and verification (only) is timed.
func (p *Proxy) decide(pol *Policy, r *http.Request, d *verifier.Decision, tr *verifier.Trace) {
	if p.preflight(r) {
		d.Public = true
		return
	}
	rule := pol.v.Match(r, cleanPath(r.URL.Path), tr)
	switch rule.Require.Kind {
	case verifier.RequirePublic, verifier.RequireDeny:
		pol.v.Check(r.Context(), r, rule, d, tr)
		return
	}
	start := time.Now()
	pol.v.Check(r.Context(), r, rule, d, tr)
	p.rec.Verification(p.mode, time.Since(start))
}

// count adds one request to its rule's series.
func (pol *Policy) count(rule *verifier.Rule, outcome int) {
	if pol.counters != nil && rule != nil {
		pol.counters[rule.Index()][outcome]()
	}
}

// Indexes into ruleOutcomes.
const (
	outcomeAllowed = iota
	outcomePublic
	outcomeUnauthenticated
	outcomeForbidden
)

// forward prepares an allowed request: each verified token is removed from
// where it was found (unless its provider forwards tokens), and its
// provider's claim headers are set. Only the providers that verified set
// headers; every other provider's were scrubbed.
func (pol *Policy) forward(ctx context.Context, log *slog.Logger, r *http.Request, d *verifier.Decision) {
	pol.apply(ctx, log, r, &d.First)
	for i := range d.More {
		pol.apply(ctx, log, r, &d.More[i])
	}
}

func (pol *Policy) apply(ctx context.Context, log *slog.Logger, r *http.Request, v *verifier.Verified) {
	hm := &pol.headers[v.Provider]
	if !hm.forward {
		stripToken(r, v.Claims.From)
	}
	hm.set(ctx, log, r.Header, &v.Claims)
}

// Explanation is what the proxy would do with a request, and why: the
// answer of jwt-sidecar explain.
type Explanation struct {
	// Rule is the rule that applied; nil for a bypassed CORS preflight.
	Rule *verifier.Rule
	// Trace lists the rules tried and the providers asked.
	Trace verifier.Trace
	// Forwarded is true when the request would reach the upstream.
	Forwarded bool
	// Outcome is the outcome label of jwt_sidecar_requests_total.
	Outcome string
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
	pol.scrubRequest(r)
	var (
		d  verifier.Decision
		ex Explanation
	)
	before := r.Header.Clone()
	p.decide(pol, r, &d, &ex.Trace)
	ex.Rule = d.Rule
	switch {
	case d.Err != nil:
		var e *verifier.Error
		if !errors.As(d.Err, &e) {
			ex.Status, ex.Outcome, ex.Detail = p.internal.status, "internal_error", d.Err
			ex.Error, ex.Description = "internal_error", "the request could not be authenticated"
			return ex
		}
		ref := p.refusalFor(e.Reason)
		ex.Status, ex.Outcome, ex.Reason, ex.Detail = ref.status, ref.outcome, e.Reason, e.Err
		ex.Error, ex.Description = ref.code, ref.desc
	case d.Public || d.Anonymous:
		ex.Forwarded, ex.Outcome = true, Public
	default:
		ex.Forwarded, ex.Outcome = true, Allowed
		ex.Verified = append(ex.Verified, pol.v.Providers()[d.First.Provider].Name)
		for _, v := range d.More {
			ex.Verified = append(ex.Verified, pol.v.Providers()[v.Provider].Name)
		}
		pol.forward(r.Context(), p.log, r, &d)
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
