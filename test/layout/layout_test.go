// Package layout holds the test that keeps the package layout honest: each
// folder has one job, and the imports between them run one way.
package layout

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/jwt-sidecar/jwt-sidecar/"

// goBinary is the go command on PATH, the one running the tests.
func goBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command on PATH: %v", err)
	}
	return p
}

// deps lists the project packages that pkg imports, directly or not, its
// tests included, without the module prefix.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	goBin := goBinary(t)
	cmd := exec.Command(goBin, "list", "-test", "-deps", "-f", "{{.ImportPath}}", "./"+pkg)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		p, ok := strings.CutPrefix(sc.Text(), module)
		if !ok {
			continue
		}
		p, _, _ = strings.Cut(p, " ") // "verifier [verifier.test]"
		p = strings.TrimSuffix(strings.TrimSuffix(p, ".test"), "_test")
		if p != pkg && !slices.Contains(got, p) {
			got = append(got, p)
		}
	}
	return got
}

// TestImportsRunOneWay: the layout's rules, tests included. The injector
// validates with the sidecar's own configuration contract and nothing
// else; the verifier knows neither HTTP forwarding nor metrics; key
// sources know nothing of tokens' verdicts; the policy does not know the
// proxy; metrics know nothing of the project (main passes the label sets).
func TestImportsRunOneWay(t *testing.T) {
	tests := []struct {
		pkg     string
		allowed []string // nil: anything not in denied
		denied  []string
	}{
		{pkg: "config", allowed: []string{"internal/cli"}},
		{pkg: "injector", allowed: []string{"config", "internal/cli"}},
		{pkg: "metrics", allowed: []string{}},
		{pkg: "keys", denied: []string{"verifier", "policy", "proxy", "metrics", "injector"}},
		{pkg: "verifier", denied: []string{"proxy", "metrics", "policy", "injector"}},
		{pkg: "policy", denied: []string{"proxy", "metrics", "injector"}},
		{pkg: "proxy", denied: []string{"injector", "internal/tracing"}},
		{pkg: "internal/tracing", denied: []string{"injector"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			got := deps(t, tt.pkg)
			for _, d := range got {
				if tt.allowed != nil && !slices.Contains(tt.allowed, d) && !strings.HasPrefix(d, "test/") {
					t.Errorf("%s imports %s; it may import only %v (and test support)", tt.pkg, d, tt.allowed)
				}
				if slices.Contains(tt.denied, d) {
					t.Errorf("%s imports %s, against the layout", tt.pkg, d)
				}
			}
		})
	}
}

// TestProductNeedsNoTools: the shipped packages never import the tools or
// test support outside their own tests, and nothing imports a command.
func TestProductNeedsNoTools(t *testing.T) {
	goBin := goBinary(t)
	for _, pkg := range []string{"config", "keys", "verifier", "policy", "proxy", "metrics", "injector", "internal/cli"} {
		cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", "./"+pkg)
		cmd.Dir = "../.."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			p, ok := strings.CutPrefix(line, module)
			if ok && (strings.HasPrefix(p, "tools/") || strings.HasPrefix(p, "test/") || strings.HasPrefix(p, "cmd/")) {
				t.Errorf("%s imports %s", pkg, p)
			}
		}
	}
}

// TestOnlyTracingImportsOpenTelemetry: the OpenTelemetry SDK stays in
// internal/tracing (and main, which wires it). The proxy declares the
// interface it needs (proxy.Tracer), so with tracing off the request path
// runs no OpenTelemetry code at all, and the other packages build without it.
func TestOnlyTracingImportsOpenTelemetry(t *testing.T) {
	goBin := goBinary(t)
	for _, pkg := range []string{"config", "keys", "verifier", "policy", "proxy", "metrics", "injector", "internal/cli"} {
		cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", "./"+pkg)
		cmd.Dir = "../.."
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "go.opentelemetry.io/") {
				t.Errorf("%s imports %s; only internal/tracing may", pkg, line)
				break
			}
		}
	}
}
