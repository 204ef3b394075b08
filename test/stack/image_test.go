package stack

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// arm64Standin is the runtime base .ci/standins builds for linux/arm64.
const arm64Standin = "jwt-sidecar-ci/distroless-static:nonroot-arm64"

// TestImageBuildsForBothArchitectures builds the production image (the
// Dockerfile's default target) for linux/amd64 and linux/arm64. The build
// stage runs on the engine's own platform and cross-compiles, so arm64 needs
// no emulation; each image must say its architecture, hold the proxy as its
// entrypoint, and the native one must run and print the version it was
// built with.
func TestImageBuildsForBothArchitectures(t *testing.T) {
	c := findCompose(t)
	c.needEngine(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	const version = "v0.0.0-image-test"
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			tag := "jwt-sidecar-image-test:" + arch
			args := []string{"build", "-q", "--platform", "linux/" + arch, "--build-arg", "VERSION=" + version, "-t", tag}
			if arch == "arm64" {
				// Without a registry, the arm64 base can only be the stand-in.
				err := exec.CommandContext(ctx, c.docker, "image", "inspect", arm64Standin).Run()
				if err == nil {
					args = append(args, "--build-arg", "RUNTIME_BASE="+arm64Standin)
				} else if inCI() {
					t.Fatalf("%s is missing: run .ci/standins", arm64Standin)
				}
			}
			build := exec.CommandContext(ctx, c.docker, append(args, ".")...)
			build.Dir = repoRoot
			build.Env = c.env
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("docker build for linux/%s: %v\n%s", arch, err, shortOutput(out))
			}
			t.Cleanup(func() { _ = exec.Command(c.docker, "image", "rm", "-f", tag).Run() })

			out, err := exec.CommandContext(ctx, c.docker, "image", "inspect", "-f", "{{.Os}}/{{.Architecture}} {{json .Config.Entrypoint}} {{.Config.User}}", tag).CombinedOutput()
			if err != nil {
				t.Fatalf("inspect: %v: %s", err, out)
			}
			if got, want := strings.TrimSpace(string(out)), `linux/`+arch+` ["/jwt-sidecar"] 65532:65532`; got != want {
				t.Errorf("image = %s, want %s", got, want)
			}
			native, _ := exec.CommandContext(ctx, c.docker, "version", "-f", "{{.Server.Arch}}").Output()
			if strings.TrimSpace(string(native)) != arch {
				return // not runnable here without emulation
			}
			run, err := exec.CommandContext(ctx, c.docker, "run", "--rm", "--network", "none", tag, "--version").CombinedOutput()
			if err != nil || !strings.Contains(string(run), version) {
				t.Errorf("docker run %s --version = %q, %v; want %s", tag, run, err, version)
			}
		})
	}
}
