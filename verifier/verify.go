// Package verifier authenticates requests by their bearer JWT, locally: it
// finds the token, finds the issuer's key, checks the signature, the
// registered claims and the policy, and says why when it refuses.
package verifier

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
)

// Claims whose check may pass only thanks to the clock skew: the `claim`
// label values of jwt_sidecar_clock_skew_accepted_total.
const (
	ClaimExp = "exp"
	ClaimNbf = "nbf"
	ClaimIat = "iat"
)

// SkewClaims lists them.
var SkewClaims = []string{ClaimExp, ClaimNbf, ClaimIat}

// Recorder receives verification telemetry. *metrics.Metrics satisfies it.
type Recorder interface {
	TokenCache(hit bool)
	TokenAge(d time.Duration)
	SkewAccepted(claim string)
}

type nopRecorder struct{}

func (nopRecorder) TokenCache(bool)        {}
func (nopRecorder) TokenAge(time.Duration) {}
func (nopRecorder) SkewAccepted(string)    {}

// Options configure a Verifier. Accepted issuers are those the key sources
// are bound to: a token's iss picks the sources that may verify it.
type Options struct {
	Keys           *keys.Keys
	Lookups        []config.Lookup // where tokens are read; default header:Authorization
	Audiences      []string        // any one suffices; empty: aud is not checked
	Algorithms     []string        // allowed alg values; default config.DefaultAlgorithms
	ClockSkew      time.Duration
	RequireExp     bool
	RequiredScopes []string // all are needed
	MaxTokenSize   int      // bytes; default 8 KiB
	CacheSize      int      // verified tokens remembered; 0: off
	// Revocations, when set, is checked after every verification, cache
	// hits included.
	Revocations Revocations
	// Sender enforces cnf (DPoP, mTLS); nil refuses DPoP-bound tokens.
	Sender *SenderConstraint
	// RequiredTyp is the JOSE typ every token must carry (e.g. at+jwt,
	// RFC 9068; compared as a media type); empty: not checked.
	RequiredTyp string
	// MaxLifetime refuses tokens whose exp - iat exceeds it (and tokens
	// without both); zero: off.
	MaxLifetime time.Duration
	// AllowSenderConstrained accepts tokens with a cnf claim as bearer
	// tokens, without proof of the binding (an explicit opt-out); off, bound()
	// demands the DPoP proof or the client certificate the cnf names.
	AllowSenderConstrained bool
	Recorder               Recorder
	Now                    func() time.Time // for tests; default time.Now
}

// Verifier authenticates requests. It is safe for concurrent use.
type Verifier struct {
	claimChecks
	keys    *keys.Keys
	lookups []config.Lookup
	algs    map[string]bool
	maxSize int
	cache   *tokenCache[verified]
	now     func() time.Time
	parser  *jwt.Parser

	revocations Revocations
	sender      *SenderConstraint
	rules       tokenRules
}

// claimChecks are what both modes check once a token is known to be
// genuine, by its signature (jwt mode) or by the token service
// (introspection mode): exp and nbf with the skew, aud and scopes; and the
// accepted-token telemetry. Both modes thus apply one policy.
type claimChecks struct {
	audiences []string
	skew      time.Duration
	scopes    []string
	rec       Recorder
}

// New builds a Verifier. It rejects options that would make it unsafe: alg
// none, HS* without an HMAC secret, or an empty key store.
func New(o Options) (*Verifier, error) {
	if o.Keys == nil {
		return nil, errors.New("no key store")
	}
	if len(o.Lookups) == 0 {
		o.Lookups = []config.Lookup{{Kind: config.InHeader, Name: "Authorization"}}
	}
	if len(o.Algorithms) == 0 {
		o.Algorithms = config.DefaultAlgorithms
	}
	if o.MaxTokenSize <= 0 {
		o.MaxTokenSize = 8 << 10
	}
	if o.ClockSkew < 0 {
		return nil, errors.New("clock skew must not be negative")
	}
	if o.Recorder == nil {
		o.Recorder = nopRecorder{}
	}
	if o.MaxLifetime < 0 {
		return nil, errors.New("maximum token lifetime must not be negative")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	algs := map[string]bool{}
	for _, a := range o.Algorithms {
		if jwt.GetSigningMethod(a) == nil || strings.EqualFold(a, "none") {
			return nil, fmt.Errorf("algorithm %q is not supported", a)
		}
		algs[a] = true
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(o.Algorithms),
		jwt.WithJSONNumber(),
		jwt.WithStrictDecoding(),
		jwt.WithLeeway(o.ClockSkew),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(o.Now),
	}
	if o.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	return &Verifier{
		claimChecks: claimChecks{audiences: o.Audiences, skew: o.ClockSkew, scopes: o.RequiredScopes, rec: o.Recorder},
		keys:        o.Keys,
		lookups:     o.Lookups,
		algs:        algs,
		maxSize:     o.MaxTokenSize,
		cache:       newTokenCache[verified](o.CacheSize),
		now:         o.Now,
		parser:      jwt.NewParser(opts...),
		revocations: o.Revocations,
		sender:      o.Sender,
		rules:       tokenRules{typ: normaliseTyp(o.RequiredTyp), maxLifetime: o.MaxLifetime, senderConstraint: o.AllowSenderConstrained},
	}, nil
}

// CacheLen is the number of verified tokens cached.
func (v *Verifier) CacheLen() int {
	if v.cache == nil {
		return 0
	}
	return v.cache.Len()
}

// Verify authenticates r by its bearer token. Every refusal is an *Error
// whose Reason is one of the SPEC's reasons.
func (v *Verifier) Verify(ctx context.Context, r *http.Request) (Claims, error) {
	token, from, scheme, err := extract(r, v.lookups, v.maxSize)
	if err != nil {
		return Claims{}, err
	}
	c, err := v.VerifyToken(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	if e := v.bound(r, scheme, token, &c); e != nil {
		sum := hashToken(token)
		e.TokenHash = hex.EncodeToString(sum[:6])
		return Claims{}, e
	}
	c.From = from
	return c, nil
}

// VerifyToken verifies one compact JWS. It is Verify without the request.
func (v *Verifier) VerifyToken(ctx context.Context, token string) (Claims, error) {
	if len(token) > v.maxSize {
		return Claims{}, Fail(Malformed, "token of %d bytes exceeds the limit of %d", len(token), v.maxSize)
	}
	sum := hashToken(token)
	now := v.now()
	// Read before the token is verified: keys withdrawn from here on
	// invalidate what this verification caches.
	epoch := v.keys.Epoch()
	stale := func(e verified) bool { return e.epoch != epoch || v.checkTimes(e.claims, now) != "" }
	if v.cache != nil {
		if e, ok := v.cache.get(&sum); ok && e.epoch == epoch {
			if v.checkTimes(e.claims, now) == "" {
				v.rec.TokenCache(true)
				// A cached verdict may predate a revocation.
				if err := v.revoked(e.claims); err != nil {
					err.TokenHash = hex.EncodeToString(sum[:6])
					return Claims{}, err
				}
				v.accepted(e.claims, now)
				c := *e.claims
				c.CacheHit = true
				return c, nil
			}
			v.cache.drop(&sum, stale)
		}
		v.rec.TokenCache(false)
	}
	c, err := v.verify(ctx, token)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.TokenHash = hex.EncodeToString(sum[:6])
		}
		return Claims{}, err
	}
	c.hash = [6]byte(sum[:6])
	if v.cache != nil {
		v.cache.put(&sum, verified{claims: c, epoch: epoch}, stale)
	}
	if err := v.revoked(c); err != nil {
		err.TokenHash = hex.EncodeToString(sum[:6])
		return Claims{}, err
	}
	v.accepted(c, now)
	return *c, nil
}

// verify checks one token fully. The JOSE header is decoded once, by
// golang-jwt, which checks alg against the allow-list (WithValidMethods)
// before it calls the keyfunc: no key is looked up for a disallowed alg.
// jku, x5u, jwk and x5c are never read: keys come only from configured
// sources (RFC 8725 §3.10).
func (v *Verifier) verify(ctx context.Context, token string) (*Claims, error) {
	var iss, kid string
	keyfunc := func(t *jwt.Token) (any, error) {
		// RFC 7515 §4.1.11: no extension is understood here, so any crit fails.
		if _, ok := t.Header["crit"]; ok {
			return nil, Fail(Malformed, "crit header parameter names an extension not understood")
		}
		if k, ok := t.Header["kid"]; ok {
			if kid, ok = k.(string); !ok {
				return nil, Fail(Malformed, "kid is not a string")
			}
			if kid == "" {
				// An empty kid names no key. keyfunc would look it up as
				// the first key without a kid, where an absent kid gets
				// them all; the key memo, keyed by kid, cannot tell the
				// two apart, so both must ask for the same thing.
				delete(t.Header, "kid")
			}
		}
		mc, _ := t.Claims.(jwt.MapClaims)
		s, ok := mc["iss"].(string)
		if !ok {
			return nil, Fail(BadIssuer, "iss is missing or not a string")
		}
		iss = s
		return v.keys.Key(ctx, s, kid, t.Method.Alg(), t)
	}
	if err := checkSegments(token); err != nil {
		return nil, err
	}
	mc := jwt.MapClaims{}
	t, err := v.parser.ParseWithClaims(token, mc, keyfunc)
	if err != nil {
		e := classify(err)
		// golang-jwt calls a disallowed alg a bad signature and an unknown
		// one unverifiable: name both for what they are. Exact,
		// case-sensitive comparison, so "None" and "nOnE" fail too.
		if t != nil && t.Header != nil {
			if alg, _ := t.Header["alg"].(string); !v.algs[alg] {
				e = &Error{Reason: BadAlgorithm, Err: fmt.Errorf("alg %q is not allowed: %w", alg, err)}
			}
			if kid == "" {
				kid, _ = t.Header["kid"].(string)
			}
		}
		if iss == "" {
			// The keyfunc was not reached (e.g. a disallowed alg), but the
			// payload was decoded: name its issuer, so logs and a policy
			// choosing among providers' refusals can tell whose token it is.
			iss, _ = mc["iss"].(string)
		}
		e.KID, e.Issuer = kid, iss
		return nil, e
	}
	if err := v.rules.check(t.Header, mc); err != nil {
		err.KID, err.Issuer = kid, iss
		return nil, err
	}
	if err := v.afterSignature(mc); err != nil {
		err.KID, err.Issuer = kid, iss
		return nil, err
	}
	cnf, cerr := parseConfirmation(mc["cnf"])
	if cerr != nil {
		cerr.KID, cerr.Issuer = kid, iss
		return nil, cerr
	}
	c := &Claims{Payload: payloadSegment(token), Issuer: iss, KeyID: kid, values: mc, cnf: cnf}
	c.Subject, _ = mc["sub"].(string)
	c.JTI, _ = mc["jti"].(string)
	c.Expiry = numericDate(mc["exp"])
	c.NotBefore = numericDate(mc["nbf"])
	c.IssuedAt = numericDate(mc["iat"])
	return c, nil
}

// payloadSegment is the middle of a compact JWS that golang-jwt accepted.
func payloadSegment(token string) string {
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	return token[first+1 : last]
}

// numericDate reads a NumericDate (RFC 7519 §2: seconds, possibly
// fractional) that golang-jwt has already validated; absent is zero.
func numericDate(v any) time.Time {
	var f float64
	switch n := v.(type) {
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return time.Time{}
		}
	case float64:
		f = n
	default:
		return time.Time{}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}
