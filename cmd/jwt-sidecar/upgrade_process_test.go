package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
)

// TestCurlHTTP2OnPlainListener runs the real curl against the sidecar's
// plain listener. `curl --http2` over http:// asks to Upgrade to h2c; the
// sidecar does not upgrade (docs/protocols.md says why), so curl gets its
// answer over HTTP/1.1, refusals included, and the upstream sees neither
// the Upgrade nor HTTP2-Settings. `curl --http2-prior-knowledge` gets
// HTTP/2 on the same listener.
func TestCurlHTTP2OnPlainListener(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is required under CI=true (apt-get install curl)")
		}
		t.Skip("curl not installed; skipping the curl checks")
	}
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	var seen atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-App", "yes")
		fmt.Fprintf(w, "sub=%s upgrade=%q connection=%q settings=%q body=%q",
			r.Header.Get("X-Auth-Subject"), r.Header.Values("Upgrade"), r.Header.Values("Connection"),
			r.Header.Values("Http2-Settings"), body)
	}))
	t.Cleanup(up.Close)
	s := startSidecar(t, map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL, "CLAIMS_TO_HEADERS": "sub=X-Auth-Subject"})
	s.waitFor(t, "/readyz", http.StatusOK)
	url := "http://" + s.listen + "/x"
	auth := "Authorization: Bearer " + token(t, k)
	// The last line says how curl spoke and what it got.
	const w = "\n%{http_version} %{http_code} %header{content-type}|%header{x-app}|%header{www-authenticate}|%header{upgrade}"
	run := func(t *testing.T, args ...string) (body, last string) {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "10", "-w", w}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %q: %v\n%s", args, err, out)
		}
		i := strings.LastIndexByte(string(out), '\n')
		return string(out[:i]), string(out[i+1:])
	}

	t.Run("--http2 with a token", func(t *testing.T) {
		body, last := run(t, "--http2", "-v", "-H", auth, url)
		if want := "1.1 200 text/plain; charset=utf-8|yes||"; last != want {
			t.Errorf("curl: %q, want %q", last, want)
		}
		// -v shows that curl did ask for the upgrade.
		if !strings.Contains(body, "> Upgrade: h2c") {
			t.Errorf("curl did not ask to upgrade:\n%s", body)
		}
		if !strings.HasSuffix(body, `sub=alice upgrade=[] connection=[] settings=[] body=""`) {
			t.Errorf("upstream saw %q", body)
		}
	})
	t.Run("--http2 with a body", func(t *testing.T) {
		body, last := run(t, "--http2", "-H", auth, "--data-binary", "hello", url)
		if !strings.HasPrefix(last, "1.1 200 ") || body != `sub=alice upgrade=[] connection=[] settings=[] body="hello"` {
			t.Errorf("curl: %q %q", last, body)
		}
	})
	t.Run("--http2 refused", func(t *testing.T) {
		before := seen.Load()
		for _, tc := range []struct{ name, header, challenge string }{
			{"no token", "X-None: 1", `Bearer realm="jwt-sidecar"`},
			{"bad token", "Authorization: Bearer not.a.token", `Bearer realm="jwt-sidecar", error="invalid_token"`},
		} {
			_, last := run(t, "--http2", "-H", tc.header, url)
			if !strings.HasPrefix(last, "1.1 401 ") || !strings.Contains(last, "|"+tc.challenge) {
				t.Errorf("%s: %q, want HTTP/1.1 401 with %s", tc.name, last, tc.challenge)
			}
		}
		if n := seen.Load() - before; n != 0 {
			t.Errorf("upstream saw %d refused requests", n)
		}
	})
	t.Run("--http2-prior-knowledge", func(t *testing.T) {
		body, last := run(t, "--http2-prior-knowledge", "-H", auth, url)
		if want := "2 200 text/plain; charset=utf-8|yes||"; last != want || !strings.HasPrefix(body, "sub=alice ") {
			t.Errorf("curl: %q %q, want %q", last, body, want)
		}
		before := seen.Load()
		if _, last := run(t, "--http2-prior-knowledge", url); !strings.HasPrefix(last, "2 401 ") {
			t.Errorf("no token: %q, want HTTP/2 401", last)
		}
		if seen.Load() != before {
			t.Error("upstream saw the refused request")
		}
	})
}
