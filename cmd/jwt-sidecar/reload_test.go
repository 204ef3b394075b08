package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/test/jwttest"
	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
)

// writeAtomic replaces path's content in one rename, as editors and
// configuration tools do, so a reader never sees half a file.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// countingJWKS is a JWKS endpoint that counts its fetches.
func countingJWKS(t *testing.T, s jwttest.Signer) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	body := jwttest.JWKS(t, s)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func signFor(t *testing.T, s jwttest.Signer, iss, aud string, extra ...any) string {
	t.Helper()
	c := jwt.MapClaims{"iss": iss, "sub": "alice", "aud": aud, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return s.Sign(t, c)
}

// fileApp is an in-process sidecar over a policy file: the real app, its
// reload loop and its handler behind a real server.
type fileApp struct {
	*app
	srv  *httptest.Server
	path string
	logs *proctest.Buffer
	// seen counts the requests the upstream received.
	seen *atomic.Int64
}

func startFileApp(t *testing.T, dir, policy string, env map[string]string) *fileApp {
	t.Helper()
	path := filepath.Join(dir, "policy.yaml")
	writeAtomic(t, path, policy)
	return startFileAppAt(t, path, env)
}

func startFileAppAt(t *testing.T, path string, env map[string]string) *fileApp {
	t.Helper()
	seen := new(atomic.Int64)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		fmt.Fprintf(w, "sub=%s svc=%s", r.Header.Get("X-Auth-Subject"), r.Header.Get("X-Service-Account"))
	}))
	t.Cleanup(up.Close)
	vars := map[string]string{"UPSTREAM_URL": up.URL, "CONFIG_FILE": path, "JWKS_REFRESH_INTERVAL": "1h"}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(vars)
	if err != nil {
		t.Fatal(err)
	}
	logs := &proctest.Buffer{}
	a, err := newApp(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.rt.poll = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	// Keys first, as explain does: the refresh loops then start with keys
	// and fetch again only after JWKS_REFRESH_INTERVAL.
	if err := a.loadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.rt.run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	srv := httptest.NewServer(a.proxy.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(a.proxy.CloseIdleConnections)
	return &fileApp{app: a, srv: srv, path: path, logs: logs, seen: seen}
}

// reloads reads jwt_sidecar_config_reloads_total{result}.
func (f *fileApp) reloads(t *testing.T, result string) float64 {
	t.Helper()
	return gathered(t, f.reg, "jwt_sidecar_config_reloads_total", "result", result)
}

func gathered(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// rewrite writes a new file and waits until the poll has dealt with it: a
// reload counted as result.
func (f *fileApp) rewrite(t *testing.T, content, result string) {
	t.Helper()
	before := f.reloads(t, result)
	writeAtomic(t, f.path, content)
	deadline := time.Now().Add(10 * time.Second)
	for f.reloads(t, result) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no reload counted as %s within 10s; logs:\n%s", result, f.logs)
		}
		time.Sleep(5 * time.Millisecond) // the poll interval, not a wait for readiness
	}
}

func (f *fileApp) get(t *testing.T, path, user, service string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+user)
	}
	if service != "" {
		req.Header.Set("X-Service-Token", service)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// refused gets path, expects the refusal want, and proves the upstream
// never saw the request.
func (f *fileApp) refused(t *testing.T, path, user, service string, want int) {
	t.Helper()
	before := f.seen.Load()
	if code, _ := f.get(t, path, user, service); code != want {
		t.Errorf("%s answers %d, want %d", path, code, want)
	}
	if n := f.seen.Load() - before; n != 0 {
		t.Errorf("%s was refused, but the upstream saw %d requests", path, n)
	}
}

const (
	idpIssuer = "https://idp.test"
	k8sIssuer = "https://kubernetes.default.svc.cluster.local"
)

// policyV renders the test policy: /stable always needs idp, /flip needs
// flip (a requirement), /healthz is public.
func policyV(jwksURL, flip string) string {
	return `providers:
  - name: idp
    issuer: ` + idpIssuer + `
    jwks_url: ` + jwksURL + `
    audiences: [api]
    claims_to_headers: {sub: X-Auth-Subject}
rules:
  - {name: health, match: {path: /healthz}, require: public}
  - {name: stable, match: {prefix: /stable}, require: idp}
  - {name: flip, match: {prefix: /flip}, require: ` + flip + `}
`
}

// TestReloadUnderLoad rewrites the file, valid and invalid, while a pool
// sends requests through the real handler: none fails, each answer is one
// the old or the new policy gives, a broken file keeps the old policy, and
// the unchanged key source is never fetched again.
func TestReloadUnderLoad(t *testing.T) {
	idp := jwttest.NewSigner(t, "ES256", "idp-1")
	jwks, fetches := countingJWKS(t, idp)
	f := startFileApp(t, t.TempDir(), policyV(jwks.URL, "idp"), nil)
	user := signFor(t, idp, idpIssuer, "api")
	initialFetches := fetches.Load()

	var (
		stop              atomic.Bool
		sent, flipDenied  atomic.Int64
		forwarded         atomic.Int64 // 200s: each one the upstream must have seen
		mu                sync.Mutex
		problems          []string
		wg                sync.WaitGroup
		client            = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		paths             = []string{"/stable/a", "/flip/b", "/healthz"}
		allowedFlipStatus = map[int]bool{http.StatusOK: true, http.StatusForbidden: true}
	)
	defer client.CloseIdleConnections()
	for w := range 6 {
		wg.Go(func() {
			for i := w; !stop.Load(); i++ {
				path := paths[i%len(paths)]
				req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
				if path != "/healthz" {
					req.Header.Set("Authorization", "Bearer "+user)
				}
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					mu.Lock()
					problems = append(problems, err.Error())
					mu.Unlock()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok := resp.StatusCode == http.StatusOK
				if ok {
					forwarded.Add(1)
				}
				if path == "/flip/b" {
					ok = allowedFlipStatus[resp.StatusCode]
					if resp.StatusCode == http.StatusForbidden {
						flipDenied.Add(1)
					}
				}
				if !ok {
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s: status %d", path, resp.StatusCode))
					mu.Unlock()
				}
			}
		})
	}
	expectFlip := func(want int) {
		t.Helper()
		got, _ := f.get(t, "/flip/b", user, "")
		if got != want {
			t.Errorf("/flip now answers %d, want %d", got, want)
		}
		if got == http.StatusOK {
			forwarded.Add(1)
		}
	}
	steps := []struct {
		content  string
		result   string
		wantFlip int
	}{
		{content: policyV(jwks.URL, "deny"), result: "success", wantFlip: http.StatusForbidden},
		{content: "providers: [\n", result: "failure", wantFlip: http.StatusForbidden},                                 // not YAML
		{content: policyV(jwks.URL, "nobody"), result: "failure", wantFlip: http.StatusForbidden},                      // unknown provider
		{content: policyV(jwks.URL, "idp") + "  - {name: x, match: {prefix: /x}}\n", result: "failure", wantFlip: 403}, // no require
		{content: policyV(jwks.URL, "idp"), result: "success", wantFlip: http.StatusOK},                                // back
		{content: strings.Replace(policyV(jwks.URL, "public"), "audiences: [api]", "audiences: [api, other]", 1), result: "success", wantFlip: http.StatusOK},
		{content: policyV(jwks.URL, "deny"), result: "success", wantFlip: http.StatusForbidden},
	}
	for i, s := range steps {
		f.rewrite(t, s.content, s.result)
		expectFlip(s.wantFlip)
		// Let requests run under each version for a moment.
		for until := sent.Load() + 20; sent.Load() < until; {
			time.Sleep(time.Millisecond) // the poll interval of this loop
		}
		if t.Failed() {
			t.Fatalf("step %d; logs:\n%s", i, f.logs)
		}
	}
	stop.Store(true)
	wg.Wait()
	if len(problems) > 0 {
		t.Errorf("%d of %d requests failed, e.g. %v", len(problems), sent.Load(), problems[:min(5, len(problems))])
	}
	if flipDenied.Load() == 0 {
		t.Error("no request saw the deny version of /flip")
	}
	// Only the forwarded requests arrived: no 403 leaked through a reload.
	if got, want := f.seen.Load(), forwarded.Load(); got != want {
		t.Errorf("upstream saw %d requests, want the %d answered 200", got, want)
	}
	if got := fetches.Load(); got != initialFetches {
		t.Errorf("the unchanged JWKS source was fetched %d more times across reloads, want 0", got-initialFetches)
	}
	if !strings.Contains(f.logs.String(), `unknown provider \"nobody\"`) {
		t.Errorf("the refused file's error is not logged:\n%s", f.logs)
	}
	if got := f.reloads(t, "failure"); got != 3 {
		t.Errorf("failures counted = %v, want 3", got)
	}
}

// TestReloadProviders: a new provider's keys are loaded before the swap, so
// its first token passes; a removed provider's source stops; its headers
// are no longer set, and an unchanged provider keeps its verifier.
func TestReloadProviders(t *testing.T) {
	idp := jwttest.NewSigner(t, "ES256", "idp-1")
	k8s := jwttest.NewSigner(t, "ES256", "k8s-1")
	idpJWKS, _ := countingJWKS(t, idp)
	k8sJWKS, k8sFetches := countingJWKS(t, k8s)
	v1 := policyV(idpJWKS.URL, "idp")
	f := startFileApp(t, t.TempDir(), v1, nil)
	waitRunning := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for f.rt.sources.Running() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d refresh loops running, want %d", f.rt.sources.Running(), want)
			}
			time.Sleep(5 * time.Millisecond) // the poll interval
		}
	}
	waitRunning(1)
	before := f.rt.current.Load().order[0].auth

	v2 := strings.Replace(v1, "rules:", `  - name: k8s
    issuer: `+k8sIssuer+`
    jwks_url: `+k8sJWKS.URL+`
    audiences: [orders]
    token_lookup: [header:X-Service-Token]
    claims_to_headers: {sub: X-Service-Account}
rules:`, 1) + "  - {name: internal, match: {prefix: /internal}, require: k8s}\n"
	f.rewrite(t, v2, "success")
	if k8sFetches.Load() == 0 {
		t.Error("the new provider's keys were not fetched before the swap")
	}
	svc := signFor(t, k8s, k8sIssuer, "orders", "sub", "system:serviceaccount:shop:orders")
	if code, body := f.get(t, "/internal/x", "", svc); code != http.StatusOK || body != "sub= svc=system:serviceaccount:shop:orders" {
		t.Errorf("the new provider's first token: %d %q, want 200 with only its header", code, body)
	}
	if f.rt.current.Load().order[0].auth != before {
		t.Error("the unchanged provider got a new verifier (and a cold token cache)")
	}
	waitRunning(2)

	if n := gaugeCount(t, f.reg, "jwt_sidecar_keys"); n != 2 {
		t.Errorf("jwt_sidecar_keys has %d series, want 2", n)
	}
	// The k8s provider goes away: its source stops, its route is gone, and
	// so are its key gauges.
	f.rewrite(t, v1, "success")
	waitRunning(1)
	if n := gaugeCount(t, f.reg, "jwt_sidecar_keys"); n != 1 {
		t.Errorf("jwt_sidecar_keys has %d series after the removal, want 1", n)
	}
	// After removing k8s, /internal has no rule: 403.
	f.refused(t, "/internal/x", "", svc, http.StatusForbidden)
}

// TestConfigMapSymlinkSwap updates the file the way the kubelet updates a
// mounted ConfigMap: a new timestamped directory, then an atomic rename of
// the ..data symlink. The path itself never changes.
func TestConfigMapSymlinkSwap(t *testing.T) {
	idp := jwttest.NewSigner(t, "ES256", "idp-1")
	jwks, _ := countingJWKS(t, idp)
	dir := t.TempDir()
	version := func(name, content string) {
		t.Helper()
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "policy.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_11_28_12_00_00.1", policyV(jwks.URL, "idp"))
	if err := os.Symlink("..data/policy.yaml", filepath.Join(dir, "policy.yaml")); err != nil {
		t.Fatal(err)
	}
	f := startFileAppAt(t, filepath.Join(dir, "policy.yaml"), nil)
	user := signFor(t, idp, idpIssuer, "api")
	if code, _ := f.get(t, "/flip", user, ""); code != http.StatusOK {
		t.Fatalf("/flip = %d before the swap, want 200", code)
	}
	before := f.reloads(t, "success")
	version("..2026_11_28_12_05_00.2", policyV(jwks.URL, "deny"))
	deadline := time.Now().Add(10 * time.Second)
	for f.reloads(t, "success") == before {
		if time.Now().After(deadline) {
			t.Fatalf("the ..data swap was not noticed within 10s; logs:\n%s", f.logs)
		}
		time.Sleep(5 * time.Millisecond) // the poll interval
	}
	f.refused(t, "/flip", user, "", http.StatusForbidden)
}

func TestConfigFileRefusesPolicyVariables(t *testing.T) {
	env := map[string]string{
		"UPSTREAM_URL": "http://127.0.0.1:3000", "CONFIG_FILE": "/etc/policy.yaml",
		"JWKS_URLS": "http://x/jwks", "PUBLIC_PATHS": "/healthz", "CLOCK_SKEW": "10s",
		"LISTEN_ADDR": ":8000", "TOKEN_CACHE_SIZE": "5",
	}
	_, err := config.Load(env)
	if err == nil || !strings.Contains(err.Error(), "CONFIG_FILE: cannot be combined with JWKS_URLS, CLOCK_SKEW, PUBLIC_PATHS") {
		t.Errorf("error = %v, want CONFIG_FILE naming JWKS_URLS, CLOCK_SKEW, PUBLIC_PATHS", err)
	}
	if err != nil {
		_, named, _ := strings.Cut(err.Error(), "combined with ")
		named, _, _ = strings.Cut(named, ":")
		if strings.Contains(named, "LISTEN_ADDR") || strings.Contains(named, "TOKEN_CACHE_SIZE") {
			t.Errorf("a server variable is refused too: %v", err)
		}
	}
	env = map[string]string{"UPSTREAM_URL": "http://127.0.0.1:3000", "CONFIG_FILE": "/etc/policy.yaml", "AUTH_MODE": "introspection"}
	if _, err := config.Load(env); err == nil || !strings.Contains(err.Error(), "CONFIG_FILE: AUTH_MODE=introspection cannot be combined") {
		t.Errorf("error = %v, want AUTH_MODE refused with CONFIG_FILE", err)
	}
	// Without key-source variables, a file is a complete configuration.
	if _, err := config.Load(map[string]string{"UPSTREAM_URL": "http://127.0.0.1:3000", "CONFIG_FILE": "/etc/policy.yaml"}); err != nil {
		t.Errorf("CONFIG_FILE alone: %v", err)
	}
}

func gaugeCount(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() == name {
			return len(fam.GetMetric())
		}
	}
	return 0
}
