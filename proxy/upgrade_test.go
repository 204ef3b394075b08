package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// h2cUpgrader is an upstream that accepts an HTTP/1.1 Upgrade to h2c, the
// way golang.org/x/net/http2/h2c did: it answers 101 and takes over the
// connection. Any other request is recorded and answered over HTTP/1.1.
type h2cUpgrader struct {
	*httptest.Server
	upgrades atomic.Int64
	mu       sync.Mutex
	reqs     []seen
}

func newH2CUpgrader(t *testing.T) *h2cUpgrader {
	t.Helper()
	u := &h2cUpgrader{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, v := range r.Header.Values("Upgrade") {
			if strings.Contains(strings.ToLower(v), "h2") || strings.Contains(strings.ToLower(v), "http/2") {
				u.upgrades.Add(1)
				conn, rw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				defer conn.Close()
				_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + v + "\r\n\r\nTUNNEL OPEN")
				_ = rw.Flush()
				_, _ = io.Copy(io.Discard, rw) // whatever the client tunnels
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		u.mu.Unlock()
		_, _ = io.WriteString(w, "plain "+r.Proto)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *h2cUpgrader) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// TestH2CUpgradeNeverReachesUpstream sends what `curl --http2` sends over
// plain HTTP, and attackers' variants of it, with a body, followed on the
// same connection by a request without a token. Each is answered over
// HTTP/1.1, the upstream (which would accept the upgrade) sees a plain
// request with the body intact and no Upgrade, Connection or
// HTTP2-Settings, and the pipelined request is authenticated on its own:
// no tunnel to the upstream opens (h2c smuggling).
func TestH2CUpgradeNeverReachesUpstream(t *testing.T) {
	k := allKeys(t)
	token := k.rsa.Sign(t, claims(issA))
	const settings = "AAMAAABkAAQCAAAAAAIAAAAA"
	tests := []struct {
		name    string
		headers string
	}{
		{"curl --http2", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings + "\r\n"},
		{"upper case", "Connection: upgrade\r\nUpgrade: H2C\r\nHTTP2-Settings: " + settings + "\r\n"},
		{"h2 over cleartext", "Connection: Upgrade\r\nUpgrade: h2\r\n"},
		{"HTTP/2.0", "Connection: Upgrade\r\nUpgrade: HTTP/2.0\r\n"},
		{"in a list", "Connection: keep-alive, Upgrade\r\nUpgrade: foo/1, h2c\r\n"},
		{"settings not listed in Connection", "Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings + "\r\n"},
		{"settings alone", "HTTP2-Settings: " + settings + "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newH2CUpgrader(t)
			h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.Upstream = mustURL(t, up.URL) })
			srv := h2cFront(t, h.handler)
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			// The second request's bytes would be HTTP/2 in a tunnel; here
			// they are the next HTTP/1.1 request and must be judged alone.
			raw := "POST /first HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer " + token + "\r\n" + tt.headers +
				"Content-Length: 5\r\n\r\nhello" +
				"GET /second HTTP/1.1\r\nHost: app\r\n\r\n"
			if _, err := io.WriteString(conn, raw); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			first := readResponse(t, br)
			if first.StatusCode != http.StatusOK || first.Proto != "HTTP/1.1" || first.body != "plain HTTP/1.1" {
				t.Fatalf("first: %s %d %q, want HTTP/1.1 200 from a plain upstream request", first.Proto, first.StatusCode, first.body)
			}
			if second := readResponse(t, br); second.StatusCode != http.StatusUnauthorized {
				t.Errorf("pipelined request without a token: %d, want 401", second.StatusCode)
			}
			if n := up.upgrades.Load(); n != 0 {
				t.Fatalf("the upstream was asked to upgrade %d times", n)
			}
			reqs := up.requests()
			if len(reqs) != 1 {
				t.Fatalf("upstream saw %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.Path != "/first" || string(got.Body) != "hello" {
				t.Errorf("upstream saw %s with body %q, want /first with hello", got.Path, got.Body)
			}
			for _, name := range []string{"Upgrade", "Connection", "Http2-Settings", "Authorization"} {
				if v, ok := got.Header[name]; ok {
					t.Errorf("upstream saw %s: %q", name, v)
				}
			}
			if s := got.Header.Get("X-Auth-Subject"); s != "alice" {
				t.Errorf("X-Auth-Subject %q, want alice", s)
			}
		})
	}
}

// TestH2CUpgradeRefused shows a refused Upgrade: h2c request answered with
// the usual HTTP/1.1 refusal, the upstream never reached.
func TestH2CUpgradeRefused(t *testing.T) {
	up := newH2CUpgrader(t)
	h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.Upstream = mustURL(t, up.URL) })
	srv := h2cFront(t, h.handler)
	resp := rawRequest(t, srv.Listener.Addr().String(), "POST /x HTTP/1.1\r\nHost: app\r\n"+
		"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello")
	if resp.StatusCode != http.StatusUnauthorized || resp.Proto != "HTTP/1.1" {
		t.Errorf("%s %d, want HTTP/1.1 401", resp.Proto, resp.StatusCode)
	}
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("no WWW-Authenticate challenge")
	}
	if n := up.upgrades.Load() + int64(len(up.requests())); n != 0 {
		t.Errorf("upstream saw %d requests, want none", n)
	}
}

// TestDropHTTP2Upgrade pins which Upgrade values are taken out: only those
// naming HTTP/2; WebSocket and others pass.
func TestDropHTTP2Upgrade(t *testing.T) {
	for _, tt := range []struct {
		upgrade string
		dropped bool
	}{
		{"h2c", true}, {"H2C", true}, {"h2", true}, {"HTTP/2.0", true}, {"http/2", true},
		{"websocket, h2c", true}, {" h2c ", true},
		{"websocket", false}, {"HTTP/1.1", false}, {"h2cx", false}, {"SPDY/3.1", false}, {"TLS/1.2", false},
	} {
		h := http.Header{"Upgrade": {tt.upgrade}, "Connection": {"Upgrade"}, "Http2-Settings": {"x"}}
		dropHTTP2Upgrade(h)
		if _, ok := h["Upgrade"]; ok == tt.dropped {
			t.Errorf("Upgrade: %q kept = %v, want %v", tt.upgrade, ok, !tt.dropped)
		}
		if _, ok := h["Http2-Settings"]; ok {
			t.Errorf("Upgrade: %q: HTTP2-Settings kept", tt.upgrade)
		}
	}
}

type rawResponse struct {
	*http.Response
	body string
}

func readResponse(t *testing.T, br *bufio.Reader) rawResponse {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return rawResponse{resp, string(b)}
}

// TestUnaskedSwitchRefused shows an upstream that answers 101 to h2c
// although the forwarded request asked for no upgrade: the sidecar answers
// 502 and never joins the connections.
func TestUnaskedSwitchRefused(t *testing.T) {
	k := allKeys(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
		_ = rw.Flush()
		_, _ = io.Copy(io.Discard, rw)
	}))
	t.Cleanup(up.Close)
	h := newHarness(t, verifierConfig{}, func(o *testOptions) { o.Upstream = mustURL(t, up.URL) })
	srv := h2cFront(t, h.handler)
	resp := rawRequest(t, srv.Listener.Addr().String(), "GET /x HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer "+
		k.rsa.Sign(t, claims(issA))+"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
}

// FuzzDropHTTP2Upgrade checks, for any Upgrade value a client sends, that
// no token naming HTTP/2 survives, that HTTP2-Settings never does, and that
// a value without such a token is left exactly as it was.
func FuzzDropHTTP2Upgrade(f *testing.F) {
	for _, s := range []string{"h2c", "websocket", "websocket, H2C", "HTTP/2.0", "h2c/1, foo", ",,", "TLS/1.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, upgrade string) {
		h := http.Header{"Upgrade": {upgrade}, "Connection": {"Upgrade"}, "Http2-Settings": {"x"}}
		dropHTTP2Upgrade(h)
		if _, ok := h["Http2-Settings"]; ok {
			t.Fatal("HTTP2-Settings kept")
		}
		named := false
		for tok := range strings.SplitSeq(upgrade, ",") {
			named = named || isHTTP2Protocol(strings.TrimSpace(tok))
		}
		kept, ok := h["Upgrade"]
		switch {
		case named && (ok || h["Connection"] != nil):
			t.Fatalf("Upgrade %q naming HTTP/2 kept: %q", upgrade, kept)
		case !named && (!ok || kept[0] != upgrade || h.Get("Connection") != "Upgrade"):
			t.Fatalf("Upgrade %q changed to %q", upgrade, kept)
		}
		for tok := range strings.SplitSeq(strings.Join(kept, ","), ",") {
			n, v, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tok)), "/")
			if n == "h2c" || n == "h2" || n == "http" && strings.HasPrefix(v, "2") {
				t.Fatalf("HTTP/2 token %q forwarded", tok)
			}
		}
	})
}
