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

const imageRepository = "ghcr.io/jwt-sidecar/jwt-sidecar"

// dockerfile is what the tests need to know of ../../Dockerfile.
type dockerfile struct {
	froms      []string          // base images in order
	buildsAll  bool              // a go build of ./cmd/... into /out/
	copiesAll  bool              // COPY --from=build /out/ /: every binary built, at /<name>
	binaries   []string          // what the go build makes: one per folder under cmd/
	copied     map[string]string // destination in the image -> source in the build stage
	user       string
	entrypoint string
	exposed    []string
	labels     string
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
	d := dockerfile{copied: map[string]string{}, binaries: cmdBinaries(t)}
	copyFrom := regexp.MustCompile(`^COPY\s+--from=build\s+(\S+)\s+(\S+)$`)
	for _, in := range instrs {
		op, rest, _ := strings.Cut(in, " ")
		switch strings.ToUpper(op) {
		case "FROM":
			d.froms = append(d.froms, rest)
		case "RUN":
			if strings.Contains(rest, "go build") && strings.Contains(rest, "-o /out/") && strings.HasSuffix(strings.TrimSpace(rest), "./cmd/...") &&
				strings.Contains(rest, "CGO_ENABLED=0") && strings.Contains(rest, "-trimpath") && strings.Contains(rest, "-X main.version=") {
				d.buildsAll = true
			}
		case "COPY":
			switch m := copyFrom.FindStringSubmatch(in); {
			case m != nil && m[1] == "/out/" && m[2] == "/":
				d.copiesAll = true
			case m != nil:
				d.copied[m[2]] = m[1]
			}
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			d.entrypoint = rest
		case "EXPOSE":
			d.exposed = append(d.exposed, strings.Fields(rest)...)
		case "LABEL":
			d.labels += rest
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// has reports whether the image holds the binary at path /<name>.
func (d dockerfile) has(path string) bool {
	name := strings.TrimPrefix(path, "/")
	return d.copied[path] == "/out/"+name || (d.copiesAll && d.buildsAll && slices.Contains(d.binaries, name))
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
	if !slices.Equal(d.froms, []string{"golang:1.26 AS build", "gcr.io/distroless/static:nonroot"}) {
		t.Errorf("FROM = %q", d.froms)
	}
	if !d.buildsAll {
		t.Error("no RUN that builds ./cmd/... statically (CGO_ENABLED=0, -trimpath, -X main.version) into /out/")
	}
	if d.user != "65532:65532" {
		t.Errorf("USER = %q, want 65532:65532", d.user)
	}
	if d.entrypoint != `["/jwt-sidecar"]` {
		t.Errorf("ENTRYPOINT = %s, want [\"/jwt-sidecar\"]", d.entrypoint)
	}
	if !slices.Equal(d.exposed, []string{"7070", "7071"}) {
		t.Errorf("EXPOSE = %v, want 7070 7071", d.exposed)
	}
	for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if !strings.Contains(d.labels, l) {
			t.Errorf("no label %s", l)
		}
	}
	raw, _ := os.ReadFile("../../Dockerfile")
	if strings.Contains(string(raw), "# syntax=") {
		t.Error("a # syntax= line pulls a frontend image; the build must work offline")
	}

	// Every folder under cmd/ ends up in the image, at /<name>.
	for _, bin := range cmdBinaries(t) {
		if !d.has("/" + bin) {
			t.Errorf("cmd/%s is built but not copied to /%s", bin, bin)
		}
	}
	// And everything copied is built from a folder under cmd/.
	bins := cmdBinaries(t)
	for dst, src := range d.copied {
		name := strings.TrimPrefix(src, "/out/")
		if dst != "/"+name || !slices.Contains(bins, name) {
			t.Errorf("COPY %s %s: there is no cmd/%s to build it from", src, dst, name)
		}
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

// TestChartUsesTheProjectImage: the chart and the examples run the image the
// Dockerfile builds, and only binaries it contains.
func TestChartUsesTheProjectImage(t *testing.T) {
	ch := loadChart(t)
	img := ch.Values["image"].(map[string]any)
	if img["repository"] != imageRepository {
		t.Errorf("image.repository = %v, want %s", img["repository"], imageRepository)
	}
	want := imageRepository + ":" + ch.Metadata.AppVersion
	d := readDockerfile(t)
	entry := strings.Trim(d.entrypoint, `[]"`)

	checkPod := func(where string, spec corev1.PodSpec) {
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			if !strings.HasPrefix(c.Image, imageRepository+":") && !strings.HasPrefix(c.Image, imageRepository+"@") {
				continue // only the project image has to match the Dockerfile
			}
			bin := entry
			if len(c.Command) > 0 {
				bin = c.Command[0]
			}
			if !d.has(bin) {
				t.Errorf("%s: container %s runs %s, which the Dockerfile does not copy into the image", where, c.Name, bin)
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
			if name == "default" && dep.Spec.Template.Spec.Containers[0].Image != want {
				t.Errorf("default image = %s, want %s", dep.Spec.Template.Spec.Containers[0].Image, want)
			}
		}
	}

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
				if c.Image != want {
					t.Errorf("%s: %s runs %s, want %s (the chart's appVersion)", filepath.Base(f), c.Name, c.Image, want)
				}
			}
		}
	}
}
