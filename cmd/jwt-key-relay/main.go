// Command jwt-key-relay fetches each configured issuer's JWKS once, with
// conditional requests, and serves the key sets to the sidecars of a
// cluster (their JWKS_RELAY_URL), so a fleet of a thousand sidecars costs
// an issuer the requests of one. It serves key sets only: each sidecar
// still binds the keys to issuers from its own configuration, and falls
// back to the issuer when the relay is down (docs/kubernetes.md, "Keys
// without a fetch storm").
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
)

var version string

// Config is the relay's environment; --help walks it.
type Config struct {
	ListenAddr      string        `env:"LISTEN_ADDR" envDefault:":8080" help:"serves key sets at /v1/jwks?jwks=URL or ?issuer=URL (plain HTTP: key sets are public)"`
	AdminAddr       string        `env:"ADMIN_ADDR" envDefault:":8081" help:"/metrics, /healthz, /readyz (200 once every source has loaded)"`
	JWKSURLs        []string      `env:"JWKS_URLS" help:"comma-separated JWKS URLs served, exactly as the sidecars' JWKS_URLS name them"`
	OIDCIssuerURLs  []string      `env:"OIDC_ISSUER_URLS" help:"comma-separated OIDC issuers served (discovery, then jwks_uri), exactly as the sidecars' OIDC_ISSUER_URL name them"`
	RefreshInterval time.Duration `env:"JWKS_REFRESH_INTERVAL" envDefault:"5m" help:"background refresh of every source (conditional requests, ±10% jitter)"`
	FetchTimeout    time.Duration `env:"JWKS_FETCH_TIMEOUT" envDefault:"5s" help:"timeout of one fetch"`
	MaxBytes        int64         `env:"JWKS_MAX_BYTES" envDefault:"1048576" help:"largest JWKS or discovery document accepted"`
	RefetchCooldown time.Duration `env:"JWKS_REFETCH_COOLDOWN" envDefault:"30s" help:"least time between two unknown-kid refetches of one source, however many sidecars ask"`
	FetchWait       time.Duration `env:"JWKS_FETCH_WAIT" envDefault:"2s" help:"longest a sidecar's request for an unknown kid waits for the refetch"`
	MaxAge          time.Duration `env:"MAX_AGE" envDefault:"0s" help:"Cache-Control max-age sent to sidecars (they stretch their interval by it, at most 4x); 0 sends none"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s" help:"on SIGTERM: drain in-flight requests for at most this long"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat       string        `env:"LOG_FORMAT" envDefault:"json" help:"json or text"`
	CAFile          string        `env:"JWKS_CA_FILE" help:"PEM CA certificates that verify every source (discovery and JWKS) instead of the system roots, e.g. the cluster CA for the API server's service-account issuer; re-read when it changes"`
	BearerTokenFile string        `env:"JWKS_BEARER_TOKEN_FILE" help:"a token sent as Authorization: Bearer with every discovery and JWKS fetch (the relay's projected service-account token); read again at every fetch, never logged; https only"`
	StaleAfter      time.Duration `env:"STALE_AFTER" envDefault:"30m" help:"a source whose issuer has not confirmed its keys (200 or 304) for longer is answered 503, so sidecars fetch from the issuer themselves; 0 serves any age"`
	CacheDir        string        `env:"JWKS_CACHE_DIR" help:"keep each source's last good key set here with its validators, load it at start and ask the issuer conditionally (a restart costs a 304, and the relay serves while the issuer is down)"`
}

func loadConfig(environ map[string]string) (*Config, error) {
	c, err := cli.Parse[Config](environ)
	if err != nil {
		return nil, err
	}
	var errs []error
	if len(c.JWKSURLs)+len(c.OIDCIssuerURLs) == 0 {
		errs = append(errs, errors.New("JWKS_URLS: set JWKS_URLS or OIDC_ISSUER_URLS: the relay serves only the sources it is given"))
	}
	for name, urls := range map[string][]string{"JWKS_URLS": c.JWKSURLs, "OIDC_ISSUER_URLS": c.OIDCIssuerURLs} {
		for _, u := range urls {
			if !config.AbsoluteHTTP(u) {
				errs = append(errs, fmt.Errorf("%s: %q is not an absolute http(s) URL", name, u))
			}
		}
	}
	for name, d := range map[string]time.Duration{"JWKS_REFRESH_INTERVAL": c.RefreshInterval, "JWKS_FETCH_TIMEOUT": c.FetchTimeout,
		"JWKS_REFETCH_COOLDOWN": c.RefetchCooldown, "JWKS_FETCH_WAIT": c.FetchWait, "SHUTDOWN_TIMEOUT": c.ShutdownTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", name))
		}
	}
	if c.MaxAge < 0 {
		errs = append(errs, errors.New("MAX_AGE: must not be negative"))
	}
	if c.StaleAfter < 0 {
		errs = append(errs, errors.New("STALE_AFTER: must not be negative"))
	} else if c.StaleAfter > 0 && c.StaleAfter < 2*c.RefreshInterval {
		errs = append(errs, fmt.Errorf("STALE_AFTER: %s is less than two JWKS_REFRESH_INTERVALs (%s): one late refresh would send every sidecar to the issuer", c.StaleAfter, 2*c.RefreshInterval))
	}
	if c.MaxBytes < 1024 {
		errs = append(errs, errors.New("JWKS_MAX_BYTES: must be at least 1024"))
	}
	if c.BearerTokenFile != "" {
		for _, u := range append(slices.Clone(c.JWKSURLs), c.OIDCIssuerURLs...) {
			if config.AbsoluteHTTP(u) && !config.TokenSafe(u) {
				errs = append(errs, fmt.Errorf("JWKS_BEARER_TOKEN_FILE: the token would cross the network in plain text to %s; use https (plain http only to loopback)", u))
			}
		}
	}
	errs = append(errs, cli.CheckLog(c.LogLevel, c.LogFormat)...)
	return c, errors.Join(errs...)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], cli.Environ(), os.Stdout, os.Stderr))
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, `jwt-key-relay: fetches each configured issuer's keys once and serves them to
sidecars (their JWKS_RELAY_URL). Sidecars bind the keys to their own issuers.

Usage: jwt-key-relay [--help | --version | healthcheck URL]
Configuration comes from the environment:

`)
	cli.PrintVars[Config](w)
}

func run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	if code, done := cli.Args(args, "jwt-key-relay", cli.Version(version), printHelp, stdout, stderr); done {
		return code
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return cli.ConfigError(stderr, "jwt-key-relay", err)
	}
	log := cli.Logger(cfg.LogLevel, cfg.LogFormat, stderr)
	reg := prometheus.NewRegistry()
	rec := metrics.NewRelay(reg)
	var sources []*keys.Source
	for _, u := range cfg.JWKSURLs {
		sources = append(sources, keys.NewRemoteSource(u, nil, nil))
	}
	for _, u := range cfg.OIDCIssuerURLs {
		sources = append(sources, keys.NewOIDCSource(u, nil))
	}
	access := keys.Access{CAFile: cfg.CAFile, BearerTokenFile: cfg.BearerTokenFile}
	for i, s := range sources {
		if sources[i], err = s.WithAccess(access); err != nil {
			name := "JWKS_BEARER_TOKEN_FILE"
			if errors.Is(err, keys.ErrCAFile) {
				name = "JWKS_CA_FILE"
			}
			return cli.ConfigError(stderr, "jwt-key-relay", fmt.Errorf("%s: %w", name, err))
		}
	}
	k, err := keys.NewKeys(keys.KeyOptions{
		RefreshInterval: cfg.RefreshInterval, FetchTimeout: cfg.FetchTimeout, MaxBytes: cfg.MaxBytes,
		RefetchCooldown: cfg.RefetchCooldown, MaxWait: cfg.FetchWait,
		CacheDir: cfg.CacheDir,
	}, rec, log, sources...)
	if err != nil {
		return cli.ConfigError(stderr, "jwt-key-relay", err)
	}
	relay := keys.NewRelay(sources...)
	relay.MaxAge = int(cfg.MaxAge / time.Second)
	relay.Recorder = rec
	relay.StaleAfter = cfg.StaleAfter
	mux := http.NewServeMux()
	mux.Handle(keys.RelayPath, relay)
	err = cli.Service{
		Name: "jwt-key-relay", Log: log, ListenAddr: cfg.ListenAddr, AdminAddr: cfg.AdminAddr,
		Server: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10},
		Metrics: reg,
		Ready: func() error {
			if !k.Ready() {
				return errors.New("a key source has not loaded yet")
			}
			return nil
		},
		Background:      k.Run,
		ShutdownTimeout: cfg.ShutdownTimeout,
	}.Run(ctx)
	if err != nil {
		log.Error("jwt-key-relay stopped", "error", err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}
