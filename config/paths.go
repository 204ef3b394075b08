package config

import (
	"fmt"
	"path"
	"strings"
)

// CleanPath is the one path a policy matches and the proxy forwards: the
// request path as net/http decoded it (percent-decoding done once, so %2F
// is already '/'), rooted, without "." or ".." elements or repeated
// slashes, keeping a trailing slash ("/docs/" stays "/docs/"). It does not
// allocate for a path already clean.
func CleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p // e.g. "*" in OPTIONS *: never matches a rule's path
	}
	c := path.Clean(p)
	if c == "/" || p[len(p)-1] != '/' {
		return c
	}
	if len(p) == len(c)+1 && p[:len(c)] == c {
		return p
	}
	return c + "/"
}

// PublicPaths is PUBLIC_PATHS, parsed.
type PublicPaths []string

// UnmarshalText parses PUBLIC_PATHS (ParsePublicPaths).
func (ps *PublicPaths) UnmarshalText(b []byte) error {
	out, err := ParsePublicPaths(string(b))
	*ps = out
	return err
}

// ParsePublicPaths parses PUBLIC_PATHS: comma-separated paths served without
// a token, each exact ("/healthz") or a prefix ending in '*' ("/public/*").
// A path must start with '/' and be clean (no "..", ".", or "//"), because it
// is matched against the cleaned request path and could never match
// otherwise.
func ParsePublicPaths(spec string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if err := CheckPublicPath(item); err != nil {
			return nil, err
		}
		for _, seen := range out {
			if seen == item {
				return nil, fmt.Errorf("%q is listed twice", item)
			}
		}
		out = append(out, item)
	}
	return out, nil
}

// CheckPublicPath checks one PUBLIC_PATHS entry.
func CheckPublicPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q: a public path starts with /", p)
	}
	base := strings.TrimSuffix(p, "*")
	if strings.ContainsAny(base, "*") {
		return fmt.Errorf("%q: '*' may only end a public path", p)
	}
	if c := CleanPath(base); c != base {
		return fmt.Errorf("%q is not a clean path (did you mean %q?)", p, c+p[len(base):])
	}
	return nil
}
