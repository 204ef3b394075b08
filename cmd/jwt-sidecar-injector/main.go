// Command jwt-sidecar-injector is a Kubernetes mutating admission webhook
// that adds jwt-sidecar to pods annotated jwt-sidecar.io/inject: "true".
// Configuration is the environment; see --help.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/injector"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
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

// serve runs the webhook until ctx ends: certificates are re-read in the
// background, /readyz answers 200 once one is loaded, and on SIGTERM
// in-flight reviews finish for at most SHUTDOWN_TIMEOUT.
func (a *app) serve(ctx context.Context) error {
	return cli.Service{
		Name:       "jwt-sidecar-injector",
		Log:        a.log,
		ListenAddr: a.cfg.ListenAddr,
		AdminAddr:  a.cfg.AdminAddr,
		Server: &http.Server{
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
		},
		TLS:     true,
		Metrics: a.reg,
		Ready: func() error {
			if !a.certs.Ready() {
				return errors.New("no TLS certificate loaded yet")
			}
			return nil
		},
		Background:      a.certs.Run,
		ShutdownTimeout: a.cfg.ShutdownTimeout,
		StartAttrs: []any{"version", cli.Version(version), "sidecar_image", a.cfg.SidecarImage,
			"certificate_loaded", a.certs.Ready()},
	}.Run(ctx)
}
