package dpop

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// NormalizeURI returns the form of an http(s) URI that htu is compared in
// (RFC 9449 §4.3 check 9): query and fragment dropped, then RFC 3986
// syntax-based normalization (§6.2.2: scheme and host lower case,
// percent-encodings upper case and unreserved characters decoded, dot
// segments removed) and scheme-based normalization (§6.2.3: the default
// port dropped, an empty path is "/"). Userinfo is refused: it has no place
// in a request target.
func NormalizeURI(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("not an http or https URI")
	}
	if u.User != nil {
		return "", errors.New("a URI with userinfo")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", errors.New("a URI without host")
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") {
		host += ":" + port
	}
	p := normalizePercent(u.EscapedPath())
	p = removeDotSegments(p)
	if p == "" {
		p = "/"
	}
	return scheme + "://" + host + p, nil
}

// normalizePercent upper-cases the hex digits of percent-encodings and
// decodes those of unreserved characters (RFC 3986 §6.2.2.1, §6.2.2.2).
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			b.WriteByte(p[i])
			continue
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(p[i+1 : i+3]))
		}
		i += 2
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// removeDotSegments is RFC 3986 §5.2.4.
func removeDotSegments(in string) string {
	var out []string
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "/..":
			in = "/"
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "." || in == "..":
			in = ""
		default:
			i := strings.IndexByte(in[1:], '/')
			if i < 0 {
				out, in = append(out, in), ""
			} else {
				out, in = append(out, in[:i+1]), in[i+1:]
			}
		}
	}
	return strings.Join(out, "")
}

// Target builds the URI a client addressed, the one its proof's htu names.
// A sidecar sees its own listener; behind a TLS-terminating load balancer or
// an ingress the client addressed another scheme and host. Set exactly one
// of the two ways to know them, or neither when clients reach the sidecar
// directly:
//   - ExternalURL (DPOP_EXTERNAL_URL) fixes scheme, host and an optional path
//     prefix, e.g. https://api.example.com or https://example.com/api when
//     the proxy in front strips /api. Robust: nothing from the request.
//   - TrustForwarded (DPOP_TRUST_FORWARDED) takes X-Forwarded-Proto and
//     X-Forwarded-Host from the request. Only safe when every request comes
//     through a proxy that sets (not appends to) both headers; a client that
//     can reach the sidecar directly could otherwise name any URI, though it
//     still needs a proof signed by the token's key for it.
//
// Without either, the scheme is https when the connection was TLS and http
// otherwise, and the host is the Host header.
type Target struct {
	ExternalURL    *url.URL
	TrustForwarded bool
}

// URI returns the target URI of r, not yet normalized: Check normalizes
// both sides. The path is the one the client sent (r.URL.EscapedPath()).
func (t Target) URI(r *http.Request) string {
	path := r.URL.EscapedPath()
	if t.ExternalURL != nil {
		return t.ExternalURL.Scheme + "://" + t.ExternalURL.Host + strings.TrimSuffix(t.ExternalURL.EscapedPath(), "/") + path
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if t.TrustForwarded {
		if p := first(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if h := first(r.Header.Get("X-Forwarded-Host")); h != "" {
			host = h
		}
	}
	return scheme + "://" + host + path
}

// first is the first element of a comma-separated header value: the one
// the outermost proxy wrote.
func first(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}
