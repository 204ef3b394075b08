// Command jwt-sidecar is a reverse proxy that verifies each request's bearer
// JWT locally, with keys from a JWKS (or, with AUTH_MODE=introspection, asks
// an RFC 7662 token service), and forwards verified requests with their
// claims as headers. Configuration is the environment; see --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// defaultGCPercent is GOGC unless the environment sets it.
const defaultGCPercent = 80

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], cli.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code. 0 after a
// clean shutdown, 2 for bad configuration, 1 for anything else.
func run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "check-config":
			return checkConfig(args[1:], env, stdout, stderr)
		case "explain":
			return explain(ctx, args[1:], env, os.Stdin, stdout, stderr)
		}
	}
	if code, done := cli.Args(args, "jwt-sidecar", cli.Version(version), printHelp, stdout, stderr); done {
		return code
	}
	cfg, err := config.Load(env)
	if err != nil {
		return cli.ConfigError(stderr, "jwt-sidecar", err)
	}
	// A sidecar's memory is multiplied by every pod it runs in: unless the
	// operator set GOGC, trade a few percent of CPU for a heap that grows
	// 80% past the live data instead of 100% (the load run's peak RSS at
	// 256 connections: about 31 MiB instead of 33).
	if _, set := env["GOGC"]; !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	log := cli.Logger(cfg.LogLevel, cfg.LogFormat, stderr)
	app, err := newApp(cfg, log)
	if err != nil {
		return cli.ConfigError(stderr, "jwt-sidecar", err)
	}
	if err := app.serve(ctx); err != nil {
		log.Error("jwt-sidecar stopped", "error", err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

// quietApp loads and wires the sidecar exactly as run does, logging
// nothing and starting nothing: for check-config and explain, which look at
// it instead of serving.
func quietApp(env map[string]string) (*config.Config, *app, error) {
	cfg, err := config.Load(env)
	if err != nil {
		return nil, nil, err
	}
	a, err := newApp(cfg, slog.New(slog.DiscardHandler))
	return cfg, a, err
}

// app is the wired sidecar: the only place that knows every package.
type app struct {
	cfg   *config.Config
	log   *slog.Logger
	reg   *prometheus.Registry
	auth  *auth // AUTH_MODE's part; nil with CONFIG_FILE
	proxy *proxy.Proxy
	// policy is set instead of auth with CONFIG_FILE: the reloadable
	// policy and its key sources.
	policy *policyRuntime
}

// auth is what AUTH_MODE contributes to the sidecar: the Verifier, the mode
// label of its durations, when it is ready, what it runs in the background,
// and what it closes after the drain.
type auth struct {
	verifier   proxy.Verifier
	mode       string
	ready      func() error
	background func(ctx context.Context) error
	closeIdle  func()
	loadOnce   func(ctx context.Context) error // explain: load keys now; nil when there are none
	startAttrs []any
}

func newApp(cfg *config.Config, log *slog.Logger) (*app, error) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.BuildInfo(cli.Version(version))
	if cfg.ConfigFile != "" {
		return newFileApp(cfg, log, reg, m)
	}

	newAuth := newJWTAuth
	if cfg.AuthMode == "introspection" {
		newAuth = newIntrospectionAuth
	}
	a, err := newAuth(cfg, m, log)
	if err != nil {
		return nil, err
	}
	claimHeaders, publicPaths := cfg.ClaimsToHeaders, cfg.PublicPaths
	p, err := proxy.New(proxy.Options{
		Upstream:        cfg.UpstreamURL,
		Verifier:        a.verifier,
		Recorder:        m,
		Logger:          log,
		Mode:            a.mode,
		ClaimHeaders:    claimHeaders,
		PayloadHeader:   cfg.PayloadHeader,
		ForwardToken:    cfg.ForwardToken,
		PublicPaths:     publicPaths,
		CORSPreflight:   cfg.CORSPreflight,
		UpstreamTimeout: cfg.UpstreamTimeout,
		MaxIdleConns:    cfg.UpstreamConns,
	})
	if err != nil {
		return nil, err
	}
	if len(cfg.Audiences) == 0 {
		log.Warn("AUDIENCES is not set: tokens minted for any audience of the accepted issuers will pass")
	}
	return &app{cfg: cfg, log: log, reg: reg, auth: a, proxy: p}, nil
}

// newJWTAuth is AUTH_MODE=jwt: keys from the configured sources, loaded and
// refreshed in the background; ready once every source has keys.
func newJWTAuth(cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*auth, error) {
	sources, err := keySources(cfg)
	if err != nil {
		return nil, err
	}
	keys, err := keys.NewKeys(keyOptions(cfg), m, log, sources...)
	if err != nil {
		return nil, err
	}
	lookups := cfg.TokenLookup
	v, err := verifier.New(verifier.Options{
		Keys:           keys,
		Lookups:        lookups,
		Audiences:      cfg.Audiences,
		Algorithms:     cfg.Algorithms,
		ClockSkew:      cfg.ClockSkew,
		RequireExp:     cfg.RequireExp,
		RequiredScopes: cfg.RequiredScopes,
		MaxTokenSize:   cfg.MaxTokenSize,
		CacheSize:      cfg.TokenCacheSize,
		Recorder:       m,
	})
	if err != nil {
		return nil, err
	}
	m.TokenCacheEntries(v.CacheLen)
	return &auth{
		verifier: v,
		mode:     metrics.ModeJWT,
		ready: func() error {
			if !keys.Ready() {
				return errors.New("keys not loaded yet")
			}
			return nil
		},
		background: keys.Run,
		loadOnce:   keys.LoadOnce,
		startAttrs: []any{"auth_mode", cfg.AuthMode, "key_sources", len(keys.Sources())},
	}, nil
}

// newIntrospectionAuth is AUTH_MODE=introspection: every token (or, with
// INTROSPECTION_CACHE_TTL, every token not seen lately) is sent to the token
// service. There are no keys to load, so it is ready at once and runs
// nothing in the background. That is deliberate: if /readyz followed the
// token service, one outage would take every pod out of its Service's
// endpoints at once, and clients would get connection errors instead of a
// 503 with Retry-After that ends the moment the token service is back.
func newIntrospectionAuth(cfg *config.Config, m *metrics.Metrics, log *slog.Logger) (*auth, error) {
	secret, err := verifier.ReadClientSecret(cfg.IntrospectionClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("INTROSPECTION_CLIENT_SECRET_FILE: %w", err)
	}
	m.IntrospectionMode()
	lookups := cfg.TokenLookup
	in, err := verifier.NewIntrospector(verifier.IntrospectionOptions{
		URL:            cfg.IntrospectionURL,
		ClientID:       cfg.IntrospectionClientID,
		ClientSecret:   secret,
		Timeout:        cfg.IntrospectionTimeout,
		MaxBytes:       cfg.IntrospectionMaxBytes,
		CacheTTL:       cfg.IntrospectionCacheTTL,
		CacheSize:      cfg.TokenCacheSize,
		Lookups:        lookups,
		MaxTokenSize:   cfg.MaxTokenSize,
		Issuers:        cfg.Issuers,
		Audiences:      cfg.Audiences,
		ClockSkew:      cfg.ClockSkew,
		RequireExp:     cfg.RequireExp,
		RequiredScopes: cfg.RequiredScopes,
		Recorder:       m,
	})
	if err != nil {
		return nil, fmt.Errorf("INTROSPECTION_URL: %w", err)
	}
	m.TokenCacheEntries(in.CacheLen)
	u, _ := url.Parse(cfg.IntrospectionURL) // validated
	if host := u.Hostname(); u.Scheme == "http" && host != "localhost" && !isLoopback(host) {
		log.Warn("INTROSPECTION_URL is plain http to another host: the client secret and every token cross the network unencrypted")
	}
	return &auth{
		verifier:   in,
		mode:       metrics.ModeIntrospection,
		ready:      func() error { return nil },
		background: func(ctx context.Context) error { <-ctx.Done(); return nil },
		closeIdle:  in.CloseIdleConnections,
		startAttrs: []any{"auth_mode", cfg.AuthMode, "introspection_url", u.Redacted(), "introspection_cache_ttl", cfg.IntrospectionCacheTTL.String()},
	}, nil
}

// isLoopback reports whether host is a loopback IP address.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// keySources turns the environment into key sources. The OIDC issuer's keys
// verify only its own tokens; every other source serves ISSUERS (or, with
// no ISSUERS, the OIDC issuer: Validate allows that only when it is alone).
func keySources(cfg *config.Config) ([]*keys.Source, error) {
	issuers := cfg.Issuers
	if len(issuers) == 0 {
		issuers = []string{cfg.OIDCIssuerURL}
	}
	var sources []*keys.Source
	if cfg.OIDCIssuerURL != "" {
		sources = append(sources, keys.NewOIDCSource(cfg.OIDCIssuerURL, nil))
	}
	for _, u := range cfg.JWKSURLs {
		sources = append(sources, keys.NewRemoteSource(u, issuers, nil))
	}
	if cfg.JWKSFile != "" {
		if _, err := os.Stat(cfg.JWKSFile); err != nil {
			return nil, fmt.Errorf("JWKS_FILE: %w", err)
		}
		sources = append(sources, keys.NewFileSource(cfg.JWKSFile, issuers))
	}
	for _, f := range cfg.PublicKeyFiles {
		pub, err := keys.ReadPublicKeys(f)
		if err != nil {
			return nil, fmt.Errorf("PUBLIC_KEY_FILES: %w", err)
		}
		s, err := keys.NewStaticSource("pem:"+f, issuers, pub)
		if err != nil {
			return nil, fmt.Errorf("PUBLIC_KEY_FILES: %w", err)
		}
		sources = append(sources, s)
	}
	if cfg.HMACSecretFile != "" {
		secret, err := keys.ReadHMACSecret(cfg.HMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("HMAC_SECRET_FILE: %w", err)
		}
		s, err := keys.NewStaticSource("hmac", issuers, []keys.StaticKey{{Key: secret}})
		if err != nil {
			return nil, fmt.Errorf("HMAC_SECRET_FILE: %w", err)
		}
		sources = append(sources, s)
	}
	return sources, nil
}

// serve runs the sidecar until ctx ends: in jwt mode keys load and refresh
// in the background and /readyz answers 200 once every key source has keys
// (in introspection mode at once); on SIGTERM in-flight requests drain for
// at most SHUTDOWN_TIMEOUT (Kubernetes pod termination).
func (a *app) serve(ctx context.Context) error {
	if a.policy == nil {
		// Go's default for SIGHUP is to exit: an operator used to
		// "kill -HUP" reloading nginx would take the sidecar down.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-hup:
					a.log.Warn("SIGHUP ignored: the environment is read once, at start; only CONFIG_FILE is reloaded")
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if a.policy != nil {
		ready, background, sources := a.policy.serving()
		a.auth = &auth{
			mode: metrics.ModeJWT, ready: ready, background: background,
			startAttrs: []any{"config_file", a.cfg.ConfigFile, "key_sources", sources()},
		}
	}
	return cli.Service{
		Name:       "jwt-sidecar",
		Log:        a.log,
		ListenAddr: a.cfg.ListenAddr,
		AdminAddr:  a.cfg.AdminAddr,
		Server: &http.Server{
			Handler:           a.proxy.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		},
		Metrics:         a.reg,
		Ready:           a.auth.ready,
		Background:      a.auth.background,
		ShutdownTimeout: a.cfg.ShutdownTimeout,
		AfterDrain: func() {
			a.proxy.CloseIdleConnections()
			if a.auth.closeIdle != nil {
				a.auth.closeIdle()
			}
		},
		StartAttrs: append([]any{"version", cli.Version(version), "upstream", a.cfg.UpstreamURL.Redacted()},
			a.auth.startAttrs...),
	}.Run(ctx)
}

// printHelp writes the usage and every variable with its default and
// meaning, straight from config.Config's tags.
func printHelp(w io.Writer) {
	fmt.Fprint(w, `jwt-sidecar: a reverse proxy that verifies bearer JWTs locally.

Usage: jwt-sidecar [--help | --version | healthcheck URL]
       jwt-sidecar check-config         validate the configuration, print it, exit 0 or 2
       jwt-sidecar explain [flags] TOKEN  say whether a request would pass, and why
Configuration comes from the environment (and CONFIG_FILE):

`)
	cli.PrintVars[config.Config](w)
}
