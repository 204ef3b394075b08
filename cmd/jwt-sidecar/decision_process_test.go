package main

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// nginxBinary is Debian's nginx (nginx-light has auth_request), or a skip:
// under CI=true its absence is a failure.
func nginxBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: nginx is required (apt-get install nginx-light)")
	}
	t.Skip("nginx not installed (apt-get install nginx-light): the forward-auth end-to-end test needs it")
	return ""
}

// nginxConf puts nginx in front of the upstream, asking the decision
// listener with auth_request: the snippet docs/forward-auth.md shows. The
// second server asks from 127.0.0.2 (proxy_bind), outside the trusted
// proxies, and passes the client's own X-Original-URI: a forged original.
const nginxConf = `
%[1]s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
daemon off;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[2]s/client_temp;
    proxy_temp_path %[2]s/proxy_temp;
%[6]s
    server {
        listen %[3]s;
        location / {
            auth_request /_auth;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            auth_request_set $auth_scope $upstream_http_x_auth_scope;
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_set_header X-Auth-Scope $auth_scope;
            proxy_pass http://%[4]s;
        }
        location = /_auth {
            internal;
            proxy_pass http://%[5]s;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-Host $host;
        }
    }
    server {
        listen %[7]s;
        location / {
            auth_request /_auth;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_pass http://%[4]s;
        }
        location = /_auth {
            internal;
            proxy_bind 127.0.0.2;
            proxy_pass http://%[5]s;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $http_x_original_uri;
        }
    }
}
`

// startNginx runs nginx with conf's blanks filled, everything under a
// temporary directory, in the foreground, and waits until it answers.
func startNginx(t *testing.T, upstream, decision string) (front, forged string) {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	front, forged = proctest.FreeAddr(t), proctest.FreeAddr(t)
	// fastcgi, uwsgi and scgi are optional modules: their temp path
	// directive exists only when the module is built in.
	var extra strings.Builder
	built, _ := exec.Command(bin, "-V").CombinedOutput()
	for _, m := range []string{"fastcgi", "uwsgi", "scgi"} {
		if !strings.Contains(string(built), "--without-http_"+m+"_module") {
			fmt.Fprintf(&extra, "    %s_temp_path %s/%s_temp;\n", m, dir, m)
		}
	}
	// As root, nginx's workers would switch to nobody, who cannot use the
	// temporary directory: keep them as the current user.
	var userLine string
	if os.Geteuid() == 0 {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		userLine = "user " + u.Username + ";"
	}
	conf := fmt.Sprintf(nginxConf, userLine, dir, front, upstream, decision, extra.String(), forged)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir+"/", "-c", path, "-e", filepath.Join(dir, "error.log"))
	var out proctest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), b)
		}
	})
	// Ready once it answers anything at all (a refusal is an answer).
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get("http://" + front + "/public/ready")
		if err == nil {
			res.Body.Close()
			return front, forged
		}
		select {
		case <-done:
			t.Fatalf("nginx exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not answer within 15s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the poll interval
	}
}

// headerRecorder is the upstream behind nginx: it records the identity
// headers of every request that reaches it.
type headerRecorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newHeaderRecorder(t *testing.T) *headerRecorder {
	t.Helper()
	hr := &headerRecorder{}
	hr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hr.mu.Lock()
		hr.seen = append(hr.seen, r.Header.Clone())
		hr.mu.Unlock()
		io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(hr.Close)
	return hr
}

func (hr *headerRecorder) count() int {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	return len(hr.seen)
}

func (hr *headerRecorder) last() http.Header {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	return hr.seen[len(hr.seen)-1]
}

// TestNginxAuthRequest: the real nginx in front, the sidecar as a decision
// service only beside it, an upstream behind. Allowed requests reach the
// upstream with the verified claim headers and none forged; every refusal
// is nginx's 401/403 (or 500 for a decision it cannot use), and the
// upstream never sees the request.
func TestNginxAuthRequest(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	other := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up := newHeaderRecorder(t)
	decision := proctest.FreeAddr(t)
	sc := startSidecar(t, map[string]string{
		"DECISION_ADDR":            decision,
		"DECISION_TRUSTED_PROXIES": "127.0.0.1/32",
		"JWKS_URLS":                is.URL,
		"ALGORITHMS":               "ES256",
		"PUBLIC_PATHS":             "/public/*",
		"REQUIRED_SCOPES":          "read",
		"CLAIMS_TO_HEADERS":        "sub=X-Auth-Subject,scope=X-Auth-Scope",
		"ACCESS_LOG":               "true",
	})
	sc.waitFor(t, "/readyz", http.StatusOK)
	front, forged := startNginx(t, strings.TrimPrefix(up.URL, "http://"), decision)

	sign := func(c jwt.MapClaims) string { return k.Sign(t, c) }
	now := time.Now()
	good := jwt.MapClaims{"iss": testIssuer, "sub": "alice", "aud": "api", "scope": "read", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	with := func(key string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		c[key] = v
		return c
	}

	tests := []frontCase{
		{name: "valid token", addr: front, path: "/api/items?x=1", token: sign(good),
			hdr: map[string]string{"X-Auth-Subject": "mallory", "X-Auth-Scope": "admin"}, wantStatus: 200, wantSubject: "alice"},
		{name: "public path, forged claim header", addr: front, path: "/public/page",
			hdr: map[string]string{"X-Auth-Subject": "mallory"}, wantStatus: 200},
		{name: "missing token", addr: front, path: "/api/items", wantStatus: 401, challenge: `Bearer realm="jwt-sidecar"`},
		{name: "bad signature", addr: front, path: "/api/items", token: other.Sign(t, good), wantStatus: 401, challenge: `error="invalid_token"`},
		{name: "expired", addr: front, path: "/api/items", token: sign(with("exp", now.Add(-time.Hour).Unix())), wantStatus: 401, challenge: "expired"},
		{name: "insufficient scope", addr: front, path: "/api/items", token: sign(with("scope", "write")), wantStatus: 403},
		{name: "dot segments out of a public prefix", addr: front, path: "/public/%2e%2e/api/items", wantStatus: 401},
		{name: "ambiguous path: nginx turns the 400 into 500", addr: front, path: "/public/..;/api/items", wantStatus: 500},
		{name: "untrusted proxy forging a public original", addr: forged, path: "/api/items",
			hdr: map[string]string{"X-Original-URI": "/public/x"}, wantStatus: 403},
		{name: "untrusted proxy with a valid token", addr: forged, path: "/api/items", token: sign(good),
			hdr: map[string]string{"X-Original-URI": "/api/items"}, wantStatus: 403},
	}
	runFrontCases(t, up, tests)

	// The decisions are counted like proxied requests, with their reasons.
	res, err := http.Get("http://" + sc.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`jwt_sidecar_requests_total{outcome="unauthenticated",reason="missing"}`,
		`jwt_sidecar_requests_total{outcome="unauthenticated",reason="expired"}`,
		`jwt_sidecar_requests_total{outcome="forbidden",reason="insufficient_scope"}`,
		`jwt_sidecar_requests_total{outcome="forbidden",reason="untrusted_proxy"} 2`,
		`jwt_sidecar_requests_total{outcome="bad_request",reason="ambiguous_path"} 1`,
		`jwt_sidecar_decisions_total{outcome="allowed"} 1`,
		`jwt_sidecar_decisions_total{outcome="forbidden"} 3`,
		`jwt_sidecar_decisions_total{outcome="bad_request"} 1`,
		`jwt_sidecar_decisions_total{outcome="internal_error"} 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(b), `reason="untrusted_proxy"} 0`) {
		t.Errorf("untrusted_proxy refusals not counted")
	}
	// The access log names the original request, not /_auth; only an
	// untrusted source's line names the decision path, since its original
	// is never read.
	logs := sc.Logs()
	if !strings.Contains(logs, `"path":"/api/items"`) {
		t.Errorf("no access line names the original path:\n%s", logs)
	}
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `"path":"/_auth"`) && !strings.Contains(line, `"reason":"untrusted_proxy"`) {
			t.Errorf("an access line names the decision path, not the original: %s", line)
		}
	}
}

// TestDecisionListeners: a decision service only binds DECISION_ADDR and
// the admin listener, never LISTEN_ADDR; beside an upstream both
// listeners answer with the one policy. check-config says which.
func TestDecisionListeners(t *testing.T) {
	k := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up, n := recordingUpstream(t)
	env := map[string]string{"JWKS_URLS": is.URL, "ALGORITHMS": "ES256", "CLAIMS_TO_HEADERS": "sub=X-Auth-Subject"}

	t.Run("decision service only", func(t *testing.T) {
		env := maps.Clone(env)
		env["DECISION_ADDR"] = proctest.FreeAddr(t)
		var out, errOut strings.Builder
		vars := map[string]string{"ISSUERS": testIssuer}
		maps.Copy(vars, env)
		if code := run(t.Context(), []string{"check-config"}, vars, &out, &errOut); code != 0 || !strings.Contains(out.String(), "decision service only") {
			t.Errorf("check-config: %d %q %q, want 0 and the decision-only note", code, out.String(), errOut.String())
		}
		sc := startSidecar(t, env)
		sc.waitFor(t, "/readyz", http.StatusOK)
		if c, err := net.DialTimeout("tcp", sc.listen, time.Second); err == nil {
			c.Close()
			t.Errorf("LISTEN_ADDR %s accepts connections in a decision service only", sc.listen)
		}
		res, body := do(t, http.DefaultClient, "http://"+env["DECISION_ADDR"]+"/auth", token(t, k), map[string]string{"X-Original-URI": "/api"})
		if res.StatusCode != http.StatusOK || res.Header.Get("X-Auth-Subject") != "alice" || body != "" {
			t.Errorf("decision: %d %q %q, want 200 with the subject and no body", res.StatusCode, res.Header.Get("X-Auth-Subject"), body)
		}
	})

	t.Run("beside the proxy", func(t *testing.T) {
		env := maps.Clone(env)
		env["DECISION_ADDR"] = proctest.FreeAddr(t)
		env["UPSTREAM_URL"] = up.URL
		sc := startSidecar(t, env)
		sc.waitFor(t, "/readyz", http.StatusOK)
		before := n.Load()
		if res := sc.get(t, "/api", token(t, k)); res.StatusCode != http.StatusOK || n.Load() != before+1 {
			t.Errorf("proxy: %d, upstream calls %d, want 200 and one", res.StatusCode, n.Load()-before)
		}
		res, _ := do(t, http.DefaultClient, "http://"+env["DECISION_ADDR"]+"/auth", "", map[string]string{"X-Original-URI": "/api"})
		if res.StatusCode != http.StatusUnauthorized || n.Load() != before+1 {
			t.Errorf("decision: %d, upstream calls %d, want 401 and none more", res.StatusCode, n.Load()-before-1)
		}
	})
}

// frontCase is one request through a forward-auth proxy in front of the
// recording upstream.
type frontCase struct {
	name        string
	addr        string
	path        string
	token       string
	hdr         map[string]string
	wantStatus  int
	wantSubject string // at the upstream; "" means absent
	challenge   string // a substring of WWW-Authenticate
	// placeholder accepts, instead of an absent claim header, Caddy's
	// unreplaced {http.reverse_proxy.header.NAME}: Caddy before 2.9 sets
	// it when the answer lacks the header (caddyserver/caddy#6610).
	placeholder bool
}

// runFrontCases sends each case through its proxy: a refusal must leave
// the upstream untouched; an allowed request must reach it once, with the
// verified subject (and scope) and none forged.
func runFrontCases(t *testing.T, up *headerRecorder, tests []frontCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			req, err := http.NewRequest(http.MethodGet, "http://"+tt.addr+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if tt.challenge != "" && !strings.Contains(res.Header.Get("WWW-Authenticate"), tt.challenge) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", res.Header.Get("WWW-Authenticate"), tt.challenge)
			}
			if tt.wantStatus != http.StatusOK {
				if n := up.count(); n != before {
					t.Fatalf("the upstream saw %d requests for a refusal, want none", n-before)
				}
				return
			}
			if up.count() != before+1 {
				t.Fatalf("the upstream saw %d requests, want 1", up.count()-before)
			}
			h := up.last()
			absent := func(name string) bool {
				v := h.Values(name)
				return len(v) == 0 || tt.placeholder && len(v) == 1 && v[0] == "{http.reverse_proxy.header."+name+"}"
			}
			if tt.wantSubject == "" {
				for _, name := range []string{"X-Auth-Subject", "X-Auth-Scope"} {
					if !absent(name) {
						t.Errorf("upstream got %s %q without a verified token", name, h.Values(name))
					}
				}
				return
			}
			if got := h.Values("X-Auth-Subject"); len(got) != 1 || got[0] != tt.wantSubject {
				t.Errorf("upstream X-Auth-Subject = %q, want just %q", got, tt.wantSubject)
			}
			if got := h.Values("X-Auth-Scope"); len(got) != 1 || got[0] != "read" {
				t.Errorf("upstream X-Auth-Scope = %q, want just read", got)
			}
		})
	}

}

// caddyfile puts Caddy in front of the upstream with forward_auth, as
// docs/forward-auth.md shows: Caddy sends X-Forwarded-Method,
// X-Forwarded-Uri and X-Forwarded-Host. The claim headers are deleted
// from the client's request first: copy_headers only sets the ones the
// answer carries, so on a public path a client's own would pass. route
// keeps that order: Caddy's default order runs request_header after
// forward_auth, which would delete the verified headers instead.
const caddyfile = `{
	admin off
	auto_https off
}
http://%[1]s {
	route {
		request_header -X-Auth-Subject
		request_header -X-Auth-Scope
		forward_auth %[2]s {
			uri /_auth
			copy_headers X-Auth-Subject X-Auth-Scope
		}
		reverse_proxy %[3]s
	}
}
`

// TestCaddyForwardAuth: the real Caddy (Debian's caddy package) in front,
// the decision listener beside it: the same answers as behind nginx.
func TestCaddyForwardAuth(t *testing.T) {
	bin, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: caddy is required (apt-get install caddy)")
		}
		t.Skip("caddy not installed (apt-get install caddy): the Caddy forward_auth test needs it")
	}
	k := jwttest.NewSigner(t, "ES256", "k1")
	other := jwttest.NewSigner(t, "ES256", "k1")
	is := newIssuer(t, k, true)
	up := newHeaderRecorder(t)
	decision := proctest.FreeAddr(t)
	sc := startSidecar(t, map[string]string{
		"DECISION_ADDR":     decision,
		"JWKS_URLS":         is.URL,
		"ALGORITHMS":        "ES256",
		"PUBLIC_PATHS":      "/public/*",
		"REQUIRED_SCOPES":   "read",
		"CLAIMS_TO_HEADERS": "sub=X-Auth-Subject,scope=X-Auth-Scope",
	})
	sc.waitFor(t, "/readyz", http.StatusOK)

	dir := t.TempDir()
	front := proctest.FreeAddr(t)
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, fmt.Appendf(nil, caddyfile, front, decision, strings.TrimPrefix(up.URL, "http://")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	var out proctest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("caddy output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get("http://" + front + "/public/ready")
		if err == nil {
			res.Body.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("caddy exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not answer within 15s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the poll interval
	}

	now := time.Now()
	good := jwt.MapClaims{"iss": testIssuer, "sub": "alice", "aud": "api", "scope": "read", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	with := func(key string, v any) jwt.MapClaims {
		c := maps.Clone(good)
		c[key] = v
		return c
	}
	runFrontCases(t, up, []frontCase{
		{name: "valid token", addr: front, path: "/api/items?x=1", token: k.Sign(t, good),
			hdr: map[string]string{"X-Auth-Subject": "mallory", "X-Auth-Scope": "admin"}, wantStatus: 200, wantSubject: "alice"},
		{name: "public path, forged claim header", addr: front, path: "/public/page",
			hdr: map[string]string{"X-Auth-Subject": "mallory", "X-Auth-Scope": "admin"}, wantStatus: 200, placeholder: true},
		{name: "missing token", addr: front, path: "/api/items", wantStatus: 401, challenge: `Bearer realm="jwt-sidecar"`},
		{name: "bad signature", addr: front, path: "/api/items", token: other.Sign(t, good), wantStatus: 401, challenge: `error="invalid_token"`},
		{name: "expired", addr: front, path: "/api/items", token: k.Sign(t, with("exp", now.Add(-time.Hour).Unix())), wantStatus: 401, challenge: "expired"},
		{name: "insufficient scope", addr: front, path: "/api/items", token: k.Sign(t, with("scope", "write")), wantStatus: 403},
		{name: "ambiguous path", addr: front, path: "/public/..;/api/items", wantStatus: 400},
		{name: "client's X-Forwarded-Uri is replaced by Caddy", addr: front, path: "/api/items",
			hdr: map[string]string{"X-Forwarded-Uri": "/public/x"}, wantStatus: 401},
	})
}
