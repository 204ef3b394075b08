package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli/clitest"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/tlstest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	clitest.Help[Config](t, out.Bytes(), "testdata/help.golden", false)
}

func TestConfigRefused(t *testing.T) {
	for env, want := range map[string]string{
		"":                  "JWKS_URLS: set JWKS_URLS or OIDC_ISSUER_URLS",
		"JWKS_URLS=jwks":    `JWKS_URLS: "jwks" is not an absolute`,
		"MAX_AGE=-1s":       "MAX_AGE: must not be negative",
		"STALE_AFTER=6m":    "STALE_AFTER: 6m0s is less than two JWKS_REFRESH_INTERVALs",
		"JWKS_MAX_BYTES=10": "JWKS_MAX_BYTES",
	} {
		environ := map[string]string{}
		if k, v, ok := strings.Cut(env, "="); ok {
			environ[k] = v
		}
		if _, err := loadConfig(environ); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", env, err, want)
		}
	}
}

// The binary end to end: it loads the issuer's keys, becomes ready, serves
// them with an ETag, answers 304 to it, and stops cleanly.
func TestServe(t *testing.T) {
	body := jwttest.JWKS(t, jwttest.NewSigner(t, "ES256", "a"))
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	defer idp.Close()
	listen, admin := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, nil, map[string]string{"LISTEN_ADDR": listen, "ADMIN_ADDR": admin, "JWKS_URLS": idp.URL + "/jwks", "MAX_AGE": "60s"}, io.Discard, io.Discard)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + listen + "/v1/jwks?jwks=" + idp.URL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("Cache-Control") != "max-age=60" || resp.Header.Get("ETag") == "" {
		t.Fatalf("status %d, headers %v, body %s", resp.StatusCode, resp.Header, got)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/v1/jwks?jwks="+idp.URL+"/jwks", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional: %d, want 304", resp.StatusCode)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

// startRelay runs the binary's run until the returned stop, and waits for
// /readyz.
func startRelay(t *testing.T, env map[string]string) (listen, admin string, stop func()) {
	t.Helper()
	listen, admin = freeAddr(t), freeAddr(t)
	env["LISTEN_ADDR"], env["ADMIN_ADDR"] = listen, admin
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, nil, env, io.Discard, io.Discard) }()
	stop = func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return listen, admin, stop
			}
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatal("not ready in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The relay's own JWKS_CACHE_DIR: restarted, it asks the issuer with the
// ETag it was served (a 304), serves the same bytes under the same ETag
// (so its sidecars get 304s too), and counts what it answered.
func TestRestartWithCacheDir(t *testing.T) {
	body := jwttest.JWKS(t, jwttest.NewSigner(t, "ES256", "a"))
	var full, notMod atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		_, _ = w.Write(body)
	}))
	defer idp.Close()
	env := map[string]string{"JWKS_URLS": idp.URL + "/jwks", "JWKS_CACHE_DIR": t.TempDir()}
	get := func(listen, etag string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/v1/jwks?jwks="+idp.URL+"/jwks", nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	listen, _, stop := startRelay(t, env)
	etag := get(listen, "").Header.Get("ETag")
	stop()

	listen, admin, stop := startRelay(t, env)
	defer stop()
	deadline := time.Now().Add(5 * time.Second)
	for notMod.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if full.Load() != 1 || notMod.Load() != 1 {
		t.Errorf("issuer answers: %d full, %d 304; want 1 and 1", full.Load(), notMod.Load())
	}
	if resp := get(listen, etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("a sidecar's conditional request after the restart: %d, want 304 (the same ETag)", resp.StatusCode)
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`jwt_key_relay_requests_total{cache="hit",source="` + idp.URL + `/jwks",status="304"} 1`,
		`jwt_key_relay_refreshes_total{result="from_disk",source="` + idp.URL + `/jwks",trigger="start"} 1`,
		`jwt_key_relay_refreshes_total{result="not_modified",source="` + idp.URL + `/jwks",trigger="start"} 1`,
	} {
		if !strings.Contains(string(exposition), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestServeClusterIssuer: the relay fetches a Kubernetes-shaped issuer
// (private CA, bearer token required) with JWKS_CA_FILE and
// JWKS_BEARER_TOKEN_FILE, and serves its keys to sidecars, which send no
// credential.
func TestServeClusterIssuer(t *testing.T) {
	ca := tlstest.NewCA(t, "kubernetes")
	body := jwttest.JWKS(t, jwttest.NewSigner(t, "RS256", "sa-1"))
	is := tlstest.NewIssuer(t, ca, "relay-token", body)
	dir := t.TempDir()
	caFile, tokFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	tlstest.WriteFile(t, caFile, ca.PEM)
	tlstest.WriteFile(t, tokFile, []byte("relay-token\n"))
	listen, _, stop := startRelay(t, map[string]string{"OIDC_ISSUER_URLS": is.URL,
		"JWKS_CA_FILE": caFile, "JWKS_BEARER_TOKEN_FILE": tokFile})
	resp, err := http.Get("http://" + listen + "/v1/jwks?issuer=" + is.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("status %d, body %s", resp.StatusCode, got)
	}
	if is.Denied() != 0 {
		t.Errorf("the issuer refused %d fetches", is.Denied())
	}
	stop()
	var out bytes.Buffer
	code := run(context.Background(), nil, map[string]string{"OIDC_ISSUER_URLS": is.URL, "JWKS_CA_FILE": filepath.Join(dir, "absent")}, io.Discard, &out)
	if code != 2 || !strings.Contains(out.String(), "JWKS_CA_FILE: CA file") {
		t.Errorf("a missing CA file: exit %d, %s", code, out.String())
	}
}
