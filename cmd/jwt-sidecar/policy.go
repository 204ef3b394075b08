package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// configPoll is how often CONFIG_FILE is checked for changes, as JWKS
// files are.
const configPoll = 2 * time.Second

// policyRuntime is the CONFIG_FILE policy in force and what keeps it so:
// the running key sources, the reloads, and their metrics.
type policyRuntime struct {
	cfg     *config.Config
	log     *slog.Logger
	m       *metrics.Metrics
	pm      *metrics.Policy
	sources *keys.SourceSet
	proxy   *proxy.Proxy
	poll    time.Duration

	mu      sync.Mutex // one reload at a time
	stamp   fileStamp  // guarded by mu
	current atomic.Pointer[generation]
}

// generation is one built policy: its file, providers and sources.
type generation struct {
	file      *policyFile
	providers map[string]*builtProvider // by providerDef, for reuse
	order     []*builtProvider          // in the file's order
	sources   []*keys.Source
	policy    *proxy.Policy
}

// builtProvider is one provider's keys and verifier. A reload keeps it, with
// its warm token cache, when the provider's definition did not change.
type builtProvider struct {
	name  string
	keys  *keys.Keys
	v     *verifier.Verifier
	fresh bool // built by this generation
}

// newFileApp wires the sidecar around CONFIG_FILE.
func newFileApp(cfg *config.Config, log *slog.Logger, reg *prometheus.Registry, m *metrics.Metrics) (*app, error) {
	pf, err := readPolicyFile(cfg.ConfigFile)
	if err != nil {
		return nil, err
	}
	rt := &policyRuntime{
		cfg:     cfg,
		log:     log,
		m:       m,
		pm:      metrics.NewPolicy(reg),
		sources: keys.NewSourceSet(keyOptions(cfg), m, log),
		poll:    configPoll,
	}
	rt.stamp, _ = statFile(cfg.ConfigFile)
	gen, err := rt.build(pf, nil)
	if err != nil {
		return nil, err
	}
	p, err := proxy.New(proxy.Options{
		Upstream:        cfg.UpstreamURL,
		Policy:          gen.policy,
		Recorder:        m,
		Logger:          log,
		Mode:            metrics.ModeJWT,
		CORSPreflight:   cfg.CORSPreflight,
		UpstreamTimeout: cfg.UpstreamTimeout,
		MaxIdleConns:    cfg.UpstreamConns,
	})
	if err != nil {
		return nil, err
	}
	rt.proxy = p
	rt.apply(gen, false)
	m.TokenCacheEntries(func() int {
		n := 0
		for _, bp := range rt.current.Load().order {
			n += bp.v.CacheLen()
		}
		return n
	})
	for _, fp := range pf.Providers {
		if len(fp.Audiences) == 0 {
			log.Warn("provider has no audiences: its tokens minted for any audience will pass", "provider", fp.Name)
		}
	}
	return &app{cfg: cfg, log: log, reg: reg, proxy: p, policy: rt}, nil
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
	}
}

// build turns a decoded file into a policy. Sources and providers whose
// definition did not change since prev are reused; nothing starts or stops
// until apply, so a policy that fails to build changes nothing.
func (rt *policyRuntime) build(pf *policyFile, prev *generation) (*generation, error) {
	var (
		errs   []error
		wanted []*keys.Source
		counts []int
	)
	for _, fp := range pf.Providers {
		srcs, err := providerSources(fp)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", fp.keyAt, fp.keyField, err))
		}
		wanted = append(wanted, srcs...)
		counts = append(counts, len(srcs))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	planned := rt.sources.Plan(wanted)
	gen := &generation{file: pf, providers: map[string]*builtProvider{}}
	var providers []proxy.Provider
	for i, fp := range pf.Providers {
		mine := planned[:counts[i]]
		planned = planned[counts[i]:]
		for _, s := range mine {
			if !slices.Contains(gen.sources, s) {
				gen.sources = append(gen.sources, s)
			}
		}
		def := providerDef(fp, mine)
		bp := gen.providers[def]
		if bp == nil && prev != nil {
			if old := prev.providers[def]; old != nil {
				bp = &builtProvider{name: fp.Name, keys: old.keys, v: old.v}
			}
		}
		if bp == nil {
			keys, err := keys.NewKeys(keyOptions(rt.cfg), rt.m, rt.log, mine...)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: providers[%d]: %w", fp.at, i, err))
				continue
			}
			v, err := verifier.New(verifier.Options{
				Keys:         keys,
				Lookups:      fp.TokenLookup,
				Audiences:    fp.Audiences,
				Algorithms:   fp.Algorithms,
				ClockSkew:    fp.ClockSkew,
				RequireExp:   fp.RequireExp,
				MaxTokenSize: rt.cfg.MaxTokenSize,
				CacheSize:    rt.cfg.TokenCacheSize,
				Recorder:     rt.m,
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: providers[%d]: %w", fp.at, i, err))
				continue
			}
			bp = &builtProvider{name: fp.Name, keys: keys, v: v, fresh: true}
		}
		gen.providers[def] = bp
		gen.order = append(gen.order, bp)
		providers = append(providers, proxy.Provider{
			Name:          fp.Name,
			Verifier:      bp.v,
			Issuers:       []string{fp.Issuer},
			ClaimHeaders:  fp.ClaimsToHeaders,
			PayloadHeader: fp.PayloadHeader,
			ForwardToken:  fp.ForwardToken,
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	pol, err := proxy.NewPolicy(proxy.PolicyOptions{Providers: providers, Rules: pf.Rules, Default: pf.Default, Recorder: rt.pm})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pf.path, err)
	}
	gen.policy = pol
	return gen, nil
}

// providerDef identifies a provider's verification: every setting that
// shapes its verifier, and its sources' definitions. Header settings live
// in the proxy policy, which is rebuilt on every reload anyway.
func providerDef(fp fileProvider, sources []*keys.Source) string {
	var defs []string
	for _, s := range sources {
		defs = append(defs, s.Definition())
	}
	raw, _ := json.Marshal(struct {
		Issuer     string
		Audiences  []string
		Algorithms []string
		Skew       time.Duration
		Exp        bool
		Lookups    []config.Lookup
		Sources    []string
	}{fp.Issuer, fp.Audiences, fp.Algorithms, fp.ClockSkew, fp.RequireExp, fp.TokenLookup, defs})
	return string(raw)
}

// providerSources makes a provider's key sources, bound to its issuer.
// PEM and HMAC files are read now, so their content is part of the
// definition (a SIGHUP after replacing a PEM file picks it up).
func providerSources(fp fileProvider) ([]*keys.Source, error) {
	issuers := []string{fp.Issuer}
	switch {
	case fp.JWKSURL != "":
		return []*keys.Source{keys.NewRemoteSource(fp.JWKSURL, issuers, nil)}, nil
	case fp.OIDCIssuerURL != "":
		return []*keys.Source{keys.NewOIDCSource(fp.OIDCIssuerURL, nil)}, nil
	case fp.JWKSFile != "":
		if _, err := os.Stat(fp.JWKSFile); err != nil {
			return nil, err
		}
		return []*keys.Source{keys.NewFileSource(fp.JWKSFile, issuers)}, nil
	case fp.HMACSecretFile != "":
		secret, err := keys.ReadHMACSecret(fp.HMACSecretFile)
		if err != nil {
			return nil, err
		}
		s, err := keys.NewStaticSource("hmac:"+fp.HMACSecretFile, issuers, []keys.StaticKey{{Key: secret}})
		if err != nil {
			return nil, err
		}
		return []*keys.Source{s}, nil
	}
	var out []*keys.Source
	for _, f := range fp.PublicKeyFiles {
		pub, err := keys.ReadPublicKeys(f)
		if err != nil {
			return nil, err
		}
		s, err := keys.NewStaticSource("pem:"+f, issuers, pub)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// apply puts gen in force: its sources run (unchanged ones never stopped),
// the proxy swaps to its policy atomically, and sources no longer named
// stop.
func (rt *policyRuntime) apply(gen *generation, reload bool) {
	rt.sources.Apply(gen.sources)
	if rt.proxy != nil {
		rt.proxy.SetPolicy(gen.policy)
	}
	rt.current.Store(gen)
	rt.pm.Loaded(time.Now(), reload)
}

// Reload triggers, for the log line.
const (
	triggerSignal     = "sighup"
	triggerFileChange = "file_change"
)

// reload reads CONFIG_FILE again and, when it is valid, puts it in force.
// A file that fails is logged and counted, and the running policy stays.
// A file whose content did not change is left alone unless a signal asked.
func (rt *policyRuntime) reload(ctx context.Context, trigger string) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	cur := rt.current.Load()
	pf, err := readPolicyFile(rt.cfg.ConfigFile)
	if err == nil && trigger == triggerFileChange && pf.sum == cur.file.sum {
		return nil
	}
	var gen *generation
	if err == nil {
		gen, err = rt.build(pf, cur)
	}
	if err != nil {
		rt.pm.ReloadFailed()
		rt.log.Error("CONFIG_FILE refused; the running policy stays", "file", rt.cfg.ConfigFile, "trigger", trigger,
			"error", strings.ReplaceAll(err.Error(), "\n", "; "))
		return err
	}
	// New providers load their keys before they take requests, so that a
	// reload does not answer unknown_key while they fetch. A source that
	// cannot load now keeps retrying in the background, as at start.
	for _, bp := range gen.order {
		if !bp.fresh {
			continue
		}
		if err := bp.keys.LoadOnce(ctx); err != nil {
			rt.log.Warn("a new provider's keys could not be loaded yet; retrying in the background", "provider", bp.name, "error", err)
		}
	}
	rt.apply(gen, true)
	reused := 0
	for _, bp := range gen.order {
		if !bp.fresh {
			reused++
		}
	}
	rt.log.Info("CONFIG_FILE reloaded", "file", rt.cfg.ConfigFile, "trigger", trigger,
		"providers", len(gen.order), "providers_kept", reused, "rules", len(pf.Rules), "key_sources", len(gen.sources))
	return nil
}

// fileStamp tells whether CONFIG_FILE may have changed: the file the path
// leads to now (a Kubernetes ConfigMap swaps a symlink, ..data, to a new
// directory), its size and its modification time.
type fileStamp struct {
	info os.FileInfo
}

func statFile(path string) (fileStamp, error) {
	info, err := os.Stat(path) // follows symlinks: the file as it is now
	return fileStamp{info: info}, err
}

func (a fileStamp) same(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == b.info
	}
	return os.SameFile(a.info, b.info) && a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime())
}

// changed re-stats the path and reports whether it now leads to another
// file, or the same file with another size or time.
func (rt *policyRuntime) changed() bool {
	st, err := statFile(rt.cfg.ConfigFile)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if err != nil {
		if rt.stamp.info != nil {
			rt.log.Warn("CONFIG_FILE cannot be read; the running policy stays", "file", rt.cfg.ConfigFile, "error", err)
		}
		rt.stamp = fileStamp{}
		return false
	}
	if st.same(rt.stamp) {
		return false
	}
	rt.stamp = st
	return true
}

// run keeps the policy current until ctx ends: the key sources' refresh
// loops, a poll of CONFIG_FILE, and SIGHUP, which reloads at once.
func (rt *policyRuntime) run(ctx context.Context, hup <-chan os.Signal) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rt.sources.Run(ctx) })
	g.Go(func() error {
		t := time.NewTicker(rt.poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				_ = rt.reload(ctx, triggerSignal)
			case <-t.C:
				if rt.changed() {
					_ = rt.reload(ctx, triggerFileChange)
				}
			}
		}
	})
	return g.Wait()
}

// loadOnce loads every source of the policy in force once, for explain.
func (rt *policyRuntime) loadOnce(ctx context.Context) error {
	var errs []error
	for _, bp := range rt.current.Load().order {
		if err := bp.keys.LoadOnce(ctx); err != nil {
			errs = append(errs, fmt.Errorf("provider %s: %w", bp.name, err))
		}
	}
	return errors.Join(errs...)
}

// serving returns what cli.Service runs for the policy: readiness (every
// source of the policy in force has loaded keys), the background work
// (sources, file watch, SIGHUP) and the number of sources, for the start
// log line.
func (rt *policyRuntime) serving() (ready func() error, background func(context.Context) error, sources func() int) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ready = func() error {
		if !rt.sources.Ready() {
			return errors.New("keys not loaded yet")
		}
		return nil
	}
	background = func(ctx context.Context) error {
		defer signal.Stop(hup)
		return rt.run(ctx, hup)
	}
	return ready, background, rt.sources.Len
}
