package stack

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// TestComposeFile checks docker-compose.yml as a file, against the binaries
// it runs: they are built from this checkout, and their --help says which
// variables they know.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t, composeFile)
	bin := t.TempDir()
	built := buildBinaries(t, bin)
	helps := map[string]string{}
	known := map[string][]string{}
	for _, b := range built {
		helps[b], known[b] = helpOf(t, filepath.Join(bin, b))
	}

	t.Run("images", func(t *testing.T) {
		for _, s := range p.Services {
			switch {
			case isProject(s):
				if s.Image != projectImage {
					t.Errorf("%s: image %q, want %s (one image for every project service)", s.Name, s.Image, projectImage)
				}
				if ctx, _ := filepath.Abs(repoRoot); s.Build.Context != ctx || s.Build.Dockerfile != "Dockerfile" || s.Build.Target != "dev" {
					t.Errorf("%s: builds %s/%s target %q, want the top-level Dockerfile's dev target (every binary)", s.Name, s.Build.Context, s.Build.Dockerfile, s.Build.Target)
				}
			case s.Image == "":
				t.Errorf("%s: neither builds nor names an image", s.Name)
			default:
				// A pinned version: a tag that is not latest, or a digest.
				name := s.Image[strings.LastIndex(s.Image, "/")+1:]
				if _, tag, ok := strings.Cut(name, ":"); (!ok || tag == "latest") && !strings.Contains(s.Image, "@sha256:") {
					t.Errorf("%s: image %s is not pinned to a version", s.Name, s.Image)
				}
			}
		}
	})

	t.Run("files", func(t *testing.T) {
		for _, s := range p.Services {
			for _, v := range s.Volumes {
				if v.Type != types.VolumeTypeBind {
					continue
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount %s: %v", s.Name, v.Source, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s: bind mount %s is writable; configuration is mounted read-only", s.Name, v.Source)
				}
			}
			for _, ref := range s.Secrets {
				if _, ok := p.Secrets[ref.Source]; !ok {
					t.Errorf("%s: secret %s is not declared", s.Name, ref.Source)
				}
			}
		}
		for name, sec := range p.Secrets {
			if _, err := os.Stat(sec.File); err != nil {
				t.Errorf("secret %s: %v", name, err)
			}
		}
		for name, c := range p.Configs {
			if _, err := os.Stat(c.File); err != nil {
				t.Errorf("config %s: %v", name, err)
			}
		}
	})

	t.Run("ports on 127.0.0.1 only", func(t *testing.T) {
		for _, s := range p.Services {
			for _, port := range s.Ports {
				if port.HostIP != "127.0.0.1" {
					t.Errorf("%s: port %s published on %q, want 127.0.0.1", s.Name, port.Published, port.HostIP)
				}
			}
		}
	})

	t.Run("project services", func(t *testing.T) {
		for _, s := range p.Services {
			if !isProject(s) {
				continue
			}
			b := binaryOf(s)
			if !slices.Contains(built, b) || s.Entrypoint[0] != "/"+b {
				t.Errorf("%s: entrypoint %q is not /<a binary built from cmd/> (built: %v)", s.Name, s.Entrypoint, built)
				continue
			}
			var unknown []string
			for k := range s.Environment {
				if !slices.Contains(known[b], k) {
					unknown = append(unknown, k)
				}
			}
			if len(unknown) > 0 {
				slices.Sort(unknown)
				t.Errorf("%s: %s --help does not list %v (it lists %v)", s.Name, b, unknown, known[b])
			}
			if healthURL(s) == "" || s.HealthCheck.Test[1] != s.Entrypoint[0] {
				t.Errorf("%s: health check %v, want [CMD %s healthcheck URL] (no shell in the image)", s.Name, s.HealthCheck, s.Entrypoint[0])
			} else if u, err := url.Parse(healthURL(s)); err != nil || u.Hostname() != "127.0.0.1" {
				t.Errorf("%s: health check URL %s is not on 127.0.0.1", s.Name, healthURL(s))
			}
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("%s: read_only %v, cap_drop %v; want a read-only root and no capabilities", s.Name, s.ReadOnly, s.CapDrop)
			}
			for dep, d := range s.DependsOn {
				if ds, ok := p.Services[dep]; ok && ds.HealthCheck != nil && d.Condition != types.ServiceConditionHealthy {
					t.Errorf("%s: depends on %s with condition %q, want service_healthy", s.Name, dep, d.Condition)
				}
			}
		}
	})

	// Every health check command works with the binary it names: the
	// binaries are run in healthcheck mode against a server here.
	t.Run("healthcheck mode", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/down" {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok\n")
		}))
		defer srv.Close()
		for _, s := range p.Services {
			if !isProject(s) || healthURL(s) == "" || !slices.Contains(built, binaryOf(s)) {
				continue
			}
			b := filepath.Join(bin, binaryOf(s))
			if out, err := exec.CommandContext(t.Context(), b, "healthcheck", srv.URL+"/up").CombinedOutput(); err != nil {
				t.Errorf("%s: %s healthcheck of a healthy URL: %v\n%s", s.Name, binaryOf(s), err, out)
			}
			if exec.CommandContext(t.Context(), b, "healthcheck", srv.URL+"/down").Run() == nil {
				t.Errorf("%s: %s healthcheck of a 503 URL exited 0", s.Name, binaryOf(s))
			}
		}
	})

	// The stack only works when the services agree: the sidecars accept the
	// issuer's iss and aud, and every client secret file holds the secret
	// the issuer has for that client.
	t.Run("services agree", func(t *testing.T) {
		issuer := serviceEnv(serviceRunning(t, p, "jwt-issuer"))
		iss, aud := issuer["ISSUER_URL"], issuer["AUDIENCE"]
		registered := issuerClients(t, issuer["CLIENTS"])
		for _, s := range p.Services {
			if !isProject(s) || binaryOf(s) == "jwt-issuer" {
				continue
			}
			e := serviceEnv(s)
			if o := e["OIDC_ISSUER_URL"]; o != "" && o != iss {
				t.Errorf("%s: OIDC_ISSUER_URL %s, but the issuer's ISSUER_URL is %s", s.Name, o, iss)
			}
			if is := e["ISSUERS"]; is != "" && !slices.Contains(strings.Split(is, ","), iss) {
				t.Errorf("%s: ISSUERS %s lacks the issuer's %s", s.Name, is, iss)
			}
			if a := e["AUDIENCES"]; a != "" && !slices.Contains(strings.Split(a, ","), aud) {
				t.Errorf("%s: AUDIENCES %s lacks the issuer's AUDIENCE %s", s.Name, a, aud)
			}
			for _, k := range []string{"TOKEN_URL", "INTROSPECTION_URL", "JWKS_URLS"} {
				if u := e[k]; u != "" && !strings.HasPrefix(u, iss+"/") {
					t.Errorf("%s: %s %s is not on the issuer %s", s.Name, k, u, iss)
				}
			}
			for k, id := range e {
				prefix, ok := strings.CutSuffix(k, "CLIENT_ID")
				if !ok {
					continue
				}
				want, ok := registered[id]
				if !ok {
					t.Errorf("%s: %s %s is not one of the issuer's CLIENTS", s.Name, k, id)
					continue
				}
				file := e[prefix+"CLIENT_SECRET_FILE"]
				name, ok := strings.CutPrefix(file, secretsInsideAt)
				if !ok || !slices.ContainsFunc(s.Secrets, func(r types.ServiceSecretConfig) bool { return r.Source == name }) {
					t.Errorf("%s: %sCLIENT_SECRET_FILE %q is not one of its compose secrets", s.Name, prefix, file)
					continue
				}
				got, err := os.ReadFile(p.Secrets[name].File)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want {
					t.Errorf("%s: secret %s holds %q, the issuer's CLIENTS has %q for %s", s.Name, name, got, want, id)
				}
			}
		}
	})

	// Prometheus scrapes exactly the project services whose binaries serve
	// /metrics, each at the listener its health check uses, and the job is
	// named after the service.
	t.Run("prometheus jobs", func(t *testing.T) {
		jobs := scrapeJobs(t)
		var want, got []string
		for _, s := range p.Services {
			if isProject(s) && strings.Contains(helps[binaryOf(s)], "/metrics") {
				want = append(want, s.Name)
			}
		}
		for job, targets := range jobs {
			got = append(got, job)
			s, ok := p.Services[job]
			if !ok {
				continue
			}
			wantTarget := job + ":" + portOf(healthURL(s))
			if !slices.Equal(targets, []string{wantTarget}) {
				t.Errorf("job %s scrapes %v, want [%s]", job, targets, wantTarget)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("prometheus.yml jobs %v, want the services whose binaries serve /metrics: %v", got, want)
		}
		promtool, err := exec.LookPath("promtool")
		needTool(t, "promtool", err)
		if out, err := exec.CommandContext(t.Context(), promtool, "check", "config", prometheusFile).CombinedOutput(); err != nil {
			t.Errorf("promtool check config: %v\n%s", err, out)
		}
	})
}

// TestComposeCIOverride: CI runs the same stack with only what it can get:
// stand-in images built by .ci/standins, and no Grafana.
func TestComposeCIOverride(t *testing.T) {
	base := loadCompose(t, composeFile)
	ci := loadCompose(t, composeFile, composeCIFile)
	standins := standinImages(t)

	if _, ok := ci.Services["grafana"]; ok {
		t.Error("grafana runs in CI; it cannot (no registry, no package)")
	}
	if _, ok := ci.DisabledServices["grafana"]; !ok {
		t.Error("grafana is not behind a profile in CI")
	}
	for name, s := range ci.Services {
		b := base.Services[name]
		switch {
		case isProject(s):
			if s.Image != b.Image || s.Build.Context != b.Build.Context {
				t.Errorf("%s: CI builds %s from %s, users %s from %s", name, s.Image, s.Build.Context, b.Image, b.Build.Context)
			}
		case !slices.Contains(standins, s.Image):
			t.Errorf("%s: CI runs %s, which .ci/standins does not build (it builds %v)", name, s.Image, standins)
		}
		// Only the image may differ: CI runs what users run.
		s.Image, b.Image = "", ""
		if !reflect.DeepEqual(s, b) {
			t.Errorf("%s: the CI override changes more than the image", name)
		}
	}
	for _, from := range dockerfileBases(t) {
		if from != "scratch" && !slices.Contains(standins, from) {
			t.Errorf("the Dockerfile builds FROM %s, which .ci/standins does not build", from)
		}
	}
}

// TestComposeConfigTool: the compose implementation users run accepts both
// files (docker-compose config needs no engine).
func TestComposeConfigTool(t *testing.T) {
	c := findCompose(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, files := range [][]string{{"docker-compose.yml"}, {"docker-compose.yml", "deploy/compose/docker-compose.ci.yml"}} {
		var args []string
		for _, f := range files {
			args = append(args, "-f", f)
		}
		if out, err := c.run(ctx, nil, append(args, "config", "-q")...); err != nil {
			t.Errorf("%v: %v\n%s", files, err, out)
		}
	}
}
