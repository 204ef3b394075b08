package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// Authenticator verifies one request's token for one provider: the one
// interface for "authenticate this request". *verifier.Verifier and
// *verifier.Introspector satisfy it. Every refusal is a *verifier.Error;
// any other error is a fault.
type Authenticator interface {
	Verify(ctx context.Context, r *http.Request) (verifier.Claims, error)
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
			return &verifier.Error{Reason: verifier.InsufficientScope, Issuer: c.Issuer, KID: c.KeyID, TokenHash: c.TokenHash(),
				Scope: strings.Join(req.Scopes, " "),
				Err:   fmt.Errorf("rule %q requires scope %q, which the %s token lacks", rule.Name, s, p.providers[provider].Name)}
		}
	}
	for i := range req.Claims {
		cr := &req.Claims[i]
		v, ok := c.Lookup(cr.Claim)
		if !ok {
			return &verifier.Error{Reason: verifier.InsufficientScope, Issuer: c.Issuer, KID: c.KeyID, TokenHash: c.TokenHash(),
				Err: fmt.Errorf("rule %q requires claim %s, which the %s token lacks", rule.Name, cr.Claim, p.providers[provider].Name)}
		}
		if !cr.matches(v) {
			return &verifier.Error{Reason: verifier.InsufficientScope, Issuer: c.Issuer, KID: c.KeyID, TokenHash: c.TokenHash(),
				Err: fmt.Errorf("rule %q requires claim %s to be %s; the %s token has %s", rule.Name, cr.Claim, cr.want(), p.providers[provider].Name, shown(v))}
		}
	}
	return nil
}
