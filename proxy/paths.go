package proxy

import (
	"fmt"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/verifier"
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

// PublicPathRules turns PUBLIC_PATHS into public rules, in the policy's
// terms: an exact path stays exact; a prefix "/base/*" is the prefix
// "/base/"; a prefix "/base*" cut inside a segment is the glob "/base*/**",
// which matches exactly the paths starting with "/base". The rules are named
// "public:" and the entry.
func PublicPathRules(list []string) ([]verifier.Rule, error) {
	var rules []verifier.Rule
	for _, p := range list {
		if err := checkPublicPath(p); err != nil {
			return nil, fmt.Errorf("public paths: %w", err)
		}
		m := verifier.Match{Path: p}
		if base, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasSuffix(base, "/") {
				m = verifier.Match{Prefix: base}
			} else {
				m = verifier.Match{Glob: base + "*/**"}
			}
		}
		rules = append(rules, verifier.Rule{Name: "public:" + p, Match: m, Require: verifier.Requirement{Kind: verifier.RequirePublic}})
	}
	return rules, nil
}

// cleanPath is the one path the proxy both matches and forwards (SPEC); see
// verifier.CleanPath.
func cleanPath(p string) string { return verifier.CleanPath(p) }
