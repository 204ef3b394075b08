package config

import (
	"strings"
	"testing"
)

// FuzzPaths checks the path grammar an attacker controls (the request
// path as net/http decoded it once) against oracles:
//   - CleanPath is rooted, clean and idempotent;
//   - a path AmbiguousPath accepts holds no control byte, no backslash,
//     no percent escape left to decode, and no dot segment with ';'
//     parameters; decoding it again changes nothing, and its cleaned form
//     is accepted too;
//   - PathReadings starts with CleanPath, lists each reading once, and
//     every reading is itself clean.
func FuzzPaths(f *testing.F) {
	for _, s := range []string{"/", "", "/a/../b", "/public/..;/admin", "/a%2e%2e/b", "/a\\b", "/a\x00b", "/a;b/c", "/x/%252e", "/docs/", "*", "/.;/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c := CleanPath(p)
		if !strings.HasPrefix(c, "/") || CleanPath(c) != c {
			t.Fatalf("CleanPath(%q) = %q: not rooted or not idempotent (%q)", p, c, CleanPath(c))
		}
		for _, bad := range []string{"//", "/./", "/../"} {
			if strings.Contains(c, bad) {
				t.Fatalf("CleanPath(%q) = %q holds %q", p, c, bad)
			}
		}
		if strings.HasSuffix(c, "/.") || strings.HasSuffix(c, "/..") {
			t.Fatalf("CleanPath(%q) = %q ends in a dot segment", p, c)
		}
		if AmbiguousPath(p) == "" {
			for i := 0; i < len(p); i++ {
				if b := p[i]; b < 0x20 || b == 0x7f || b == '\\' {
					t.Fatalf("AmbiguousPath accepted %q with byte %#x", p, b)
				}
			}
			if decodeAgain(p) != p {
				t.Fatalf("AmbiguousPath accepted %q, which decodes again to %q", p, decodeAgain(p))
			}
			for _, seg := range strings.Split(p, "/") {
				if name, _, ok := strings.Cut(seg, ";"); ok && (name == "." || name == "..") {
					t.Fatalf("AmbiguousPath accepted %q with segment %q", p, seg)
				}
			}
			if why := AmbiguousPath(c); why != "" {
				t.Fatalf("AmbiguousPath accepted %q but refuses its cleaned form %q: %s", p, c, why)
			}
		}
		rs := PathReadings(p)
		if len(rs) == 0 || rs[0] != c {
			t.Fatalf("PathReadings(%q) = %q, want CleanPath first", p, rs)
		}
		seen := map[string]bool{}
		for _, r := range rs {
			if seen[r] || CleanPath(r) != r {
				t.Fatalf("PathReadings(%q) = %q: %q repeated or not clean", p, rs, r)
			}
			seen[r] = true
		}
	})
}
