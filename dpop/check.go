package dpop

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxAge      = 60 * time.Second
	DefaultLeeway      = 5 * time.Second
	DefaultReplayCache = 100_000
)

// Options configure a Checker. Zero values take the defaults.
type Options struct {
	// Algorithms are the proof algs accepted (DPOP_ALGORITHMS), announced
	// in the challenge's algs; DefaultAlgorithms when empty.
	Algorithms []string
	// MaxAge is how old a proof's iat may be (DPOP_PROOF_MAX_AGE); Leeway
	// how far in the future (clock skew). A proof's jti is remembered for
	// MaxAge plus Leeway, after which the proof is refused as stale anyway.
	MaxAge time.Duration
	Leeway time.Duration
	// ReplayCacheSize bounds the remembered jtis (DPOP_REPLAY_CACHE_SIZE).
	// Size it to the proofs expected within MaxAge+Leeway; see Replay.
	ReplayCacheSize int
	// Nonces, when set, requires server nonces (RFC 9449 §8).
	Nonces *NonceSource
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Checker checks DPoP proofs. It is safe for concurrent use.
type Checker struct {
	algs   []string
	maxAge time.Duration
	leeway time.Duration
	nonces *NonceSource
	now    func() time.Time
	replay *Replay
}

// New builds a Checker. It refuses an alg that is not asymmetric.
func New(o Options) (*Checker, error) {
	if len(o.Algorithms) == 0 {
		o.Algorithms = DefaultAlgorithms
	}
	for _, a := range o.Algorithms {
		if !asymmetric[a] {
			return nil, fmt.Errorf("DPoP alg %q is not one of %s", a, strings.Join(DefaultAlgorithms, ", "))
		}
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Leeway < 0 {
		return nil, errors.New("the DPoP leeway must not be negative")
	}
	if o.Leeway == 0 {
		o.Leeway = DefaultLeeway
	}
	if o.ReplayCacheSize <= 0 {
		o.ReplayCacheSize = DefaultReplayCache
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Checker{
		algs: slices.Clone(o.Algorithms), maxAge: o.MaxAge, leeway: o.Leeway, nonces: o.Nonces, now: o.Now,
		replay: NewReplay(o.ReplayCacheSize),
	}, nil
}

// Algorithms are the accepted algs, for the challenge's algs parameter.
func (c *Checker) Algorithms() []string { return c.algs }

// Replay is the checker's jti cache, for its size in metrics.
func (c *Checker) Replay() *Replay { return c.replay }

// Request is what a proof is checked against.
type Request struct {
	// Method is the request method (htm).
	Method string
	// URI is the target URI the client addressed (Target.URI); both it and
	// htu are normalized before they are compared.
	URI string
	// Proofs are the values of every DPoP header (r.Header.Values("DPoP")).
	Proofs []string
	// AccessToken is the token presented with the proof; empty at a token
	// endpoint, where a proof carries no ath.
	AccessToken string
}

// CheckToken is the resource server's check (RFC 9449 §7.1) for a token
// that was verified already. scheme is the Authorization scheme it came
// with ("DPoP" or "Bearer", compared case-insensitively); jkt is the
// token's cnf.jkt ("" when the token is not DPoP-bound). A token that is
// not DPoP-bound and came as Bearer passes untouched (a DPoP header then
// is ignored, §7.2). The proof's jti is spent only when everything passed.
func (c *Checker) CheckToken(req Request, scheme, jkt string) (*Proof, error) {
	isDPoP := strings.EqualFold(scheme, "DPoP")
	switch {
	case jkt == "" && !isDPoP:
		return nil, nil
	case jkt == "":
		return nil, fail(Mismatch, "the DPoP scheme with a token that is not DPoP-bound (no cnf.jkt)")
	case !isDPoP:
		return nil, fail(BoundAsBearer, "a DPoP-bound token with the %s scheme", scheme)
	case req.AccessToken == "":
		return nil, fail(Missing, "no access token to bind the proof to")
	}
	p, err := c.verify(req)
	if err != nil {
		return nil, err
	}
	if !equal(p.JKT, jkt) {
		return nil, fail(Mismatch, "the proof's key (thumbprint %s) is not the token's cnf.jkt", p.JKT)
	}
	if err := c.spend(p); err != nil {
		return nil, err
	}
	return p, nil
}

// CheckProof checks a proof sent to a token endpoint (RFC 9449 §5): all of
// §4.3 but ath, then spends its jti. The token to issue is bound to the
// returned proof's JKT. No proof at all is (nil, nil): the client asked for
// a Bearer token.
func (c *Checker) CheckProof(req Request) (*Proof, error) {
	if len(req.Proofs) == 0 {
		return nil, nil
	}
	req.AccessToken = ""
	p, err := c.verify(req)
	if err != nil {
		return nil, err
	}
	if err := c.spend(p); err != nil {
		return nil, err
	}
	return p, nil
}

// verify runs RFC 9449 §4.3 checks 1-11 but the replay check (12), which
// spend does last so that only a fully valid proof uses up its jti.
func (c *Checker) verify(req Request) (*Proof, error) {
	switch len(req.Proofs) {
	case 0:
		return nil, fail(Missing, "no DPoP header")
	case 1:
	default:
		return nil, fail(Invalid, "%d DPoP headers; exactly one is allowed", len(req.Proofs))
	}
	p, err := ParseProof(req.Proofs[0], c.algs)
	if err != nil {
		return nil, err
	}
	// Check 8: htm matches the method. Methods are case-sensitive (RFC 9110
	// §9.1).
	if p.HTM != req.Method {
		return nil, fail(Mismatch, "htm %q is not the request method %s", p.HTM, req.Method)
	}
	// Check 9: htu matches the target URI without query and fragment.
	want, err := NormalizeURI(req.URI)
	if err != nil {
		return nil, fail(Mismatch, "the request URI %q cannot be normalized: %v", req.URI, err)
	}
	got, err := NormalizeURI(p.HTU)
	if err != nil {
		return nil, fail(Invalid, "htu %q is not an http(s) URI: %v", p.HTU, err)
	}
	if got != want {
		return nil, fail(Mismatch, "htu %s is not the request URI %s", got, want)
	}
	// Check 10 (nonce) before 11 (iat): with nonces, a stale clock on the
	// client is answered with a nonce rather than a refusal.
	now := c.now()
	if c.nonces != nil && !c.nonces.Valid(p.Nonce, now) {
		return nil, fail(NonceRequired, "the proof's nonce is missing, unknown or expired")
	}
	// Check 11: iat within the window.
	if p.IAT.Before(now.Add(-c.maxAge)) {
		return nil, fail(Invalid, "the proof was issued at %s, more than %s ago", p.IAT.UTC().Format(time.RFC3339), c.maxAge)
	}
	if p.IAT.After(now.Add(c.leeway)) {
		return nil, fail(Invalid, "the proof's iat %s is in the future", p.IAT.UTC().Format(time.RFC3339))
	}
	// §4.3 check 12's companion in §7.1: ath is the hash of this token.
	if req.AccessToken != "" {
		if p.ATH == "" {
			return nil, fail(Invalid, "the proof has no ath")
		}
		if !equal(p.ATH, TokenHash(req.AccessToken)) {
			return nil, fail(Mismatch, "ath is not the hash of the access token")
		}
	}
	return p, nil
}

// spend records the proof's jti for its key until the proof is stale.
func (c *Checker) spend(p *Proof) error {
	until := p.IAT.Add(c.maxAge + c.leeway)
	if !c.replay.Add(p.JKT, p.JTI, until, c.now()) {
		return fail(Replayed, "jti %q of this key was already used", p.JTI)
	}
	return nil
}
