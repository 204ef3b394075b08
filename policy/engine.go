package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Authenticator verifies one request's token for one provider: the one
// interface for "authenticate this request". *verifier.Verifier and
// *verifier.Introspector satisfy it. Every refusal is a *verifier.Error;
// any other error is a fault.
type Authenticator interface {
	Verify(ctx context.Context, r *http.Request) (verifier.Claims, error)
}

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
	scrub     []string // canonical names removed from every request
	rec       RuleRecorder
	counters  [][len(ruleOutcomes)]func() // by rule index; nil without a recorder
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

// Trace records how a decision was reached, for jwt-sidecar explain. The
// proxy passes a nil *Trace, which costs nothing.
type Trace struct {
	// Rules are the rules tried, in order, up to the one that matched.
	Rules []RuleTrace
	// Providers are the providers asked, in order.
	Providers []ProviderTrace
}

// RuleTrace is one rule tried.
type RuleTrace struct {
	Rule     *Rule
	Mismatch Mismatch // Matched for the rule that applied
}

// ProviderTrace is one provider asked to verify the request's token.
type ProviderTrace struct {
	Provider string
	Claims   verifier.Claims // when verified
	Err      error           // the provider's refusal, or nil
}

// Match returns the first rule that matches r, whose cleaned path is path,
// or the default rule. It allocates nothing unless tr is set.
func (p *Policy) Match(r *http.Request, path string, tr *Trace) *Rule {
	for i := range p.rules {
		rule := &p.rules[i]
		mm := rule.m.match(r, path)
		if tr != nil {
			tr.Rules = append(tr.Rules, RuleTrace{Rule: rule, Mismatch: mm})
		}
		if mm == Matched {
			return rule
		}
	}
	if tr != nil {
		tr.Rules = append(tr.Rules, RuleTrace{Rule: &p.def})
	}
	return &p.def
}

// Verified is one provider's verified token.
type Verified struct {
	Provider int // index into Providers()
	Claims   verifier.Claims
}

// Decision is the outcome of Check. Exactly one holds: Err is set (refused),
// Public (no token looked at), Anonymous (allow-missing without a token),
// or First (and More, for all-of) hold the verified tokens.
type Decision struct {
	Rule      *Rule
	Public    bool
	Anonymous bool
	First     Verified
	More      []Verified
	// Err is the refusal: an *verifier.Error, or another error for a fault.
	Err error
}

// Check decides whether r meets rule's requirement and fills d. It is the
// one decision both the proxy and jwt-sidecar explain use. For a single
// provider that verifies, it allocates nothing beyond what the provider's
// Authenticator does.
func (p *Policy) Check(ctx context.Context, r *http.Request, rule *Rule, d *Decision, tr *Trace) {
	d.Rule = rule
	req := &rule.Require
	switch req.Kind {
	case RequirePublic:
		d.Public = true
		return
	case RequireDeny:
		if rule == &p.def {
			d.Err = verifier.Fail(verifier.Denied, "no rule matches %s %s and the default denies", r.Method, r.URL.Path)
		} else {
			d.Err = verifier.Fail(verifier.Denied, "rule %q denies every request", rule.Name)
		}
		return
	case RequireAllOf:
		for n, i := range rule.providers {
			v := &d.First
			if n > 0 {
				d.More = append(d.More, Verified{})
				v = &d.More[len(d.More)-1]
			}
			v.Provider = i
			err := p.verify(ctx, r, i, &v.Claims, tr)
			if err == nil {
				err = p.meets(rule, i, &v.Claims)
			}
			if err != nil {
				d.First, d.More, d.Err = Verified{}, nil, err
				return
			}
		}
		return
	}
	// Any-of and allow-missing: the first provider that verifies wins. The
	// claims are written where the decision keeps them: no copy of a
	// Claims on the request path.
	var refusals []*verifier.Error
	for _, i := range rule.providers {
		d.First.Provider = i
		err := p.verify(ctx, r, i, &d.First.Claims, tr)
		if err == nil {
			if err := p.meets(rule, i, &d.First.Claims); err != nil {
				d.First, d.Err = Verified{}, err
			}
			return
		}
		e, ok := asError(err)
		if !ok {
			d.Err = err // a fault, not a refusal
			return
		}
		if len(rule.providers) == 1 {
			// The common case: nothing to choose from, nothing to allocate.
			d.First = Verified{}
			if req.Kind == RequireAllowMissing && e.Reason == verifier.Missing {
				d.Anonymous = true
				return
			}
			d.Err = err
			return
		}
		refusals = append(refusals, e)
	}
	d.First = Verified{}
	if req.Kind == RequireAllowMissing && allMissing(refusals) {
		d.Anonymous = true
		return
	}
	d.Err = p.pick(rule, refusals)
}

func (p *Policy) verify(ctx context.Context, r *http.Request, i int, dst *verifier.Claims, tr *Trace) error {
	var err error
	*dst, err = p.providers[i].Auth.Verify(ctx, r)
	if tr != nil {
		tr.Providers = append(tr.Providers, ProviderTrace{Provider: p.providers[i].Name, Claims: *dst, Err: err})
	}
	return err
}

// asError finds the *verifier.Error in err. A type assertion first: errors.As would
// make every refusal allocate for its target.
func asError(err error) (*verifier.Error, bool) {
	if e, ok := err.(*verifier.Error); ok {
		return e, true
	}
	var e *verifier.Error
	return e, errors.As(err, &e)
}

func allMissing(refusals []*verifier.Error) bool {
	for _, e := range refusals {
		if e.Reason != verifier.Missing {
			return false
		}
	}
	return true
}

// pick chooses the refusal to report when no provider of an any-of
// verified: the one of the provider that accepts the token's issuer (its
// reason says what is wrong with that token); else, for a token whose
// issuer none accepts, bad_issuer; else the first provider that found a
// token (e.g. malformed); else missing.
func (p *Policy) pick(rule *Rule, refusals []*verifier.Error) *verifier.Error {
	if len(refusals) == 1 {
		return refusals[0]
	}
	for k, e := range refusals {
		if e.Issuer != "" && slices.Contains(p.providers[rule.providers[k]].Issuers, e.Issuer) {
			return e
		}
	}
	for _, e := range refusals {
		if e.Issuer != "" {
			return &verifier.Error{
				Reason:    verifier.BadIssuer,
				Err:       fmt.Errorf("issuer %q is accepted by none of %s", e.Issuer, strings.Join(rule.Require.Providers, ", ")),
				KID:       e.KID,
				Issuer:    e.Issuer,
				TokenHash: e.TokenHash,
			}
		}
	}
	for _, e := range refusals {
		if e.Reason != verifier.Missing {
			return e
		}
	}
	return refusals[0]
}

// meets checks the rule's scopes and claims on one verified token.
func (p *Policy) meets(rule *Rule, provider int, c *verifier.Claims) error {
	req := &rule.Require
	for _, s := range req.Scopes {
		if !c.HasScope(s) {
			return &verifier.Error{Reason: verifier.InsufficientScope, Issuer: c.Issuer, KID: c.KeyID,
				Err: fmt.Errorf("rule %q requires scope %q, which the %s token lacks", rule.Name, s, p.providers[provider].Name)}
		}
	}
	for i := range req.Claims {
		cr := &req.Claims[i]
		v, ok := c.Lookup(cr.Claim)
		if !ok {
			return &verifier.Error{Reason: verifier.InsufficientScope, Issuer: c.Issuer, KID: c.KeyID,
				Err: fmt.Errorf("rule %q requires claim %s, which the %s token lacks", rule.Name, cr.Claim, p.providers[provider].Name)}
		}
		if !cr.matches(v) {
			return &verifier.Error{Reason: verifier.InsufficientScope, Issuer: c.Issuer, KID: c.KeyID,
				Err: fmt.Errorf("rule %q requires claim %s to be %s; the %s token has %s", rule.Name, cr.Claim, cr.want(), p.providers[provider].Name, shown(v))}
		}
	}
	return nil
}

// matches reports whether a claim value, or one element of an array claim,
// equals one of the wanted values. Types must agree: the string "true" is
// not the bool true, and "42" is not the number 42.
func (cr *ClaimRequirement) matches(v any) bool {
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if cr.matchesOne(e) {
				return true
			}
		}
		return false
	}
	return cr.matchesOne(v)
}

func (cr *ClaimRequirement) matchesOne(v any) bool {
	for _, want := range cr.Values {
		switch w := want.(type) {
		case string:
			if s, ok := v.(string); ok && s == w {
				return true
			}
		case bool:
			if b, ok := v.(bool); ok && b == w {
				return true
			}
		case int64:
			if n, ok := v.(json.Number); ok && isInt(n) {
				if i, err := n.Int64(); err == nil && i == w {
					return true
				}
			}
		case float64:
			if n, ok := v.(json.Number); ok {
				if f, err := n.Float64(); err == nil && f == w {
					return true
				}
			}
		}
	}
	return false
}

// isInt reports whether a JSON number is written as an integer, so that
// parsing it cannot fail (and allocate an error) on the request path.
func isInt(n json.Number) bool {
	s := strings.TrimPrefix(string(n), "-")
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// want describes the wanted values for a refusal's detail.
func (cr *ClaimRequirement) want() string {
	parts := make([]string, len(cr.Values))
	for i, v := range cr.Values {
		parts[i] = shown(v)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "one of " + strings.Join(parts, ", ")
}

// shown renders a value for a log line: strings quoted, others as JSON.
func shown(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
