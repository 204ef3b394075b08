package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// inboundProtocols are what the proxy listener speaks: HTTP/1.1 and, in
// cleartext, HTTP/2 with prior knowledge (h2c), which gRPC clients use. An
// HTTP/1.1 request that asks to Upgrade to h2c is served as HTTP/1.1, which
// RFC 9113 §3.1's predecessor allowed and every client falls back on.
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
