package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// These tests run the real binary: SIGHUP, check-config and explain exit
// codes, and explain's verdict against the running proxy's answer.

func writePEM(t *testing.T, path string, s jwttest.Signer) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(s.Key.Public())
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// processPolicy is a policy over a PEM key (idp) and a JWKS file (k8s).
func processPolicy(dir string) string {
	return `providers:
  - name: idp
    issuer: ` + idpIssuer + `
    public_key_files: [` + filepath.Join(dir, "idp.pem") + `]
    audiences: [api]
    claims_to_headers: {sub: X-Auth-Subject}
  - name: k8s
    issuer: ` + k8sIssuer + `
    jwks_file: ` + filepath.Join(dir, "k8s.json") + `
    audiences: [orders]
    token_lookup: [header:X-Service-Token]
    claims_to_headers: {sub: X-Service-Account}
rules:
  - {name: health, match: {path: /healthz}, require: public}
  - name: admin
    match: {prefix: /admin}
    require: idp
    claims: {groups: admins}
  - {name: internal, match: {prefix: /internal}, require: {any_of: [k8s, idp]}}
`
}

type policyFixture struct {
	dir      string
	idp, k8s jwttest.Signer
	env      []string
}

func newProcessFixture(t *testing.T, upstream string) *policyFixture {
	t.Helper()
	f := &policyFixture{dir: t.TempDir(), idp: jwttest.NewSigner(t, "ES256", ""), k8s: jwttest.NewSigner(t, "ES256", "k8s-1")}
	writePEM(t, filepath.Join(f.dir, "idp.pem"), f.idp)
	if err := os.WriteFile(filepath.Join(f.dir, "k8s.json"), jwttest.JWKS(t, f.k8s), 0o600); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(f.dir, "policy.yaml"), processPolicy(f.dir))
	f.env = []string{"UPSTREAM_URL=" + upstream, "CONFIG_FILE=" + filepath.Join(f.dir, "policy.yaml"), "LOG_FORMAT=text"}
	return f
}

// runBinary runs the binary to completion with args, env and stdin.
func runBinary(t *testing.T, env []string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestCheckConfigProcess(t *testing.T) {
	f := newProcessFixture(t, "http://127.0.0.1:3000")
	code, out, errOut := runBinary(t, f.env, "", "check-config")
	if code != 0 || !strings.Contains(out, "the configuration is valid") || !strings.Contains(out, "name: internal") ||
		!strings.Contains(out, "scrubbed_headers: [X-Auth-Subject, X-Service-Account]") {
		t.Errorf("valid file: exit %d\n%s%s", code, out, errOut)
	}
	// Secrets are masked, server variables shown.
	env := append(append([]string(nil), f.env...), "LISTEN_ADDR=:7444")
	env[0] = "UPSTREAM_URL=http://user:hunter2@127.0.0.1:3000/?token=s3cret"
	code, out, _ = runBinary(t, env, "", "check-config")
	if code != 0 || strings.Contains(out, "hunter2") || strings.Contains(out, "s3cret") || !strings.Contains(out, "LISTEN_ADDR: :7444") {
		t.Errorf("masking: exit %d\n%s", code, out)
	}
	// A broken file: exit 2, every error with its line.
	writeAtomic(t, filepath.Join(f.dir, "policy.yaml"), processPolicy(f.dir)+"  - {name: x, match: {prefix: /x}, require: nobody}\n  - {name: y, match: {prefx: /y}, require: idp}\n")
	code, out, errOut = runBinary(t, f.env, "", "check-config")
	if code != 2 || !strings.Contains(errOut, "policy.yaml:20: rules[3].require: unknown provider \"nobody\"") ||
		!strings.Contains(errOut, "policy.yaml:21: rules[4].match.prefx: unknown field") || out != "" {
		t.Errorf("broken file: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	// Environment and file together: exit 2 naming the variables.
	code, _, errOut = runBinary(t, append(f.env, "JWKS_URLS=http://x/jwks", "PUBLIC_PATHS=/"), "", "check-config")
	if code != 2 || !strings.Contains(errOut, "CONFIG_FILE: cannot be combined with JWKS_URLS, PUBLIC_PATHS") {
		t.Errorf("env and file: exit %d\n%s", code, errOut)
	}
	// The environment alone: its one-provider policy, in the file's terms.
	code, out, _ = runBinary(t, []string{"UPSTREAM_URL=http://127.0.0.1:3000", "JWKS_URLS=http://127.0.0.1:1/jwks", "ISSUERS=" + idpIssuer, "PUBLIC_PATHS=/healthz,/static/*"}, "", "check-config")
	if code != 0 || !strings.Contains(out, "name: env") || !strings.Contains(out, "prefix: /static/") || !strings.Contains(out, "require: env") {
		t.Errorf("env only: exit %d\n%s", code, out)
	}
	if code, out, _ := runBinary(t, nil, "", "check-config", "--help"); code != 0 || !strings.Contains(out, "Usage: jwt-sidecar check-config") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

// TestPolicyProcessSIGHUP: SIGHUP re-reads the key files the policy names
// (the file itself did not change, so the poll leaves it); a broken file is
// refused and the running policy keeps serving.
func TestPolicyProcessSIGHUP(t *testing.T) {
	up, seen := recordingUpstream(t)
	f := newProcessFixture(t, up.URL)
	s := &sidecar{listen: proctest.FreeAddr(t), admin: proctest.FreeAddr(t)}
	s.Process = proctest.Start(t, binary, append(f.env, "LISTEN_ADDR="+s.listen, "ADMIN_ADDR="+s.admin))
	s.waitFor(t, "/readyz", http.StatusOK)

	user := signFor(t, f.idp, idpIssuer, "api")
	if resp := s.get(t, "/internal/x", user); resp.StatusCode != http.StatusOK {
		t.Fatalf("before: status %d, want 200", resp.StatusCode)
	}
	// The IdP rotates to a new key: the PEM file is replaced.
	rotated := jwttest.NewSigner(t, "ES256", "")
	writePEM(t, filepath.Join(f.dir, "idp.pem"), rotated)
	newUser := signFor(t, rotated, idpIssuer, "api")
	if resp := s.get(t, "/internal/x", newUser); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("new key before SIGHUP: status %d, want 401", resp.StatusCode)
	}
	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, "/internal/x", newUser, http.StatusOK)
	if resp := s.get(t, "/internal/x", user); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the old key after SIGHUP: status %d, want 401", resp.StatusCode)
	}

	// A broken file: refused on SIGHUP, the process and its policy stay.
	writeAtomic(t, filepath.Join(f.dir, "policy.yaml"), "providers: [\n")
	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, s, `jwt_sidecar_config_reloads_total{result="failure"} `)
	if resp := s.get(t, "/internal/x", newUser); resp.StatusCode != http.StatusOK {
		t.Errorf("after a broken file: status %d, want 200 (the old policy)", resp.StatusCode)
	}
	if !strings.Contains(s.Logs(), "CONFIG_FILE refused; the running policy stays") {
		t.Errorf("no log line for the refused file:\n%s", s.Logs())
	}
	if n := seen.Load(); n != 3 {
		t.Errorf("upstream saw %d requests, want the 3 allowed", n)
	}
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.ExitCode(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
}

// waitStatus polls path until it answers want (a reload is asynchronous).
func waitStatus(t *testing.T, s *sidecar, path, token string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := s.get(t, path, token)
		if resp.StatusCode == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within 10s (last %d)", path, want, resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // the poll interval
	}
}

// waitMetric polls /metrics until a line starts with prefix and a non-zero
// value.
func waitMetric(t *testing.T, s *sidecar, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + s.admin + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, prefix) && !strings.HasSuffix(line, " 0") {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has no non-zero %s within 10s", prefix)
		}
		time.Sleep(20 * time.Millisecond) // the poll interval
	}
}

// TestExplainProcess: explain's exit code and verdict agree with what the
// running proxy answers for the same request, configuration and token.
func TestExplainProcess(t *testing.T) {
	up, _ := recordingUpstream(t)
	f := newProcessFixture(t, up.URL)
	s := &sidecar{listen: proctest.FreeAddr(t), admin: proctest.FreeAddr(t)}
	s.Process = proctest.Start(t, binary, append(f.env, "LISTEN_ADDR="+s.listen, "ADMIN_ADDR="+s.admin))
	s.waitFor(t, "/readyz", http.StatusOK)

	admin := signFor(t, f.idp, idpIssuer, "api", "groups", []any{"admins"})
	plain := signFor(t, f.idp, idpIssuer, "api", "groups", []any{"staff"})
	expired := f.idp.Sign(t, map[string]any{"iss": idpIssuer, "aud": "api", "sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()})
	svc := signFor(t, f.k8s, k8sIssuer, "orders", "sub", "system:serviceaccount:shop:orders")
	tests := []struct {
		name     string
		path     string
		token    string
		header   string // where the proxy request carries it
		wantCode int    // explain's exit code
		wantOut  []string
	}{
		{name: "admin allowed", path: "/admin/users", token: admin, header: "Authorization", wantCode: 0,
			wantOut: []string{"admin: applies (prefix /admin)", "idp: verified", "ALLOWED", "header X-Auth-Subject: alice", "token removed from header Authorization"}},
		{name: "admin without the group", path: "/admin/users", token: plain, header: "Authorization", wantCode: 1,
			wantOut: []string{"REFUSED: 403 insufficient_scope", `logged detail: rule "admin" requires claim groups to be "admins"; the idp token has ["staff"]`}},
		{name: "expired", path: "/admin", token: expired, header: "Authorization", wantCode: 1,
			wantOut: []string{"exp: ", " ago)", "REFUSED: 401 invalid_token (reason expired", "error_description: the token has expired"}},
		{name: "service account, placed where k8s reads", path: "/internal/sync", token: svc, header: "X-Service-Token", wantCode: 0,
			wantOut: []string{"token in header:X-Service-Token", "k8s: verified", "header X-Service-Account: system:serviceaccount:shop:orders"}},
		{name: "no rule", path: "/elsewhere", token: admin, header: "Authorization", wantCode: 1,
			wantOut: []string{"health: no, the path does not match path /healthz", "default: applies", "REFUSED: 403 forbidden (reason denied"}},
		{name: "public", path: "/healthz", token: "", wantCode: 0, wantOut: []string{"health: applies", "ALLOWED: forwarded to the upstream, anonymously (outcome public)"}},
		{name: "ambiguous path", path: "/healthz/..;/admin/users", token: admin, header: "Authorization", wantCode: 1,
			wantOut: []string{"path as sent /healthz/..;/admin/users; cleaned", "ambiguous after one decode: a dot segment", "refused before any rule", "REFUSED: 400 invalid_request (reason ambiguous_path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runBinary(t, f.env, "", "explain", "--path", tt.path, tt.token)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\n%s%s", code, tt.wantCode, out, errOut)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			// The running proxy agrees.
			req, _ := http.NewRequest(http.MethodGet, "http://"+s.listen+tt.path, nil)
			if tt.token != "" {
				v := tt.token
				if tt.header == "Authorization" {
					v = "Bearer " + v
				}
				req.Header.Set(tt.header, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if allowed := resp.StatusCode == http.StatusOK; allowed != (code == 0) {
				t.Errorf("the proxy answered %d, explain exited %d", resp.StatusCode, code)
			}
			if code == 1 && !strings.Contains(out, "REFUSED: "+resp.Status[:3]) {
				t.Errorf("the proxy answered %s, explain says:\n%s", resp.Status, out)
			}
		})
	}
	// The token from standard input, with its Bearer prefix.
	if code, out, _ := runBinary(t, f.env, "Bearer "+admin+"\n", "explain", "--path", "/admin", "-"); code != 0 || !strings.Contains(out, "ALLOWED") {
		t.Errorf("stdin: exit %d\n%s", code, out)
	}
	// Flags may follow the TOKEN.
	if code, out, errOut := runBinary(t, f.env, "", "explain", admin, "--path", "/admin"); code != 0 || !strings.Contains(out, "admin: applies") {
		t.Errorf("flags after the token: exit %d\n%s%s", code, out, errOut)
	}
	// --help prints the usage once, on standard output.
	if code, out, errOut := runBinary(t, f.env, "", "explain", "--help"); code != 0 || strings.Count(out, "Usage:") != 1 || errOut != "" {
		t.Errorf("explain --help: exit %d, %d usage texts, stderr %q", code, strings.Count(out, "Usage:"), errOut)
	}
	// Usage and configuration errors: exit 2.
	if code, _, errOut := runBinary(t, f.env, "", "explain", "--path", "/x"); code != 2 || !strings.Contains(errOut, "give exactly one TOKEN") {
		t.Errorf("no token: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runBinary(t, append(f.env, "ISSUERS=x"), "", "explain", admin); code != 2 || !strings.Contains(errOut, "CONFIG_FILE: cannot be combined with ISSUERS") {
		t.Errorf("bad configuration: exit %d, %s", code, errOut)
	}
	if code, out, _ := runBinary(t, nil, "", "explain", "--help"); code != 0 || !strings.Contains(out, "Usage: jwt-sidecar explain") || !strings.Contains(out, "-lookup") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

// TestExplainRawPaths: explain shows a rule's raw_paths, and for an
// ambiguous path every reading and whether the raw rule takes it.
func TestExplainRawPaths(t *testing.T) {
	up, _ := recordingUpstream(t)
	f := newProcessFixture(t, up.URL)
	writeAtomic(t, filepath.Join(f.dir, "policy.yaml"), processPolicy(f.dir)+
		"  - {name: files, match: {prefix: /files}, require: public, raw_paths: true}\n")
	code, out, errOut := runBinary(t, f.env, "", "explain", "--path", "/files/report%2525.pdf", "-")
	if code != 0 || !strings.Contains(out, "forwarded anyway: rule files has raw_paths") ||
		!strings.Contains(out, "/files/report%25.pdf /files/report%.pdf") || !strings.Contains(out, "raw_paths: ambiguous paths forwarded") {
		t.Errorf("explain of a raw path: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runBinary(t, f.env, "", "explain", "--path", "/files/..;/admin", "-")
	if code == 0 || !strings.Contains(out, "refused unless one rule with raw_paths governs every reading") || !strings.Contains(out, "/admin") {
		t.Errorf("explain of a raw path leaving its rule: exit %d\n%s%s", code, out, errOut)
	}
}
