package policy

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// Match says which requests a rule applies to. Exactly one of Path, Prefix
// and Glob is set; each is matched against the cleaned path (CleanPath).
type Match struct {
	// Path matches exactly one path; "/docs" does not match "/docs/".
	Path string
	// Prefix matches a path and everything below it, by whole segments:
	// "/api" matches "/api", "/api/" and "/api/v1", never "/apix". A prefix
	// ending in '/' ("/api/") does not match the bare "/api".
	Prefix string
	// Glob matches segment by segment: '*' is any run of characters within
	// one segment, a whole segment "**" is any number of segments (none
	// included). "/api/*/items" matches "/api/v1/items"; "/api/**" matches
	// "/api", "/api/" and "/api/a/b".
	Glob string
	// Methods lists the methods matched, exactly (HTTP methods are case
	// sensitive); empty matches every method.
	Methods []string
	// Hosts lists the hosts matched (the Host header without its port,
	// ignoring case): "api.example.com", or "*.example.com" for any name
	// below example.com. Empty matches every host.
	Hosts []string
}

// Mismatch says which part of a Match a request failed; Matched when none.
type Mismatch uint8

// The parts of a Match, in the order they are checked.
const (
	Matched Mismatch = iota
	PathMismatch
	MethodMismatch
	HostMismatch
)

func (m Mismatch) String() string {
	switch m {
	case Matched:
		return "matched"
	case PathMismatch:
		return "path"
	case MethodMismatch:
		return "method"
	case HostMismatch:
		return "host"
	}
	return "unknown"
}

type pathKind uint8

const (
	exactPath pathKind = iota
	prefixPath
	globPath
)

// matcher is a compiled Match.
type matcher struct {
	kind    pathKind
	pattern string   // exact path or prefix
	segs    []string // glob segments, without the leading '/'
	methods []string
	hosts   []string // lower case; "*.example.com" kept as ".example.com"
}

// Validate reports every problem of m, each naming its field (path,
// prefix, glob, methods, hosts).
func (m Match) Validate() error {
	_, err := compileMatch(m)
	return err
}

func compileMatch(m Match) (matcher, error) {
	var (
		c    matcher
		errs []error
		set  []string
	)
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if m.Path != "" {
		set = append(set, "path")
		c.kind, c.pattern = exactPath, m.Path
		if err := checkRulePath(m.Path, false); err != nil {
			bad("path", "%v", err)
		}
	}
	if m.Prefix != "" {
		set = append(set, "prefix")
		c.kind, c.pattern = prefixPath, m.Prefix
		if err := checkRulePath(m.Prefix, false); err != nil {
			bad("prefix", "%v", err)
		}
	}
	if m.Glob != "" {
		set = append(set, "glob")
		c.kind = globPath
		if err := checkRulePath(m.Glob, true); err != nil {
			bad("glob", "%v", err)
		}
		c.segs = strings.Split(m.Glob[1:], "/")
		for _, s := range c.segs {
			if s != "**" && strings.Contains(s, "**") {
				bad("glob", "%q: ** must be a whole segment, as in /api/**", m.Glob)
				break
			}
		}
	}
	switch len(set) {
	case 0:
		bad("path", "set one of path, prefix or glob (prefix: / matches everything)")
	case 1:
	default:
		bad(set[1], "only one of path, prefix and glob may be set, not %s", strings.Join(set, " and "))
	}
	for _, meth := range m.Methods {
		switch {
		case meth == "":
			bad("methods", "empty method")
		case strings.ToUpper(meth) != meth:
			bad("methods", "%q: methods are case sensitive; write %q", meth, strings.ToUpper(meth))
		case strings.IndexFunc(meth, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0:
			bad("methods", "%q is not a method name", meth)
		case slices.Contains(c.methods, meth):
			bad("methods", "%s is listed twice", meth)
		default:
			c.methods = append(c.methods, meth)
		}
	}
	for _, h := range m.Hosts {
		p, err := compileHost(h)
		if err != nil {
			bad("hosts", "%v", err)
			continue
		}
		if slices.Contains(c.hosts, p) {
			bad("hosts", "%s is listed twice", h)
			continue
		}
		c.hosts = append(c.hosts, p)
	}
	return c, errors.Join(errs...)
}

// checkRulePath accepts a rooted, clean path. A glob may hold '*' (and
// nothing else glob-like, so nobody expects ? or [a-z] to work).
func checkRulePath(p string, glob bool) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q: a path starts with /", p)
	}
	if !glob && strings.Contains(p, "*") {
		return fmt.Errorf("%q: '*' is only special in a glob", p)
	}
	if i := strings.IndexAny(p, "?[]{}\\"); glob && i >= 0 {
		return fmt.Errorf("%q: a glob knows only * and **, not %q", p, p[i])
	}
	if c := config.CleanPath(p); c != p {
		return fmt.Errorf("%q is not a clean path (did you mean %q?): requests are matched after cleaning, so it could never match", p, c)
	}
	return nil
}

// compileHost lower-cases a host pattern and checks it is a name, not a
// URL or a host:port.
func compileHost(h string) (string, error) {
	name := strings.ToLower(h)
	wildcard := strings.HasPrefix(name, "*.")
	if wildcard {
		name = name[1:] // ".example.com"
	}
	if name == "" || name == "." {
		return "", fmt.Errorf("%q: empty host", h)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", fmt.Errorf("%q: a host is a DNS name or an IPv4 address, optionally after \"*.\", with no port and no scheme", h)
		}
	}
	return name, nil
}

// match reports the first part of the matcher that r and its cleaned path
// fail, or Matched. It allocates nothing.
func (m *matcher) match(r *http.Request, p string) Mismatch {
	if !m.matchPath(p) {
		return PathMismatch
	}
	if len(m.methods) > 0 && !slices.Contains(m.methods, r.Method) {
		return MethodMismatch
	}
	if len(m.hosts) > 0 && !m.matchHost(r.Host) {
		return HostMismatch
	}
	return Matched
}

func (m *matcher) matchPath(p string) bool {
	switch m.kind {
	case exactPath:
		return p == m.pattern
	case prefixPath:
		if !strings.HasPrefix(p, m.pattern) {
			return false
		}
		return len(p) == len(m.pattern) || m.pattern[len(m.pattern)-1] == '/' || p[len(m.pattern)] == '/'
	}
	return globMatch(m.segs, p)
}

// matchHost compares the Host header, without its port, to the patterns.
func (m *matcher) matchHost(host string) bool {
	host = stripPort(host)
	for _, h := range m.hosts {
		if h[0] == '.' {
			if len(host) > len(h) && strings.EqualFold(host[len(host)-len(h):], h) {
				return true
			}
			continue
		}
		if strings.EqualFold(host, h) {
			return true
		}
	}
	return false
}

// stripPort removes ":port" from a Host header value, and the brackets of an
// IPv6 literal, without allocating.
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
		return host
	}
	if i := strings.IndexByte(host, ':'); i >= 0 && strings.IndexByte(host[i+1:], ':') < 0 {
		return host[:i]
	}
	return host
}

// globMatch matches a clean, rooted path against glob segments. A "**"
// segment takes any number of path segments; the classic greedy algorithm
// with one backtracking point is exact for a single kind of star, here at
// the level of segments, and costs at most len(segs)×len(path) steps. It
// allocates nothing.
func globMatch(segs []string, p string) bool {
	rest := p[1:]
	// pos is the offset in rest of the current segment; past len(rest)
	// when every segment is consumed.
	pos, i := 0, 0
	starI, starPos := -1, 0
	for pos <= len(rest) {
		seg, next := segmentAt(rest, pos)
		switch {
		case i < len(segs) && segs[i] == "**":
			starI, starPos = i, pos
			i++
		case i < len(segs) && segMatch(segs[i], seg):
			i++
			pos = next
		case starI >= 0:
			// Let the last ** take one more segment and retry after it.
			_, starPos = segmentAt(rest, starPos)
			pos, i = starPos, starI+1
		default:
			return false
		}
	}
	for i < len(segs) && segs[i] == "**" {
		i++
	}
	return i == len(segs)
}

// segmentAt returns the segment of rest starting at pos and the offset of
// the next one (len(rest)+1 after the last).
func segmentAt(rest string, pos int) (string, int) {
	end := strings.IndexByte(rest[pos:], '/')
	if end < 0 {
		return rest[pos:], len(rest) + 1
	}
	return rest[pos : pos+end], pos + end + 1
}

// segMatch matches one segment against a pattern in which '*' is any run of
// characters (the same greedy algorithm, at the level of bytes).
func segMatch(pattern, s string) bool {
	if strings.IndexByte(pattern, '*') < 0 {
		return pattern == s
	}
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && pattern[pi] == '*':
			starP, starS = pi, si
			pi++
		case pi < len(pattern) && pattern[pi] == s[si]:
			pi++
			si++
		case starP >= 0:
			starS++
			pi, si = starP+1, starS
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}
