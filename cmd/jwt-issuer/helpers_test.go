package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// writeKey generates a key for alg and writes it as PKCS#8 PEM into dir.
func writeKey(t testing.TB, dir, alg string) string {
	t.Helper()
	s, err := generateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := encodePrivateKey(s)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, alg+".pem")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCLI runs a subcommand the way main does and returns its stdout; it
// fails the test on a non-zero exit.
func runCLI(t testing.TB, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, &stdout, &stderr, nil); code != 0 {
		t.Fatalf("jwt-issuer %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// keyfuncFromJWKS parses a JWKS with jwkset, independently of the code that
// wrote it, and returns a jwt.Keyfunc that finds keys by kid and insists on
// the JWK's alg.
func keyfuncFromJWKS(t testing.TB, raw []byte) jwt.Keyfunc {
	t.Helper()
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("parse jwks: %v\n%s", err, raw)
	}
	jwks, err := set.JWKSlice()
	if err != nil {
		t.Fatalf("parse jwks: %v", err)
	}
	return func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		for _, j := range jwks {
			m := j.Marshal()
			if m.KID != kid {
				continue
			}
			if string(m.ALG) != tok.Method.Alg() {
				return nil, fmt.Errorf("token alg %s, jwk alg %s", tok.Method.Alg(), m.ALG)
			}
			return j.Key(), nil
		}
		return nil, fmt.Errorf("kid %q not in the jwks", kid)
	}
}

// jwksKIDs returns the kids of a JWKS in order.
func jwksKIDs(t testing.TB, raw []byte) []string {
	t.Helper()
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	kids := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		kids[i] = k.KID
	}
	return kids
}

// get fetches url and returns the status and body.
func get(t testing.TB, client *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// startServe runs `jwt-issuer serve` with environ on a free port, waits
// until /healthz answers and returns the base URL. The server stops when
// the test ends.
func startServe(t *testing.T, environ ...string) string {
	t.Helper()
	addr := freeAddr(t)
	base := "http://" + addr
	environ = append([]string{"LISTEN_ADDR=" + addr, "ISSUER_URL=" + base}, environ...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr lockedBuffer
	go func() { done <- run(ctx, nil, io.Discard, &stderr, environ) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exit %d: %s", code, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %v\n%s", err, stderr.String())
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d: %s", code, stderr.String())
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
}

// testServer builds a server from the default config changed by edit and
// serves its routes on 127.0.0.1.
func testServer(t *testing.T, edit func(*config)) (*server, string) {
	t.Helper()
	cfg, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	s, err := newServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.routes())
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testClock is a settable clock that server goroutines may read while the
// test moves it.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock(s *server, start time.Time) *testClock {
	c := &testClock{now: start}
	s.now = c.Now
	return c
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// postForm posts form to url, with the raw Authorization header auth
// unless it is empty, and returns the response and its body.
func postForm(t testing.TB, url, auth string, form url.Values) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// issueToken gets a client_credentials token for demo:demo-secret.
func issueToken(t testing.TB, base string, form url.Values) string {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("grant_type", "client_credentials")
	resp, body := postForm(t, base+"/token", basic("demo", "demo-secret"), form)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token status = %d: %s", resp.StatusCode, body)
	}
	var got tokenResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	return got.AccessToken
}
