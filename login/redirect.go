package login

import (
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// safeReturn checks a URL to send the browser to after login or sign-out.
// It accepts a path on this host ("/app?x=1") or an absolute URL whose
// host is the request's own or an allowed one; it refuses everything a
// browser might read as another host: "//evil", "/\evil", "https://evil",
// their percent-encoded and control-character variants, and userinfo
// tricks. The answer is the URL to redirect to.
func (l *Login) safeReturn(r *http.Request, raw string) (string, bool) {
	if raw == "" || len(raw) > 2048 {
		return "", false
	}
	// Browsers drop tab, CR and LF inside URLs and read "\" as "/" (WHATWG
	// URL), so "/\evil" and "/\t/evil" mean "//evil". Checking the
	// decoded form too refuses "/%2F%2Fevil" and "/%5Cevil", which some
	// servers decode before they redirect.
	for _, s := range []string{raw, decodeAll(raw)} {
		if strings.IndexFunc(s, func(c rune) bool { return c < 0x20 || c == 0x7f || c == '\\' }) >= 0 {
			return "", false
		}
		if strings.HasPrefix(s, "//") {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil {
		return "", false
	}
	if u.Scheme == "" && u.Host == "" {
		if !strings.HasPrefix(raw, "/") {
			return "", false // "evil.com/x" or "javascript:..." without scheme parse
		}
		return raw, true
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && l.opts.PlainHTTP) {
		return "", false
	}
	// Only plain ASCII host names: an IDN or a percent-encoded host is
	// read differently by different parsers.
	if u.Host == "" || strings.IndexFunc(u.Host, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c))
	}) >= 0 || !l.hostAllowed(r, u.Host) {
		return "", false
	}
	return u.String(), true
}

// decodeAll percent-decodes s until it stops changing (at most a few
// rounds), so double encoding hides nothing.
func decodeAll(s string) string {
	for range 4 {
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			return d
		}
		s = d
	}
	return s
}

// hostAllowed reports whether host (with optional port) is the request's
// own host or in AllowedRedirectHosts: exactly, or under a ".domain".
func (l *Login) hostAllowed(r *http.Request, host string) bool {
	host = strings.ToLower(host)
	if host == strings.ToLower(r.Host) {
		return true
	}
	name := host
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		name = h
	}
	for _, a := range l.opts.AllowedRedirectHosts {
		a = strings.ToLower(a)
		if name == a || (strings.HasPrefix(a, ".") && strings.HasSuffix(name, a)) {
			return true
		}
	}
	return false
}

// Wants reports whether a request that carries no token should be sent to
// login: a browser navigation, that is a GET that accepts text/html, sent
// without X-Requested-With and, when the browser says (Fetch Metadata),
// with Sec-Fetch-Mode navigate. Anything else (an API client, fetch or
// XMLHttpRequest, a form POST) gets the usual 401: a redirect to an HTML
// login page is no answer a program can use.
func (l *Login) Wants(r *http.Request) bool {
	if r.Method != http.MethodGet || r.Header.Get("X-Requested-With") != "" {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return false
	}
	return acceptsHTML(r.Header.Values("Accept"))
}

// acceptsHTML reports whether an Accept header names text/html with a
// non-zero quality. "*/*" alone does not count: curl and most HTTP
// libraries send it, browsers navigating always name text/html.
func acceptsHTML(accept []string) bool {
	for _, line := range accept {
		for part := range strings.SplitSeq(line, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "text/html" {
				continue
			}
			if q, ok := params["q"]; ok && strings.Trim(q, "0.") == "" {
				continue // q=0, q=0.0, q=0.000: not acceptable (RFC 9110 §12.4.2)
			}
			return true
		}
	}
	return false
}
