package proxy

import (
	"fmt"
	"path"
	"strings"
)

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
		if err := checkPublicPath(item); err != nil {
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

func checkPublicPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q: a public path starts with /", p)
	}
	base := strings.TrimSuffix(p, "*")
	if strings.ContainsAny(base, "*") {
		return fmt.Errorf("%q: '*' may only end a public path", p)
	}
	if c := cleanPath(base); c != base {
		return fmt.Errorf("%q is not a clean path (did you mean %q?)", p, c+p[len(base):])
	}
	return nil
}

// publicPaths matches cleaned request paths against PUBLIC_PATHS.
type publicPaths struct {
	exact    map[string]bool
	prefixes []string
}

func compilePublicPaths(list []string) (publicPaths, error) {
	var pp publicPaths
	for _, p := range list {
		if err := checkPublicPath(p); err != nil {
			return publicPaths{}, fmt.Errorf("public paths: %w", err)
		}
		if base, ok := strings.CutSuffix(p, "*"); ok {
			pp.prefixes = append(pp.prefixes, base)
			continue
		}
		if pp.exact == nil {
			pp.exact = map[string]bool{}
		}
		pp.exact[p] = true
	}
	return pp, nil
}

func (pp *publicPaths) match(p string) bool {
	if pp.exact[p] {
		return true
	}
	for _, prefix := range pp.prefixes {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// cleanPath is the one path the proxy both matches and forwards (SPEC): the
// request path as net/http decoded it (percent-decoding done once), rooted,
// without "." or ".." elements or repeated slashes, keeping a trailing slash
// ("/docs/" stays "/docs/"). It does not allocate for a path already clean.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p // e.g. "*" in OPTIONS *: never matches a public path
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
