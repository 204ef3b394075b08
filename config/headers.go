package config

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"
)

// ClaimHeader maps one claim to one upstream header (CLAIMS_TO_HEADERS).
type ClaimHeader struct {
	// Claim is a dotted path, e.g. "realm_access.roles" (Claims.Lookup).
	Claim string
	// Header is the upstream header name, canonical.
	Header string
}

// ClaimHeaders is CLAIMS_TO_HEADERS, parsed.
type ClaimHeaders []ClaimHeader

// UnmarshalText parses CLAIMS_TO_HEADERS (ParseClaimHeaders).
func (hs *ClaimHeaders) UnmarshalText(b []byte) error {
	out, err := ParseClaimHeaders(string(b))
	*hs = out
	return err
}

// String is the CLAIMS_TO_HEADERS form.
func (hs ClaimHeaders) String() string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = h.Claim + "=" + h.Header
	}
	return strings.Join(parts, ",")
}

// reservedHeaders may never carry a claim: hop-by-hop headers (RFC 9110
// §7.6.1), headers that frame or route the message, and the credentials and
// forwarding headers the proxy itself manages.
var reservedHeaders = []string{
	"Authorization", "Connection", "Content-Encoding", "Content-Length", "Content-Type",
	"Cookie", "Expect", "Forwarded", "Host", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding",
	"Upgrade", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
}

// ParseClaimHeaders parses CLAIMS_TO_HEADERS: comma-separated CLAIM=HEADER
// entries, e.g. "sub=X-Auth-Subject,realm_access.roles=X-Auth-Roles". It
// refuses an entry without '=', an empty claim, an invalid or reserved header
// name, and a header named twice (as SameHeader compares them).
func ParseClaimHeaders(spec string) ([]ClaimHeader, error) {
	var out []ClaimHeader
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		claim, header, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want CLAIM=HEADER", item)
		}
		claim = strings.TrimSpace(claim)
		if claim == "" {
			return nil, fmt.Errorf("%q: empty claim", item)
		}
		h, err := CheckHeaderName(strings.TrimSpace(header))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		if seen[HeaderKey(h)] {
			return nil, fmt.Errorf("%q: header %s is mapped twice", item, h)
		}
		seen[HeaderKey(h)] = true
		out = append(out, ClaimHeader{Claim: claim, Header: h})
	}
	return out, nil
}

// CheckHeaderName validates a header the proxy will set and returns its
// canonical form.
func CheckHeaderName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty header name")
	}
	for i := 0; i < len(name); i++ {
		if !tchar(name[i]) {
			return "", fmt.Errorf("%q is not a valid header name", name)
		}
	}
	c := textproto.CanonicalMIMEHeaderKey(name)
	for _, r := range reservedHeaders {
		if SameHeader(r, c) {
			return "", fmt.Errorf("header %s is reserved", c)
		}
	}
	return c, nil
}

// tchar reports whether c may appear in a header name (RFC 9110 §5.6.2).
func tchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// SameHeader reports whether two header names are one header to some
// upstream: equal ignoring ASCII case, with '_' and '.' equal to '-'. CGI,
// WSGI, Rack, PHP, nginx with underscores_in_headers and several Java and
// Node frameworks fold those spellings into one name, so a client could
// forge X-Auth-Subject as X_Auth_Subject or X.Auth.Subject. This is the one
// definition of "the same header": the scrub, the configuration checks and
// the injector all use it.
func SameHeader(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if FoldHeaderByte(a[i]) != FoldHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

// FoldHeaderByte is one byte of a header name as SameHeader compares it.
func FoldHeaderByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_', c == '.':
		return '-'
	}
	return c
}

// HeaderKey is the form under which SameHeader considers names equal.
func HeaderKey(name string) string {
	b := []byte(name)
	for i, c := range b {
		b[i] = FoldHeaderByte(c)
	}
	return string(b)
}
