package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzParseOriginal feeds arbitrary original-request headers, as a proxy
// passing a client's headers through would, to ParseOriginal. Nothing
// panics; an accepted original is origin-form (a path starting with one
// '/', no fragment, spaces or control bytes), its method a token, its host
// one host[:port]; and parsing its own request-URI again gives the same.
func FuzzParseOriginal(f *testing.F) {
	f.Add("/api/x?a=1", "", "GET", "", "app.example", "")
	f.Add("/public/..;/admin", "/public/..;/admin", "", "POST", "", "")
	f.Add("", "", "", "", "a.example", "https://a.example/p%2Fq?x")
	f.Add("//evil/x", "/x", "G ET", "GET", "a, b", "http://u@h/")
	f.Fuzz(func(t *testing.T, uri, fwdURI, method, fwdMethod, host, full string) {
		h := http.Header{}
		for k, v := range map[string]string{
			OriginalURIHeader: uri, ForwardedURIHeader: fwdURI, OriginalMethodHeader: method,
			ForwardedMethodHeader: fwdMethod, ForwardedHostHeader: host, OriginalURLHeader: full,
		} {
			if v != "" {
				h[k] = strings.Split(v, "\n") // a newline stands for a second line
			}
		}
		o, err := ParseOriginal(h)
		if err != nil {
			return
		}
		ru := o.URL.RequestURI()
		if !strings.HasPrefix(o.URL.Path, "/") || strings.HasPrefix(ru, "//") {
			t.Fatalf("accepted %q: path %q is not origin-form", ru, o.URL.Path)
		}
		if strings.ContainsAny(ru, " #\r\n\x00") {
			t.Fatalf("accepted %q with a space, fragment or control byte", ru)
		}
		if o.Method != "" && !validMethod(o.Method) {
			t.Fatalf("accepted method %q", o.Method)
		}
		if o.Host != "" && !validHost(o.Host) {
			t.Fatalf("accepted host %q", o.Host)
		}
		again, err := parseRequestURI(ru)
		if err != nil || again.Path != o.URL.Path || again.RawQuery != o.URL.RawQuery {
			t.Fatalf("%q does not parse back to itself: %v", ru, err)
		}
	})
}
