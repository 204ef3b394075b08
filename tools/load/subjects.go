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
}

func (s *subject) onePID() ([]int, error) { return []int{s.proc.PID()}, nil }

// upstream is the server behind every subject.
type upstream struct {
	proc     *proc.Child
	url      string
	statsURL string
}

func startUpstream(ctx context.Context, exe, dir string, lifetime time.Duration) (*upstream, error) {
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
	cmd := exec.Command(exe, cmdUpstream, "-lifetime", lifetime.String())
	cmd.ExtraFiles = []*os.File{lnFile, statsFile}
	p, err := startProcess("upstream", filepath.Join(dir, "upstream.log"), cmd)
	if err != nil {
		return nil, err
	}
	u := &upstream{proc: p, url: "http://" + addr, statsURL: "http://" + statsAddr + statsPath}
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
	creds     credentials
	nginxPath string
	sidecar   string // path of the jwt-sidecar binary
	// sidecarEnv is added to jwt-sidecar's environment (-sidecar-env).
	sidecarEnv []string
}

func startSubject(ctx context.Context, name string, e env) (*subject, error) {
	switch name {
	case subjectDirect:
		s := &subject{name: name, url: e.upstream.url + "/", proc: e.upstream.proc}
		s.pids = s.onePID
		return s, nil
	case subjectReverseProxy:
		return startReverseProxy(ctx, e)
	case subjectNginx:
		return startNginx(ctx, e)
	case subjectSidecar:
		return startSidecar(ctx, e)
	}
	return nil, fmt.Errorf("unknown subject %q", name)
}

func startReverseProxy(ctx context.Context, e env) (*subject, error) {
	lnFile, addr, err := boundListener()
	if err != nil {
		return nil, err
	}
	defer lnFile.Close()
	cmd := exec.Command(e.exe, cmdReverseProxy, "-upstream", e.upstream.url, "-lifetime", e.lifetime.String())
	cmd.ExtraFiles = []*os.File{lnFile}
	p, err := startProcess(subjectReverseProxy, filepath.Join(e.dir, "reverseproxy.log"), cmd)
	if err != nil {
		return nil, err
	}
	s := &subject{name: subjectReverseProxy, url: "http://" + addr + "/", proc: p}
	s.pids = s.onePID
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
const nginxConfig = `# written by test/load
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
// included, verifying RS256 from a JWKS file.
func startSidecar(ctx context.Context, e env) (*subject, error) {
	if err := checkSidecarBinary(e.sidecar); err != nil {
		return nil, err
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
		"UPSTREAM_URL=" + e.upstream.url,
		"LISTEN_ADDR=" + addr,
		"ADMIN_ADDR=" + admin,
		"ISSUERS=" + tokenIssuer,
		"AUDIENCES=" + tokenAudience,
		"JWKS_FILE=" + e.creds.jwksFile,
		"CLAIMS_TO_HEADERS=sub=" + subjectHeader,
	}
	cmd.Env = append(cmd.Env, e.sidecarEnv...) // later entries win
	p, err := startProcess(subjectSidecar, filepath.Join(e.dir, "jwt-sidecar.log"), cmd)
	if err != nil {
		return nil, err
	}
	s := &subject{name: subjectSidecar, url: "http://" + addr + "/", proc: p, adminURL: "http://" + admin}
	s.pids = s.onePID
	if err := p.WaitReady(ctx, s.adminURL+"/readyz", startTimeout); err != nil {
		p.Stop(time.Second)
		return nil, err
	}
	return s, nil
}

// preflight proves a subject answers the load request with 200 before it is
// measured. For jwt-sidecar it also proves that it verifies at all (no token
// is refused), maps the subject claim and strips the token; a deviation
// there is returned as a note, since the numbers are still worth printing.
func (s *subject) preflight(ctx context.Context, token string) (notes []string, err error) {
	code, body, err := get(ctx, s.url, token)
	if err != nil {
		return nil, fmt.Errorf("%s preflight: %w", s.name, err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s preflight: GET %s with the token: status %d, want 200: %s\nlast lines of %s:\n%s", s.name, s.url, code, body, s.proc.LogPath, s.proc.Tail(20))
	}
	if s.name != subjectSidecar {
		return nil, nil
	}
	code, body, err = get(ctx, s.url, "")
	if err != nil {
		return nil, fmt.Errorf("%s preflight: %w", s.name, err)
	}
	if code != http.StatusUnauthorized {
		return nil, fmt.Errorf("%s preflight: GET %s without a token: status %d, want 401: it does not authenticate: %s", s.name, s.url, code, body)
	}
	echo := strings.TrimSuffix(s.url, "/") + echoPath
	code, body, err = get(ctx, echo, token)
	if err != nil {
		return nil, fmt.Errorf("%s preflight: %w", s.name, err)
	}
	if want := fmt.Sprintf("sub=%s auth=false", tokenSubject); code != http.StatusOK || body != want {
		notes = append(notes, fmt.Sprintf("jwt-sidecar preflight: the upstream saw %q (status %d), want %q: claim header or token stripping is off", body, code, want))
	}
	return notes, nil
}

func sidecarPath(cfg config) string { return filepath.Join(cfg.binDir, "jwt-sidecar") }

// checkSidecarBinary fails early, before anything starts, when the binary to
// measure is missing.
func checkSidecarBinary(path string) error {
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		err = errors.New("is a directory")
	}
	if err != nil {
		return fmt.Errorf("jwt-sidecar binary %s: %w (build it first: make build; or leave jwt-sidecar out of -subjects)", path, err)
	}
	return nil
}
