package charttest

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The images the Dockerfile's targets become (docs/contract.md).
const (
	imageRepository    = "ghcr.io/jwt-sidecar/jwt-sidecar"          // target jwt-sidecar, the default
	injectorRepository = "ghcr.io/jwt-sidecar/jwt-sidecar-injector" // target injector
	devRepository      = "ghcr.io/jwt-sidecar/jwt-sidecar-dev"      // target dev
	relayRepository    = "ghcr.io/jwt-sidecar/jwt-key-relay"        // target key-relay
)

// targetOf names the Dockerfile target an image repository is built from.
var targetOf = map[string]string{imageRepository: "jwt-sidecar", injectorRepository: "injector", devRepository: "dev", relayRepository: "key-relay"}

// stage is what the tests need to know of one stage of ../../Dockerfile.
type stage struct {
	name       string
	from       string
	buildsAll  bool              // a cross-compiling go build of ./cmd/... into /out/
	copiesAll  bool              // COPY --from=build /out/ /: every binary built, at /<name>
	copied     map[string]string // destination in the image -> source in the build stage
	user       string
	entrypoint string
	exposed    []string
	labels     string
}

// dockerfile is the Dockerfile's stages in order; the last is the default target.
type dockerfile struct {
	stages   []*stage
	binaries []string // what the go build makes: one per folder under cmd/
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Join continuation lines into instructions.
	var instrs []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		instrs = append(instrs, cur.String())
		cur.Reset()
	}
	d := dockerfile{binaries: cmdBinaries(t)}
	args := map[string]string{} // global ARG defaults, for FROM ${NAME}
	copyFrom := regexp.MustCompile(`^COPY\s+--from=build\s+(\S+)\s+(\S+)$`)
	var st *stage
	for _, in := range instrs {
		op, rest, _ := strings.Cut(in, " ")
		if strings.ToUpper(op) == "ARG" && st == nil {
			if k, v, ok := strings.Cut(rest, "="); ok {
				args[k] = v
			}
			continue
		}
		if strings.ToUpper(op) == "FROM" {
			rest = os.Expand(rest, func(k string) string {
				if v, ok := args[k]; ok {
					return v
				}
				return "$" + k // BuildKit's own, like BUILDPLATFORM
			})
			st = &stage{from: rest, copied: map[string]string{}}
			if i := strings.Index(strings.ToLower(rest), " as "); i >= 0 {
				st.from, st.name = rest[:i], strings.TrimSpace(rest[i+4:])
			}
			d.stages = append(d.stages, st)
			continue
		}
		if st == nil {
			continue // ARG before the first FROM
		}
		switch strings.ToUpper(op) {
		case "RUN":
			if strings.Contains(rest, "go build") && strings.Contains(rest, "-o /out/") && strings.HasSuffix(strings.TrimSpace(rest), "./cmd/...") &&
				strings.Contains(rest, "CGO_ENABLED=0") && strings.Contains(rest, "-trimpath") && strings.Contains(rest, "-X main.version=") &&
				strings.Contains(rest, "GOARCH=${TARGETARCH}") && strings.Contains(rest, "GOOS=${TARGETOS}") {
				st.buildsAll = true
			}
		case "COPY":
			switch m := copyFrom.FindStringSubmatch(in); {
			case m != nil && m[1] == "/out/" && m[2] == "/":
				st.copiesAll = true
			case m != nil:
				st.copied[m[2]] = m[1]
			}
		case "USER":
			st.user = rest
		case "ENTRYPOINT":
			st.entrypoint = rest
		case "EXPOSE":
			st.exposed = append(st.exposed, strings.Fields(rest)...)
		case "LABEL":
			st.labels += rest
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// stage returns the stage a target names.
func (d dockerfile) stage(t *testing.T, name string) *stage {
	t.Helper()
	for _, s := range d.stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("the Dockerfile has no stage %q", name)
	return nil
}

// has reports whether the stage's image holds the binary at path /<name>.
func (d dockerfile) has(s *stage, path string) bool {
	name := strings.TrimPrefix(path, "/")
	return s.copied[path] == "/out/"+name || (s.copiesAll && slices.Contains(d.binaries, name))
}

// cmdBinaries answers the folders under ../../cmd: one binary each.
func cmdBinaries(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("../../cmd")
	if err != nil {
		t.Fatal(err)
	}
	var bins []string
	for _, e := range entries {
		// cmd/internal holds code the commands share (Go's internal rule),
		// not a command: `go build ./cmd/...` makes no binary of it.
		if e.IsDir() && e.Name() != "internal" {
			bins = append(bins, e.Name())
		}
	}
	return bins
}

func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	if len(d.stages) != 5 {
		t.Fatalf("%d stages, want build, dev, injector, key-relay, jwt-sidecar", len(d.stages))
	}
	build := d.stage(t, "build")
	// Cross-compiled on the builder's platform: no emulation for arm64.
	if build.from != "--platform=$BUILDPLATFORM golang:1.26" {
		t.Errorf("build stage FROM %q, want --platform=$BUILDPLATFORM golang:1.26", build.from)
	}
	if !build.buildsAll {
		t.Error("no RUN that builds ./cmd/... statically for TARGETOS/TARGETARCH (CGO_ENABLED=0, -trimpath, -X main.version) into /out/")
	}
	if last := d.stages[len(d.stages)-1]; last.name != "jwt-sidecar" {
		t.Errorf("the default (last) target is %q, want jwt-sidecar, the production image", last.name)
	}
	images := []struct {
		target, entrypoint string
		exposed            []string
		only               string // the one binary it holds; empty: every binary
	}{
		{"jwt-sidecar", `["/jwt-sidecar"]`, []string{"7070", "7071"}, "jwt-sidecar"},
		{"injector", `["/jwt-sidecar-injector"]`, []string{"8443", "8081"}, "jwt-sidecar-injector"},
		{"key-relay", `["/jwt-key-relay"]`, []string{"8080", "8081"}, "jwt-key-relay"},
		{"dev", `["/jwt-sidecar"]`, []string{"7070", "7071"}, ""},
	}
	for _, im := range images {
		s := d.stage(t, im.target)
		if s.from != "gcr.io/distroless/static:nonroot" {
			t.Errorf("%s: FROM %q, want gcr.io/distroless/static:nonroot", im.target, s.from)
		}
		if s.user != "65532:65532" {
			t.Errorf("%s: USER = %q, want 65532:65532", im.target, s.user)
		}
		if s.entrypoint != im.entrypoint {
			t.Errorf("%s: ENTRYPOINT = %s, want %s", im.target, s.entrypoint, im.entrypoint)
		}
		if !slices.Equal(s.exposed, im.exposed) {
			t.Errorf("%s: EXPOSE = %v, want %v", im.target, s.exposed, im.exposed)
		}
		for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
			if !strings.Contains(s.labels, l) {
				t.Errorf("%s: no label %s", im.target, l)
			}
		}
		for _, bin := range d.binaries {
			if want := im.only == "" || bin == im.only; d.has(s, "/"+bin) != want {
				t.Errorf("%s: holds /%s = %t, want %t", im.target, bin, d.has(s, "/"+bin), want)
			}
		}
		// Everything copied is built from a folder under cmd/.
		for dst, src := range s.copied {
			name := strings.TrimPrefix(src, "/out/")
			if dst != "/"+name || !slices.Contains(d.binaries, name) {
				t.Errorf("%s: COPY %s %s: there is no cmd/%s to build it from", im.target, src, dst, name)
			}
		}
	}
	raw, _ := os.ReadFile("../../Dockerfile")
	if strings.Contains(string(raw), "# syntax=") {
		t.Error("a # syntax= line pulls a frontend image; the build must work offline")
	}

	// .dockerignore keeps the context to the main module.
	ignore, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".git", "bin", "charts"} {
		if !slices.Contains(strings.Fields(string(ignore)), p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
}

// TestChartUsesTheProjectImage: the chart and the examples run the images the
// Dockerfile builds, at the chart's appVersion, and only binaries they contain.
func TestChartUsesTheProjectImage(t *testing.T) {
	ch := loadChart(t)
	img := ch.Values["image"].(map[string]any)
	if img["repository"] != injectorRepository {
		t.Errorf("image.repository = %v, want %s", img["repository"], injectorRepository)
	}
	d := readDockerfile(t)

	// checkPod: every container of a project image runs a binary that
	// image's target holds.
	checkPod := func(where string, spec corev1.PodSpec) {
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			repo, _, _ := strings.Cut(c.Image, "@") // a digest
			if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
				repo = repo[:i] // a tag, not a registry's port
			}
			target, ok := targetOf[repo]
			if !ok {
				continue // only the project's images have to match the Dockerfile
			}
			s := d.stage(t, target)
			bin := strings.Trim(s.entrypoint, `[]"`)
			if len(c.Command) > 0 {
				bin = c.Command[0]
			}
			if !d.has(s, bin) {
				t.Errorf("%s: container %s runs %s, which the Dockerfile's %s target does not hold", where, c.Name, bin, target)
			}
		}
	}

	for name, file := range valueSets {
		for _, o := range objects(t, manifests(render(t, readValues(t, file)))) {
			if o["kind"] != "Deployment" {
				continue
			}
			dep := decode[appsv1.Deployment](t, o)
			checkPod(name+" values", dep.Spec.Template.Spec)
			if want := injectorRepository + ":" + ch.Metadata.AppVersion; name == "default" && dep.Spec.Template.Spec.Containers[0].Image != want {
				t.Errorf("default image = %s, want %s", dep.Spec.Template.Spec.Containers[0].Image, want)
			}
		}
	}

	// The examples: the sidecar runs the slim image, the dev tools the dev
	// image, all at the chart's appVersion.
	files, _ := filepath.Glob("../../deploy/examples/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objects(t, string(b)) {
			if o["kind"] != "Deployment" {
				continue
			}
			dep := decode[appsv1.Deployment](t, o)
			checkPod(filepath.Base(f), dep.Spec.Template.Spec)
			for _, c := range append(dep.Spec.Template.Spec.InitContainers, dep.Spec.Template.Spec.Containers...) {
				want := devRepository + ":" + ch.Metadata.AppVersion
				if c.Name == "jwt-sidecar" {
					want = imageRepository + ":" + ch.Metadata.AppVersion
				}
				if c.Image != want {
					t.Errorf("%s: %s runs %s, want %s", filepath.Base(f), c.Name, c.Image, want)
				}
			}
		}
	}
}
