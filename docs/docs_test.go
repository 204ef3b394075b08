// Package docs holds the tests that keep the documentation true: the
// configuration reference against --help, the README's recipe against the
// script a test runs, and the repository standing alone.
package docs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// root is the repository, seen from this package.
const root = ".."

// inCI reports whether a missing tool must fail rather than skip.
func inCI() bool { return os.Getenv("CI") == "true" }

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if inCI() {
			t.Fatalf("%s is required under CI=true: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// helpVars reads the variables and defaults from jwt-sidecar's --help, as
// pinned by cmd/jwt-sidecar's golden test (which runs the real --help and
// checks it against the Config struct).
func helpVars(t *testing.T) map[string]string {
	t.Helper()
	line := regexp.MustCompile(`^  ([A-Z][A-Z0-9_]*)  default: (.*)$`)
	vars := map[string]string{}
	for l := range strings.SplitSeq(read(t, "cmd/jwt-sidecar/testdata/help.golden"), "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			def := m[2]
			if def == "(unset)" {
				def = ""
			}
			vars[m[1]] = def
		}
	}
	if len(vars) < 10 {
		t.Fatalf("found only %d variables in help.golden; has its format changed?", len(vars))
	}
	return vars
}

// docVars reads the table under "## Every variable" in docs/configuration.md:
// rows of | `NAME` | `default` or (required) or empty | meaning |.
func docVars(t *testing.T) map[string]string {
	t.Helper()
	row := regexp.MustCompile("^\\| `([A-Z][A-Z0-9_]*)` \\|([^|]*)\\|")
	vars := map[string]string{}
	in := false
	for l := range strings.SplitSeq(read(t, "docs/configuration.md"), "\n") {
		switch {
		case strings.HasPrefix(l, "## "):
			in = l == "## Every variable"
		case in:
			m := row.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			if _, dup := vars[m[1]]; dup {
				t.Errorf("docs/configuration.md lists %s twice", m[1])
			}
			vars[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
		}
	}
	return vars
}

// TestConfigurationMatchesHelp: the reference lists exactly the variables
// --help prints, with the same defaults.
func TestConfigurationMatchesHelp(t *testing.T) {
	help, doc := helpVars(t), docVars(t)
	for name, def := range help {
		got, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("docs/configuration.md lacks %s (--help: default %q)", name, def)
		case got != def:
			t.Errorf("%s: docs/configuration.md says default %q, --help says %q", name, got, def)
		}
	}
	for name := range doc {
		if _, ok := help[name]; !ok {
			t.Errorf("docs/configuration.md lists %s, which --help does not", name)
		}
	}
}

// recipe is the block of docs/by-hand.sh between its markers.
func recipe(t *testing.T) string {
	t.Helper()
	script := read(t, "docs/by-hand.sh")
	_, rest, ok := strings.Cut(script, "# recipe:begin\n")
	block, _, ok2 := strings.Cut(rest, "# recipe:end\n")
	if !ok || !ok2 {
		t.Fatal("docs/by-hand.sh lacks its # recipe:begin / # recipe:end markers")
	}
	return block
}

// TestREADMEHasTheRecipe: the README shows the script's commands word for
// word, as one sh block, so what a reader copies is what the test runs.
func TestREADMEHasTheRecipe(t *testing.T) {
	if !strings.Contains(read(t, "README.md"), "```sh\n"+recipe(t)+"```\n") {
		t.Errorf("README.md does not show docs/by-hand.sh's recipe verbatim as a sh block; copy it from there:\n%s", recipe(t))
	}
}

// freeAddrs returns n 127.0.0.1 addresses that were free a moment ago.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// TestRecipeRuns runs docs/by-hand.sh against binaries built from this
// checkout, on free 127.0.0.1 ports in place of the recipe's fixed ones
// (8080, 3000, 7070, 7071, which a developer's demo may hold).
func TestRecipeRuns(t *testing.T) {
	bash := needTool(t, "bash")
	needTool(t, "curl")
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "bin")+string(filepath.Separator),
		"./cmd/jwt-issuer", "./cmd/echo-upstream", "./cmd/jwt-sidecar")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	a := freeAddrs(t, 4)
	script := strings.NewReplacer(
		"127.0.0.1:8080", a[0], "127.0.0.1:3000", a[1], "127.0.0.1:7070", a[2], "127.0.0.1:7071", a[3],
	).Replace(read(t, "docs/by-hand.sh"))
	if err := os.WriteFile(filepath.Join(dir, "by-hand.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "by-hand.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_PROXY=*", "no_proxy=*")
	// Its own process group, so that a timeout ends the three servers too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever the trap missed
	}
	out := stdout.String()
	if err != nil {
		t.Fatalf("by-hand.sh: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}

	// The request without a token: 401 with the bare challenge.
	if !strings.Contains(out, "HTTP/1.1 401 Unauthorized") || !strings.Contains(out, `Www-Authenticate: Bearer realm="jwt-sidecar"`) {
		t.Errorf("no 401 with the Bearer challenge for the request without a token:\n%s", out)
	}
	// The request with it: the app's echo, the last JSON object printed.
	i := strings.LastIndex(out, "{\n  \"method\"")
	if i < 0 {
		t.Fatalf("no echo from the app in the output:\n%s", out)
	}
	var echo struct {
		Path    string              `json:"path"`
		Headers map[string][]string `json:"headers"`
	}
	if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(&echo); err != nil {
		t.Fatalf("echo: %v\n%s", err, out[i:])
	}
	if echo.Path != "/hello" || !slices.Equal(echo.Headers["X-Auth-Subject"], []string{"demo"}) || !slices.Equal(echo.Headers["X-Auth-Client"], []string{"demo"}) {
		t.Errorf("the app saw path %q and headers %v; want /hello with X-Auth-Subject and X-Auth-Client demo", echo.Path, echo.Headers)
	}
	if _, ok := echo.Headers["Authorization"]; ok {
		t.Error("the token reached the app")
	}
}

// trackedFiles lists the files git tracks, with their contents.
func trackedFiles(t *testing.T) map[string][]byte {
	t.Helper()
	git := needTool(t, "git")
	cmd := exec.Command(git, "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && !inCI() {
			t.Skipf("not a git checkout: %s", ee.Stderr)
		}
		t.Fatalf("git ls-files: %v", err)
	}
	files := map[string][]byte{}
	for name := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted in the work tree, not yet in the index
			}
			t.Fatal(err)
		}
		files[name] = b
	}
	return files
}

// outsideNames are contract files that once lived beside the repository;
// nothing may name them now (docs/contract.md replaces them). Split so that
// this file does not name them itself.
var outsideNames = []string{"SPEC" + ".md", "CONTRACTS" + ".md", "../" + "shared", "/work" + "/"}

// TestNoPathOutsideRepository: no tracked file names a path outside the
// repository. A relative path with ../ must land inside the repository from
// the file's own folder, or from a folder the same line cd's into (make
// recipes), and name something tracked or ignored (a build output).
func TestNoPathOutsideRepository(t *testing.T) {
	files := trackedFiles(t)
	exists := map[string]bool{".": true}
	for name := range files {
		for p := name; p != "."; p = path.Dir(p) {
			exists[p] = true
		}
	}
	ignored := func(p string) bool {
		cmd := exec.Command("git", "check-ignore", "-q", "--no-index", p)
		cmd.Dir = root
		return cmd.Run() == nil
	}
	// A run of ../ that starts a token: after a slash it is a URL path's
	// dot segment (the path-cleaning tests are full of those), not a file.
	rel := regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])((?:\.\./)+[A-Za-z0-9_.-]*)`)
	cd := regexp.MustCompile(`\bcd ([A-Za-z0-9_./-]+)`)
	for name, b := range files {
		if bytes.IndexByte(b, 0) >= 0 || strings.Contains(name, "testdata/fuzz/") {
			continue // binary, or fuzz inputs
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		var joined strings.Builder // continuation lines (make, sh) as one
		for n := 1; sc.Scan(); n++ {
			if l, more := strings.CutSuffix(sc.Text(), "\\"); more {
				joined.WriteString(l + " ")
				continue
			}
			line := joined.String() + sc.Text()
			joined.Reset()
			for _, bad := range outsideNames {
				if strings.Contains(line, bad) && name != "docs/docs_test.go" {
					t.Errorf("%s:%d names %q, outside the repository: %s", name, n, bad, strings.TrimSpace(line))
				}
			}
			bases := []string{path.Dir(name)}
			for _, m := range cd.FindAllStringSubmatch(line, -1) {
				bases = append(bases, path.Join(path.Dir(name), m[1]))
			}
			for _, m := range rel.FindAllStringSubmatch(line, -1) {
				ref := m[1]
				if !strings.HasSuffix(ref, "..") {
					ref = strings.TrimSuffix(ref, ".") // the end of a sentence
				}
				if strings.HasSuffix(ref, "/etc") && strings.Contains(line, "etc/passwd") {
					continue // the classic traversal payload, as attack data in a test
				}
				ok := slices.ContainsFunc(bases, func(base string) bool {
					target := path.Join(base, ref)
					if target == ".." || strings.HasPrefix(target, "../") {
						return false
					}
					return exists[target] || ignored(target) || strings.HasSuffix(ref, "/") && exists[strings.TrimSuffix(target, "/")]
				})
				if !ok {
					t.Errorf("%s:%d: %q leads outside the repository or to nothing in it: %s", name, n, ref, strings.TrimSpace(line))
				}
			}
		}
	}
}

// pending are documents that other work in progress writes; a link to one
// may dangle until it lands.
var pending = []string{"docs/kubernetes.md", "docs/operations.md", "docs/login.md", "docs/revocation.md", "docs/dpop.md"}

// TestLinksResolve: every relative link in the README and docs/ names a file
// of the repository.
func TestLinksResolve(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	names := []string{"README.md", "CONTRIBUTING.md", "SECURITY.md", "CHANGELOG.md"}
	for _, d := range docs {
		names = append(names, "docs/"+filepath.Base(d))
	}
	for _, name := range names {
		for _, m := range link.FindAllStringSubmatch(read(t, name), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			p := path.Join(path.Dir(name), target)
			if _, err := os.Stat(filepath.Join(root, p)); err != nil && !slices.Contains(pending, p) {
				t.Errorf("%s links to %s, which does not exist", name, target)
			}
		}
	}
}
