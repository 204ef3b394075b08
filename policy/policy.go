package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Provider is one issuer of tokens a policy accepts: a name for rules, how
// its tokens are verified, and the issuers it accepts (for choosing the most
// telling refusal when several providers were tried).
type Provider struct {
	Name    string
	Auth    Authenticator
	Issuers []string
	// Forward is what the provider's verified tokens become on the
	// forwarded request.
	Forward Forwarding
	// Login, when set, signs browsers in for this provider; nil: none.
	Login Login
}

// Forwarding is what one provider's verified tokens put on the forwarded
// request: CLAIMS_TO_HEADERS, PAYLOAD_HEADER and FORWARD_TOKEN.
type Forwarding struct {
	ClaimHeaders  []config.ClaimHeader
	PayloadHeader string // canonical, or ""
	ForwardToken  bool
}

// RequirementKind is what a rule asks of a request.
type RequirementKind uint8

// The requirements. The zero value denies: a Requirement left unset fails
// closed.
const (
	// RequireDeny refuses every request (403, reason denied).
	RequireDeny RequirementKind = iota
	// RequirePublic lets every request through without looking at tokens.
	RequirePublic
	// RequireAnyOf needs one of the providers to verify a token; they are
	// tried in order and the first that verifies wins. One provider is an
	// any-of of one.
	RequireAnyOf
	// RequireAllOf needs every provider to verify a token, each read from
	// its own token lookup. Providers that share a lookup verify the same
	// token, which then has to satisfy each of them.
	RequireAllOf
	// RequireAllowMissing lets a request without any token through
	// anonymously; a token that is present must verify, as in any-of.
	RequireAllowMissing
)

var kindNames = [...]string{"deny", "public", "any_of", "all_of", "allow_missing"}

func (k RequirementKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Requirement is what a request matching a rule must bring.
type Requirement struct {
	Kind RequirementKind
	// Providers are the providers' names, for the kinds that need tokens.
	Providers []string
	// Scopes are needed in every verified token (scope or scp), all of them.
	Scopes []string
	// Claims are needed in every verified token, each one.
	Claims []ClaimRequirement
}

// ClaimRequirement needs the claim at a dotted path to hold one of Values.
// A value is a string, a bool, an int64 or a float64; a claim that is an
// array matches when one of its elements does.
type ClaimRequirement struct {
	Claim  string
	Values []any
}

// Rule applies its requirement to the requests it matches.
type Rule struct {
	Name    string
	Match   Match
	Require Requirement
	// RawPaths forwards paths that a backend may read differently
	// (config.AmbiguousPath) instead of refusing them, for this rule only:
	// PATH_STRICT=false for one rule. The proxy allows it only when every
	// reading of the path (config.PathReadings) matches this same rule.
	RawPaths bool

	index     int
	m         matcher
	providers []int // indexes into Policy.providers
}

// Index is the rule's position in the policy; the default rule comes last.
func (r *Rule) Index() int { return r.index }

// DefaultRule is the name of the rule that applies when no other matches.
const DefaultRule = "default"

// Policy is a compiled policy: which rule applies to a request, whether the
// request meets it, what each provider's verified tokens become on the
// forwarded request, and the headers scrubbed from every request (every
// provider's claim and payload headers). It is immutable and safe for
// concurrent use; a reload builds a new one and the proxy swaps it whole,
// so one request is scrubbed, decided and forwarded under one policy.
type Policy struct {
	providers []Provider
	rules     []Rule
	def       Rule
	mode      string
	logins    bool     // a provider has browser login
	scrub     []string // canonical names removed from every request
	rec       RuleRecorder
	counters  [][len(ruleOutcomes)]func() // by rule index; nil without a recorder
}

// RuleRecorder counts requests per policy rule. *metrics.Rules satisfies
// it. Counters are created when a policy is built, so the request path only
// calls them.
type RuleRecorder interface {
	// RuleCounter returns the increment of one (rule, outcome) series.
	RuleCounter(rule, outcome string) func()
	// KeepRules drops the series of rules not named, after a reload.
	KeepRules(names []string)
}

// Options describe a policy: providers, rules (first match wins) and the
// requirement of requests no rule matches.
type Options struct {
	Providers []Provider
	Rules     []Rule
	// Default applies when no rule matches; its zero value denies.
	Default Requirement
	// Mode labels verification durations: verifier.ModeJWT (default) or
	// verifier.ModeIntrospection.
	Mode string
	// Recorder counts requests per rule; nil counts nothing.
	Recorder RuleRecorder
}

// ruleOutcomes are the outcome label values of jwt_sidecar_rule_requests_total.
var ruleOutcomes = [...]verifier.Outcome{verifier.Allowed, verifier.Public, verifier.Unauthenticated, verifier.Forbidden}

// New checks and compiles a policy. It refuses unknown or repeated provider
// names, unnamed or repeated rules, requirements that cannot be met,
// invalid or reserved header names, a header mapped twice by one provider,
// and an all-of whose providers would set the same header.
func New(o Options) (*Policy, error) {
	p := &Policy{providers: slices.Clone(o.Providers), mode: o.Mode, rec: o.Recorder}
	if p.mode == "" {
		p.mode = verifier.ModeJWT
	}
	var errs []error
	byName := map[string]int{}
	scrubbed := map[string]bool{}
	for i := range p.providers {
		pr := &p.providers[i]
		switch {
		case pr.Name == "":
			errs = append(errs, fmt.Errorf("provider %d: no name", i))
		case pr.Auth == nil:
			errs = append(errs, fmt.Errorf("provider %s: no authenticator", pr.Name))
		}
		if _, dup := byName[pr.Name]; dup {
			errs = append(errs, fmt.Errorf("provider %s: named twice", pr.Name))
		}
		byName[pr.Name] = i
		p.logins = p.logins || pr.Login != nil
		fw, err := compileForwarding(pr.Forward)
		if err != nil {
			errs = append(errs, fmt.Errorf("provider %s: %w", pr.Name, err))
		}
		pr.Forward = fw
		for _, h := range fw.headers() {
			if k := config.HeaderKey(h); !scrubbed[k] {
				scrubbed[k] = true
				p.scrub = append(p.scrub, h)
			}
		}
	}
	names := map[string]bool{DefaultRule: true}
	for i, r := range o.Rules {
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("rule %d: no name", i))
		} else if names[r.Name] {
			errs = append(errs, fmt.Errorf("rule %s: the name is taken", r.Name))
		}
		names[r.Name] = true
		m, err := compileMatch(r.Match)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.Name, err))
		}
		idx, err := resolve(r.Require, byName)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.Name, err))
		}
		r.index, r.m, r.providers = i, m, idx
		p.rules = append(p.rules, r)
	}
	idx, err := resolve(o.Default, byName)
	if err != nil {
		errs = append(errs, fmt.Errorf("default: %w", err))
	}
	p.def = Rule{Name: DefaultRule, Require: o.Default, index: len(o.Rules), providers: idx}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, r := range p.Rules() {
		if r.Require.Kind != RequireAllOf {
			continue
		}
		if err := p.disjoint(r); err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Recorder != nil {
		for _, r := range p.Rules() {
			var c [len(ruleOutcomes)]func()
			for i, outcome := range ruleOutcomes {
				c[i] = o.Recorder.RuleCounter(r.Name, string(outcome))
			}
			p.counters = append(p.counters, c)
		}
	}
	return p, nil
}

// compileForwarding checks one provider's claim headers and payload header
// and makes their names canonical.
func compileForwarding(fw Forwarding) (Forwarding, error) {
	out := Forwarding{ForwardToken: fw.ForwardToken}
	seen := map[string]bool{}
	for _, c := range fw.ClaimHeaders {
		h, err := config.CheckHeaderName(c.Header)
		if err != nil {
			return out, fmt.Errorf("claim header for %q: %w", c.Claim, err)
		}
		if c.Claim == "" {
			return out, fmt.Errorf("claim header %s: empty claim", h)
		}
		if seen[config.HeaderKey(h)] {
			return out, fmt.Errorf("header %s is mapped twice", h)
		}
		seen[config.HeaderKey(h)] = true
		out.ClaimHeaders = append(out.ClaimHeaders, config.ClaimHeader{Claim: c.Claim, Header: h})
	}
	if fw.PayloadHeader != "" {
		h, err := config.CheckHeaderName(fw.PayloadHeader)
		if err != nil {
			return out, fmt.Errorf("payload header: %w", err)
		}
		if seen[config.HeaderKey(h)] {
			return out, fmt.Errorf("payload header %s is also a claim header", h)
		}
		out.PayloadHeader = h
	}
	return out, nil
}

// headers lists the headers a provider sets.
func (fw *Forwarding) headers() []string {
	var out []string
	for _, c := range fw.ClaimHeaders {
		out = append(out, c.Header)
	}
	if fw.PayloadHeader != "" {
		out = append(out, fw.PayloadHeader)
	}
	return out
}

// disjoint refuses an all-of whose providers map the same header: the
// request would carry two values, one from each token.
func (p *Policy) disjoint(r *Rule) error {
	owner := map[string]string{}
	for _, i := range r.providers {
		name := p.providers[i].Name
		for _, h := range p.providers[i].Forward.headers() {
			if other, ok := owner[config.HeaderKey(h)]; ok {
				return fmt.Errorf("providers %s and %s both set header %s; an all-of would set it twice", other, name, h)
			}
			owner[config.HeaderKey(h)] = name
		}
	}
	return nil
}

// Mode is the verification mode label of the policy's durations.
func (p *Policy) Mode() string { return p.mode }

// ScrubbedHeaders lists the headers removed from every request.
func (p *Policy) ScrubbedHeaders() []string { return p.scrub }

// Count adds one request to its rule's series of outcome.
func (p *Policy) Count(rule *Rule, outcome verifier.Outcome) {
	if p.counters == nil || rule == nil {
		return
	}
	for i, o := range ruleOutcomes {
		if o == outcome {
			p.counters[rule.index][i]()
			return
		}
	}
}

// KeepRules tells the recorder which rules are in force, after a swap, so
// that it drops the series of rules that are gone.
func (p *Policy) KeepRules() {
	if p.rec == nil {
		return
	}
	names := make([]string, 0, len(p.rules)+1)
	for _, r := range p.Rules() {
		names = append(names, r.Name)
	}
	p.rec.KeepRules(names)
}

// resolve checks a requirement and turns its provider names into indexes.
func resolve(req Requirement, byName map[string]int) ([]int, error) {
	switch req.Kind {
	case RequireDeny, RequirePublic:
		if len(req.Providers) > 0 {
			return nil, fmt.Errorf("%s names no provider", req.Kind)
		}
		if len(req.Scopes) > 0 || len(req.Claims) > 0 {
			return nil, fmt.Errorf("%s looks at no token, so it cannot require scopes or claims", req.Kind)
		}
		return nil, nil
	case RequireAnyOf, RequireAllOf, RequireAllowMissing:
	default:
		return nil, fmt.Errorf("unknown requirement %d", req.Kind)
	}
	if len(req.Providers) == 0 {
		return nil, fmt.Errorf("%s names no provider", req.Kind)
	}
	var idx []int
	for _, name := range req.Providers {
		i, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("unknown provider %q", name)
		}
		if slices.Contains(idx, i) {
			return nil, fmt.Errorf("provider %q is named twice", name)
		}
		idx = append(idx, i)
	}
	for _, s := range req.Scopes {
		if s == "" || strings.ContainsAny(s, " \t") {
			return nil, fmt.Errorf("scope %q: a scope is one non-empty word", s)
		}
	}
	for _, c := range req.Claims {
		if c.Claim == "" {
			return nil, errors.New("a claim requirement names no claim")
		}
		if len(c.Values) == 0 {
			return nil, fmt.Errorf("claim %s: no value to match", c.Claim)
		}
		for _, v := range c.Values {
			switch v.(type) {
			case string, bool, int64, float64:
			default:
				return nil, fmt.Errorf("claim %s: a value is a string, a number or a bool, not %T", c.Claim, v)
			}
		}
	}
	return idx, nil
}

// Providers lists the policy's providers, in their configured order.
func (p *Policy) Providers() []Provider { return p.providers }

// Rules lists the rules in order, the default last.
func (p *Policy) Rules() []*Rule {
	out := make([]*Rule, 0, len(p.rules)+1)
	for i := range p.rules {
		out = append(out, &p.rules[i])
	}
	return append(out, &p.def)
}
