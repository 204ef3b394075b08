// Command jwt-sidecar-injector is a Kubernetes mutating admission webhook
// that adds jwt-sidecar to pods annotated jwt-sidecar.io/inject: "true".
// Configuration is the environment; see --help.
package main

import (
	"context"
	"crypto/tls"
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
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/jwt-sidecar/jwt-sidecar/cmd/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/injector"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// certCheckInterval is how often the certificate files are looked at; a
// handshake looks at most this often too.
const certCheckInterval = 2 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], cli.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code. 0 after a
// clean shutdown, 2 for bad configuration, 1 for anything else.
func run(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
	if code, done := cli.Args(args, "jwt-sidecar-injector", cli.Version(version), printHelp, stdout, stderr); done {
		return code
	}
	cfg, err := loadConfig(env)
	if err != nil {
		return cli.ConfigError(stderr, "jwt-sidecar-injector", err)
	}
	log := cli.Logger(cfg.LogLevel, cfg.LogFormat, stderr)
	a, err := newApp(cfg, log)
	if err != nil {
		return cli.ConfigError(stderr, "jwt-sidecar-injector", err)
	}
	if err := a.serve(ctx); err != nil {
		log.Error("jwt-sidecar-injector stopped", "error", err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

// app is the wired injector.
type app struct {
	cfg      *Config
	log      *slog.Logger
	reg      *prometheus.Registry
	injector *injector.Injector
	certs    *injector.CertReloader
	draining atomic.Bool
}

func newApp(cfg *Config, log *slog.Logger) (*app, error) {
	reg := prometheus.NewRegistry()
	m := injector.NewMetrics(reg)
	m.BuildInfo(cli.Version(version))
	in, err := injector.New(cfg.options(), m)
	if err != nil {
		return nil, err
	}
	certs := injector.NewCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, certCheckInterval, m, log)
	return &app{cfg: cfg, log: log, reg: reg, injector: in, certs: certs}, nil
}

// adminHandler serves /metrics, /healthz and /readyz over plain HTTP.
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
		case !a.certs.Ready():
			http.Error(w, "no TLS certificate loaded yet", http.StatusServiceUnavailable)
		default:
			io.WriteString(w, "ok\n")
		}
	})
	return mux
}

// serve listens and serves until ctx ends; then it stops accepting,
// finishes in-flight reviews for at most SHUTDOWN_TIMEOUT and returns nil.
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
		Handler: a.injector.Handler(a.log),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: a.certs.GetCertificate,
		},
		ReadHeaderTimeout: 10 * time.Second,
		// The API server waits at most 30 s for a webhook.
		ReadTimeout:    30 * time.Second,
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       errLog,
	}
	admin := &http.Server{
		Handler:           a.adminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          errLog,
	}
	a.log.Info("jwt-sidecar-injector starting", "version", cli.Version(version), "listen", ln.Addr().String(),
		"admin", adminLn.Addr().String(), "sidecar_image", a.cfg.SidecarImage, "certificate_loaded", a.certs.Ready())

	certCtx, stopCerts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCerts()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.certs.Run(certCtx) })
	g.Go(func() error { return serveUntilClosed(func() error { return srv.ServeTLS(ln, "", "") }) })
	g.Go(func() error { return serveUntilClosed(func() error { return admin.Serve(adminLn) }) })

	<-gctx.Done() // a signal, or a listener that failed
	a.draining.Store(true)
	a.log.Info("shutting down: finishing in-flight reviews", "timeout", a.cfg.ShutdownTimeout.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		a.log.Warn("drain timed out; closing remaining connections", "error", err)
		srv.Close()
	}
	admin.Close()
	stopCerts()
	if err := g.Wait(); err != nil {
		return err
	}
	a.log.Info("jwt-sidecar-injector stopped")
	return nil
}

func serveUntilClosed(serve func() error) error {
	if err := serve(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
