package charttest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/jwt-sidecar/jwt-sidecar/test/proctest"
	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"
)

const kubernetesDoc = "../../docs/kubernetes.md"

// shellBlocks is every ```sh block of a Markdown file.
func shellBlocks(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(raw), -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// TestKubernetesDocImage: the walkthrough builds and loads the image the
// chart and the examples run, so it works as written.
func TestKubernetesDocImage(t *testing.T) {
	raw, err := os.ReadFile(kubernetesDoc)
	if err != nil {
		t.Fatal(err)
	}
	want := imageRepository + ":" + appVersion(t)
	refs := regexp.MustCompile(regexp.QuoteMeta(imageRepository)+`:[\w.-]+`).FindAllString(string(raw), -1)
	if len(refs) < 3 {
		t.Fatalf("the walkthrough names the image %d times, want the build, the kind load and the text", len(refs))
	}
	for _, r := range refs {
		if r != want {
			t.Errorf("docs/kubernetes.md names %s, want %s (the chart's appVersion, which the examples run)", r, want)
		}
	}
	var built, loaded, installed bool
	for _, b := range shellBlocks(t, kubernetesDoc) {
		for _, line := range strings.Split(b, "\n") {
			built = built || strings.Contains(line, "docker build") && strings.Contains(line, "-t "+want)
			loaded = loaded || strings.Contains(line, "kind load docker-image "+want)
			if strings.HasPrefix(line, "helm install") {
				installed = true
				if strings.Contains(line, "image.tag") || strings.Contains(line, "image.repository") {
					t.Errorf("helm install overrides the image: %s", line)
				}
			}
		}
	}
	if !built || !loaded || !installed {
		t.Errorf("walkthrough: builds %s %t, loads it into kind %t, installs the chart %t", want, built, loaded, installed)
	}
}

// TestKubernetesWalkthrough runs step 4 of docs/kubernetes.md as written,
// with the two port-forwards replaced by the real binaries on 127.0.0.1:
// the development token service with the example's settings, the echo app,
// and jwt-sidecar configured from the example's annotations. The token
// extraction runs against the issuer's real (pretty-printed) answer.
func TestKubernetesWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		_, err := exec.LookPath(tool)
		needTool(t, tool, err)
	}
	var step string
	for _, b := range shellBlocks(t, kubernetesDoc) {
		if strings.Contains(b, "TOKEN=$(") {
			step = b
		}
	}
	if step == "" {
		t.Fatal("docs/kubernetes.md has no block that reads a TOKEN")
	}
	if strings.Contains(step, "sed ") {
		t.Error("the token is read with sed; the issuer's JSON is pretty-printed")
	}

	// The example's issuer and the echo Deployment's annotations.
	b, err := os.ReadFile("../../deploy/examples/injected-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	issuerEnv := map[string]string{}
	var annotations map[string]string
	for _, o := range objects(t, string(b)) {
		if o["kind"] != "Deployment" {
			continue
		}
		dep := decode[appsv1.Deployment](t, o)
		switch dep.Name {
		case "jwt-issuer":
			_, issuerEnv = envMap(t, dep.Spec.Template.Spec.Containers[0])
		case "echo":
			annotations = dep.Spec.Template.Annotations
		}
	}

	bin := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin+string(filepath.Separator), "./cmd/jwt-issuer", "./cmd/echo-upstream", "./cmd/jwt-sidecar")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	issuerAddr, upstreamAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	sidecarAddr, adminAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	issuerURL := "http://" + issuerAddr // the example's in-cluster name, here
	start(t, bin, "jwt-issuer", []string{"serve"}, "http://"+issuerAddr+"/healthz",
		"LISTEN_ADDR="+issuerAddr, "ISSUER_URL="+issuerURL, "AUDIENCE="+issuerEnv["AUDIENCE"], "CLIENTS="+issuerEnv["CLIENTS"])
	start(t, bin, "echo-upstream", nil, "http://"+upstreamAddr+"/healthz", "LISTEN_ADDR="+upstreamAddr)
	start(t, bin, "jwt-sidecar", nil, "http://"+adminAddr+"/readyz",
		"LISTEN_ADDR="+sidecarAddr, "ADMIN_ADDR="+adminAddr, "UPSTREAM_URL=http://"+upstreamAddr,
		"ISSUERS="+issuerURL, "JWKS_URLS="+issuerURL+"/.well-known/jwks.json",
		"AUDIENCES="+annotations["jwt-sidecar.io/audiences"],
		"CLAIMS_TO_HEADERS="+annotations["jwt-sidecar.io/claims-to-headers"],
		"PUBLIC_PATHS="+annotations["jwt-sidecar.io/public-paths"])

	// The step as written, without the port-forwards (the processes above
	// stand in for them) and their sleep.
	var script []string
	for _, line := range strings.Split(step, "\n") {
		if strings.HasPrefix(line, "kubectl ") || strings.HasPrefix(line, "sleep ") {
			continue
		}
		line = strings.ReplaceAll(line, "127.0.0.1:8080", sidecarAddr)
		line = strings.ReplaceAll(line, "127.0.0.1:9090", issuerAddr)
		script = append(script, line)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eu", "-o", "pipefail", "-c", strings.Join(script, "\n"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the walkthrough's step failed: %v\n%s\n%s", err, strings.Join(script, "\n"), out)
	}
	if got := strings.Fields(string(out)); len(got) != 2 || got[0] != "401" || got[1] != `["demo"]` {
		t.Errorf("output %q, want 401 and [\"demo\"] as the walkthrough says", out)
	}
}

// start runs bin/name with exactly env and waits until readyURL answers 200.
func start(t *testing.T, bin, name string, args []string, readyURL string, env ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = env
	c, err := proc.StartChild(name, filepath.Join(t.TempDir(), name+".log"), cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, c.Tail(50))
		}
	})
	if err := c.WaitReady(t.Context(), readyURL, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// needTool skips without a system tool, except under CI=true, where its
// absence is a failure.
func needTool(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", what, err)
	}
	t.Skipf("%s is not available (%v); skipping", what, err)
}
