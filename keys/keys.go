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
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
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
		return nil, fmt.Errorf("%w: no keys loaded yet", ErrKeyNotFound)
	case kid == "":
		return nil, fmt.Errorf("%w: no key fits alg %s", ErrKeyNotFound, alg)
	}
	return nil, fmt.Errorf("%w: kid %q", ErrKeyNotFound, kid)
}

type memoKey struct{ kid, alg string }

// find returns the set's key for kid, or for an empty kid every key that
// fits alg ([]jwt.VerificationKey). keyfunc does the lookup (kid, and the JWK's own alg and
// use); its answer depends only on this immutable set, kid and alg, so a
// found key is remembered per set. Misses are not, so random kids cannot
// grow the memo.
func (set *keySet) find(ctx context.Context, kid, alg string, token *jwt.Token) (any, error) {
	mk := memoKey{kid: kid, alg: alg}
	if v, ok := set.memo.Load(mk); ok {
		return v, nil
	}
	got, err := set.kf.KeyfuncCtx(ctx)(token)
	switch {
	case errors.Is(err, jwkset.ErrKeyNotFound):
		return nil, err
	case err != nil:
		// keyfunc found the kid but its alg or use does not fit.
		return nil, fmt.Errorf("%w: %w", ErrKeyMismatch, err)
	}
	var out any
	switch got := got.(type) {
	case jwt.VerificationKeySet:
		var fit []jwt.VerificationKey
		for _, key := range got.Keys {
			if keyFits(alg, key) == nil {
				fit = append(fit, key)
			}
		}
		out = fit
	default:
		if err := keyFits(alg, got); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyMismatch, err)
		}
		out = got
	}
	set.memo.Store(mk, out)
	return out, nil
}

// fitting lists the kid-less keys of the type alg needs.
func (set *keySet) fitting(alg string) []jwt.VerificationKey {
	var fit []jwt.VerificationKey
	for _, key := range set.anyKID {
		if keyFits(alg, key) == nil {
			fit = append(fit, key)
		}
	}
	return fit
}

// keyFits checks that key is of the type alg needs, so that an RSA public
// key can never serve as an HMAC secret (RFC 8725 §2.1, §3.1).
func keyFits(alg string, key any) error {
	switch {
	case strings.HasPrefix(alg, "HS"):
		if _, ok := key.([]byte); ok {
			return nil
		}
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		if k, ok := key.(*rsa.PublicKey); ok && k.N.BitLen() >= minRSABits {
			return nil
		}
	case alg == "ES256", alg == "ES384", alg == "ES512":
		if k, ok := key.(*ecdsa.PublicKey); ok && k.Curve == curveFor(alg) {
			return nil
		}
	case alg == "EdDSA":
		if _, ok := key.(ed25519.PublicKey); ok {
			return nil
		}
	}
	return fmt.Errorf("alg %s does not fit a key of type %T", alg, key)
}

func curveFor(alg string) elliptic.Curve {
	switch alg {
	case "ES256":
		return elliptic.P256()
	case "ES384":
		return elliptic.P384()
	}
	return elliptic.P521()
}

// keySet is one immutable snapshot of a source's keys.
type keySet struct {
	kf keyfunc.Keyfunc
	// anyKID are the keys published without a kid (a PEM file, an HMAC
	// secret, a JWKS entry without one): a kid is only a hint (RFC 7515
	// §4.1.4), so Keys.key tries them for a token whose kid no keyed entry
	// has, as Envoy's jwt_authn does.
	anyKID []any
	memo   sync.Map        // memoKey -> key or []any; see find
	ids    map[string]bool // kid + key fingerprint, to notice withdrawn keys
	n      int
}

// newKeySet builds a snapshot from JWKs, dropping any that cannot verify
// (encryption keys, short RSA keys, unsupported types).
func newKeySet(jwks []jwkset.JWK, log *slog.Logger, source string) (*keySet, error) {
	store := jwkset.NewMemoryStorage()
	ids := map[string]bool{}
	var anyKID []any
	for _, j := range jwks {
		m := j.Marshal()
		if m.USE != "" && m.USE != jwkset.UseSig {
			log.Warn("skipping a key not meant for signatures", "source", source, "kid", m.KID, "use", m.USE)
			continue
		}
		id, err := fingerprint(j.Key())
		if err != nil {
			log.Warn("skipping an unusable key", "source", source, "kid", m.KID, "error", err)
			continue
		}
		if err := store.KeyWrite(context.Background(), j); err != nil {
			return nil, fmt.Errorf("store key: %w", err)
		}
		ids[m.KID+"|"+id] = true
		if m.KID == "" {
			anyKID = append(anyKID, j.Key())
		}
	}
	if len(ids) == 0 {
		return nil, errNoUsableKey
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store})
	if err != nil {
		return nil, fmt.Errorf("keyfunc: %w", err)
	}
	return &keySet{kf: kf, anyKID: anyKID, ids: ids, n: len(ids)}, nil
}

var errNoUsableKey = errors.New("no usable signing key in the set")

// fingerprint identifies a public key by value and rejects keys that can
// never verify a token here.
func fingerprint(key any) (string, error) {
	switch k := key.(type) {
	case []byte:
		if len(k) < 32 {
			return "", errors.New("HMAC secret shorter than 32 bytes")
		}
		sum := sha256.Sum256(k)
		return "oct:" + hex.EncodeToString(sum[:8]), nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("RSA key of %d bits; at least %d are required", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return "", fmt.Errorf("unsupported key type %T", key)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8]), nil
}

// parseJWKS turns a JWK Set document into JWKs. Keys that do not parse are
// skipped (logged), as one odd key must not hide the others.
func parseJWKS(raw []byte, log *slog.Logger, source string) ([]jwkset.JWK, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`not a JWK Set: no "keys" member`)
	}
	out := make([]jwkset.JWK, 0, len(doc.Keys))
	for _, rawKey := range doc.Keys {
		var m jwkset.JWKMarshal
		if err := json.Unmarshal(rawKey, &m); err != nil {
			log.Warn("skipping a key that does not parse", "source", source, "error", err)
			continue
		}
		// Private members are never read from a key source: a JWKS is public.
		j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			log.Warn("skipping a key that does not parse", "source", source, "kid", m.KID, "error", err)
			continue
		}
		out = append(out, j)
	}
	return out, nil
}
