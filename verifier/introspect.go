package verifier

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/capool"
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
	// CAFile holds PEM CA certificates that verify URL instead of the
	// system roots; it is re-read when it changes.
	CAFile string
	// Client replaces the pooled client, for tests. It should not follow
	// redirects.
	Client *http.Client
	// WrapTransport, when set, wraps the client's transport: tracing makes
	// each call a span.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	Now           func() time.Time // for tests; default time.Now
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
		if o.CAFile != "" {
			pool, err := capool.New(o.CAFile, time.Second, nil)
			if err != nil {
				return nil, fmt.Errorf("introspection CA file: %w", err)
			}
			o.Client.Transport = capool.NewTransport(pool, o.Client.Transport.(*http.Transport))
		}
	}
	if o.WrapTransport != nil {
		c := *o.Client
		c.Transport = o.WrapTransport(c.Transport)
		o.Client = &c
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
	token, from, _, err := extractWith(r, in.lookups, in.maxSize, checkB64Token, false)
	if err != nil {
		return Claims{}, err
	}
	c, err := in.IntrospectToken(ctx, token)
	c.From = from
	return c, err
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
				c := *a.claims
				c.CacheHit = true
				return c, nil
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
	c.hash = [6]byte(sum[:6])
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
