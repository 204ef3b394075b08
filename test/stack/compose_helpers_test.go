package stack

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// The files under test, relative to this folder.
const (
	repoRoot        = "../.."
	composeFile     = "../../docker-compose.yml"
	composeCIFile   = "../../deploy/compose/docker-compose.ci.yml"
	prometheusFile  = "../../deploy/prometheus/prometheus.yml"
	standinsScript  = "../../.ci/standins"
	dockerfile      = "../../Dockerfile"
	projectImage    = "ghcr.io/jwt-sidecar/jwt-sidecar-dev:dev"
	secretsInsideAt = "/run/secrets/"
)

// inCI reports whether a missing tool must fail the test instead of
// skipping it (COMMON: absence is a failure under CI=true).
func inCI() bool { return os.Getenv("CI") == "true" }

// needTool skips, or under CI fails, when err says a tool is unusable.
func needTool(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if inCI() {
		t.Fatalf("%s is required under CI=true: %v", what, err)
	}
	t.Skipf("%s is not available (%v); skipping", what, err)
}

// loadCompose loads files with compose-go as `docker compose` would, but
// with an empty environment, so the defaults in the file are what is checked
// (a developer's *_PORT variables do not leak in).
func loadCompose(t *testing.T, files ...string) *types.Project {
	t.Helper()
	opts, err := composecli.NewProjectOptions(files,
		composecli.WithName("jwt-sidecar"),
		composecli.WithWorkingDirectory(repoRoot),
		composecli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("compose-go cannot load %v: %v", files, err)
	}
	return p
}

// isProject reports whether s runs the project's own image, built from the
// Dockerfile.
func isProject(s types.ServiceConfig) bool { return s.Build != nil }

// binaryOf is the name of the binary a project service runs: its
// entrypoint, /<name>.
func binaryOf(s types.ServiceConfig) string {
	if len(s.Entrypoint) == 0 {
		return ""
	}
	return strings.TrimPrefix(s.Entrypoint[0], "/")
}

// serviceEnv returns the service's environment as plain strings.
func serviceEnv(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// serviceRunning returns the one service that runs binary; it fails the
// test unless there is exactly one.
func serviceRunning(t *testing.T, p *types.Project, binary string) types.ServiceConfig {
	t.Helper()
	var found []types.ServiceConfig
	for _, s := range p.Services {
		if isProject(s) && binaryOf(s) == binary {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d services run %s, want 1", len(found), binary)
	}
	return found[0]
}

// issuerClients parses the issuer's CLIENTS: id:secret, comma-separated.
func issuerClients(t *testing.T, raw string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for e := range strings.SplitSeq(raw, ",") {
		id, secret, ok := strings.Cut(strings.TrimSpace(e), ":")
		if !ok {
			t.Fatalf("CLIENTS entry %q is not id:secret", e)
		}
		out[id] = secret
	}
	return out
}

// healthURL is the URL of a project service's health check,
// ["CMD", "/<binary>", "healthcheck", URL]; "" when it has none of that form.
func healthURL(s types.ServiceConfig) string {
	h := s.HealthCheck
	if h == nil || h.Disable || len(h.Test) != 4 || h.Test[0] != "CMD" || h.Test[2] != "healthcheck" {
		return ""
	}
	return h.Test[3]
}

// buildBinaries compiles every command under cmd/ into dir, as the
// Dockerfile does, and returns their names.
func buildBinaries(t *testing.T, dir string) []string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// helpVar matches a variable line of --help: cli.PrintVars writes
// "  NAME  default: ...", echo-upstream "  NAME  default ...".
var helpVar = regexp.MustCompile(`(?m)^\s+([A-Z][A-Z0-9_]*)\s+default\b`)

// helpOf runs binary --help and returns its output and the variables it lists.
func helpOf(t *testing.T, binary string) (string, []string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", filepath.Base(binary), err, out)
	}
	var vars []string
	for _, m := range helpVar.FindAllStringSubmatch(string(out), -1) {
		vars = append(vars, m[1])
	}
	if len(vars) == 0 {
		t.Fatalf("%s --help lists no variables:\n%s", filepath.Base(binary), out)
	}
	return string(out), vars
}

// scrapeJobs reads prometheus.yml: each job's targets.
func scrapeJobs(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(prometheusFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", prometheusFile, err)
	}
	jobs := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s; every exporter serves /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, s := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], s.Targets...)
		}
	}
	return jobs
}

// standinImages are the tags .ci/standins builds (`-t NAME`).
func standinImages(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(standinsScript)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`\s-t\s+(\S+)`).FindAllStringSubmatch(string(raw), -1) {
		out = append(out, m[1])
	}
	return out
}

// dockerfileBases are the images the Dockerfile builds FROM.
func dockerfileBases(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	// Global ARG defaults, for FROM ${NAME}; --platform only picks a variant.
	args := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ARG\s+(\w+)=(\S+)`).FindAllStringSubmatch(string(raw), -1) {
		args[m[1]] = m[2]
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(\S+)`).FindAllStringSubmatch(string(raw), -1) {
		out = append(out, os.Expand(m[1], func(k string) string { return args[k] }))
	}
	return out
}

// portOf returns the port of an absolute URL, or of a host:port.
func portOf(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		return u.Port()
	}
	_, port, _ := net.SplitHostPort(s)
	return port
}

// composeTool is how to run compose here: `docker compose` (v2) when the
// docker CLI has it, else docker-compose (v1, Debian's 1.29). The docker CLI
// is $DOCKER, default "docker"; it must be able to build with BuildKit
// (on Debian hosts with a second, newer client first in PATH:
// DOCKER=/usr/bin/docker).
type composeTool struct {
	docker string   // the docker CLI
	argv   []string // the compose command
	env    []string // the environment compose runs with
}

func findCompose(t *testing.T) composeTool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// Probe before using: a docker 23+ client without buildx cannot build
	// with BuildKit, which the Dockerfile needs (chooseBuilder).
	b, err := chooseBuilder(probeDockers(ctx), dockerfileNeedsBuildKit(t))
	needTool(t, "a docker CLI that can build the image", err)
	t.Logf("docker: %s", b.why)
	path := b.cli.path
	c := composeTool{docker: path}
	// docker-compose v1 builds with the docker CLI it finds in PATH, and
	// needs to be told to use it (and BuildKit, for the cache mounts).
	c.env = append(append(os.Environ(),
		"PATH="+filepath.Dir(path)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"COMPOSE_DOCKER_CLI_BUILD=1"), b.env...)
	if b.cli.compose && b.cli.buildx {
		c.argv = []string{path, "compose"}
		return c
	}
	v1, err := exec.LookPath("docker-compose")
	needTool(t, "docker compose (with buildx) or docker-compose", err)
	c.argv = []string{v1}
	return c
}

// needEngine skips, or under CI fails, unless the docker engine answers.
func (c composeTool) needEngine(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, c.docker, "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		needTool(t, "a running docker engine", fmt.Errorf("%s version: %v: %s", c.docker, err, shortOutput(out)))
	}
}

// run runs compose with args and extra environment; it returns the
// combined output.
func (c composeTool) run(ctx context.Context, extraEnv []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.argv[0], append(slices.Clone(c.argv[1:]), args...)...)
	cmd.Dir = repoRoot
	cmd.Env = append(slices.Clone(c.env), extraEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", filepath.Base(c.argv[len(c.argv)-1]), strings.Join(args, " "), err)
	}
	return string(out), nil
}

// shortOutput shortens a tool's output for an error message.
func shortOutput(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}
