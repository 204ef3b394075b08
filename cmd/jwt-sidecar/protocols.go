package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/capool"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// inboundProtocols are what the proxy listener speaks: HTTP/1.1 and, in
// cleartext, HTTP/2 with prior knowledge (h2c), which gRPC clients use. An
// HTTP/1.1 request that asks to Upgrade to h2c is served as HTTP/1.1: RFC
// 9113 §3.1 deprecates that upgrade, net/http has none, and every client
// falls back (docs/protocols.md); the proxy drops the Upgrade before
// forwarding, so no upstream switches either.
func inboundProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// upstreamTLS is the client TLS of an https upstream: UPSTREAM_CA_FILE
// instead of the system roots, and the UPSTREAM_CLIENT_CERT_FILE pair for
// mutual TLS. nil when neither is set.
func upstreamTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.UpstreamCAFile == "" && cfg.UpstreamClientCertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.UpstreamCAFile != "" {
		pool, err := readCAPool(cfg.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("UPSTREAM_CA_FILE: %w", err)
		}
		tc.RootCAs = pool
	}
	if cfg.UpstreamClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.UpstreamClientCertFile, cfg.UpstreamClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("UPSTREAM_CLIENT_CERT_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// readCAPool reads PEM certificates into a pool; a file without one is an
// error, never an empty pool that trusts nothing silently.
func readCAPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in " + file)
	}
	return pool, nil
}

// certCheckInterval is how often the TLS files are looked at (and at most
// how often a handshake stats them).
const certCheckInterval = 2 * time.Second

// listenerTLS is the proxy listener's TLS, or nil without TLS_CERT_FILE:
// TLS 1.2 minimum, the certificate re-read when its files change, HTTP/2
// and HTTP/1.1 by ALPN, and with TLS_CLIENT_CA_FILE a verified client
// certificate required of every client.
type listenerTLS struct {
	config *tls.Config
	certs  *cli.CertReloader
}

func newListenerTLS(cfg *config.Config, log *slog.Logger) (*listenerTLS, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	l := &listenerTLS{certs: cli.NewCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, certCheckInterval, nil, log)}
	l.config = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: l.certs.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if cfg.TLSClientCAFile != "" {
		// Re-read when it changes, like the certificate: a client CA
		// rotated (or a compromised one removed) applies to the next
		// handshake, resumed sessions included.
		pool, err := capool.New(cfg.TLSClientCAFile, certCheckInterval, log)
		if err != nil {
			return nil, fmt.Errorf("TLS_CLIENT_CA_FILE: %w", err)
		}
		roots, _ := pool.Get()
		l.config.ClientCAs, l.config.ClientAuth = roots, tls.RequireAndVerifyClientCert
		sc, err := capool.NewServerConfig(pool, l.config)
		if err != nil {
			return nil, err
		}
		l.config = sc.Config()
	}
	return l, nil
}

// ready adds the certificate to the sidecar's readiness: a TLS listener
// without a certificate cannot answer anyone.
func (l *listenerTLS) ready(next func() error) func() error {
	if l == nil {
		return next
	}
	return func() error {
		if !l.certs.Ready() {
			return errors.New("TLS certificate not loaded yet")
		}
		return next()
	}
}

// background runs next and, with TLS, the certificate checks beside it.
func (l *listenerTLS) background(next func(context.Context) error) func(context.Context) error {
	if l == nil {
		return next
	}
	return func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return l.certs.Run(gctx) })
		g.Go(func() error { return next(gctx) })
		return g.Wait()
	}
}

func (l *listenerTLS) serverConfig() *tls.Config {
	if l == nil {
		return nil
	}
	return l.config
}
