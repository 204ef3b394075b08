package config

import "strings"

// AmbiguousPath says why a request path may be read differently by the
// upstream than by the sidecar, or returns "" for a path that is not. p is
// the path as net/http decoded it once (URL.Path): the bytes the sidecar
// matches rules against and, cleaned, forwards. The path is ambiguous when,
// after that one decode, it still holds
//   - a dot segment carrying ';' parameters ("/..;/", "/.;x/"): Tomcat and
//     Spring drop ";params" from each segment and then resolve the dots;
//   - a percent escape ("%2e", "%2f", "%5c", "%25", any %HH): a backend that
//     decodes twice reads another path;
//   - a backslash: IIS, some Java and Node routers fold it into '/';
//   - a NUL or another control byte (0x00-0x1f, 0x7f): C-string backends
//     truncate at NUL, and logs and routers disagree on the others.
//
// It does not allocate.
func AmbiguousPath(p string) string {
	seg := 0 // start of the current segment
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "a NUL or control byte"
		case c == '\\':
			return "a backslash, which some backends read as '/'"
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			return "a percent escape left after one decode (double encoding)"
		case c == '/':
			seg = i + 1
		case c == ';':
			if name := p[seg:i]; name == "." || name == ".." {
				return "a dot segment with ';' parameters, which some backends resolve"
			}
		}
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// PathReadings are the paths a backend may serve for the once-decoded path
// p, each cleaned as CleanPath does: p itself, and p read as the backends
// that make a path ambiguous read it (AmbiguousPath): ';' parameters
// dropped from every segment (Tomcat, Spring), decoded a second time (up
// to three times), '\' folded into '/' (IIS, some Java and Node
// routers), cut at the first NUL (C strings), and every combination. The
// first is CleanPath(p); the others follow without repeats. A rule that
// forwards ambiguous paths (raw_paths) must govern every reading, or a
// request could reach another rule's path.
func PathReadings(p string) []string {
	out := []string{CleanPath(p)}
	add := func(s string) {
		c := CleanPath(s)
		for _, x := range out {
			if x == c {
				return
			}
		}
		out = append(out, c)
	}
	// Every combination of the readings, each applied after the others.
	forms := []string{p}
	for _, f := range []func(string) string{dropParams, decodeAgain, foldBackslash, cutAtNUL, decodeAgain, dropParams, foldBackslash, decodeAgain} {
		n := len(forms)
		for i := 0; i < n; i++ {
			if g := f(forms[i]); !containsPath(forms, g) {
				forms = append(forms, g)
			}
		}
		if len(forms) > 64 {
			break // a pathological path: enough readings to refuse it
		}
	}
	for _, f := range forms {
		add(f)
	}
	return out
}

func containsPath(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// dropParams removes ";params" from every segment, as Tomcat does.
func dropParams(p string) string {
	if !strings.Contains(p, ";") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	return strings.Join(segs, "/")
}

// decodeAgain percent-decodes p once more; an invalid escape is left as is.
func decodeAgain(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			b.WriteByte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func foldBackslash(p string) string { return strings.ReplaceAll(p, `\`, "/") }

func cutAtNUL(p string) string {
	if i := strings.IndexByte(p, 0); i >= 0 {
		return p[:i]
	}
	return p
}
