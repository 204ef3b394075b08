// Package keys holds the verification keys of token issuers: key sources
// (a JWKS over HTTP, OIDC discovery, a JWKS file, PEM public keys, an HMAC
// secret), their background refresh, the unknown-kid refetch, the disk
// cache that keeps a restart serving through an issuer outage, and the
// lookup of a token's key by issuer, kid and alg. It knows nothing of
// requests or reasons: a failed lookup returns one of its sentinels
// (ErrKeyNotFound, ErrUnknownIssuer, ErrKeyMismatch), which the verifier
// classifies.
package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/errgroup"
)

// Refresh triggers and results: the `trigger` and `result` label values of
// jwt_sidecar_key_refreshes_total.
const (
	TriggerStart      = "start"
	TriggerInterval   = "interval"
	TriggerUnknownKID = "unknown_kid"
	TriggerFileChange = "file_change"

	RefreshOK       = "ok"        // loaded; keys replaced
	RefreshError    = "error"     // fetch failed: network, status, size, timeout
	RefreshInvalid  = "invalid"   // fetched, but not a JWK Set; cache kept
	RefreshEmpty    = "empty"     // a JWK Set with no usable key; cache kept
	RefreshCooldown = "cooldown"  // an unknown-kid refetch refused by the cooldown
	RefreshFromDisk = "from_disk" // loaded from JWKS_CACHE_DIR at start
)

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// KeyRecorder receives key-source telemetry. *metrics.Metrics satisfies it.
type KeyRecorder interface {
	KeyRefresh(source, trigger, result string)
	KeysLoaded(source string, n int, at time.Time)
}

type nopKeyRecorder struct{}

func (nopKeyRecorder) KeyRefresh(string, string, string) {}
func (nopKeyRecorder) KeysLoaded(string, int, time.Time) {}

// KeyOptions is the key policy shared by every source.
type KeyOptions struct {
	// RefreshInterval is how often remote sources are refetched.
	RefreshInterval time.Duration
	// FetchTimeout bounds one HTTP fetch of a JWKS or discovery document.
	FetchTimeout time.Duration
	// MaxBytes bounds the body of a JWKS or discovery document.
	MaxBytes int64
	// RefetchCooldown is the least time between two unknown-kid refetches
	// of one source, so a flood of random kids costs a handful of fetches.
	RefetchCooldown time.Duration
	// MaxWait bounds how long a request waits for an unknown-kid refetch.
	MaxWait time.Duration
	// CacheDir, when set, keeps each source's last good JWK Set on disk.
	CacheDir string
	// FilePoll is how often JWKS files are checked for changes.
	FilePoll time.Duration
	// RelayURL, when set, is a key relay (cmd/jwt-key-relay) that remote
	// sources fetch from first, falling back to the issuer when it fails.
	RelayURL string
	// WrapTransport, when set, wraps the transport of every fetch (key
	// sets, discovery, the relay): tracing makes each fetch a span.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

func (o *KeyOptions) defaults() {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = 5 * time.Minute
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 5 * time.Second
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 20
	}
	if o.RefetchCooldown <= 0 {
		o.RefetchCooldown = 30 * time.Second
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 500 * time.Millisecond
	}
	if o.FilePoll <= 0 {
		o.FilePoll = 2 * time.Second
	}
}

// Keys holds every key source. A source serves only the issuers it is bound
// to, so a key from issuer A's JWKS never verifies a token whose iss is B.
type Keys struct {
	sources  []*Source
	byIssuer map[string][]*Source // built once: the request path only reads it
	env      *keyEnv
}

// keyEnv is what a source needs from the process around it: the key
// policy, telemetry and logs. It is the same for every Keys of a process.
type keyEnv struct {
	opts KeyOptions
	rec  KeyRecorder
	log  *slog.Logger
}

// newKeyEnv fills in the defaults: no recorder records nothing, no logger
// logs nothing.
func newKeyEnv(opts KeyOptions, rec KeyRecorder, log *slog.Logger) *keyEnv {
	opts.defaults()
	if rec == nil {
		rec = nopKeyRecorder{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &keyEnv{opts: opts, rec: rec, log: log}
}

// Epoch changes whenever a key disappears from one of k's sources, so that
// tokens cached under a withdrawn key are verified again. It is a sum over
// the sources (usually one or two) because a source may serve several Keys:
// providers that share it, and the policies before and after a reload.
func (k *Keys) Epoch() uint64 {
	var e uint64
	for _, s := range k.sources {
		e += s.withdrawn.Load()
	}
	return e
}

// NewKeys builds the key store. Nothing is fetched until Run. A source may
// be held by several Keys (see SourceSet); it keeps the options, recorder
// and logger of the first.
func NewKeys(opts KeyOptions, rec KeyRecorder, log *slog.Logger, sources ...*Source) (*Keys, error) {
	if len(sources) == 0 {
		return nil, errors.New("no key source configured")
	}
	k := &Keys{sources: sources, byIssuer: map[string][]*Source{}, env: newKeyEnv(opts, rec, log)}
	names := map[string]bool{}
	for _, s := range sources {
		if names[s.name] {
			return nil, fmt.Errorf("key source %q configured twice", s.name)
		}
		names[s.name] = true
		if s.env == nil {
			s.env = k.env
		}
		for _, iss := range s.issuers {
			if !slices.Contains(k.byIssuer[iss], s) {
				k.byIssuer[iss] = append(k.byIssuer[iss], s)
			}
		}
	}
	return k, nil
}

// Sources lists the key sources, for tools and tests.
func (k *Keys) Sources() []*Source { return k.sources }

// Ready reports whether every source has loaded keys at least once (from
// the network, a file or JWKS_CACHE_DIR). It stays true while an issuer is
// down: cached keys keep serving.
func (k *Keys) Ready() bool {
	for _, s := range k.sources {
		if !s.loaded.Load() {
			return false
		}
	}
	return true
}

// Run loads every source and keeps them fresh until ctx ends. It returns
// nil when ctx is cancelled; a source that cannot load only logs, retries
// with backoff and keeps /readyz at 503, it never stops the process.
func (k *Keys) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range k.sources {
		g.Go(func() error {
			s.run(ctx)
			return nil
		})
	}
	return g.Wait()
}

// LoadOnce loads every source once, synchronously; an error names each
// source that could not load. main uses it so that a sidecar with reachable
// keys is ready at once; tests use it instead of waiting for Run.
func (k *Keys) LoadOnce(ctx context.Context) error {
	var errs []error
	for _, s := range k.sources {
		if s.loaded.Load() {
			continue
		}
		if err := s.refresh(ctx, TriggerStart); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// forIssuer lists the sources bound to iss.
func (k *Keys) forIssuer(iss string) []*Source { return k.byIssuer[iss] }

// Sentinels of a failed key lookup. The verifier classifies them into its
// reasons; key code never decides what a client is told.
var (
	// ErrKeyNotFound marks a kid that no source of the issuer knows, or an
	// issuer whose sources have no keys yet.
	ErrKeyNotFound = errors.New("no key with this kid")
	// ErrNoKeysYet marks an issuer none of whose sources has loaded keys
	// yet (its issuer down since start, or a provider a reload added); the
	// log detail says so. It wraps ErrKeyNotFound: the verifier answers
	// unknown_key (the contract), and an unknown-kid refetch still tries
	// to load them.
	ErrNoKeysYet = errors.New("no keys loaded yet")
	// ErrUnknownIssuer marks an iss that no source serves.
	ErrUnknownIssuer = errors.New("issuer not accepted")
	// ErrKeyMismatch marks a key found by kid whose type, alg or use does
	// not fit the token's alg.
	ErrKeyMismatch = errors.New("key does not fit the algorithm")
)

// Key finds the verification key for a token from iss, signed with alg,
// naming kid (which may be empty). It refetches sources that do not know
// kid, waiting at most MaxWait.
func (k *Keys) Key(ctx context.Context, iss, kid, alg string, token *jwt.Token) (any, error) {
	sources := k.forIssuer(iss)
	if len(sources) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownIssuer, iss)
	}
	key, err := lookupIn(ctx, sources, kid, alg, token)
	if err == nil || !errors.Is(err, ErrKeyNotFound) || kid == "" {
		return key, err
	}
	// An unknown kid may be a key the issuer has just published.
	refetched := false
	for _, s := range sources {
		if s.refetchForKID(ctx, kid) {
			refetched = true
		}
	}
	if refetched {
		if key, err = lookupIn(ctx, sources, kid, alg, token); err == nil || !errors.Is(err, ErrKeyNotFound) {
			return key, err
		}
	}
	// A kid is only a hint (RFC 7515 §4.1.4): keys published without one
	// (a PEM file, an HMAC secret, a JWKS entry without a kid) are tried
	// last, after the refetch, so a key the issuer has just published
	// still wins. Not memoized: kids are the client's to choose.
	var fit []jwt.VerificationKey
	for _, s := range sources {
		if set := s.set.Load(); set != nil {
			fit = append(fit, set.fitting(alg)...)
		}
	}
	if len(fit) > 0 {
		return jwt.VerificationKeySet{Keys: fit}, nil
	}
	return nil, err
}

func lookupIn(ctx context.Context, sources []*Source, kid, alg string, token *jwt.Token) (any, error) {
	var keys jwt.VerificationKeySet
	loaded := false
	for _, s := range sources {
		set := s.set.Load()
		if set == nil {
			continue
		}
		loaded = true
		got, err := set.find(ctx, kid, alg, token)
		if errors.Is(err, jwkset.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if fit, ok := got.([]jwt.VerificationKey); ok {
			keys.Keys = append(keys.Keys, fit...)
			continue
		}
		return got, nil
	}
	switch {
	case len(keys.Keys) > 0:
		return keys, nil
	case !loaded:
		return nil, fmt.Errorf("%w: %w", ErrNoKeysYet, ErrKeyNotFound)
	case kid == "":
		return nil, fmt.Errorf("%w: no key fits alg %s", ErrKeyNotFound, alg)
	}
	return nil, fmt.Errorf("%w: kid %q", ErrKeyNotFound, kid)
}
