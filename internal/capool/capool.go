// Package capool reads PEM bundles of CA certificates and reads them again
// when they change: the roots a client trusts (a key source's issuer, an
// introspection endpoint) and the CAs a TLS listener requires of its
// clients. A Kubernetes Secret or ConfigMap volume replaces its files by a
// symlink swap, and a cluster's CA bundle (kube-root-ca.crt) rotates, so a
// bundle read once at start goes stale; one read at every handshake costs
// a file read per connection. A Pool looks at the file's metadata at most
// once per interval and parses it only when it changed.
package capool

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/atomicfile"
)

// maxBytes bounds a CA bundle; the Mozilla bundle is about 220 KB.
const maxBytes = 4 << 20

// Read reads PEM certificates into a pool. A file without one is an error,
// never an empty pool that silently trusts nothing.
func Read(file string) (*x509.CertPool, error) {
	raw, err := atomicfile.ReadLimited(file, maxBytes)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return pool, nil
}

// Pool is a CA bundle on disk, re-read when it changes. A version that
// does not load (half written, emptied) keeps the previous pool and is
// logged; the next change is tried again.
type Pool struct {
	file     string
	interval time.Duration
	log      *slog.Logger

	cur  atomic.Pointer[loaded]
	next atomic.Int64 // UnixNano before which nobody looks at the file

	mu   sync.Mutex // one check at a time; guards seen
	seen os.FileInfo
}

// loaded is one version of the bundle; gen counts the versions.
type loaded struct {
	pool *x509.CertPool
	gen  uint64
}

// New reads file once: a bundle that does not load at start is a
// configuration error. The file is then looked at again at most once per
// interval (0: at every call). log may be nil.
func New(file string, interval time.Duration, log *slog.Logger) (*Pool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	pool, err := Read(file)
	if err != nil {
		return nil, err
	}
	p := &Pool{file: file, interval: interval, log: log, seen: st}
	p.cur.Store(&loaded{pool: pool, gen: 1})
	p.next.Store(time.Now().Add(interval).UnixNano())
	return p, nil
}

// File is the bundle's path.
func (p *Pool) File() string { return p.file }

// Get returns the current pool and its version, which changes whenever a
// new version of the file has loaded.
func (p *Pool) Get() (*x509.CertPool, uint64) {
	if time.Now().UnixNano() >= p.next.Load() {
		p.check()
	}
	l := p.cur.Load()
	return l.pool, l.gen
}

// check re-reads the file if its metadata changed since the last look.
func (p *Pool) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Now().UnixNano() < p.next.Load() {
		return // another caller just looked
	}
	p.next.Store(time.Now().Add(p.interval).UnixNano())
	st, err := os.Stat(p.file)
	if err != nil {
		if p.seen != nil {
			p.log.Warn("CA file unreadable; keeping the certificates read before", "ca_file", p.file, "error", err)
		}
		p.seen = nil
		return
	}
	if p.seen != nil && os.SameFile(st, p.seen) && st.ModTime().Equal(p.seen.ModTime()) && st.Size() == p.seen.Size() {
		return
	}
	p.seen = st
	pool, err := Read(p.file)
	if err != nil {
		p.log.Warn("CA file changed but does not load; keeping the certificates read before", "ca_file", p.file, "error", err)
		return
	}
	gen := p.cur.Load().gen + 1
	p.cur.Store(&loaded{pool: pool, gen: gen})
	p.log.Info("CA file reloaded", "ca_file", p.file)
}

// Transport is an http.RoundTripper that verifies servers with a Pool's
// current roots: when the bundle changes, the next request goes through a
// new transport (its connections verified by the new roots) and the old
// one's idle connections are closed. Connections open at the change finish
// their requests.
type Transport struct {
	pool *Pool
	base *http.Transport // cloned with RootCAs set for each version

	mu  sync.Mutex
	cur atomic.Pointer[versioned]
}

type versioned struct {
	rt  *http.Transport
	gen uint64
}

// NewTransport is base, whose TLS roots become pool's. base is not used
// itself, only cloned.
func NewTransport(pool *Pool, base *http.Transport) *Transport {
	return &Transport{pool: pool, base: base}
}

// RoundTrip sends r through the transport of the pool's current version.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.current().RoundTrip(r)
}

func (t *Transport) current() *http.Transport {
	roots, gen := t.pool.Get()
	if v := t.cur.Load(); v != nil && v.gen == gen {
		return v.rt
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v := t.cur.Load(); v != nil && v.gen == gen {
		return v.rt
	}
	rt := t.base.Clone()
	tc := rt.TLSClientConfig
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc.RootCAs = roots
	rt.TLSClientConfig = tc
	old := t.cur.Swap(&versioned{rt: rt, gen: gen})
	if old != nil {
		old.rt.CloseIdleConnections()
	}
	return rt
}

// CloseIdleConnections closes the idle connections of the current
// transport.
func (t *Transport) CloseIdleConnections() {
	if v := t.cur.Load(); v != nil {
		v.rt.CloseIdleConnections()
	}
}

// ServerConfig serves a TLS listener whose client CAs follow a Pool: base,
// with ClientCAs set to the pool's current version for each handshake
// (tls.Config.GetConfigForClient). Go re-verifies a resumed session's
// client chain against the config of the handshake, so a client whose CA
// was removed cannot resume its way back in.
type ServerConfig struct {
	pool *Pool
	base *tls.Config

	mu  sync.Mutex
	cur atomic.Pointer[serverVersion]
}

type serverVersion struct {
	config *tls.Config
	gen    uint64
}

// NewServerConfig requires and verifies client certificates signed by the
// pool's CAs, on top of base (which must not set GetConfigForClient).
func NewServerConfig(pool *Pool, base *tls.Config) (*ServerConfig, error) {
	if base.GetConfigForClient != nil {
		return nil, errors.New("capool: base already sets GetConfigForClient")
	}
	return &ServerConfig{pool: pool, base: base}, nil
}

// Config is the listener's tls.Config: base, whose GetConfigForClient
// picks the current client CAs.
func (s *ServerConfig) Config() *tls.Config {
	c := s.base.Clone()
	c.GetConfigForClient = s.forClient
	return c
}

func (s *ServerConfig) forClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	roots, gen := s.pool.Get()
	if v := s.cur.Load(); v != nil && v.gen == gen {
		return v.config, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.cur.Load(); v != nil && v.gen == gen {
		return v.config, nil
	}
	c := s.base.Clone()
	c.ClientCAs, c.ClientAuth = roots, tls.RequireAndVerifyClientCert
	s.cur.Store(&serverVersion{config: c, gen: gen})
	return c, nil
}
