// Command jwt-sidecar is a reverse proxy that verifies each request's bearer
// JWT locally, with keys from a JWKS, and forwards verified requests with
// their claims as headers. Configuration is the environment; see --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/jwt-sidecar/jwt-sidecar/cmd/internal/cli"
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
	if code, done := cli.Args(args, "jwt-sidecar", cli.Version(version), printHelp, stdout, stderr); done {
		return code
	}
	cfg, err := loadConfig(env)
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

// app is the wired sidecar: the only place that knows every package.
type app struct {
	cfg      *Config
	log      *slog.Logger
	reg      *prometheus.Registry
	keys     *verifier.Keys
	proxy    *proxy.Proxy
	draining atomic.Bool
}

func newApp(cfg *Config, log *slog.Logger) (*app, error) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.BuildInfo(cli.Version(version))

	sources, err := keySources(cfg)
	if err != nil {
		return nil, err
	}
	keys, err := verifier.NewKeys(verifier.KeyOptions{
		RefreshInterval: cfg.JWKSRefreshInterval,
		FetchTimeout:    cfg.JWKSFetchTimeout,
		MaxBytes:        cfg.JWKSMaxBytes,
		RefetchCooldown: cfg.JWKSRefetchCooldown,
		MaxWait:         cfg.JWKSFetchWait,
		CacheDir:        cfg.JWKSCacheDir,
	}, m, log, sources...)
	if err != nil {
		return nil, err
	}
	lookups, _ := verifier.ParseLookups(cfg.TokenLookup) // validated
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
	claimHeaders, _ := proxy.ParseClaimHeaders(cfg.ClaimsToHeaders) // validated
	publicPaths, _ := proxy.ParsePublicPaths(cfg.PublicPaths)       // validated
	p, err := proxy.New(proxy.Options{
		Upstream:        cfg.UpstreamURL,
		Verifier:        v,
		Recorder:        m,
		Logger:          log,
		Mode:            metrics.ModeJWT,
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
	return &app{cfg: cfg, log: log, reg: reg, keys: keys, proxy: p}, nil
}

// keySources turns the environment into key sources. The OIDC issuer's keys
// verify only its own tokens; every other source serves ISSUERS (or, with
// no ISSUERS, the OIDC issuer: Validate allows that only when it is alone).
func keySources(cfg *Config) ([]*verifier.Source, error) {
	issuers := cfg.Issuers
	if len(issuers) == 0 {
		issuers = []string{cfg.OIDCIssuerURL}
	}
	var sources []*verifier.Source
	if cfg.OIDCIssuerURL != "" {
		sources = append(sources, verifier.NewOIDCSource(cfg.OIDCIssuerURL, nil))
	}
	for _, u := range cfg.JWKSURLs {
		sources = append(sources, verifier.NewRemoteSource(u, issuers, nil))
	}
	if cfg.JWKSFile != "" {
		if _, err := os.Stat(cfg.JWKSFile); err != nil {
			return nil, fmt.Errorf("JWKS_FILE: %w", err)
		}
		sources = append(sources, verifier.NewFileSource(cfg.JWKSFile, issuers))
	}
	for _, f := range cfg.PublicKeyFiles {
		keys, err := verifier.ReadPublicKeys(f)
		if err != nil {
			return nil, fmt.Errorf("PUBLIC_KEY_FILES: %w", err)
		}
		s, err := verifier.NewStaticSource("pem:"+f, issuers, keys)
		if err != nil {
			return nil, fmt.Errorf("PUBLIC_KEY_FILES: %w", err)
		}
		sources = append(sources, s)
	}
	if cfg.HMACSecretFile != "" {
		secret, err := verifier.ReadHMACSecret(cfg.HMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("HMAC_SECRET_FILE: %w", err)
		}
		s, err := verifier.NewStaticSource("hmac", issuers, []verifier.StaticKey{{Key: secret}})
		if err != nil {
			return nil, fmt.Errorf("HMAC_SECRET_FILE: %w", err)
		}
		sources = append(sources, s)
	}
	return sources, nil
}

// adminHandler serves /metrics, /healthz and /readyz; it is never proxied.
func (a *app) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case a.draining.Load():
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		case !a.keys.Ready():
			http.Error(w, "keys not loaded yet", http.StatusServiceUnavailable)
		default:
			io.WriteString(w, "ok\n")
		}
	})
	return mux
}

// serve listens, loads keys in the background and serves until ctx ends;
// then it stops accepting, drains in-flight requests for at most
// SHUTDOWN_TIMEOUT and returns nil (Kubernetes pod termination).
func (a *app) serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	adminLn, err := net.Listen("tcp", a.cfg.AdminAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	errLog := slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler:           a.proxy.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
	admin := &http.Server{
		Handler:           a.adminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          errLog,
	}
	a.log.Info("jwt-sidecar starting", "version", cli.Version(version), "listen", ln.Addr().String(),
		"admin", adminLn.Addr().String(), "upstream", a.cfg.UpstreamURL.Redacted(), "key_sources", len(a.keys.Sources()))

	keysCtx, stopKeys := context.WithCancel(context.WithoutCancel(ctx))
	defer stopKeys()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.keys.Run(keysCtx) })
	g.Go(func() error { return serveUntilClosed(srv, ln) })
	g.Go(func() error { return serveUntilClosed(admin, adminLn) })

	<-gctx.Done() // a signal, or a listener that failed
	a.draining.Store(true)
	a.log.Info("shutting down: draining in-flight requests", "timeout", a.cfg.ShutdownTimeout.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		a.log.Warn("drain timed out; closing remaining connections", "error", err)
		srv.Close()
	}
	a.proxy.CloseIdleConnections()
	admin.Close()
	stopKeys()
	if err := g.Wait(); err != nil {
		return err
	}
	a.log.Info("jwt-sidecar stopped")
	return nil
}

func serveUntilClosed(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
