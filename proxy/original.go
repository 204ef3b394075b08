package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// The original-request headers a forward-auth proxy sends with a decision
// request, in net/http's canonical spelling: nginx's auth_request (set by
// the operator with proxy_set_header), ingress-nginx's X-Original-URL, and
// Traefik's forwardAuth and Caddy's forward_auth.
const (
	OriginalMethodHeader  = "X-Original-Method"
	OriginalURIHeader     = "X-Original-Uri" // X-Original-URI
	OriginalURLHeader     = "X-Original-Url" // X-Original-URL: absolute
	ForwardedMethodHeader = "X-Forwarded-Method"
	ForwardedURIHeader    = "X-Forwarded-Uri"
	ForwardedHostHeader   = "X-Forwarded-Host"
)

// originalHeaders are the headers that say which request a decision is
// about. Only a trusted proxy may send them: they choose the rule.
var originalHeaders = []string{
	OriginalMethodHeader, OriginalURIHeader, OriginalURLHeader,
	ForwardedMethodHeader, ForwardedURIHeader, ForwardedHostHeader,
}

// Original is the request a decision is about, as a forward-auth proxy
// described it. Empty Method or Host: the proxy did not say, and the
// decision request's own apply.
type Original struct {
	Method string
	Host   string
	// URL holds the path (and its escaped form) and the raw query, as a
	// server request's URL does.
	URL *url.URL
}

// hasOriginal reports whether h carries any original-request header.
func hasOriginal(h http.Header) bool {
	for _, k := range originalHeaders {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// ParseOriginal reads the original request from the headers of a decision
// request. The input is attacker-controlled wherever a proxy passes a
// client's header through, so it is strict: each header at most one line;
// where two headers say the same thing (X-Original-URI and
// X-Forwarded-Uri, the two methods, X-Forwarded-Host and X-Original-URL's
// host) they must agree; the URI is origin-form ("/path?query", RFC 9112
// §3.2.1) without a fragment, spaces or control bytes; the method is an
// RFC 9110 token; the host a host[:port] without anything else. Path
// strictness (ambiguous paths) and cleaning are left to the proxy's one
// decision, as for proxied requests.
func ParseOriginal(h http.Header) (Original, error) {
	var o Original
	uri, err := agree(h, OriginalURIHeader, ForwardedURIHeader)
	if err != nil {
		return o, err
	}
	host, err := one(h, ForwardedHostHeader)
	if err != nil {
		return o, err
	}
	full, err := one(h, OriginalURLHeader)
	if err != nil {
		return o, err
	}
	if full != "" {
		u, err := url.Parse(full)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			return o, errors.New(OriginalURLHeader + ": not an absolute http(s) URL without credentials or fragment")
		}
		ru := u.EscapedPath()
		if ru == "" {
			ru = "/"
		}
		if u.RawQuery != "" || u.ForceQuery {
			ru += "?" + u.RawQuery
		}
		switch {
		case uri == "":
			uri = ru
		case uri != ru:
			return o, errors.New(OriginalURLHeader + " and " + OriginalURIHeader + " name different requests")
		}
		switch {
		case host == "":
			host = u.Host
		case !strings.EqualFold(host, u.Host):
			return o, errors.New(OriginalURLHeader + " and " + ForwardedHostHeader + " name different hosts")
		}
	}
	if uri == "" {
		return o, errors.New("no original URI: want X-Original-URI, X-Forwarded-Uri or X-Original-URL")
	}
	if o.URL, err = parseRequestURI(uri); err != nil {
		return o, err
	}
	if o.Method, err = agree(h, OriginalMethodHeader, ForwardedMethodHeader); err != nil {
		return o, err
	}
	if o.Method != "" && !validMethod(o.Method) {
		return o, errors.New("original method: not an HTTP method token")
	}
	if host != "" && !validHost(host) {
		return o, errors.New(ForwardedHostHeader + ": not one host[:port]")
	}
	o.Host = host
	return o, nil
}

// one is the single value of header k: "" when absent, an error when it
// comes in several lines (a proxy that appended to a client's value).
func one(h http.Header, k string) (string, error) {
	v := h[k]
	switch len(v) {
	case 0:
		return "", nil
	case 1:
		if v[0] == "" {
			return "", errors.New(k + ": empty")
		}
		return v[0], nil
	}
	return "", errors.New(k + ": more than one line")
}

// agree is the one value of headers a and b, which must be equal when both
// are present.
func agree(h http.Header, a, b string) (string, error) {
	va, err := one(h, a)
	if err != nil {
		return "", err
	}
	vb, err := one(h, b)
	if err != nil {
		return "", err
	}
	if va != "" && vb != "" && va != vb {
		return "", errors.New(a + " and " + b + " differ")
	}
	if va != "" {
		return va, nil
	}
	return vb, nil
}

// parseRequestURI parses an origin-form request target.
func parseRequestURI(raw string) (*url.URL, error) {
	if raw[0] != '/' || strings.HasPrefix(raw, "//") {
		return nil, errors.New("original URI: not origin-form (/path?query)")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return nil, errors.New("original URI: a space, control byte, fragment or non-ASCII byte")
		}
	}
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return nil, errors.New("original URI: unparsable")
	}
	return u, nil
}

// validMethod reports whether m is an RFC 9110 §9.1 method token.
func validMethod(m string) bool {
	if len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHost reports whether h is one host[:port]: a DNS name, an IPv4
// address or a bracketed IPv6 address, and nothing else (no list, no
// scheme, no path, no user).
func validHost(h string) bool {
	if len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	u, err := url.Parse("http://" + h)
	return err == nil && u.Host == h && u.Path == ""
}
