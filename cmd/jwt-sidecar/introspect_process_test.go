package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// The sidecar's credentials at the token service. The ':' and the '%' need
// RFC 6749 §2.3.1's form-encoding to survive HTTP Basic.
const (
	introspectionClient = "sidecar:test"
	introspectionSecret = "pa%ss:word"
)

// rfc7662 is an RFC 7662 introspection endpoint, as the development issuer
// will serve it: HTTP Basic client authentication (client_secret_basic,
// form-encoded), a form with token and token_type_hint, {"active":false}
// for anything not valid now. It counts its calls.
type rfc7662 struct {
	*httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	active map[string]map[string]any
}

func newRFC7662(t *testing.T) *rfc7662 {
	t.Helper()
	e := &rfc7662{active: map[string]map[string]any{}}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		user, pass, ok := r.BasicAuth()
		id, _ := url.QueryUnescape(user)
		secret, _ := url.QueryUnescape(pass)
		if !ok || id != introspectionClient || secret != introspectionSecret {
			w.Header().Set("WWW-Authenticate", `Basic realm="issuer"`)
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("token") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		e.mu.Lock()
		claims, ok := e.active[r.PostForm.Get("token")]
		e.mu.Unlock()
		answer := map[string]any{"active": false}
		if ok {
			answer = map[string]any{"active": true}
			for k, v := range claims {
				answer[k] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *rfc7662) activate(token, sub string) {
	now := time.Now()
	e.mu.Lock()
	e.active[token] = map[string]any{
		"sub": sub, "client_id": "app", "scope": "read", "iss": testIssuer, "aud": "api",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "token_type": "Bearer",
	}
	e.mu.Unlock()
}

func (e *rfc7662) revoke(token string) {
	e.mu.Lock()
	delete(e.active, token)
	e.mu.Unlock()
}

// startIntrospectionSidecar runs the binary in introspection mode against
// endpoint, with the secret in a file ending in a newline, as editors and
// Kubernetes secrets made with echo leave it.
func startIntrospectionSidecar(t *testing.T, endpoint, upstream string) *sidecar {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(introspectionSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{listen: proctest.FreeAddr(t), admin: proctest.FreeAddr(t)}
	s.Process = proctest.Start(t, binary, []string{
		"LISTEN_ADDR=" + s.listen, "ADMIN_ADDR=" + s.admin, "UPSTREAM_URL=" + upstream,
		"AUTH_MODE=introspection", "INTROSPECTION_URL=" + endpoint + "/introspect",
		"INTROSPECTION_CLIENT_ID=" + introspectionClient, "INTROSPECTION_CLIENT_SECRET_FILE=" + secretFile,
		"INTROSPECTION_TIMEOUT=1s", "ISSUERS=" + testIssuer, "AUDIENCES=api",
		"CLAIMS_TO_HEADERS=sub=X-Auth-Subject,client_id=X-Auth-Client",
	})
	s.waitFor(t, "/healthz", http.StatusOK)
	return s
}

func TestIntrospectionMode(t *testing.T) {
	endpoint := newRFC7662(t)
	up, seen := recordingUpstream(t)
	endpoint.activate("opaque-alice", "alice")
	s := startIntrospectionSidecar(t, endpoint.URL, up.URL)

	// No keys to load: ready as soon as it serves.
	s.waitFor(t, "/readyz", http.StatusOK)

	body := func(resp *http.Response) string {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	do := func(token string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.listen+"/orders", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body(resp)
	}

	if resp, b := do("opaque-alice"); resp.StatusCode != http.StatusOK || b != "sub=alice" {
		t.Errorf("active token: status %d, body %q; want 200 sub=alice", resp.StatusCode, b)
	}
	if resp, _ := do("opaque-unknown"); resp.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("inactive token: status %d, challenge %q; want 401 invalid_token", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	endpoint.revoke("opaque-alice")
	if resp, _ := do("opaque-alice"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked token: status %d, want 401 at once", resp.StatusCode)
	}
	if resp, _ := do(""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", resp.StatusCode)
	}
	if n := endpoint.calls.Load(); n != 3 {
		t.Errorf("token service calls = %d, want 3 (none for the request without a token)", n)
	}

	// The token service goes down: 503 with Retry-After, the process stays
	// ready, and nothing reaches the upstream.
	endpoint.activate("opaque-bob", "bob")
	endpoint.Close()
	resp, b := do("opaque-bob")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(b, `"error":"temporarily_unavailable"`) {
		t.Errorf("token service down: status %d, Retry-After %q, body %q; want 503 temporarily_unavailable",
			resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	s.waitFor(t, "/readyz", http.StatusOK)
	if n := seen.Load(); n != 1 {
		t.Errorf("upstream saw %d requests, want only the allowed one", n)
	}

	metricsResp, err := http.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition := body(metricsResp)
	for _, want := range []string{
		`jwt_sidecar_requests_total{outcome="allowed",reason=""} 1`,
		`jwt_sidecar_requests_total{outcome="unauthenticated",reason="inactive"} 2`,
		`jwt_sidecar_requests_total{outcome="unauthenticated",reason="missing"} 1`,
		`jwt_sidecar_requests_total{outcome="unavailable",reason="unavailable"} 1`,
		`jwt_sidecar_introspection_requests_total{result="active"} 1`,
		`jwt_sidecar_introspection_requests_total{result="inactive"} 2`,
		`jwt_sidecar_introspection_requests_total{result="error"} 1`,
		`jwt_sidecar_introspection_requests_total{result="timeout"} 0`,
		`jwt_sidecar_introspection_requests_total{result="bad_response"} 0`,
		`jwt_sidecar_verification_duration_seconds_count{mode="introspection"} 5`, // every request with or without a token
	} {
		if !strings.Contains(exposition, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(exposition, "jwt_sidecar_keys{") {
		t.Error("/metrics shows key sources in introspection mode")
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", exposition)
	}
	if logs := s.Logs(); !strings.Contains(logs, "could not decide") || strings.Contains(logs, "opaque-bob") {
		t.Errorf("logs lack the 503 line, or show the token:\n%s", logs)
	}

	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.ExitCode(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}
