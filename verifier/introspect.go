package verifier

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
)

// Introspection results, the `result` label values of
// jwt_sidecar_introspection_requests_total: what one call to the token
// service came to.
const (
	IntrospectionActive      = "active"
	IntrospectionInactive    = "inactive"
	IntrospectionTimeout     = "timeout"
	IntrospectionError       = "error"        // no connection, or a status other than 200
	IntrospectionBadResponse = "bad_response" // not a JSON object, too large, or no boolean active
)

// IntrospectionResults lists every introspection result.
var IntrospectionResults = []string{IntrospectionActive, IntrospectionInactive, IntrospectionTimeout, IntrospectionError, IntrospectionBadResponse}

// IntrospectionRecorder receives introspection telemetry: the token cache,
// token age and clock skew as in jwt mode, plus each call's result.
// *metrics.Metrics satisfies it.
type IntrospectionRecorder interface {
	Recorder
	Introspection(result string)
}

type nopIntrospectionRecorder struct{ nopRecorder }

func (nopIntrospectionRecorder) Introspection(string) {}

// Defaults of IntrospectionOptions.
const (
	DefaultIntrospectionTimeout  = 2 * time.Second
	DefaultIntrospectionMaxBytes = 64 << 10
)

// introspectionConns is how many idle connections to the token service are
// kept. Each call holds one for a round trip (about a millisecond on a
// LAN), so 256 sustain far more than hundreds of calls per second without a
// new TCP or TLS handshake, and absorb bursts.
const introspectionConns = 256

// IntrospectionOptions configure an Introspector. main builds them from
// AUTH_MODE=introspection's variables.
type IntrospectionOptions struct {
	// URL is the RFC 7662 endpoint (INTROSPECTION_URL): absolute http(s),
	// without credentials.
	URL string
	// ClientID and ClientSecret authenticate the sidecar with HTTP Basic
	// (RFC 7662 §2.1 requires the endpoint to authenticate its callers).
	ClientID     string
	ClientSecret string
	// Timeout bounds one call, connection included; default 2 s.
	Timeout time.Duration
	// MaxBytes is the largest response read; default 64 KiB.
	MaxBytes int64
	// CacheTTL > 0 remembers active answers for min(CacheTTL, exp - now),
	// at most CacheSize of them. 0: every request asks the token service.
	CacheTTL  time.Duration
	CacheSize int

	Lookups        []config.Lookup // where tokens are read; default header:Authorization
	MaxTokenSize   int             // bytes; default 8 KiB
	Issuers        []string        // when set, the answer's iss must be one of them
	Audiences      []string        // when set, the answer's aud must name one of them
	ClockSkew      time.Duration
	RequireExp     bool     // an active answer without exp is refused
	RequiredScopes []string // all are needed
	Recorder       IntrospectionRecorder
	// Client replaces the pooled client, for tests. It should not follow
	// redirects.
	Client *http.Client
	Now    func() time.Time // for tests; default time.Now
}

// Introspector authenticates requests by asking the token service about
// each token (RFC 7662): the stateful alternative to Verifier. Revocation
// takes effect at once (or within the cache TTL), at the price of a round
// trip per request and the token service on the request path. It is safe
// for concurrent use.
type Introspector struct {
	url        string
	auth       []string // the Authorization header, built once
	client     *http.Client
	timeout    time.Duration
	maxBytes   int64
	ttl        time.Duration
	cache      *tokenCache[answer]
	lookups    []config.Lookup
	maxSize    int
	issuers    []string
	requireExp bool
	checks     claimChecks
	rec        IntrospectionRecorder
	now        func() time.Time
}

// NewIntrospector builds an Introspector. It checks the options but
// contacts nothing.
func NewIntrospector(o IntrospectionOptions) (*Introspector, error) {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("introspection URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("introspection URL %q is not an absolute http(s) URL", o.URL)
	case u.User != nil:
		return nil, errors.New("introspection URL must not carry credentials; they go in the client ID and secret")
	}
	if o.ClientID == "" || o.ClientSecret == "" {
		return nil, errors.New("introspection needs a client ID and secret (RFC 7662 §2.1: the endpoint authenticates its callers)")
	}
	if o.Timeout < 0 || o.MaxBytes < 0 || o.CacheTTL < 0 || o.ClockSkew < 0 {
		return nil, errors.New("introspection timeout, size limit, cache TTL and clock skew must not be negative")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultIntrospectionTimeout
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultIntrospectionMaxBytes
	}
	if len(o.Lookups) == 0 {
		o.Lookups = []config.Lookup{{Kind: config.InHeader, Name: "Authorization"}}
	}
	if o.MaxTokenSize <= 0 {
		o.MaxTokenSize = 8 << 10
	}
	if o.Recorder == nil {
		o.Recorder = nopIntrospectionRecorder{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Client == nil {
		o.Client = newIntrospectionClient(o.Timeout)
	}
	in := &Introspector{
		url:        u.String(),
		auth:       []string{basicAuth(o.ClientID, o.ClientSecret)},
		client:     o.Client,
		timeout:    o.Timeout,
		maxBytes:   o.MaxBytes,
		ttl:        o.CacheTTL,
		lookups:    o.Lookups,
		maxSize:    o.MaxTokenSize,
		issuers:    o.Issuers,
		requireExp: o.RequireExp,
		checks:     claimChecks{audiences: o.Audiences, skew: o.ClockSkew, scopes: o.RequiredScopes, rec: o.Recorder},
		rec:        o.Recorder,
		now:        o.Now,
	}
	if o.CacheTTL > 0 {
		in.cache = newTokenCache[answer](o.CacheSize)
	}
	return in, nil
}

// basicAuth is the client_secret_basic header: RFC 6749 §2.3.1 has the ID
// and the secret form-urlencoded before they are joined and base64-encoded,
// so a ':' or a non-ASCII byte in either survives.
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// newIntrospectionClient is a pooled client of its own: keep-alive, enough
// idle connections per host for the token service, HTTP/2 when it offers
// it, and no redirects (a 3xx to a POST carrying client credentials is an
// error, not a hint).
func newIntrospectionClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  http.ProxyFromEnvironment,
			DialContext:            dialer.DialContext,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           introspectionConns,
			MaxIdleConnsPerHost:    introspectionConns,
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    timeout,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CacheLen is the number of active answers cached.
func (in *Introspector) CacheLen() int {
	if in.cache == nil {
		return 0
	}
	return in.cache.Len()
}

// CloseIdleConnections closes the idle connections to the token service,
// e.g. once in-flight requests have drained.
func (in *Introspector) CloseIdleConnections() { in.client.CloseIdleConnections() }

// Verify authenticates r by asking the token service about its token. The
// token is found as in jwt mode, with the same size limit, but may be any
// RFC 6750 b64token (opaque tokens are not JWTs). Every refusal is an
// *Error; Unavailable means the sidecar could not decide.
func (in *Introspector) Verify(ctx context.Context, r *http.Request) (Claims, error) {
	token, from, err := extractWith(r, in.lookups, in.maxSize, checkB64Token)
	if err != nil {
		return Claims{}, err
	}
	c, err := in.IntrospectToken(ctx, token)
	c.From = from
	return c, err
}

// answer is a token cache entry of introspection mode: an active answer,
// held until its own deadline, min(INTROSPECTION_CACHE_TTL, exp). Unlike
// jwt mode's entries, which live until the key set changes, every entry
// expires on its own, which is the whole point: a revoked token passes for
// at most the TTL.
type answer struct {
	claims *Claims
	until  time.Time
}

// expiredAt is the staleness rule of answers at now.
func expiredAt(now time.Time) func(answer) bool {
	return func(a answer) bool { return !now.Before(a.until) }
}

// IntrospectToken is Verify without the request.
func (in *Introspector) IntrospectToken(ctx context.Context, token string) (Claims, error) {
	sum := hashToken(token)
	if in.cache != nil {
		now := in.now()
		if a, ok := in.cache.get(&sum); ok {
			if now.Before(a.until) {
				in.rec.TokenCache(true)
				in.checks.accepted(a.claims, now)
				return *a.claims, nil
			}
			in.cache.drop(&sum, expiredAt(now))
		}
		in.rec.TokenCache(false)
	}
	body, e := in.call(ctx, token)
	var c *Claims
	now := in.now() // the answer is about now, not about when the call began
	if e == nil {
		c, e = in.decide(body, now)
	}
	if e != nil {
		e.TokenHash = hex.EncodeToString(sum[:6])
		return Claims{}, e
	}
	if in.cache != nil {
		// Never past exp: a cached answer must not outlive the token.
		until := now.Add(in.ttl)
		if !c.Expiry.IsZero() && c.Expiry.Before(until) {
			until = c.Expiry
		}
		if until.After(now) {
			in.cache.put(&sum, answer{claims: c, until: until}, expiredAt(now))
		}
	}
	in.checks.accepted(c, now)
	return *c, nil
}

// call POSTs the token to the endpoint (RFC 7662 §2.1) and returns the body
// of its 200 answer, at most maxBytes. Every failure is Unavailable, counted
// by its result: the request's own context and the timeout both bound it.
func (in *Introspector) call(ctx context.Context, token string) ([]byte, *Error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	form := "token=" + url.QueryEscape(token) + "&token_type_hint=access_token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url, strings.NewReader(form))
	if err != nil {
		return nil, in.unavailable(IntrospectionError, err)
	}
	req.Header = http.Header{
		"Authorization": in.auth,
		"Content-Type":  formContentType,
		"Accept":        jsonAccept,
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, in.unavailable(failure(err), fmt.Errorf("introspection request: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// A little of the body is read so that the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		err := fmt.Errorf("the introspection endpoint answered %s", resp.Status)
		if resp.StatusCode == http.StatusUnauthorized {
			err = fmt.Errorf("%w: it refused the sidecar's client ID or secret", err)
		}
		return nil, in.unavailable(IntrospectionError, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, in.maxBytes+1))
	if err != nil {
		return nil, in.unavailable(failure(err), fmt.Errorf("reading the introspection answer: %w", err))
	}
	if int64(len(body)) > in.maxBytes {
		return nil, in.unavailable(IntrospectionBadResponse, fmt.Errorf("the introspection answer exceeds %d bytes", in.maxBytes))
	}
	return body, nil
}

var (
	formContentType = []string{"application/x-www-form-urlencoded"}
	jsonAccept      = []string{"application/json"}
)

// failure tells a timeout from any other transport error.
func failure(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout() {
		return IntrospectionTimeout
	}
	return IntrospectionError
}

// unavailable counts a failed call and makes it the Unavailable refusal.
func (in *Introspector) unavailable(result string, err error) *Error {
	in.rec.Introspection(result)
	return &Error{Reason: Unavailable, Err: err}
}

// decide reads a 200 answer (RFC 7662 §2.2). Only the JSON boolean true is
// active and only false is inactive: a missing active, "true" as a string,
// 1 or null is an answer the sidecar cannot read, so it cannot decide
// (Unavailable), rather than guess either way. An active answer then passes
// the same checks as a verified JWT.
func (in *Introspector) decide(body []byte, now time.Time) (*Claims, *Error) {
	values, err := decodeObject(body)
	if err != nil {
		return nil, in.unavailable(IntrospectionBadResponse, fmt.Errorf("the introspection answer is not a JSON object: %w", err))
	}
	switch values["active"] {
	case true:
	case false:
		in.rec.Introspection(IntrospectionInactive)
		return nil, Fail(Inactive, "the token service says the token is not active")
	default:
		return nil, in.unavailable(IntrospectionBadResponse, fmt.Errorf("the introspection answer's active is %#v, not a boolean", values["active"]))
	}
	c := NewClaims(values)
	for _, d := range []struct {
		name string
		to   *time.Time
	}{{"exp", &c.Expiry}, {"nbf", &c.NotBefore}, {"iat", &c.IssuedAt}} {
		t, ok := numericClaim(values, d.name)
		if !ok {
			return nil, in.unavailable(IntrospectionBadResponse, fmt.Errorf("the introspection answer's %s is %#v, not a NumericDate", d.name, values[d.name]))
		}
		*d.to = t
	}
	in.rec.Introspection(IntrospectionActive)
	c.Payload = base64.RawURLEncoding.EncodeToString(body)
	c.Subject, _ = values["sub"].(string)
	c.Issuer, _ = values["iss"].(string)
	if e := in.check(&c, values, now); e != nil {
		e.Issuer = c.Issuer
		return nil, e
	}
	return &c, nil
}

// decodeObject decodes exactly one JSON object, numbers as json.Number so
// that claim headers render them as the token service wrote them.
func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var values map[string]any
	if err := dec.Decode(&values); err != nil {
		return nil, err
	}
	if values == nil {
		return nil, errors.New("null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return values, nil
}

// numericClaim reads an optional NumericDate of an answer: absent is the
// zero time; ok is false for anything but a finite number of seconds.
func numericClaim(values map[string]any, name string) (t time.Time, ok bool) {
	v, present := values[name]
	if !present {
		return time.Time{}, true
	}
	n, isNumber := v.(json.Number)
	if !isNumber {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.Abs(f) > 1e15 {
		return time.Time{}, false
	}
	return numericDate(n), true
}

// check applies jwt mode's checks to an active answer, in jwt mode's order:
// exp, nbf and iat with the clock skew, iss (when ISSUERS is set), aud,
// scopes. The token service has said the token is active; these are the
// sidecar's own policy on top of that.
func (in *Introspector) check(c *Claims, values map[string]any, now time.Time) *Error {
	if c.Expiry.IsZero() && in.requireExp {
		return Fail(Malformed, "the active token has no exp, and exp is required")
	}
	switch in.checks.checkTimes(c, now) {
	case Expired:
		return Fail(Expired, "exp %s has passed, beyond the clock skew of %s", c.Expiry.Format(time.RFC3339), in.checks.skew)
	case NotYetValid:
		return Fail(NotYetValid, "nbf %s is in the future, beyond the clock skew of %s", c.NotBefore.Format(time.RFC3339), in.checks.skew)
	}
	if !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(in.checks.skew)) {
		return Fail(NotYetValid, "iat %s is in the future", c.IssuedAt.Format(time.RFC3339))
	}
	if len(in.issuers) > 0 {
		iss, ok := values["iss"].(string)
		if !ok {
			return Fail(BadIssuer, "iss is missing or not a string")
		}
		if !slices.Contains(in.issuers, iss) {
			return Fail(BadIssuer, "iss %q is not accepted", iss)
		}
	}
	if e := in.checks.policy(values); e != nil {
		return e
	}
	return nil
}

// b64tokenChars marks RFC 6750 §2.1's b64token characters, without the
// trailing '=' padding, which checkB64Token handles.
var b64tokenChars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/") {
		t[c] = true
	}
	return t
}()

// checkB64Token refuses a token that is not an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=". Opaque
// tokens are not JWTs, but nothing else can be a bearer token.
func checkB64Token(token string) error {
	body := strings.TrimRight(token, "=")
	if body == "" {
		return Fail(Malformed, "token is only padding")
	}
	for i := 0; i < len(body); i++ {
		if !b64tokenChars[body[i]] {
			return Fail(Malformed, "token has a character outside RFC 6750's b64token")
		}
	}
	return nil
}

// ReadClientSecret reads INTROSPECTION_CLIENT_SECRET_FILE (see
// keys.ReadSecret); the secret must not be empty.
func ReadClientSecret(path string) (string, error) {
	raw, err := keys.ReadSecret(path)
	if err != nil {
		return "", err
	}
	if len(raw) == 0 {
		return "", fmt.Errorf("%s: the secret is empty", path)
	}
	return string(raw), nil
}
