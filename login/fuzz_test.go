package login

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzSessionCookie feeds attacker-controlled session cookie values to
// Session: none may panic or open as a session.
func FuzzSessionCookie(f *testing.F) {
	s, err := newSealer([]byte(keyA))
	if err != nil {
		f.Fatal(err)
	}
	l := &Login{opts: Options{CookieName: DefaultCookieName}, seal: s, renewed: newRenewals()}
	l.opts, _ = l.opts.withDefaults()
	f.Add("")
	f.Add("AQ")
	f.Add(s.seal([]byte(`{"c":{"iss":"x","sub":"y"},"e":1,"m":1}`), aadFlow+DefaultCookieName))
	f.Add(s.seal([]byte(`{"c":{"iss":"x","sub":"y"},"e":1,"m":1}`), aadSession+"other"))
	f.Fuzz(func(t *testing.T, value string) {
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/", nil)
		r.Header.Set("Cookie", DefaultCookieName+"="+value)
		if _, ok := l.Session(httptest.NewRecorder(), r); ok {
			t.Fatalf("a forged cookie %q opened as a session", value)
		}
	})
}

// FuzzDecodeSession feeds opened cookie contents to the session decoder:
// it must refuse or return a session whose claims have iss and sub.
func FuzzDecodeSession(f *testing.F) {
	f.Add([]byte(`{"c":{"iss":"x","sub":"y","n":1e400},"e":1,"m":2,"r":"t"}`))
	f.Add([]byte(`{"c":null,"e":1,"m":1}`))
	f.Fuzz(func(t *testing.T, plain []byte) {
		s, values, err := decodeSession(plain)
		if err != nil {
			return
		}
		if s.Expires <= 0 || values["iss"] == nil || values["sub"] == nil {
			t.Fatalf("accepted %q", plain)
		}
	})
}

// FuzzSafeReturn: whatever the return URL, an accepted one stays on this
// host or an allowed one, in the browser's reading of it.
func FuzzSafeReturn(f *testing.F) {
	l := &Login{opts: Options{AllowedRedirectHosts: []string{".example.org"}}}
	for _, s := range []string{"/", "//evil", "/\\evil", "https://evil", "/%2F%2Fevil", "https://a.example.org/", "/\t/evil"} {
		f.Add(s)
	}
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/", nil)
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := l.safeReturn(r, raw)
		if !ok {
			return
		}
		// The WHATWG reading: tabs and newlines vanish, \ is /.
		browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(got)
		if strings.HasPrefix(browser, "//") {
			t.Fatalf("%q accepted as %q, which a browser reads as another host", raw, got)
		}
		u, err := url.Parse(browser)
		if err != nil {
			t.Fatalf("%q accepted as %q, which does not parse", raw, got)
		}
		host := strings.ToLower(u.Hostname())
		if u.Host != "" && host != "app.example.com" && !strings.HasSuffix(host, ".example.org") {
			t.Fatalf("%q accepted as %q, host %q", raw, got, u.Host)
		}
	})
}
