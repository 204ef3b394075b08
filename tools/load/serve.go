//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Hidden subcommands: the load run re-executes itself with one of these so
// that the upstream and the plain reverse proxy are processes of their own.
// Their listeners arrive already bound as inherited file descriptors, so the
// parent knows the addresses without a race for a free port.
const (
	cmdUpstream     = "__upstream"
	cmdReverseProxy = "__reverseproxy"
)

// Inherited descriptors: exec.Cmd.ExtraFiles[i] becomes fd 3+i.
const (
	fdListener = 3
	fdStats    = 4 // the upstream's stats listener
)

// Upstream paths. echoPath answers what the upstream received, so the
// preflight can see claim headers and a stripped token; statsPath is served
// on the separate stats listener so that reading it opens no counted
// connection.
const (
	echoPath  = "/__load/echo"
	statsPath = "/stats"
)

// upstreamBody is the short fixed body every load request gets.
var upstreamBody = []byte("ok\n")

// serveUpstream is the upstream: 200 with a short fixed body. It counts
// accepted connections (StateNew) and requests; the stats listener reports
// both as "CONNS REQUESTS".
func serveUpstream(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmdUpstream, flag.ContinueOnError)
	fs.SetOutput(stderr)
	lifetime := fs.Duration("lifetime", 10*time.Minute, "exit after this long, whatever happens")
	if err := fs.Parse(args); err != nil {
		return exitFail
	}
	ln, statsLn, err := upstreamListeners()
	if err != nil {
		fmt.Fprintf(stderr, "upstream: %v\n", err)
		return exitFail
	}

	var conns, requests atomic.Int64
	contentLength := []string{strconv.Itoa(len(upstreamBody))}
	contentType := []string{"text/plain; charset=utf-8"}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			if r.URL.Path == echoPath {
				_, hasToken := r.Header["Authorization"]
				fmt.Fprintf(w, "sub=%s auth=%t\n", r.Header.Get(subjectHeader), hasToken)
				return
			}
			h := w.Header()
			h["Content-Length"] = contentLength
			h["Content-Type"] = contentType
			_, _ = w.Write(upstreamBody)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	stats := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "%d %d\n", conns.Load(), requests.Load())
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return serveUntil(ctx, *lifetime, stderr, map[*http.Server]net.Listener{srv: ln, stats: statsLn})
}

// serveReverseProxy is the plain pooled reverse proxy: no auth, the baseline
// jwt-sidecar is compared with.
func serveReverseProxy(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmdReverseProxy, flag.ContinueOnError)
	fs.SetOutput(stderr)
	lifetime := fs.Duration("lifetime", 10*time.Minute, "exit after this long, whatever happens")
	upstream := fs.String("upstream", "", "upstream URL")
	h2c := fs.Bool("h2c", false, "HTTP/2 cleartext both ways (prior knowledge): the gRPC baseline")
	if err := fs.Parse(args); err != nil {
		return exitFail
	}
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		fmt.Fprintf(stderr, "reverseproxy: -upstream: bad URL %q\n", *upstream)
		return exitFail
	}
	ln, err := inheritedListener(fdListener)
	if err != nil {
		fmt.Fprintf(stderr, "reverseproxy: %v\n", err)
		return exitFail
	}
	rp := &httputil.ReverseProxy{
		// The Rewrite that net/http/httputil's documentation shows: any
		// proxy in front of an app sets X-Forwarded-*, so the baseline does.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			Proxy:               nil, // never an environment proxy on 127.0.0.1
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
		},
		BufferPool: newBufferPool(32 << 10),
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	if *h2c {
		// As jwt-sidecar's plain listener and h2c:// upstream do.
		var in, out http.Protocols
		in.SetHTTP1(true)
		in.SetUnencryptedHTTP2(true)
		out.SetUnencryptedHTTP2(true)
		srv.Protocols = &in
		rp.Transport.(*http.Transport).Protocols = &out
	}
	return serveUntil(ctx, *lifetime, stderr, map[*http.Server]net.Listener{srv: ln})
}

// bufferPool is an httputil.BufferPool over sync.Pool.
type bufferPool struct{ pool sync.Pool }

func newBufferPool(size int) *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}}}
}

func (p *bufferPool) Get() []byte { return *p.pool.Get().(*[]byte) }

func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

// upstreamListeners are the listener and the stats listener the parent
// bound and handed over.
func upstreamListeners() (ln, stats net.Listener, err error) {
	if ln, err = inheritedListener(fdListener); err != nil {
		return nil, nil, err
	}
	if stats, err = inheritedListener(fdStats); err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, stats, nil
}

func inheritedListener(fd uintptr) (net.Listener, error) {
	f := os.NewFile(fd, fmt.Sprintf("listener-fd%d", fd))
	if f == nil {
		return nil, fmt.Errorf("no inherited listener on fd %d", fd)
	}
	ln, err := net.FileListener(f)
	_ = f.Close() // FileListener holds its own duplicate
	if err != nil {
		return nil, fmt.Errorf("fd %d: %w", fd, err)
	}
	return ln, nil
}

// serveUntil serves every server on its listener until ctx ends (SIGTERM from
// the parent) or lifetime passes, so an orphan always stops by itself.
func serveUntil(ctx context.Context, lifetime time.Duration, stderr io.Writer, servers map[*http.Server]net.Listener) int {
	ctx, cancel := context.WithTimeout(ctx, lifetime)
	defer cancel()
	errc := make(chan error, len(servers))
	for srv, ln := range servers {
		go func() { errc <- srv.Serve(ln) }()
	}
	code := exitOK
	select {
	case <-ctx.Done():
	case err := <-errc:
		fmt.Fprintf(stderr, "serve: %v\n", err)
		code = exitFail
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 2*time.Second)
	defer stop()
	for srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(stderr, "shutdown: %v\n", err)
		}
	}
	return code
}
