package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Upstream URL schemes beyond http and https.
const (
	// SchemeH2C is HTTP/2 over cleartext TCP with prior knowledge: what
	// gRPC servers speak (Traefik names it the same way).
	SchemeH2C = "h2c"
	// SchemeUnix is HTTP/1.1 over a unix domain socket: unix:///path.sock.
	SchemeUnix = "unix"
)

// unixHost is the Host header sent to a unix-socket upstream, as nginx
// sends for proxy_pass http://unix:/path.
const unixHost = "localhost"

// upstreamTarget splits UPSTREAM_URL into the URL that requests are
// rewritten to (always http or https) and, for a unix socket, the socket's
// path.
func upstreamTarget(u *url.URL) (target *url.URL, socket string, err error) {
	if u == nil {
		return nil, "", errors.New("upstream: an absolute URL is required")
	}
	t := *u
	switch u.Scheme {
	case "http", "https":
	case SchemeH2C:
		t.Scheme = "http"
	case SchemeUnix:
		if u.Host != "" || u.Path == "" || u.Path == "/" {
			return nil, "", fmt.Errorf("upstream: want unix:///absolute/path.sock, not %q", u.Redacted())
		}
		socket = u.Path
		t = url.URL{Scheme: "http", Host: unixHost}
		return &t, socket, nil
	default:
		return nil, "", fmt.Errorf("upstream: scheme %q is not http, https, h2c or unix", u.Scheme)
	}
	if u.Host == "" {
		return nil, "", errors.New("upstream: an absolute URL is required")
	}
	return &t, "", nil
}

// upstreamTransport is the pooled transport for the upstream's scheme:
// HTTP/1.1 (and HTTP/2 by ALPN for https) by default, HTTP/2 prior
// knowledge only for h2c, and a fixed dial to the socket for unix. tlsConf
// (nil: system roots) is used for https.
func upstreamTransport(scheme, socket string, tlsConf *tls.Config, maxIdle int, headerTimeout time.Duration) *http.Transport {
	t := newTransport(maxIdle, headerTimeout)
	switch scheme {
	case "https":
		if tlsConf != nil {
			t.TLSClientConfig = tlsConf.Clone()
		}
	case SchemeH2C:
		// Only HTTP/2 without TLS: net/http then speaks prior knowledge
		// to http:// URLs. gRPC streams need their own h2 frames, so the
		// 1 KiB HTTP/1 buffers do not apply.
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		t.Protocols = &p
	case SchemeUnix:
		var d net.Dialer
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		}
		t.ForceAttemptHTTP2 = false
	}
	return t
}
