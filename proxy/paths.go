package proxy

import (
	"fmt"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/verifier"
)

// PublicPathRules turns PUBLIC_PATHS into public rules, in the policy's
// terms: an exact path stays exact; a prefix "/base/*" is the prefix
// "/base/"; a prefix "/base*" cut inside a segment is the glob "/base*/**",
// which matches exactly the paths starting with "/base". The rules are named
// "public:" and the entry.
func PublicPathRules(list []string) ([]verifier.Rule, error) {
	var rules []verifier.Rule
	for _, p := range list {
		if err := config.CheckPublicPath(p); err != nil {
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
// config.CleanPath.
func cleanPath(p string) string { return config.CleanPath(p) }
