//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"
)

// startTimeout bounds how long any process may take to become ready.
const startTimeout = 30 * time.Second

// subject is one thing the load generator measures.
type subject struct {
	name string
	url  string // what the load generator requests
	proc *proc.Child
	// pids are the processes whose CPU and memory count for the subject.
	pids func() ([]int, error)
	// adminURL is jwt-sidecar's admin listener, for /metrics after the run.
	adminURL string
	// up is the upstream behind the subject: the HTTP one, or the gRPC
	// server for the gRPC subjects.
	up *upstream
}

func (s *subject) onePID() ([]int, error) { return []int{s.proc.PID()}, nil }

// upstream is the server behind every subject.
type upstream struct {
	proc     *proc.Child
	url      string
	statsURL string
}

func startUpstream(ctx context.Context, exe, dir string, lifetime time.Duration) (*upstream, error) {
	return startUpstreamAs(ctx, exe, dir, lifetime, cmdUpstream, "upstream", "http://")
}

// startUpstreamAs runs this program as the upstream named by command, on a
// listener it binds and hands over, and waits for its stats listener.
// scheme is what UPSTREAM_URL says of it.
func startUpstreamAs(ctx context.Context, exe, dir string, lifetime time.Duration, command, name, scheme string) (*upstream, error) {
	lnFile, addr, err := boundListener()
	if err != nil {
		return nil, err
	}
	defer lnFile.Close()
	statsFile, statsAddr, err := boundListener()
	if err != nil {
		return nil, err
	}
	defer statsFile.Close()
	cmd := exec.Command(exe, command, "-lifetime", lifetime.String())
	cmd.ExtraFiles = []*os.File{lnFile, statsFile}
	p, err := startProcess(name, filepath.Join(dir, name+".log"), cmd)
	if err != nil {
		return nil, err
	}
	u := &upstream{proc: p, url: scheme + addr, statsURL: "http://" + statsAddr + statsPath}
	if err := p.WaitReady(ctx, u.statsURL, startTimeout); err != nil {
		p.Stop(time.Second)
		return nil, err
	}
	return u, nil
}

// counts returns how many connections the upstream has accepted and how many
// requests it has answered so far.
func (u *upstream) counts(ctx context.Context) (conns, requests int64, err error) {
	code, body, err := get(ctx, u.statsURL, "")
	if err != nil {
		return 0, 0, fmt.Errorf("upstream stats: %w", err)
	}
	if code != http.StatusOK {
		return 0, 0, fmt.Errorf("upstream stats: status %d", code)
	}
	if _, err := fmt.Sscanf(body, "%d %d", &conns, &requests); err != nil {
		return 0, 0, fmt.Errorf("upstream stats %q: %w", body, err)
	}
	return conns, requests, nil
}

// env is what the subjects need to start.
type env struct {
	exe       string // this program, for the re-executed subjects
	dir       string // scratch directory, removed at the end
	lifetime  time.Duration
	upstream  *upstream
	grpc      *upstream // the gRPC server, when a gRPC subject is measured
	creds     credentials
	nginxPath string
	sidecar   string // path of the jwt-sidecar binary
	oauth2    string // path of the oauth2-proxy binary
	// sidecarEnv is added to jwt-sidecar's environment (-sidecar-env).
	sidecarEnv []string
}

func startSubject(ctx context.Context, name string, e env) (*subject, error) {
	s, err := startOne(ctx, name, e)
	if err == nil && s.up == nil {
		s.up = e.upstream
	}
	return s, err
}

func startOne(ctx context.Context, name string, e env) (*subject, error) {
	switch name {
	case subjectGRPCDirect:
		s := &subject{name: name, url: strings.TrimPrefix(e.grpc.url, "h2c://"), proc: e.grpc.proc, up: e.grpc}
		s.pids = s.onePID
		return s, nil
	case subjectGRPCSidecar:
		return startSidecar(ctx, name, e)
	case subjectDirect:
		s := &subject{name: name, url: e.upstream.url + "/", proc: e.upstream.proc}
		s.pids = s.onePID
		return s, nil
	case subjectReverseProxy, subjectGRPCReverseProxy:
		return startReverseProxy(ctx, name, e)
	case subjectNginx:
		return startNginx(ctx, e)
	case subjectSidecar, subjectSidecarNoCache:
		return startSidecar(ctx, name, e)
	case subjectOAuth2Proxy:
		return startOAuth2Proxy(ctx, e)
	}
	return nil, fmt.Errorf("unknown subject %q", name)
}

// startReverseProxy runs the plain reverse proxy in front of the HTTP
// upstream or, as grpc-reverseproxy, in front of the gRPC server over h2c.
func startReverseProxy(ctx context.Context, name string, e env) (*subject, error) {
	lnFile, addr, err := boundListener()
	if err != nil {
		return nil, err
	}
	defer lnFile.Close()
	up := e.upstream
	args := []string{cmdReverseProxy, "-upstream", up.url, "-lifetime", e.lifetime.String()}
	if name == subjectGRPCReverseProxy {
		up = e.grpc
		args = []string{cmdReverseProxy, "-h2c", "-upstream", "http://" + strings.TrimPrefix(up.url, "h2c://"), "-lifetime", e.lifetime.String()}
	}
	cmd := exec.Command(e.exe, args...)
	cmd.ExtraFiles = []*os.File{lnFile}
	p, err := startProcess(name, filepath.Join(e.dir, name+".log"), cmd)
	if err != nil {
		return nil, err
	}
	s := &subject{name: name, url: "http://" + addr + "/", proc: p, up: up}
	s.pids = s.onePID
	if name == subjectGRPCReverseProxy {
		// Its listener is bound already; the gRPC preflight waits for the
		// HTTP/2 handshake.
		s.url = addr
		return s, nil
	}
	if err := p.WaitReady(ctx, s.url, startTimeout); err != nil {
		p.Stop(time.Second)
		return nil, err
	}
	return s, nil
}

// findNginx returns the nginx binary: the flag, then PATH, then /usr/sbin
// (not in PATH for users other than root).
func findNginx(flagPath string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("-nginx: %w", err)
		}
		return flagPath, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx not found in PATH or /usr/sbin")
}

// nginxConfig is a plain reverse proxy with upstream keepalive. Every path
// is inside the prefix directory, so nginx needs neither /etc/nginx nor root.
const nginxConfig = `# written by tools/load
worker_processes %[1]d;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path %[2]s/client_body_temp;
    proxy_temp_path %[2]s/proxy_temp;
%[5]s
    upstream load_upstream {
        server %[3]s;
        keepalive 256;
    }
    server {
        listen %[4]s;
        location / {
            proxy_pass http://load_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`

func startNginx(ctx context.Context, e env) (*subject, error) {
	dir := filepath.Join(e.dir, "nginx")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := proc.PickAddr()
	if err != nil {
		return nil, err
	}
	// fastcgi, uwsgi and scgi are optional modules: their temp path
	// directive exists only when the module is built in.
	var extra strings.Builder
	built, _ := exec.Command(e.nginxPath, "-V").CombinedOutput()
	for _, m := range []string{"fastcgi", "uwsgi", "scgi"} {
		if !strings.Contains(string(built), "--without-http_"+m+"_module") {
			fmt.Fprintf(&extra, "    %s_temp_path %s/%s_temp;\n", m, dir, m)
		}
	}
	conf := fmt.Sprintf(nginxConfig, runtime.NumCPU(), dir, strings.TrimPrefix(e.upstream.url, "http://"), addr, extra.String())
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// -e: the error log before the configuration is read, which otherwise
	// defaults to a compiled-in path.
	cmd := exec.Command(e.nginxPath, "-p", dir+"/", "-c", confPath, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	p, err := startProcess(subjectNginx, filepath.Join(dir, "stderr.log"), cmd)
	if err != nil {
		return nil, err
	}
	s := &subject{name: subjectNginx, url: "http://" + addr + "/", proc: p}
	// The master and its workers.
	s.pids = func() ([]int, error) { return withChildren(p.PID()) }
	if err := p.WaitReady(ctx, s.url, startTimeout); err != nil {
		p.Stop(time.Second)
		if b, rerr := os.ReadFile(filepath.Join(dir, "error.log")); rerr == nil {
			err = fmt.Errorf("%w\n--- nginx error.log ---\n%s", err, b)
		}
		return nil, err
	}
	return s, nil
}

// startSidecar runs the real binary with the defaults a user gets, logging
// included, verifying RS256 from a JWKS file or, when the run has an issuer,
// from the keys OIDC discovery finds there. jwt-sidecar-nocache is the same
// with TOKEN_CACHE_SIZE=0: every request a full signature check.
//
// grpc-jwt-sidecar is the same in front of the gRPC server, over h2c.
func startSidecar(ctx context.Context, name string, e env) (*subject, error) {
	if err := checkSidecarBinary(e.sidecar); err != nil {
		return nil, err
	}
	up := e.upstream
	if name == subjectGRPCSidecar {
		up = e.grpc
	}
	addr, err := proc.PickAddr()
	if err != nil {
		return nil, err
	}
	admin, err := proc.PickAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.sidecar)
	// Only these: the caller's environment must not change the defaults.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"UPSTREAM_URL=" + up.url,
		"LISTEN_ADDR=" + addr,
		"ADMIN_ADDR=" + admin,
		"AUDIENCES=" + tokenAudience,
		"CLAIMS_TO_HEADERS=sub=" + subjectHeader,
	}
	if e.creds.issuerURL != "" {
		cmd.Env = append(cmd.Env, "OIDC_ISSUER_URL="+e.creds.issuerURL)
	} else {
		cmd.Env = append(cmd.Env, "ISSUERS="+tokenIssuer, "JWKS_FILE="+e.creds.jwksFile)
	}
	if name == subjectSidecarNoCache {
		cmd.Env = append(cmd.Env, "TOKEN_CACHE_SIZE=0")
	}
	cmd.Env = append(cmd.Env, e.sidecarEnv...) // later entries win
	p, err := startProcess(name, filepath.Join(e.dir, name+".log"), cmd)
	if err != nil {
		return nil, err
	}
	s := &subject{name: name, url: "http://" + addr + "/", proc: p, adminURL: "http://" + admin, up: up}
	if name == subjectGRPCSidecar {
		s.url = addr
	}
	s.pids = s.onePID
	if err := p.WaitReady(ctx, s.adminURL+"/readyz", startTimeout); err != nil {
		p.Stop(time.Second)
		return nil, err
	}
	return s, nil
}

// oauth2ProxyCookieSecret is the cookie secret oauth2-proxy insists on; in
// bearer-JWT mode it never sets a cookie, so any 32 bytes do.
const oauth2ProxyCookieSecret = "load-run-cookie-secret-32-bytes!"

// startOAuth2Proxy runs oauth2-proxy in bearer-JWT mode: an OIDC provider
// (the run's dev issuer, found by discovery), --skip-jwt-bearer-tokens so a
// request with a valid bearer JWT is verified locally and forwarded, the
// audience as client ID. Its per-request log is off, as jwt-sidecar writes
// no line for an allowed request.
func startOAuth2Proxy(ctx context.Context, e env) (*subject, error) {
	if e.creds.issuerURL == "" {
		return nil, errors.New("oauth2-proxy needs the run's OIDC issuer")
	}
	addr, err := proc.PickAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.oauth2,
		"--http-address="+addr,
		"--upstream="+e.upstream.url+"/",
		"--provider=oidc",
		"--oidc-issuer-url="+e.creds.issuerURL,
		"--client-id="+tokenAudience,
		"--client-secret=unused",
		"--cookie-secret="+oauth2ProxyCookieSecret,
		"--cookie-secure=false",
		"--email-domain=*",
		"--skip-jwt-bearer-tokens=true",
		"--request-logging=false",
		"--pass-user-headers=true",
	)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	p, err := startProcess(subjectOAuth2Proxy, filepath.Join(e.dir, "oauth2-proxy.log"), cmd)
	if err != nil {
		return nil, err
	}
	s := &subject{name: subjectOAuth2Proxy, url: "http://" + addr + "/", proc: p}
	s.pids = s.onePID
	if err := p.WaitReady(ctx, "http://"+addr+"/ping", startTimeout); err != nil {
		p.Stop(time.Second)
		return nil, err
	}
	return s, nil
}

// preflight proves a subject answers the load request with 200 before it is
// measured. A subject that verifies tokens must refuse a request without one
// and one with a tampered signature, so that it is not measured as a plain
// proxy. jwt-sidecar must also map the subject claim and strip the token; a
// deviation there is returned as a note, since the numbers are still worth
// printing.
func (s *subject) preflight(ctx context.Context, creds credentials) (notes []string, err error) {
	if isGRPC(s.name) {
		return s.grpcPreflight(ctx, creds)
	}
	code, body, err := get(ctx, s.url, creds.token)
	if err != nil {
		return nil, fmt.Errorf("%s preflight: %w", s.name, err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s preflight: GET %s with the token: status %d, want 200: %s\nlast lines of %s:\n%s", s.name, s.url, code, body, s.proc.LogPath, s.proc.Tail(20))
	}
	if !verifies(s.name) {
		return nil, nil
	}
	for _, bad := range []struct{ what, token string }{
		{"without a token", ""},
		{"with a tampered signature", tamper(creds.token)},
	} {
		code, body, err = get(ctx, s.url, bad.token)
		if err != nil {
			return nil, fmt.Errorf("%s preflight: %w", s.name, err)
		}
		if code < 400 || (s.name != subjectOAuth2Proxy && code != http.StatusUnauthorized) {
			return nil, fmt.Errorf("%s preflight: GET %s %s: status %d, want a refusal: it does not authenticate: %s", s.name, s.url, bad.what, code, body)
		}
	}
	if s.name == subjectOAuth2Proxy {
		return nil, nil
	}
	echo := strings.TrimSuffix(s.url, "/") + echoPath
	code, body, err = get(ctx, echo, creds.token)
	if err != nil {
		return nil, fmt.Errorf("%s preflight: %w", s.name, err)
	}
	if want := fmt.Sprintf("sub=%s auth=false", creds.subject); code != http.StatusOK || body != want {
		notes = append(notes, fmt.Sprintf("%s preflight: the upstream saw %q (status %d), want %q: claim header or token stripping is off", s.name, body, code, want))
	}
	return notes, nil
}

// tamper flips one character in the middle of a JWS signature: the same
// length and alphabet, so only the signature check can refuse it.
func tamper(token string) string {
	i := strings.LastIndexByte(token, '.') + 10
	if i >= len(token) {
		return token + "x"
	}
	b := []byte(token)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func sidecarPath(cfg config) string { return filepath.Join(cfg.binDir, "jwt-sidecar") }

// checkSidecarBinary fails early, before anything starts, when the binary to
// measure is missing.
func checkSidecarBinary(path string) error {
	return checkBinary(path, "make build; or leave jwt-sidecar out of -subjects")
}

// checkBinary fails early when a binary the run needs is missing; build
// says how to make it.
func checkBinary(path, build string) error {
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		err = errors.New("is a directory")
	}
	if err != nil {
		return fmt.Errorf("%s binary %s: %w (build it first: %s)", filepath.Base(path), path, err, build)
	}
	return nil
}
