package config

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
