package charttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/yannh/kubeconform/pkg/validator"
	"sigs.k8s.io/yaml"
)

// Module versions whose files provide the schemas. Each is fetched with the go
// command from the Go module proxy (or the module cache), never from a schema
// registry, so validation works offline once the modules are cached.
const (
	kubernetesModule = "k8s.io/kubernetes@v1.37.2"
	promOperator     = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
	certManager      = "github.com/cert-manager/cert-manager@v1.21.2"
)

// CRD files, relative to their module's root, whose openAPIV3Schema becomes a
// kubeconform schema.
var crdFiles = map[string][]string{
	promOperator: {
		"example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
		"example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
		"example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
	},
	certManager: {
		"deploy/crds/cert-manager.io_certificates.yaml",
		"deploy/crds/cert-manager.io_issuers.yaml",
		"deploy/crds/cert-manager.io_clusterissuers.yaml",
	},
}

// schemaDir is built once per test binary: one standalone, strict JSON schema
// per kind, in kubeconform's file layout.
var schemaDir = sync.OnceValues(buildSchemaDir)

// tempDirs are removed by TestMain.
var tempDirs []string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// moduleDir downloads a module (a no-op when it is in the module cache) and
// answers its directory, from go mod download's Dir field.
func moduleDir(mod string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	// Outside this module, so the download never touches go.mod or go.sum.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var res struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &res); jerr != nil && err == nil {
		err = jerr
	}
	if err != nil || res.Error != "" || res.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %v %s %s", mod, err, res.Error, stderr.String())
	}
	return res.Dir, nil
}

func buildSchemaDir() (string, error) {
	dir, err := os.MkdirTemp("", "kubeconform-schemas-")
	if err != nil {
		return "", err
	}
	tempDirs = append(tempDirs, dir)

	k8s, err := moduleDir(kubernetesModule)
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(filepath.Join(k8s, "api/openapi-spec/swagger.json"))
	if err != nil {
		return "", err
	}
	var spec struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return "", fmt.Errorf("swagger.json: %w", err)
	}
	// Native sidecars (restartPolicy on a container, 1.29+) are what the injector
	// and manual-sidecar.yaml rely on; an older swagger would reject them.
	container := spec.Definitions["io.k8s.api.core.v1.Container"]
	if props, _ := container["properties"].(map[string]any); props["restartPolicy"] == nil {
		return "", errors.New("swagger.json has no io.k8s.api.core.v1.Container.restartPolicy: too old for native sidecars")
	}
	defs := make(map[string]any, len(spec.Definitions))
	for name, d := range spec.Definitions {
		defs[name] = strictify(d)
	}
	// Two apimachinery types are strings in swagger but accept numbers in YAML.
	defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = map[string]any{
		"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}},
	}
	defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = map[string]any{
		"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}},
	}

	for name, d := range spec.Definitions {
		gvks, _ := d["x-kubernetes-group-version-kind"].([]any)
		if len(gvks) != 1 { // DeleteOptions, WatchEvent: not manifests
			continue
		}
		gvk := gvks[0].(map[string]any)
		group, version, kind := gvk["group"].(string), gvk["version"].(string), gvk["kind"].(string)
		root := deepCopy(defs[name]).(map[string]any)
		if err := writeKindSchema(dir, group, version, kind, root, defs); err != nil {
			return "", err
		}
	}

	for mod, files := range crdFiles {
		md, err := moduleDir(mod)
		if err != nil {
			return "", err
		}
		for _, f := range files {
			if err := writeCRDSchemas(dir, filepath.Join(md, f), defs); err != nil {
				return "", fmt.Errorf("%s: %w", f, err)
			}
		}
	}
	return dir, nil
}

// strictify copies a swagger or openAPIV3 schema node, closing every object
// that lists its properties (additionalProperties: false) unless the schema
// says it keeps unknown fields, and turning the Kubernetes extensions into
// plain JSON schema.
func strictify(node any) any {
	switch n := node.(type) {
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			out[i] = strictify(v)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(n))
		for k, v := range n {
			switch {
			case k == "description" || k == "x-kubernetes-group-version-kind":
				// Documentation only; dropping it keeps the files small.
			case k == "properties" || k == "definitions" || k == "patternProperties":
				// Maps from names to schemas: strictify the schemas, not the names.
				m := v.(map[string]any)
				props := make(map[string]any, len(m))
				for name, s := range m {
					props[name] = strictify(s)
				}
				out[k] = props
			default:
				out[k] = strictify(v)
			}
		}
		if ref, ok := out["$ref"].(string); ok {
			// Swagger refs look like #/definitions/NAME, which is where writeKindSchema
			// puts each definition. Draft 4 ignores a $ref's siblings.
			return map[string]any{"$ref": ref}
		}
		if n["x-kubernetes-int-or-string"] == true {
			delete(out, "type")
			out["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
		}
		if n["nullable"] == true {
			if t, ok := out["type"].(string); ok {
				out["type"] = []any{t, "null"}
			}
		}
		_, hasProps := out["properties"]
		_, hasAdditional := out["additionalProperties"]
		if hasProps && !hasAdditional && n["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
		for k := range out {
			if strings.HasPrefix(k, "x-kubernetes-") || k == "nullable" {
				delete(out, k)
			}
		}
		return out
	default:
		return n
	}
}

// writeKindSchema writes root, with the definitions it reaches, as one
// standalone file named the way kubeconform looks it up:
// <kind><-group-prefix>-<version>.json (see kubeconform's registry.schemaPath).
func writeKindSchema(dir, group, version, kind string, root map[string]any, defs map[string]any) error {
	apiVersion := version
	suffix := "-" + strings.ToLower(version)
	if group != "" {
		apiVersion = group + "/" + version
		suffix = "-" + strings.ToLower(strings.Split(group, ".")[0]) + "-" + strings.ToLower(version)
	}
	props, _ := root["properties"].(map[string]any)
	if props == nil {
		return fmt.Errorf("%s %s: no properties", apiVersion, kind)
	}
	props["apiVersion"] = map[string]any{"type": "string", "enum": []any{apiVersion}}
	props["kind"] = map[string]any{"type": "string", "enum": []any{kind}}
	root["required"] = mergeRequired(root["required"], "apiVersion", "kind")

	reached := map[string]any{}
	collectRefs(root, defs, reached)
	root["definitions"] = reached
	root["$schema"] = "http://json-schema.org/draft-04/schema#"

	b, err := json.Marshal(root)
	if err != nil {
		return err
	}
	name := strings.ToLower(kind) + suffix + ".json"
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}

// collectRefs adds every definition that node refers to, transitively.
func collectRefs(node any, defs, reached map[string]any) {
	switch n := node.(type) {
	case []any:
		for _, v := range n {
			collectRefs(v, defs, reached)
		}
	case map[string]any:
		if ref, ok := n["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/definitions/")
			if _, done := reached[name]; !done {
				d, ok := defs[name]
				if !ok {
					panic("swagger refers to an unknown definition " + name)
				}
				reached[name] = d
				collectRefs(d, defs, reached)
			}
		}
		for k, v := range n {
			if k != "definitions" {
				collectRefs(v, defs, reached)
			}
		}
	}
}

func mergeRequired(have any, names ...string) []any {
	out, _ := have.([]any)
	for _, n := range names {
		found := false
		for _, h := range out {
			found = found || h == n
		}
		if !found {
			out = append(out, n)
		}
	}
	return out
}

// writeCRDSchemas writes one schema per served version of a CRD. metadata is
// checked as a real ObjectMeta (a CRD's schema says only "type: object").
func writeCRDSchemas(dir, file string, defs map[string]any) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var crd struct {
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Served bool   `json:"served"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return err
	}
	if len(crd.Spec.Versions) == 0 {
		return errors.New("no versions")
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		root := strictify(v.Schema.OpenAPIV3Schema).(map[string]any)
		props, _ := root["properties"].(map[string]any)
		if props == nil {
			return fmt.Errorf("%s: no properties", v.Name)
		}
		props["metadata"] = map[string]any{"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
		if err := writeKindSchema(dir, crd.Spec.Group, v.Name, crd.Spec.Names.Kind, root, defs); err != nil {
			return err
		}
	}
	return nil
}

func deepCopy(v any) any {
	switch n := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(n))
		for k, x := range n {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, x := range n {
			out[i] = deepCopy(x)
		}
		return out
	default:
		return n
	}
}

// newValidator answers a strict kubeconform validator over the generated
// schemas. A kind without a schema is an error, never skipped.
func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	dir, err := schemaDir()
	if err != nil {
		t.Fatalf("building schemas: %v", err)
	}
	v, err := validator.New(
		[]string{filepath.Join(dir, "{{ .ResourceKind }}{{ .KindSuffix }}.json")},
		validator.Opts{Strict: true, IgnoreMissingSchemas: false},
	)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// validateManifests validates every document of one YAML stream and answers
// one problem string per document that is not Valid (empty documents pass).
func validateManifests(v validator.Validator, name, manifests string) (valid int, problems []string) {
	for _, res := range v.Validate(name, io.NopCloser(strings.NewReader(manifests))) {
		switch res.Status {
		case validator.Valid:
			valid++
		case validator.Empty:
		default:
			sig, _ := res.Resource.Signature()
			var what string
			if sig != nil {
				what = sig.Kind + " " + sig.Name
			}
			msg := fmt.Sprintf("%s: %s: %v", name, what, res.Err)
			for _, ve := range res.ValidationErrors {
				msg += fmt.Sprintf("\n    %s: %s", ve.Path, ve.Msg)
			}
			problems = append(problems, msg)
		}
	}
	return valid, problems
}
