package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// rewrite builds the outbound request. ReverseProxy has already removed
// hop-by-hop headers, the client's Forwarded and X-Forwarded-* headers and
// unparsable query parameters from pr.Out, and put a requested Upgrade back;
// an upgrade to HTTP/2 is taken out again here.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	// SPEC: the request is forwarded with the same cleaned path that was
	// matched against PUBLIC_PATHS, so "/public/../admin" arrives as "/admin".
	if c := config.CleanPath(pr.In.URL.Path); c != out.URL.Path || out.URL.RawPath != "" {
		out.URL.Path, out.URL.RawPath = c, ""
	}
	// Keep the inbound chain, as the SetXForwarded docs describe.
	if xff := pr.In.Header["X-Forwarded-For"]; xff != nil {
		out.Header["X-Forwarded-For"] = xff
	}
	pr.SetURL(p.upstream)
	pr.SetXForwarded()
	dropHTTP2Upgrade(out.Header)
}

// stripToken removes the token from where the Verifier found it, and only
// the token: other cookies and query parameters stay. It runs on the inbound
// request, before ReverseProxy clones it and SetURL adds the upstream's query.
func stripToken(out *http.Request, from config.Lookup) {
	switch from.Kind {
	case config.InHeader:
		out.Header.Del(from.Name)
	case config.InCookie:
		removeCookie(out.Header, from.Name)
	case config.InQuery:
		out.URL.RawQuery = removeQueryParam(out.URL.RawQuery, from.Name)
	default:
		// A Verifier that does not say where the token was: drop the
		// default place, so a token is never forwarded by accident.
		out.Header.Del("Authorization")
	}
}

// removeCookie removes every cookie called name from the Cookie header
// lines, keeping the others in order.
func removeCookie(h http.Header, name string) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	kept := make([]string, 0, len(lines))
	for _, line := range lines {
		if !strings.Contains(line, name) {
			kept = append(kept, line)
			continue
		}
		var b strings.Builder
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			// Cookie names compare exactly, as net/http reads them.
			if n, _, _ := strings.Cut(part, "="); strings.TrimSpace(n) == name {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

// removeQueryParam removes every parameter called name from a raw query,
// keeping the others byte for byte. Names compare after unescaping, as
// url.ParseQuery (which found the token) reads them.
func removeQueryParam(raw, name string) string {
	if raw == "" {
		return raw
	}
	var b strings.Builder
	removed := false
	for part := range strings.SplitSeq(raw, "&") {
		key, _, _ := strings.Cut(part, "=")
		if queryKey(key) == name {
			removed = true
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	if !removed {
		return raw
	}
	return b.String()
}

func queryKey(k string) string {
	if !strings.ContainsAny(k, "%+") {
		return k
	}
	if u, err := url.QueryUnescape(k); err == nil {
		return u
	}
	return k
}

// upstreamError answers a request the upstream did not answer: 504 when it
// was too slow, 502 when it could not be reached, and nothing at all when
// the client has gone. It never panics.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	kind := upstreamKind(r.Context(), err)
	p.rec.UpstreamError(kind)
	level := slog.LevelWarn
	if kind == UpstreamCanceled {
		level = slog.LevelDebug
	}
	p.log.LogAttrs(r.Context(), level, "upstream request failed",
		slog.String("request_id", requestIDOf(r)),
		slog.String("kind", kind),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("remote_addr", r.RemoteAddr),
		slog.Any("error", err),
	)
	switch kind {
	case UpstreamCanceled:
		// Nobody is listening; a response would only log a broken pipe.
	case UpstreamTimeout:
		writeRefusal(w, r, p.timeoutGW)
	default:
		writeRefusal(w, r, p.badGW)
	}
}

func upstreamKind(ctx context.Context, err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
		return UpstreamCanceled
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return UpstreamTimeout
	}
	return UpstreamUnreachable
}

// newTransport is the pooled upstream transport: http.DefaultTransport's
// dial and TLS settings, with every idle connection kept for the one
// upstream, and no environment proxy (a sidecar talks to its upstream
// directly). Compression is left to the client and the upstream: the proxy
// passes bodies through instead of inflating them.
func newTransport(maxIdle int, headerTimeout time.Duration) *http.Transport {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		t = &http.Transport{ForceAttemptHTTP2: true, IdleConnTimeout: 90 * time.Second}
	}
	t.Proxy = nil
	t.MaxIdleConns = maxIdle
	t.MaxIdleConnsPerHost = maxIdle
	t.ResponseHeaderTimeout = headerTimeout
	t.DisableCompression = true
	// 1 KiB connection buffers instead of 4 KiB: request and response heads
	// of a typical API fit, longer ones take another read, and bodies
	// stream through the copy buffer anyway. At 256 upstream connections
	// this is 1.5 MiB less live heap, about 3 MiB less RSS.
	t.ReadBufferSize, t.WriteBufferSize = 1<<10, 1<<10
	return t
}

// timedTransport observes the time to the upstream's response headers.
// With the access log on, it also notes the time in the request's entry.
type timedTransport struct {
	next      http.RoundTripper
	rec       Recorder
	access    bool
	tracer    Tracer           // nil: tracing off
	exemplars ExemplarRecorder // nil: no exemplars
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.next.RoundTrip(r)
	d := time.Since(start)
	if err == nil {
		t.observe(r, d)
	}
	if t.access {
		if e := entryOf(r.Context()); e != nil {
			e.upstream = d
		}
	}
	return res, err
}

// observe records the upstream's time, with the trace as exemplar when the
// request's span is sampled.
func (t *timedTransport) observe(r *http.Request, d time.Duration) {
	if t.exemplars != nil {
		if id := t.tracer.TraceID(r.Context()); id != "" {
			t.exemplars.UpstreamInTrace(d, id)
			return
		}
	}
	t.rec.Upstream(d)
}

// CloseIdleConnections closes idle upstream connections, e.g. at shutdown.
func (p *Proxy) CloseIdleConnections() {
	if c, ok := p.transport.(*timedTransport).next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// bufferSize is the copy buffer of one proxied body: 4 KiB, one page, the
// size of nginx's proxy buffers on most platforms. Bodies of any size stream
// through it; at 256 concurrent requests the pool holds 1 MiB, not 8 MiB.
const bufferSize = 4 << 10

// bufferPool recycles copy buffers. It pools array pointers, so Put does not
// allocate (a []byte in a sync.Pool would).
type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([bufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.pool.Get().(*[bufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < bufferSize {
		return
	}
	b.pool.Put((*[bufferSize]byte)(buf[:bufferSize]))
}
