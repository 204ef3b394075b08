package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dockerCLI is what a docker client can do, as probed.
type dockerCLI struct {
	path    string
	version string // the client's, e.g. "28.2.2" or "20.10.24+dfsg1"
	buildx  bool   // `docker buildx version` works
	compose bool   // `docker compose version` works (compose v2)
}

// builtinBuildKit reports whether the client builds with BuildKit by
// itself under DOCKER_BUILDKIT=1: clients before 23.0 carry a BuildKit
// client; later ones hand builds to buildx and fail without it ("BuildKit
// is enabled but the buildx component is missing or broken").
func (c dockerCLI) builtinBuildKit() bool {
	major, err := strconv.Atoi(strings.SplitN(c.version, ".", 2)[0])
	return err == nil && major > 0 && major < 23
}

// builder is the docker client chosen to build, and how.
type builder struct {
	cli dockerCLI
	env []string // DOCKER_BUILDKIT=1 or =0
	why string   // for the test log
}

// chooseBuilder picks, among the clients found (in order of preference:
// $DOCKER, docker in PATH, Debian's /usr/bin/docker), the first that can
// build: one with buildx, else one with its own BuildKit client (before
// 23.0, as .ci/run uses), else, when the Dockerfile needs no BuildKit
// feature, the classic builder (DOCKER_BUILDKIT=0). The error says what is
// missing in a contributor's words: the caller skips on it outside CI.
func chooseBuilder(clis []dockerCLI, needsBuildKit bool) (builder, error) {
	for _, c := range clis {
		if c.buildx {
			return builder{cli: c, env: []string{"DOCKER_BUILDKIT=1"}, why: c.path + " has buildx"}, nil
		}
	}
	for _, c := range clis {
		if c.builtinBuildKit() {
			return builder{cli: c, env: []string{"DOCKER_BUILDKIT=1"}, why: c.path + " " + c.version + " builds with its own BuildKit client"}, nil
		}
	}
	if len(clis) == 0 {
		return builder{}, errors.New("no docker CLI found ($DOCKER, docker in PATH, /usr/bin/docker)")
	}
	if !needsBuildKit {
		return builder{cli: clis[0], env: []string{"DOCKER_BUILDKIT=0"}, why: clis[0].path + " with the classic builder"}, nil
	}
	var have []string
	for _, c := range clis {
		have = append(have, c.path+" "+c.version+" (no buildx)")
	}
	return builder{}, fmt.Errorf("the Dockerfile needs BuildKit (RUN --mount), and no docker CLI here can use it: %s; "+
		"install the buildx plugin (Debian: docker-buildx) or point DOCKER at a client before 23.0 (Debian's /usr/bin/docker)",
		strings.Join(have, ", "))
}

// probeDockers finds and probes the candidate clients, each once.
func probeDockers(ctx context.Context) []dockerCLI {
	var names []string
	if d := os.Getenv("DOCKER"); d != "" {
		names = append(names, d)
	}
	names = append(names, "docker", "/usr/bin/docker")
	var out []dockerCLI
	seen := map[string]bool{}
	for _, n := range names {
		path, err := exec.LookPath(n)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(path); err == nil {
			path = real
		}
		if seen[path] {
			continue
		}
		seen[path] = true
		out = append(out, probeDocker(ctx, path))
	}
	return out
}

func probeDocker(ctx context.Context, path string) dockerCLI {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c := dockerCLI{path: path}
	// The client version prints even when no engine answers (exit 1).
	v, _ := exec.CommandContext(ctx, path, "version", "--format", "{{.Client.Version}}").Output()
	c.version = strings.TrimSpace(strings.SplitN(string(v), "\n", 2)[0])
	c.buildx = exec.CommandContext(ctx, path, "buildx", "version").Run() == nil
	c.compose = exec.CommandContext(ctx, path, "compose", "version").Run() == nil
	return c
}

// dockerfileNeedsBuildKit reports whether the Dockerfile uses a BuildKit
// feature the classic builder refuses.
func dockerfileNeedsBuildKit(t *testing.T) bool {
	t.Helper()
	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(raw), "--mount=")
}

func TestChooseBuilder(t *testing.T) {
	newCLI := dockerCLI{path: "/usr/local/bin/docker", version: "28.2.2"}
	debian := dockerCLI{path: "/usr/bin/docker", version: "20.10.24+dfsg1"}
	withBuildx := dockerCLI{path: "/opt/docker", version: "28.2.2", buildx: true}
	tests := []struct {
		name      string
		clis      []dockerCLI
		buildKit  bool
		want      string // the chosen path, "" for an error
		wantEnv   string
		wantInErr string
	}{
		{"a new CLI without buildx falls back to Debian's", []dockerCLI{newCLI, debian}, true, "/usr/bin/docker", "DOCKER_BUILDKIT=1", ""},
		{"buildx wins wherever it is", []dockerCLI{debian, withBuildx}, true, "/opt/docker", "DOCKER_BUILDKIT=1", ""},
		{"only a new CLI without buildx: explain, skip", []dockerCLI{newCLI}, true, "", "", "install the buildx plugin"},
		{"no BuildKit needed: the classic builder", []dockerCLI{newCLI}, false, "/usr/local/bin/docker", "DOCKER_BUILDKIT=0", ""},
		{"an unreadable version is no BuildKit", []dockerCLI{{path: "/x/docker", version: ""}}, true, "", "", "/x/docker"},
		{"no CLI at all", nil, true, "", "", "no docker CLI found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := chooseBuilder(tt.clis, tt.buildKit)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
					t.Errorf("chose %+v, err %v; want an error saying %q", b, err, tt.wantInErr)
				}
				return
			}
			if err != nil || b.cli.path != tt.want || len(b.env) != 1 || b.env[0] != tt.wantEnv {
				t.Errorf("chose %+v, err %v; want %s with %s", b, err, tt.want, tt.wantEnv)
			}
		})
	}
}
