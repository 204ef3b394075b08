package keys

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"golang.org/x/sync/singleflight"

	"github.com/jwt-sidecar/jwt-sidecar/internal/atomicfile"
)

type sourceKind int

const (
	kindStatic sourceKind = iota // PEM public keys or an HMAC secret, read at start
	kindFile                     // a JWKS file, re-read when it changes
	kindRemote                   // a JWKS URL
	kindOIDC                     // an OIDC issuer: discovery, then its jwks_uri
)

// Source is one place keys come from. It holds an immutable snapshot of its
// keys that the request path reads without locks.
type Source struct {
	name    string
	kind    sourceKind
	issuers []string
	url     string // kindRemote: the JWKS URL; kindOIDC: the issuer URL
	path    string // kindFile
	static  []jwkset.JWK
	client  *http.Client // fetches from the issuer
	relayC  *http.Client // fetches from a key relay: without the issuer's CA file
	access  Access
	def     string  // see Definition
	env     *keyEnv // set by the first NewKeys that holds the source

	// withdrawn counts the times a key disappeared from this source. The
	// token caches of every Keys holding the source compare sums of these
	// (Keys.epoch), so a source shared by several providers, or kept across
	// a policy reload, invalidates all of them.
	withdrawn atomic.Uint64

	set    atomic.Pointer[keySet]
	loaded atomic.Bool
	// confirmed is when the issuer last confirmed the keys held (a 200 or
	// a 304; for keys from JWKS_CACHE_DIR, when they were fetched), in unix
	// nanoseconds. A relay refuses to pass on keys older than its bound.
	confirmed atomic.Int64
	// failing is whether the last refresh failed: with confirmed it says
	// whether the source serves fresh or stale keys (State).
	failing atomic.Bool

	refreshMu sync.Mutex // one refresh at a time, so an older fetch never overwrites a newer one
	jwksURL   string     // kindOIDC: discovered; guarded by refreshMu
	fileStamp fileStamp  // kindFile: guarded by refreshMu

	refetch     singleflight.Group
	lastRefetch atomic.Int64 // unix nanoseconds of the last unknown-kid refetch

	validators map[string]validators  // by URL; guarded by refreshMu
	nextWait   atomic.Int64           // the interval the last answer's max-age asks for; 0: none yet
	raw        atomic.Pointer[[]byte] // the last good JWK Set as served, for a key relay
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewRemoteSource is a JWKS URL whose keys verify tokens from issuers.
func NewRemoteSource(jwksURL string, issuers []string, client *http.Client) *Source {
	s := &Source{name: redact(jwksURL), kind: kindRemote, url: jwksURL, issuers: issuers, client: orDefault(client)}
	s.def = definition("remote", s.name, jwksURL, issuers)
	return s
}

// NewOIDCSource discovers jwks_uri from issuerURL's OpenID Connect discovery
// document. Its keys verify only tokens whose iss is issuerURL, exactly.
func NewOIDCSource(issuerURL string, client *http.Client) *Source {
	s := &Source{name: "oidc:" + redact(issuerURL), kind: kindOIDC, url: issuerURL, issuers: []string{issuerURL}, client: orDefault(client)}
	s.def = definition("oidc", s.name, issuerURL, s.issuers)
	return s
}

// NewFileSource is a local JWKS file, re-read whenever it changes.
func NewFileSource(path string, issuers []string) *Source {
	s := &Source{name: "file:" + path, kind: kindFile, path: path, issuers: issuers}
	s.def = definition("file", s.name, path, issuers)
	return s
}

// NewStaticSource holds fixed keys: public keys (RSA, ECDSA, Ed25519) or an
// HMAC secret ([]byte). kids may be empty; keys without kid are tried in turn.
func NewStaticSource(name string, issuers []string, keys []StaticKey) (*Source, error) {
	s := &Source{name: name, kind: kindStatic, issuers: issuers}
	var ids []string
	for _, k := range keys {
		id, err := fingerprint(k.Key)
		if err != nil {
			id = "unusable" // refused when the source loads, as before
		}
		ids = append(ids, k.KID+"|"+id)
		j, err := jwkset.NewJWKFromKey(k.Key, jwkset.JWKOptions{
			Marshal:  jwkset.JWKMarshalOptions{Private: true},
			Metadata: jwkset.JWKMetadataOptions{KID: k.KID, USE: jwkset.UseSig},
		})
		if err != nil {
			return nil, fmt.Errorf("key source %s: %w", name, err)
		}
		s.static = append(s.static, j)
	}
	// The keys themselves are part of the definition: a PEM file whose
	// content changed is another source.
	s.def = definition("static", name, strings.Join(ids, ","), issuers)
	return s, nil
}

// StaticKey is one fixed key for NewStaticSource.
type StaticKey struct {
	KID string
	Key any
}

// definition joins what makes a source what it is. NUL cannot occur in a
// URL, a path or an issuer read from the environment or a YAML file.
func definition(kind, name, where string, issuers []string) string {
	return kind + "\x00" + name + "\x00" + where + "\x00" + strings.Join(issuers, "\x00")
}

// Definition identifies what the source is: its kind, name, location (or
// static keys) and issuers. Two sources with the same definition serve the
// same keys to the same issuers, so a policy reload keeps the running one.
func (s *Source) Definition() string { return s.def }

// Name identifies the source in metrics and logs.
func (s *Source) Name() string { return s.name }

// KeyCount is the number of usable keys the source holds now.
func (s *Source) KeyCount() int {
	if set := s.set.Load(); set != nil {
		return set.n
	}
	return 0
}

func orDefault(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
}

// redact drops userinfo and query from a URL used as a label or log field.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "invalid-url"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// run loads the source and keeps it fresh until ctx ends. A source that
// holds keys already (loaded by LoadOnce before a policy reload started it)
// waits one interval before its first refresh.
func (s *Source) run(ctx context.Context) {
	o := s.env.opts
	loaded := s.loaded.Load()
	if s.kind == kindStatic {
		if !loaded {
			_ = s.refresh(ctx, TriggerStart)
		}
		return
	}
	// A key set loaded from disk that its max-age still covers needs no
	// fetch at start: a fleet restarted at once asks nothing of the issuer.
	var fresh time.Duration
	if o.CacheDir != "" && s.remote() && !loaded {
		if fresh = s.loadFromDisk(); fresh > 0 {
			loaded = true
		}
	}
	trigger := TriggerStart
	backoff := time.Second
	var h health
	for first := true; ; first = false {
		wait := o.RefreshInterval
		if s.kind == kindFile {
			wait = o.FilePoll
		}
		if first && fresh > 0 {
			wait = fresh
		}
		if !first || !loaded {
			if err := s.refresh(ctx, trigger); err != nil {
				h.failed(time.Now())
				s.env.log.Warn("key source refresh failed; cached keys keep serving",
					append(causeAttr(err), "source", s.name, "trigger", trigger, "error", err, "retry_in", backoff.String(),
						"failed_refreshes", h.failures, "keys", s.KeyCount())...)
				wait = min(backoff, wait)
				backoff = min(backoff*2, o.RefreshInterval)
			} else {
				h.recovered(s.env.log, s.name, time.Now())
				backoff = time.Second
				if w := time.Duration(s.nextWait.Load()); w > 0 && s.remote() {
					wait = w // the answer's max-age, within bounds
				}
			}
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		trigger = TriggerInterval
		if s.kind == kindFile {
			trigger = TriggerFileChange
		}
	}
}

// jitter spreads refreshes of many sidecars by ±10%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}

func (s *Source) remote() bool { return s.kind == kindRemote || s.kind == kindOIDC }

// refresh loads the source once. A failure never empties the cache.
func (s *Source) refresh(ctx context.Context, trigger string) (err error) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	defer func() {
		s.failing.Store(err != nil)
		if err == nil {
			s.confirmed.Store(time.Now().UnixNano())
		}
	}()
	switch s.kind {
	case kindStatic:
		return s.apply(s.static, trigger, RefreshOK)
	case kindFile:
		st, err := os.Stat(s.path)
		if err != nil {
			s.env.rec.KeyRefresh(s.name, trigger, RefreshError)
			return fmt.Errorf("stat: %w", err)
		}
		stamp := fileStamp{mod: st.ModTime(), size: st.Size()}
		if trigger == TriggerFileChange && stamp == s.fileStamp && s.loaded.Load() {
			return nil // unchanged: not a refresh
		}
		raw, err := atomicfile.ReadLimited(s.path, s.env.opts.MaxBytes)
		if err != nil {
			s.env.rec.KeyRefresh(s.name, trigger, RefreshError)
			return err
		}
		s.fileStamp = stamp
		return s.applyJSON(raw, trigger, RefreshOK)
	}
	return s.remoteRefresh(ctx, trigger)
}

// applyJSON parses a JWK Set and, when it holds a usable key, swaps it in
// and records the refresh as result (RefreshOK or RefreshFromDisk).
func (s *Source) applyJSON(raw []byte, trigger, result string) error {
	jwks, err := parseJWKS(raw, s.env.log, s.name)
	if err != nil {
		s.env.rec.KeyRefresh(s.name, trigger, RefreshInvalid)
		return err
	}
	if err := s.apply(jwks, trigger, result); err != nil {
		return err
	}
	s.raw.Store(&raw)
	return nil
}

func (s *Source) apply(jwks []jwkset.JWK, trigger, result string) error {
	set, err := newKeySet(jwks, s.env.log, s.name)
	if err != nil {
		r := RefreshInvalid
		if errors.Is(err, errNoUsableKey) {
			r = RefreshEmpty
		}
		s.env.rec.KeyRefresh(s.name, trigger, r)
		return err
	}
	old := s.swap(set)
	s.logSwap(old, set, trigger, result)
	s.env.rec.KeyRefresh(s.name, trigger, result)
	return nil
}

// swap installs set; when a key was withdrawn, tokens cached under any key
// are verified again (the cache cannot tell which key signed what cheaply).
// It returns the set it replaced (nil at the first load).
func (s *Source) swap(set *keySet) *keySet {
	old := s.set.Swap(set)
	if old != nil {
		for id := range old.ids {
			if !set.ids[id] {
				s.withdrawn.Add(1)
				break
			}
		}
	}
	s.loaded.Store(true)
	now := time.Now()
	s.confirmed.Store(now.UnixNano())
	s.env.rec.KeysLoaded(s.name, set.n, now)
	return old
}

// refetchForKID refetches the source because a token named a kid it does not
// hold. Concurrent callers share one fetch; a new fetch starts at most once
// per cooldown; the caller waits at most MaxWait, and the fetch goes on
// without it. It reports whether a refetch completed in time.
func (s *Source) refetchForKID(ctx context.Context, kid string) bool {
	if s.kind == kindStatic {
		return false
	}
	o := s.env.opts
	ch := s.refetch.DoChan("refetch", func() (any, error) {
		now := time.Now()
		if last := s.lastRefetch.Load(); last != 0 && now.Sub(time.Unix(0, last)) < o.RefetchCooldown {
			s.env.rec.KeyRefresh(s.name, TriggerUnknownKID, RefreshCooldown)
			return false, nil
		}
		s.lastRefetch.Store(now.UnixNano())
		// Detached from the request: one impatient client must not cancel
		// the fetch that others are waiting on.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.FetchTimeout)
		defer cancel()
		if err := s.refresh(withKID(fctx, kid), TriggerUnknownKID); err != nil {
			s.env.log.Warn("unknown-kid refetch failed", append(causeAttr(err), "source", s.name, "kid", kid, "error", err)...)
			return false, nil
		}
		return true, nil
	})
	t := time.NewTimer(o.MaxWait)
	defer t.Stop()
	select {
	case res := <-ch:
		ok, _ := res.Val.(bool)
		return ok
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}
