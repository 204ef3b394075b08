// Command jwt-loadgen is the open-loop load generator of the comparison
// between stateless JWT verification and token introspection: it gets a
// client_credentials token, keeps it fresh (and keeps using the last one
// while the token service is down), sends GET requests with it to every
// target at a fixed rate, and exports what it saw as Prometheus metrics.
// Configuration is the environment; see --help.
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// tokenTimeout bounds one token fetch.
const tokenTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], cli.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code. 0 after
// DURATION or a signal, 2 for bad configuration, 1 for anything else.
func run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	if code, done := cli.Args(args, "jwt-loadgen", cli.Version(version), printHelp, stdout, stderr); done {
		return code
	}
	cfg, secret, err := loadConfig(env)
	if err != nil {
		return cli.ConfigError(stderr, "jwt-loadgen", err)
	}
	log := cli.Logger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err := newApp(cfg, secret, log).serve(ctx); err != nil {
		log.Error("jwt-loadgen stopped", "error", err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

// app is the wired load generator.
type app struct {
	cfg    *Config
	log    *slog.Logger
	reg    *prometheus.Registry
	tokens *tokenSource
	gen    *generator
}

func newApp(cfg *Config, secret string, log *slog.Logger) *app {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, cfg.Targets, cli.Version(version))
	tokenTransport := http.DefaultTransport.(*http.Transport).Clone()
	tokens := newTokenSource(cfg, secret, &http.Client{Transport: tokenTransport, Timeout: tokenTimeout}, m, log)
	return &app{cfg: cfg, log: log, reg: reg, tokens: tokens, gen: newGenerator(cfg, targetClient(cfg), tokens, m, log)}
}

// targetClient is the pooled keep-alive client of the targets: enough idle
// connections that every request in flight can reuse one, and no proxy from
// the environment, which would put another hop into every number.
func targetClient(cfg *Config) *http.Client {
	conns := cfg.Concurrency * len(cfg.Targets)
	return &http.Client{
		Timeout: cfg.RequestTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
		},
		// A redirect is the target's answer, not a second request to count.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// serve runs the admin server, the token source and the load until ctx ends
// or DURATION has passed; requests in flight are answered first.
func (a *app) serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	var sending atomic.Bool
	admin := &http.Server{
		Handler:           a.adminHandler(&sending),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.log.Info("jwt-loadgen starting", "version", cli.Version(version), "admin", ln.Addr().String(),
		"token_url", a.cfg.TokenURL, "client_id", a.cfg.ClientID, "targets", a.cfg.Targets,
		"rate", a.cfg.Rate, "concurrency", a.cfg.Concurrency, "duration", a.cfg.Duration.String())

	g, gctx := errgroup.WithContext(ctx)
	tokenCtx, stopTokens := context.WithCancel(gctx)
	defer stopTokens()
	g.Go(func() error {
		if err := admin.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin server: %w", err)
		}
		return nil
	})
	g.Go(func() error { return a.tokens.run(tokenCtx) })
	g.Go(func() error {
		select {
		case <-a.tokens.ready():
			sending.Store(true)
		case <-gctx.Done():
		}
		a.gen.run(gctx)
		// Load is over (DURATION, a signal or a failed admin server): stop
		// the rest.
		stopTokens()
		admin.Close()
		return nil
	})
	err = g.Wait()
	a.log.Info("jwt-loadgen stopped")
	return err
}

// adminHandler is cli.AdminHandler, ready once the first token is in hand
// and load is going.
func (a *app) adminHandler(sending *atomic.Bool) http.Handler {
	return cli.AdminHandler(a.reg, a.log, func() error {
		if !sending.Load() {
			return errors.New("no token yet")
		}
		return nil
	})
}
