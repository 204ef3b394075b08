package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// These tests run the real binary as a process: real listeners, real
// signals, real exit codes.

var binary string

func TestMain(m *testing.M) {
	b, cleanup, err := proctest.Build(".", "jwt-sidecar")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = b
	code := m.Run()
	cleanup()
	os.Exit(code)
}

const testIssuer = "https://issuer.test"

// token signs valid claims for testIssuer, audience api, one hour long.
func token(t *testing.T, k jwttest.Signer) string {
	t.Helper()
	return k.Sign(t, jwt.MapClaims{
		"iss": testIssuer, "sub": "alice", "aud": "api",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
}

// issuer is a JWKS endpoint that can be taken down and brought back.
type issuer struct {
	*httptest.Server
	up   atomic.Bool
	body []byte
}

func newIssuer(t *testing.T, k jwttest.Signer, up bool) *issuer {
	t.Helper()
	is := &issuer{body: jwttest.JWKS(t, k)}
	is.up.Store(up)
	is.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !is.up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write(is.body)
	}))
	t.Cleanup(is.Close)
	return is
}

// sidecar is one running jwt-sidecar process.
type sidecar struct {
	*proctest.Process
	listen string
	admin  string
}

func startSidecar(t *testing.T, env map[string]string) *sidecar {
	t.Helper()
	s := &sidecar{listen: proctest.FreeAddr(t), admin: proctest.FreeAddr(t)}
	vars := []string{"LISTEN_ADDR=" + s.listen, "ADMIN_ADDR=" + s.admin, "ISSUERS=" + testIssuer, "AUDIENCES=api", "JWKS_REFRESH_INTERVAL=1h"}
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	s.Process = proctest.Start(t, binary, vars)
	s.waitFor(t, "/healthz", http.StatusOK)
	return s
}

// waitFor polls an admin path until it answers want, with a deadline.
func (s *sidecar) waitFor(t *testing.T, path string, want int) {
	t.Helper()
	s.WaitFor(t, "http://"+s.admin+path, want)
}

func (s *sidecar) get(t *testing.T, path, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+s.listen+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// recordingUpstream counts requests and can hold them until released.
func recordingUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fmt.Fprintf(w, "sub=%s", r.Header.Get("X-Auth-Subject"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestIssuerDownAtStartThenUp(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, false)
	up, seen := recordingUpstream(t)
	s := startSidecar(t, map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL})

	// No keys yet: the process is alive, not ready, and refuses tokens
	// (the contract: 401 unknown_key).
	s.waitFor(t, "/readyz", http.StatusServiceUnavailable)
	if resp := s.get(t, "/x", token(t, k)); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("without keys: status %d, challenge %q; want 401 invalid_token", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("upstream saw %d requests, want 0", n)
	}

	// The issuer comes back: background retries load the keys.
	is.up.Store(true)
	s.waitFor(t, "/readyz", http.StatusOK)
	if resp := s.get(t, "/x", token(t, k)); resp.StatusCode != http.StatusOK {
		t.Errorf("with keys: status %d, want 200", resp.StatusCode)
	}

	// Down again: cached keys keep serving and /readyz stays 200.
	is.up.Store(false)
	if resp := s.get(t, "/x", token(t, k)); resp.StatusCode != http.StatusOK {
		t.Errorf("issuer down again: status %d, want 200", resp.StatusCode)
	}
	s.waitFor(t, "/readyz", http.StatusOK)
}

func TestCacheDirRestartWhileIssuerDown(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up, _ := recordingUpstream(t)
	env := map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL, "JWKS_CACHE_DIR": t.TempDir()}

	first := startSidecar(t, env)
	first.waitFor(t, "/readyz", http.StatusOK)
	if err := first.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.ExitCode(t); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}

	is.up.Store(false) // the issuer is down when the sidecar restarts
	second := startSidecar(t, env)
	second.waitFor(t, "/readyz", http.StatusOK)
	if resp := second.get(t, "/x", token(t, k)); resp.StatusCode != http.StatusOK {
		t.Errorf("after a restart with the issuer down: status %d, want 200", resp.StatusCode)
	}
}

func TestGracefulShutdown(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	arrived := make(chan struct{})
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "done")
	}))
	defer up.Close()
	s := startSidecar(t, map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL, "SHUTDOWN_TIMEOUT": "20s"})
	s.waitFor(t, "/readyz", http.StatusOK)

	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.listen+"/slow", nil)
		req.Header.Set("Authorization", "Bearer "+token(t, k))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	<-arrived
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused once the listener closes, while the
	// in-flight request is still held by the upstream.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", s.listen)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts 10s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	r := <-inflight
	if r.err != nil || r.status != http.StatusOK || r.body != "done" {
		t.Errorf("in-flight request: status %d, body %q, err %v; want 200 done", r.status, r.body, r.err)
	}
	if code := s.ExitCode(t); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up, seen := recordingUpstream(t)
	s := startSidecar(t, map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL})
	s.waitFor(t, "/readyz", http.StatusOK)
	tok := token(t, k)
	for _, tt := range []struct {
		token      string
		wantStatus int
	}{{tok, http.StatusOK}, {tok, http.StatusOK}, {"", http.StatusUnauthorized}, {"garbage", http.StatusUnauthorized}} {
		if resp := s.get(t, "/a", tt.token); resp.StatusCode != tt.wantStatus {
			t.Errorf("token %.10q: status %d, want %d", tt.token, resp.StatusCode, tt.wantStatus)
		}
	}
	if n := seen.Load(); n != 2 {
		t.Errorf("upstream saw %d requests, want the 2 allowed ones", n)
	}

	resp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`jwt_sidecar_requests_total{outcome="allowed",reason=""} 2`,
		`jwt_sidecar_requests_total{outcome="unauthenticated",reason="missing"} 1`,
		`jwt_sidecar_requests_total{outcome="unauthenticated",reason="malformed"} 1`,
		`jwt_sidecar_token_cache_hits_total 1`,
		`jwt_sidecar_verification_duration_seconds_bucket{mode="jwt",le="1e-06"}`,
		`jwt_sidecar_keys{source="` + is.URL + `"} 1`,
		`jwt_sidecar_key_refreshes_total{result="ok",source="` + is.URL + `",trigger="start"} 1`,
		`jwt_sidecar_upstream_duration_seconds_count 2`,
		`jwt_sidecar_build_info{version=`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// TestSIGHUPWithoutConfigFile: without CONFIG_FILE there is nothing to
// reload, and SIGHUP (Go's default: exit) must not take the sidecar down.
func TestSIGHUPWithoutConfigFile(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up, seen := recordingUpstream(t)
	s := startSidecar(t, map[string]string{"UPSTREAM_URL": up.URL, "JWKS_URLS": is.URL})
	s.waitFor(t, "/readyz", http.StatusOK)
	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Logs(), "SIGHUP ignored") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about the SIGHUP; logs:\n%s", s.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp := s.get(t, "/", token(t, k)); resp.StatusCode != http.StatusOK {
		t.Fatalf("after SIGHUP: status %d, want 200", resp.StatusCode)
	}
	if seen.Load() != 1 {
		t.Errorf("upstream saw %d requests, want 1", seen.Load())
	}
}
