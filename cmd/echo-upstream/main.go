// Command echo-upstream is the demo's "legacy app": it answers every request
// with a JSON description of what it received, so the jwt-sidecar demo can
// show which headers the sidecar forwarded and which it stripped.
//
// Environment: LISTEN_ADDR (default :3000). `echo-upstream healthcheck URL`
// exits 0 if URL answers 2xx (for container health checks). GET /healthz
// answers "ok"; any other request gets 200 and
//
//	{"method", "path", "query", "headers": {name: [values]}, "body_bytes"}
//
// with canonical header names in sorted order and the body read and counted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = ""

// config is the environment of echo-upstream.
type config struct {
	ListenAddr string `env:"LISTEN_ADDR" envDefault:":3000"`
}

// echo is the response body: what the request looked like on arrival.
type echo struct {
	Method    string              `json:"method"`
	Path      string              `json:"path"`
	Query     string              `json:"query"`
	Headers   map[string][]string `json:"headers"` // encoding/json sorts map keys
	BodyBytes int64               `json:"body_bytes"`
}

func main() {
	if code, done := cli.Healthcheck(os.Args[1:], "echo-upstream", os.Stdout, os.Stderr); done {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo-upstream: %v\n", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then drains in-flight requests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			fmt.Fprint(stdout, "echo-upstream: the jwt-sidecar demo's upstream; answers every request with JSON\n"+
				"{method, path, query, headers, body_bytes}. GET /healthz answers ok.\n\n"+
				"Environment:\n  LISTEN_ADDR  default :3000\n\n"+
				"echo-upstream healthcheck URL exits 0 if URL answers 2xx (container health checks).\n")
			return nil
		case "-version", "--version", "version":
			fmt.Fprintln(stdout, "echo-upstream", cli.Version(version))
			return nil
		}
		return fmt.Errorf("unexpected argument %q; see --help", args[0])
	}
	var cfg config
	if err := env.Parse(&cfg); err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	srv := &http.Server{Handler: handler(log), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("echo-upstream listening", "addr", ln.Addr().String())
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("echo-upstream stopped")
	return nil
}

// handler routes /healthz and echoes everything else.
func handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			log.Warn("read body", "err", err)
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		e := echo{
			Method:    r.Method,
			Path:      r.URL.Path,
			Query:     r.URL.RawQuery,
			Headers:   map[string][]string(r.Header.Clone()), // the server canonicalised the names
			BodyBytes: n,
		}
		if e.Headers == nil {
			e.Headers = map[string][]string{}
		}
		log.Info("echo", "method", r.Method, "path", r.URL.Path, "body_bytes", n)
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e) // the client went away; nothing to do
	})
	return mux
}
