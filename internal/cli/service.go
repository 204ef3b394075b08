package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// Service is a long-running command: one main server, a plain-HTTP admin
// server (/metrics, /healthz, /readyz) and one background job (key or
// certificate refresh). Run owns their lifecycle, so every command starts,
// reports readiness and shuts down the same way.
type Service struct {
	Name       string
	Log        *slog.Logger
	ListenAddr string       // LISTEN_ADDR
	AdminAddr  string       // ADMIN_ADDR
	Server     *http.Server // the main server, Handler and timeouts set
	TLS        bool         // serve Server with its TLSConfig
	Metrics    prometheus.Gatherer
	// Ready is nil when the service can do its work; its error is the
	// /readyz 503 body.
	Ready func() error
	// ReadyDetail, when set, follows /readyz's first line (ok, or why not):
	// the state of each part, e.g. each provider's keys.
	ReadyDetail func() string
	// Background runs until its context ends, which happens after the drain.
	Background      func(ctx context.Context) error
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT
	// AfterDrain runs once in-flight requests are done, e.g. to close idle
	// upstream connections.
	AfterDrain func()
	StartAttrs []any // extra fields of the "starting" log line
	// NoMain leaves ListenAddr and Server unused: the service serves only
	// its Extra listeners (e.g. a forward-auth decision service).
	NoMain bool
	// Extra are more plain-HTTP listeners, started, drained and stopped
	// with Server.
	Extra []Listener
}

// Listener is one extra listener of a Service.
type Listener struct {
	Var    string // the variable naming Addr, for errors and the start line
	Addr   string
	Server *http.Server
}

// Run listens on both addresses (an error names the variable), serves until
// ctx ends or a server fails, then turns /readyz to 503, stops accepting,
// drains in-flight requests for at most ShutdownTimeout, stops the
// background job and returns nil.
func (s Service) Run(ctx context.Context) error {
	var servers []*http.Server
	var lns []net.Listener
	closeAll := func() {
		for _, l := range lns {
			l.Close()
		}
	}
	if !s.NoMain {
		ln, err := net.Listen("tcp", s.ListenAddr)
		if err != nil {
			return fmt.Errorf("LISTEN_ADDR: %w", err)
		}
		servers, lns = append(servers, s.Server), append(lns, ln)
	}
	for _, x := range s.Extra {
		ln, err := net.Listen("tcp", x.Addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("%s: %w", x.Var, err)
		}
		servers, lns = append(servers, x.Server), append(lns, ln)
	}
	adminLn, err := net.Listen("tcp", s.AdminAddr)
	if err != nil {
		closeAll()
		return fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	var draining atomic.Bool
	errLog := slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn)
	for _, srv := range servers {
		srv.ErrorLog = errLog
	}
	admin := &http.Server{
		Handler:           s.adminHandler(&draining),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          errLog,
	}
	attrs := []any{"admin", adminLn.Addr().String()}
	if !s.NoMain {
		attrs = append(attrs, "listen", lns[0].Addr().String())
	}
	for i, x := range s.Extra {
		attrs = append(attrs, strings.ToLower(x.Var), lns[len(lns)-len(s.Extra)+i].Addr().String())
	}
	s.Log.Info(s.Name+" starting", append(attrs, s.StartAttrs...)...)

	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Background(bgCtx) })
	for i, srv := range servers {
		ln, tls := lns[i], s.TLS && !s.NoMain && i == 0
		g.Go(func() error {
			if tls {
				return untilClosed(srv.ServeTLS(ln, "", ""))
			}
			return untilClosed(srv.Serve(ln))
		})
	}
	g.Go(func() error { return untilClosed(admin.Serve(adminLn)) })

	<-gctx.Done() // a signal, or a listener that failed
	draining.Store(true)
	s.Log.Info("shutting down: draining in-flight requests", "timeout", s.ShutdownTimeout.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	var drain errgroup.Group
	for _, srv := range servers {
		drain.Go(func() error {
			if err := srv.Shutdown(drainCtx); err != nil {
				s.Log.Warn("drain timed out; closing remaining connections", "error", err)
				srv.Close()
			}
			return nil
		})
	}
	_ = drain.Wait()
	if s.AfterDrain != nil {
		s.AfterDrain()
	}
	admin.Close()
	stopBackground()
	if err := g.Wait(); err != nil {
		return err
	}
	s.Log.Info(s.Name + " stopped")
	return nil
}

// adminHandler is AdminHandler, not ready while draining or not Ready.
func (s Service) adminHandler(draining *atomic.Bool) http.Handler {
	return adminHandler(s.Metrics, s.Log, func() error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		return s.Ready()
	}, s.ReadyDetail)
}

// AdminHandler serves /metrics from the command's own registry, /healthz
// while the process runs, and /readyz: 503 with ready's error as the body,
// else 200.
func AdminHandler(metrics prometheus.Gatherer, log *slog.Logger, ready func() error) http.Handler {
	return adminHandler(metrics, log, ready, nil)
}

// adminHandler is AdminHandler; detail, when set, adds lines to /readyz's
// body after the first.
func adminHandler(metrics prometheus.Gatherer, log *slog.Logger, ready func() error, detail func() string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{
		ErrorLog: ScrapeErrorLog(log),
		// OpenMetrics when the scraper asks for it: the only text format
		// that carries exemplars (a histogram bucket's trace ID).
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		more := ""
		if detail != nil {
			more = detail()
		}
		if err := ready(); err != nil {
			http.Error(w, strings.TrimSuffix(err.Error()+"\n"+more, "\n"), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n"+more)
	})
	return mux
}

func untilClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
