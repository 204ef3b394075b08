package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/capool"
	"github.com/jwt-sidecar/jwt-sidecar/internal/tracing"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// runtime is the policy in force and what keeps it so: the running key
// sources, the reloads of CONFIG_FILE, and their metrics. The environment
// and CONFIG_FILE both arrive as a policy.Spec and are built the same way;
// only a file is ever reloaded.
type runtime struct {
	cfg     *config.Config
	log     *slog.Logger
	m       *metrics.Metrics
	pm      *metrics.Rules
	lm      *metrics.Logins    // nil: logins count nothing
	prov    *metrics.Providers // nil: provider states are not exported
	sources *keys.SourceSet
	proxy   *proxy.Proxy
	poll    time.Duration
	state   stateOf         // revocation list and DPoP, shared by every provider
	tracer  *tracing.Tracer // nil: tracing off

	mu      sync.Mutex // one reload at a time
	stamp   fileStamp  // guarded by mu
	current atomic.Pointer[generation]
}

// generation is one built policy: its spec, providers and sources.
type generation struct {
	spec      *policy.Spec
	providers map[string]*builtProvider // by providerDef, for reuse
	order     []*builtProvider          // in the spec's order
	sources   []*keys.Source
	policy    *policy.Policy
}

// builtProvider is one provider's verifier: keys and a local verifier, or
// an introspector. A reload keeps it, with its warm token cache, when the
// provider's definition did not change.
type builtProvider struct {
	name      string
	keys      *keys.Keys // nil for introspection
	auth      policy.Authenticator
	logout    *verifier.Verifier // back-channel logout tokens; nil for introspection
	cacheLen  func() int
	closeIdle func() // nil unless it keeps connections of its own
	fresh     bool   // built by this generation
}

func newRuntime(cfg *config.Config, log *slog.Logger, m *metrics.Metrics, pm *metrics.Rules, tr *tracing.Tracer) *runtime {
	ko := keyOptions(cfg)
	ko.WrapTransport = wrapFor(tr, spanKeyFetch)
	return &runtime{
		cfg:     cfg,
		log:     log,
		m:       m,
		pm:      pm,
		sources: keys.NewSourceSet(ko, m, log),
		poll:    configPoll,
		tracer:  tr,
	}
}

// keyOptions are the server-wide JWKS_* settings, which apply to every
// provider's sources.
func keyOptions(cfg *config.Config) keys.KeyOptions {
	return keys.KeyOptions{
		RefreshInterval: cfg.JWKSRefreshInterval,
		FetchTimeout:    cfg.JWKSFetchTimeout,
		MaxBytes:        cfg.JWKSMaxBytes,
		RefetchCooldown: cfg.JWKSRefetchCooldown,
		MaxWait:         cfg.JWKSFetchWait,
		CacheDir:        cfg.JWKSCacheDir,
		RelayURL:        cfg.JWKSRelayURL,
	}
}

// readSpec reads the policy as configured: CONFIG_FILE when set, else the
// environment's one provider.
func readSpec(cfg *config.Config) (*policy.Spec, error) {
	if cfg.ConfigFile != "" {
		return policy.ReadFile(cfg.ConfigFile)
	}
	return policy.FromEnv(cfg)
}

// where prefixes an error about provider i of spec with its place: the
// file's line for CONFIG_FILE; nothing for the environment, whose errors
// name their variables.
func where(spec *policy.Spec, i int, err error) error {
	if !spec.FromFile() {
		return err
	}
	return fmt.Errorf("%s: providers[%d]: %w", spec.Providers[i].At, i, err)
}

// build turns a spec into a policy. Sources and providers whose definition
// did not change since prev are reused; nothing starts or stops until
// apply, so a policy that fails to build changes nothing.
func (rt *runtime) build(spec *policy.Spec, prev *generation) (*generation, error) {
	var (
		errs   []error
		wanted []*keys.Source
		counts []int
	)
	for _, ps := range spec.Providers {
		var srcs []*keys.Source
		if ps.Introspection == nil {
			var err error
			if srcs, err = ps.Sources(); err != nil {
				errs = append(errs, err)
			}
		}
		wanted = append(wanted, srcs...)
		counts = append(counts, len(srcs))
	}
	if err := checkLogins(spec); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	planned := rt.sources.Plan(wanted)
	gen := &generation{spec: spec, providers: map[string]*builtProvider{}}
	mode := verifier.ModeJWT
	var providers []policy.Provider
	for i := range spec.Providers {
		ps := &spec.Providers[i]
		mine := planned[:counts[i]]
		planned = planned[counts[i]:]
		for _, s := range mine {
			if !slices.Contains(gen.sources, s) {
				gen.sources = append(gen.sources, s)
			}
		}
		def := providerDef(ps, mine)
		bp := gen.providers[def]
		if bp == nil && prev != nil {
			if old := prev.providers[def]; old != nil {
				bp = &builtProvider{name: ps.Name, keys: old.keys, auth: old.auth, logout: old.logout, cacheLen: old.cacheLen, closeIdle: old.closeIdle}
			}
		}
		if bp == nil {
			var err error
			if bp, err = rt.newProvider(ps, mine); err != nil {
				errs = append(errs, where(spec, i, err))
				continue
			}
		}
		if ps.Introspection != nil {
			mode = verifier.ModeIntrospection
		}
		gen.providers[def] = bp
		gen.order = append(gen.order, bp)
		pr := policy.Provider{
			Name:    ps.Name,
			Auth:    bp.auth,
			Issuers: ps.Issuers,
			Forward: policy.Forwarding{ClaimHeaders: ps.ClaimsToHeaders, PayloadHeader: ps.PayloadHeader, ForwardToken: ps.ForwardToken},
		}
		if ps.Login != nil {
			l, err := rt.newLogin(spec, ps, bp.keys)
			if err != nil {
				errs = append(errs, where(spec, i, err))
				continue
			}
			pr.Login = l
		}
		providers = append(providers, pr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	pol, err := policy.New(policy.Options{Providers: providers, Rules: spec.Rules, Default: spec.Default, Mode: mode, Recorder: rt.pm})
	if err != nil {
		if spec.FromFile() {
			err = fmt.Errorf("%s: %w", spec.Source, err)
		}
		return nil, err
	}
	gen.policy = pol
	return gen, nil
}

// newProvider builds one provider's verifier over its planned sources.
func (rt *runtime) newProvider(ps *policy.ProviderSpec, sources []*keys.Source) (*builtProvider, error) {
	if in := ps.Introspection; in != nil {
		return rt.newIntrospector(ps, in)
	}
	ks, err := keys.NewKeys(keyOptions(rt.cfg), rt.m, rt.log, sources...)
	if err != nil {
		return nil, err
	}
	v, err := verifier.New(verifier.Options{
		Keys:                   ks,
		Lookups:                ps.TokenLookup,
		Audiences:              ps.Audiences,
		Algorithms:             ps.Algorithms,
		ClockSkew:              ps.ClockSkew,
		RequireExp:             ps.RequireExp,
		RequiredScopes:         ps.RequiredScopes,
		MaxTokenSize:           rt.cfg.MaxTokenSize,
		CacheSize:              rt.cfg.TokenCacheSize,
		Revocations:            rt.state.revocations(),
		Sender:                 rt.state.sender,
		RequiredTyp:            ps.RequiredTyp,
		MaxLifetime:            ps.MaxLifetime,
		AllowSenderConstrained: ps.AllowSenderConstrained,
		Recorder:               rt.m,
	})
	if err != nil {
		return nil, err
	}
	logout, err := verifier.New(verifier.Options{
		Keys: ks, Audiences: ps.Audiences, Algorithms: ps.Algorithms, ClockSkew: ps.ClockSkew,
		RequireExp: true, MaxTokenSize: rt.cfg.MaxTokenSize,
	})
	if err != nil {
		return nil, err
	}
	return &builtProvider{name: ps.Name, keys: ks, auth: v, logout: logout, cacheLen: v.CacheLen, fresh: true}, nil
}

// newIntrospector is AUTH_MODE=introspection: every token (or, with
// INTROSPECTION_CACHE_TTL, every token not seen lately) is sent to the
// token service. There are no keys to load, so it is ready at once. That is
// deliberate: if /readyz followed the token service, one outage would take
// every pod out of its Service's endpoints at once, and clients would get
// connection errors instead of a 503 with Retry-After that ends the moment
// the token service is back.
func (rt *runtime) newIntrospector(ps *policy.ProviderSpec, in *policy.IntrospectionSpec) (*builtProvider, error) {
	secret, err := verifier.ReadClientSecret(in.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("INTROSPECTION_CLIENT_SECRET_FILE: %w", err)
	}
	if in.CAFile != "" {
		if _, err := capool.Read(in.CAFile); err != nil {
			return nil, fmt.Errorf("INTROSPECTION_CA_FILE: %w", err)
		}
	}
	rt.m.IntrospectionMode()
	i, err := verifier.NewIntrospector(verifier.IntrospectionOptions{
		URL:            in.URL,
		ClientID:       in.ClientID,
		ClientSecret:   secret,
		CAFile:         in.CAFile,
		Timeout:        in.Timeout,
		MaxBytes:       in.MaxBytes,
		CacheTTL:       in.CacheTTL,
		CacheSize:      rt.cfg.TokenCacheSize,
		Lookups:        ps.TokenLookup,
		MaxTokenSize:   rt.cfg.MaxTokenSize,
		Issuers:        ps.Issuers,
		Audiences:      ps.Audiences,
		ClockSkew:      ps.ClockSkew,
		RequireExp:     ps.RequireExp,
		RequiredScopes: ps.RequiredScopes,
		Recorder:       rt.m,
		WrapTransport:  wrapFor(rt.tracer, spanIntrospection),
	})
	if err != nil {
		return nil, fmt.Errorf("INTROSPECTION_URL: %w", err)
	}
	return &builtProvider{name: ps.Name, auth: i, cacheLen: i.CacheLen, closeIdle: i.CloseIdleConnections, fresh: true}, nil
}

// providerDef identifies a provider's verification: every setting that
// shapes its verifier, and its sources' definitions. Header settings live
// in the policy, which is rebuilt on every reload anyway.
func providerDef(ps *policy.ProviderSpec, sources []*keys.Source) string {
	var defs []string
	for _, s := range sources {
		defs = append(defs, s.Definition())
	}
	raw, _ := json.Marshal(struct {
		Issuers       []string
		Audiences     []string
		Algorithms    []string
		Skew          time.Duration
		Exp           bool
		Scopes        []string
		Lookups       []config.Lookup
		Introspection *policy.IntrospectionSpec
		Sources       []string
		Typ           string
		MaxLifetime   time.Duration
		SenderBound   bool
	}{ps.Issuers, ps.Audiences, ps.Algorithms, ps.ClockSkew, ps.RequireExp, ps.RequiredScopes, ps.TokenLookup, ps.Introspection, defs,
		ps.RequiredTyp, ps.MaxLifetime, ps.AllowSenderConstrained})
	return string(raw)
}

// warnings are what the sidecar logs as warnings at start, and
// check-config prints: settings that are valid but probably not meant.
func warnings(spec *policy.Spec) []string {
	var out []string
	for _, ps := range spec.Providers {
		switch {
		case len(ps.Audiences) > 0:
		case !spec.FromFile():
			out = append(out, "AUDIENCES is not set: tokens minted for any audience of the accepted issuers will pass")
		default:
			out = append(out, fmt.Sprintf("provider %s has no audiences: its tokens minted for any audience will pass", ps.Name))
		}
		if in := ps.Introspection; in != nil {
			u, _ := url.Parse(in.URL) // validated
			if host := u.Hostname(); u.Scheme == "http" && host != "localhost" && !isLoopback(host) {
				out = append(out, "INTROSPECTION_URL is plain http to another host: the client secret and every token cross the network unencrypted")
			}
		}
	}
	return out
}

// isLoopback reports whether host is a loopback IP address.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apply puts gen in force: its sources run (unchanged ones never stopped),
// the proxy swaps to its policy atomically, and sources no longer named
// stop.
func (rt *runtime) apply(gen *generation, reload bool) {
	rt.sources.Apply(gen.sources)
	if rt.proxy != nil {
		rt.proxy.SetPolicy(gen.policy)
	}
	rt.current.Store(gen)
	if gen.spec.FromFile() {
		rt.pm.Loaded(time.Now(), reload)
	}
}

// cacheLen is the number of tokens cached by every provider in force.
func (rt *runtime) cacheLen() int {
	n := 0
	for _, bp := range rt.current.Load().order {
		n += bp.cacheLen()
	}
	return n
}

// closeIdle closes the idle connections providers keep (introspection),
// after the drain.
func (rt *runtime) closeIdle() {
	for _, bp := range rt.current.Load().order {
		if bp.closeIdle != nil {
			bp.closeIdle()
		}
	}
}

// loadOnce loads every source of the policy in force once, for explain.
func (rt *runtime) loadOnce(ctx context.Context) error {
	var errs []error
	for _, bp := range rt.current.Load().order {
		if bp.keys == nil {
			continue
		}
		if err := bp.keys.LoadOnce(ctx); err != nil {
			errs = append(errs, fmt.Errorf("provider %s: %w", bp.name, err))
		}
	}
	return errors.Join(errs...)
}

// ready is /readyz: every source of the policy in force has loaded keys.
// A policy without keys (introspection) is ready at once.
func (rt *runtime) ready() error {
	if !rt.sources.Ready() {
		return errors.New("keys not loaded yet")
	}
	return rt.state.ready()
}
