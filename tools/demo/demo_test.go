package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/tools/proc"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jwt-sidecar/jwt-sidecar/tools/compare/comparison"
)

// buildAll builds the binaries and the demo into a temporary folder. The
// demo cannot run without jwt-sidecar, so a failed build fails the test.
func buildAll(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binaries: %v", err)
	}
	bin := t.TempDir()
	pkgs := []string{"./cmd/jwt-issuer", "./cmd/echo-upstream", "./cmd/jwt-sidecar", "./cmd/jwt-loadgen", "./tools/demo"}
	cmd := exec.Command(goBin, append([]string{"build", "-o", bin + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = "../.." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s failed, so the demo cannot run:\n%s", strings.Join(pkgs, " "), out)
	}
	return bin
}

// freePorts returns n ports on 127.0.0.1 that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return ports
}

func portArgs(ports []int) []string {
	return []string{
		"-issuer-port", strconv.Itoa(ports[0]), "-upstream-port", strconv.Itoa(ports[1]),
		"-listen-port", strconv.Itoa(ports[2]), "-admin-port", strconv.Itoa(ports[3]),
	}
}

// TestDemo runs the built demo with -once, with curl when it is installed
// and with the net/http fallback, and checks the exit code and key lines;
// then it checks the readiness timeout with the same binaries. The
// comparison of step (g) needs no curl: it runs once, in the case that
// always runs.
func TestDemo(t *testing.T) {
	bin := buildAll(t)
	_, curlErr := exec.LookPath("curl")
	emptyPath := t.TempDir()

	tests := []struct {
		name     string
		path     string
		skip     bool
		compare  bool
		wantLine string
	}{
		{name: "curl", path: os.Getenv("PATH"), skip: curlErr != nil, wantLine: "$ curl -sS -i -u demo:demo-secret"},
		{name: "no curl", path: emptyPath, compare: true, wantLine: "curl not found; sent the same request with Go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				if os.Getenv("CI") == "true" {
					t.Fatalf("curl is required under CI=true: %v", curlErr)
				}
				t.Skip("curl is not installed; the no-curl case still runs")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			work := filepath.Join(t.TempDir(), ".demo")
			args := append([]string{"-bin", bin, "-dir", work, "-once", "-compare=" + strconv.FormatBool(tt.compare)}, portArgs(freePorts(t, 4))...)
			cmd := exec.CommandContext(ctx, proc.BinPath(bin, "demo"), args...)
			cmd.Env = append(os.Environ(), "PATH="+tt.path)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			out := stdout.String()
			if err != nil {
				t.Fatalf("demo failed: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
			}
			for _, want := range []string{
				tt.wantLine,
				"== (a) Get a token from the issuer",
				"export TOKEN='ey",
				"HTTP/1.1 401 Unauthorized",
				`WWW-Authenticate: Bearer realm="jwt-sidecar"`,
				"X-Auth-Subject: demo",
				"X-Auth-Scope: read write",
				"X-Auth-Client: demo",
				"Authorization: (absent",
				`error="invalid_token"`,
				`the forged "admin" was removed`,
				"jwt_sidecar_requests_total{",
				"== (h) Sign in with a browser",
				"== (i) A sender-constrained token: DPoP",
				`"token_type": "DPoP"`,
				`error_description="the DPoP proof was already used"`,
				`error_description="the token is DPoP-bound and must be sent with the DPoP scheme"`,
				"== (j) Revoke a token",
				`error="invalid_token", error_description="the token has been revoked"`,
				"the upstream saw X-Auth-Subject: alice",
				"p50 ≈",
				"Stopped.",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			compareLines := []string{
				"== (g) The stateless win, measured",
				"| | jwt (stateless)",
				"| **served (2xx) while the issuer was down** | **",
				"Outage: killing the issuer",
				"¹ Bucket-interpolated",
			}
			for _, want := range compareLines {
				if got := strings.Contains(out, want); got != tt.compare {
					t.Errorf("output has %q: %v, want %v (-compare=%v)", want, got, tt.compare, tt.compare)
				}
			}
			if strings.Contains(out, "UNEXPECTED") {
				t.Errorf("output has UNEXPECTED lines")
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
			}
			for _, name := range []string{"jwt-issuer", "echo-upstream", "jwt-sidecar"} {
				if _, err := os.Stat(filepath.Join(work, name+".log")); err != nil {
					t.Errorf("no log for %s: %v", name, err)
				}
			}
		})
	}
	t.Run("not ready", func(t *testing.T) { testNotReady(t, bin) })
}

// testNotReady replaces jwt-sidecar with echo-upstream, whose /readyz never
// answers 200: the demo must give up at -timeout, show the log tail, stop
// what it started and exit 1.
func testNotReady(t *testing.T, built string) {
	bin := t.TempDir()
	for name, from := range map[string]string{"jwt-issuer": "jwt-issuer", "echo-upstream": "echo-upstream", "jwt-sidecar": "echo-upstream"} {
		b, err := os.ReadFile(proc.BinPath(built, from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(proc.BinPath(bin, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ports := freePorts(t, 4)
	var stdout, stderr bytes.Buffer
	args := append([]string{"-bin", bin, "-dir", t.TempDir(), "-once", "-timeout", "1s"}, portArgs(ports)...)
	if code := run(context.Background(), args, &stdout, &stderr); code != 1 {
		t.Errorf("exit = %d, want 1", code)
	}
	for _, want := range []string{"jwt-sidecar not ready", "/readyz", "last lines of", "echo-upstream listening"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	for _, p := range ports[:3] {
		if err := checkPortFree("child", p, "x"); err != nil {
			t.Errorf("a child still listens after the demo ended: %v", err)
		}
	}
}

// TestPortInUse needs no real binaries: the port check comes first.
func TestPortInUse(t *testing.T) {
	bin := t.TempDir()
	for _, name := range []string{"jwt-issuer", "echo-upstream", "jwt-sidecar"} {
		if err := os.WriteFile(proc.BinPath(bin, name), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ports := freePorts(t, 4)
	ports[2] = busy.Addr().(*net.TCPAddr).Port

	var stdout, stderr bytes.Buffer
	args := append([]string{"-bin", bin, "-dir", t.TempDir(), "-once"}, portArgs(ports)...)
	if code := run(context.Background(), args, &stdout, &stderr); code != 1 {
		t.Errorf("exit = %d, want 1", code)
	}
	want := "port " + strconv.Itoa(ports[2]) + " (for jwt-sidecar proxy) is already in use"
	if !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), "-listen-port") {
		t.Errorf("stderr = %q, want %q and the flag to change it", stderr.String(), want)
	}
}

func TestMissingBinary(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := append([]string{"-bin", t.TempDir(), "-dir", t.TempDir(), "-once"}, portArgs(freePorts(t, 4))...)
	if code := run(context.Background(), args, &stdout, &stderr); code != 1 {
		t.Errorf("exit = %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "jwt-issuer not found") || !strings.Contains(stderr.String(), "go build") {
		t.Errorf("stderr = %q, want the missing binary and how to build it", stderr.String())
	}
}

func TestTamper(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tok := enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"aud":"demo-api","sub":"demo"}`)) + ".c2ln"
	got, what, err := tamper(tok)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := segment(got, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(payload) != `{"aud":"demo-api","sub":"demO"}` {
		t.Errorf("payload = %s", payload)
	}
	if !strings.HasSuffix(got, ".c2ln") || strings.Split(got, ".")[0] != strings.Split(tok, ".")[0] {
		t.Errorf("header or signature changed: %s", got)
	}
	if what != `sub "demo" became "demO"` {
		t.Errorf("what = %q", what)
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "-sS", want: "-sS"},
		{in: "http://127.0.0.1:7070/hello", want: "http://127.0.0.1:7070/hello"},
		{in: "scope=read write", want: "'scope=read write'"},
		{in: "Authorization: Bearer $TOKEN", want: `"Authorization: Bearer $TOKEN"`},
		{in: "it's", want: `'it'\''s'`},
		{in: "", want: "''"},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	text := `# TYPE jwt_sidecar_verification_duration_seconds histogram
jwt_sidecar_verification_duration_seconds_bucket{mode="jwt",le="1e-05"} 0
jwt_sidecar_verification_duration_seconds_bucket{mode="jwt",le="2e-05"} 50
jwt_sidecar_verification_duration_seconds_bucket{mode="jwt",le="4e-05"} 100
jwt_sidecar_verification_duration_seconds_bucket{mode="jwt",le="+Inf"} 100
jwt_sidecar_verification_duration_seconds_sum{mode="jwt"} 0.002
jwt_sidecar_verification_duration_seconds_count{mode="jwt"} 100
jwt_sidecar_verification_duration_seconds_bucket{mode="introspection",le="1e-05"} 0
jwt_sidecar_verification_duration_seconds_bucket{mode="introspection",le="2e-05"} 0
jwt_sidecar_verification_duration_seconds_bucket{mode="introspection",le="4e-05"} 0
jwt_sidecar_verification_duration_seconds_bucket{mode="introspection",le="+Inf"} 7
jwt_sidecar_verification_duration_seconds_sum{mode="introspection"} 0.07
jwt_sidecar_verification_duration_seconds_count{mode="introspection"} 7
`
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	fam := fams[verificationMetric]
	buckets, count := mergeHistograms(fam, "mode", "jwt")
	if count != 100 {
		t.Fatalf("count = %d, want 100", count)
	}
	for _, tt := range []struct{ q, want float64 }{{0.5, 20e-6}, {0.25, 15e-6}, {0.99, 39.6e-6}} {
		if got := comparison.Quantile(tt.q, buckets); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("quantile(%g) = %g, want %g", tt.q, got, tt.want)
		}
	}
	// Everything above the last finite bound: histogram_quantile answers it.
	introspection, _ := mergeHistograms(fam, "mode", "introspection")
	if got := comparison.Quantile(0.5, introspection); got != 40e-6 {
		t.Errorf("introspection p50 = %g, want 4e-05", got)
	}
	if got := counterSum(&dto.MetricFamily{}, "outcome", "allowed"); got != 0 {
		t.Errorf("empty sum = %g", got)
	}
}

func TestRequestLines(t *testing.T) {
	text := []byte(`# HELP jwt_sidecar_requests_total x
# TYPE jwt_sidecar_requests_total counter
jwt_sidecar_requests_total{outcome="allowed",reason=""} 2
jwt_sidecar_requests_total{outcome="unauthenticated",reason="expired"} 0
jwt_sidecar_requests_total{outcome="unauthenticated",reason="missing"} 2
jwt_sidecar_requests_total_other 5
`)
	shown, zeros := requestLines(text)
	if len(shown) != 2 || zeros != 1 {
		t.Errorf("shown = %q, zeros = %d; want 2 lines and 1 zero", shown, zeros)
	}
}
