// Command jwt-sidecar is a reverse proxy that verifies each request's bearer
// JWT locally, with keys from a JWKS (or, with AUTH_MODE=introspection, asks
// an RFC 7662 token service), and forwards verified requests with their
// claims as headers. Configuration is the environment; see --help.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/jwt-sidecar/jwt-sidecar/internal/telemetry"
	"github.com/jwt-sidecar/jwt-sidecar/internal/tracing"
	"github.com/jwt-sidecar/jwt-sidecar/metrics"
	"github.com/jwt-sidecar/jwt-sidecar/proxy"
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
	if err == nil {
		a.stopTracing() // nothing served: no span to export
	}
	return cfg, a, err
}

// app is the wired sidecar: the only place that knows every package.
type app struct {
	cfg   *config.Config
	log   *slog.Logger
	reg   *prometheus.Registry
	rt    *runtime
	proxy *proxy.Proxy
	// handler is the proxy listener's: the proxy, and back-channel logout
	// at BACKCHANNEL_LOGOUT_PATH.
	handler http.Handler
	tls     *listenerTLS    // nil: plain HTTP and h2c
	tracer  *tracing.Tracer // nil: tracing off
}

// newApp wires the sidecar. The environment and CONFIG_FILE both become a
// policy.Spec, built by one runtime: there is one path, whichever way the
// policy was given.
func newApp(cfg *config.Config, log *slog.Logger) (*app, error) {
	reg := prometheus.NewRegistry()
	m := metrics.NewWithOptions(reg, telemetry.Labels(), metrics.Options{Histograms: cfg.MetricsHistograms})
	m.BuildInfo(cli.Version(version))
	spec, err := readSpec(cfg)
	if err != nil {
		return nil, err
	}
	tr, err := newTracer(cfg)
	if err != nil {
		return nil, err
	}
	rt := newRuntime(cfg, log, m, metrics.NewRules(reg), tr)
	rt.lm = metrics.NewLogins(reg, loginLabels())
	rt.prov = metrics.NewProviders(reg, providerStates)
	if rt.state, err = newState(cfg, rt, reg); err != nil {
		return nil, err
	}
	if spec.FromFile() {
		rt.stamp, _ = statFile(cfg.ConfigFile)
	}
	gen, err := rt.build(spec, nil)
	if err != nil {
		return nil, err
	}
	upTLS, err := upstreamTLS(cfg)
	if err != nil {
		return nil, err
	}
	p, err := proxy.New(proxy.Options{
		Upstream:            cfg.UpstreamURL,
		UpstreamTLS:         upTLS,
		Policy:              gen.policy,
		Recorder:            m,
		Logger:              log,
		CORSPreflight:       cfg.CORSPreflight,
		UpstreamTimeout:     cfg.UpstreamTimeout,
		MaxIdleConns:        cfg.UpstreamConns,
		DPoPAlgorithms:      rt.state.sender.Algorithms(),
		AccessLog:           cfg.AccessLog,
		SubjectClaim:        cfg.AccessLogSubjectClaim,
		RefusalLogRate:      cfg.RefusalLogRate,
		Logs:                metrics.NewLogLines(reg),
		AllowAmbiguousPaths: !cfg.PathStrict,
		Tracer:              proxyTracer(tr),
	})
	if err != nil {
		return nil, err
	}
	lt, err := newListenerTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	rt.proxy = p
	rt.apply(gen, false)
	m.TokenCacheEntries(rt.cacheLen)
	for _, w := range warnings(spec) {
		log.Warn(w)
	}
	a := &app{cfg: cfg, log: log, reg: reg, rt: rt, proxy: p, tls: lt, tracer: tr}
	if a.handler, err = a.listenerHandler(); err != nil {
		return nil, err
	}
	return a, nil
}

// startAttrs say at start what the sidecar verifies with.
func (a *app) startAttrs() []any {
	switch {
	case a.cfg.ConfigFile != "":
		return []any{"config_file", a.cfg.ConfigFile, "key_sources", a.rt.sources.Len()}
	case a.cfg.AuthMode == "introspection":
		u, _ := url.Parse(a.cfg.IntrospectionURL) // validated
		return []any{"auth_mode", a.cfg.AuthMode, "introspection_url", u.Redacted(), "introspection_cache_ttl", a.cfg.IntrospectionCacheTTL.String()}
	}
	return []any{"auth_mode", a.cfg.AuthMode, "key_sources", a.rt.sources.Len()}
}

// serve runs the sidecar until ctx ends: keys load and refresh in the
// background and /readyz answers 200 once every key source has keys (at
// once without keys, in introspection mode); CONFIG_FILE is reloaded when
// it changes and on SIGHUP; on SIGTERM in-flight requests drain for at most
// SHUTDOWN_TIMEOUT (Kubernetes pod termination).
func (a *app) serve(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return cli.Service{
		Name:       "jwt-sidecar",
		Log:        a.log,
		ListenAddr: a.cfg.ListenAddr,
		AdminAddr:  a.cfg.AdminAddr,
		Server: &http.Server{
			Handler:           a.handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			Protocols:         inboundProtocols(),
			TLSConfig:         a.tls.serverConfig(),
		},
		TLS:             a.tls != nil,
		NoMain:          a.cfg.UpstreamURL == nil, // a decision service only
		Extra:           a.decisionListeners(),
		Metrics:         a.reg,
		Ready:           a.tls.ready(a.rt.ready),
		ReadyDetail:     a.rt.readyDetail,
		Background:      a.tls.background(func(ctx context.Context) error { return a.rt.run(ctx, hup) }),
		ShutdownTimeout: a.cfg.ShutdownTimeout,
		AfterDrain: func() {
			a.proxy.CloseIdleConnections()
			a.rt.closeIdle()
			a.stopTracing()
		},
		StartAttrs: append([]any{"version", cli.Version(version), "upstream", a.cfg.UpstreamURL.Redacted()},
			a.startAttrs()...),
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
