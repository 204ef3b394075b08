package charttest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../jwt-sidecar"
	releaseName = "jwt"
	releaseNS   = "jwt-system"
)

// valueSets are the values files every render and lint test runs with; ""
// means the chart's defaults.
var valueSets = map[string]string{
	"default":      "",
	"full":         "testdata/full-values.yaml",
	"cert-manager": "testdata/cert-manager-values.yaml",
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

func readValues(t *testing.T, file string) map[string]any {
	t.Helper()
	if file == "" {
		return map[string]any{}
	}
	v, err := chartutil.ReadValuesFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	return v
}

// parseValues reads inline YAML overrides.
func parseValues(t *testing.T, doc string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(doc))
	if err != nil {
		t.Fatalf("values %q: %v", doc, err)
	}
	return v
}

// kubeVersion is the cluster the tests install into unless they say
// otherwise: Helm's library default (1.20) is older than the chart allows.
const kubeVersion = "v1.33.0"

// renderValues coalesces overrides with the chart's values and validates them
// against values.schema.json, as helm install does.
func renderValues(ch *chart.Chart, overrides map[string]any) (chartutil.Values, error) {
	return renderValuesOn(ch, overrides, kubeVersion)
}

// renderValuesOn is renderValues for a cluster of the given version.
func renderValuesOn(ch *chart.Chart, overrides map[string]any, version string) (chartutil.Values, error) {
	kv, err := chartutil.ParseKubeVersion(version)
	if err != nil {
		return nil, err
	}
	caps := *chartutil.DefaultCapabilities
	caps.KubeVersion = *kv
	return chartutil.ToRenderValues(ch, overrides, chartutil.ReleaseOptions{
		Name:      releaseName,
		Namespace: releaseNS,
		Revision:  1,
		IsInstall: true,
	}, &caps)
}

// render renders the chart strictly (a template that reads a value the values
// do not have is an error) and answers the output by template name.
func render(t *testing.T, overrides map[string]any) map[string]string {
	t.Helper()
	return renderOn(t, overrides, kubeVersion)
}

// renderOn is render for a cluster of the given version.
func renderOn(t *testing.T, overrides map[string]any, version string) map[string]string {
	t.Helper()
	ch := loadChart(t)
	vals, err := renderValuesOn(ch, overrides, version)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	out, err := engine.Engine{Strict: true}.Render(ch, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out
}

// manifests joins every rendered template except NOTES.txt into one YAML stream.
func manifests(out map[string]string) string {
	names := make([]string, 0, len(out))
	for n := range out {
		if strings.HasSuffix(n, ".yaml") && strings.TrimSpace(out[n]) != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString("---\n# Source: " + n + "\n" + out[n] + "\n")
	}
	return b.String()
}

func notes(out map[string]string) string {
	return out[filepath.Join("jwt-sidecar", "templates", "NOTES.txt")]
}

// object is one rendered document, decoded generically.
type object map[string]any

// objects splits a YAML stream into its non-empty documents.
func objects(t *testing.T, stream string) []object {
	t.Helper()
	var objs []object
	for _, doc := range strings.Split(stream, "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("decode %q: %v", doc, err)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
	return objs
}

// find answers the one object of a kind that is not the key relay's; it
// fails the test if there is not exactly one.
func find(t *testing.T, objs []object, kind string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o["kind"] == kind && !isRelay(o) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

// isRelay reports whether o is one of the key relay's objects: labelled
// as its component, or its helm test pod (labelled as a test, which the
// NetworkPolicies admit, and named after the relay).
func isRelay(o object) bool {
	meta, _ := o["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	name, _ := meta["name"].(string)
	return labels["app.kubernetes.io/component"] == "key-relay" || strings.HasSuffix(name, "-key-relay-test")
}

// findRelay answers the key relay's one object of a kind.
func findRelay(t *testing.T, objs []object, kind string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o["kind"] == kind && isRelay(o) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d key relay objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

func kinds(objs []object) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o["kind"].(string))
	}
	sort.Strings(ks)
	return ks
}

func TestLint(t *testing.T) {
	for name, file := range valueSets {
		t.Run(name, func(t *testing.T) {
			vals := readValues(t, file)
			linter := lint.AllWithKubeVersionAndSchemaValidation(chartDir, vals, releaseNS, nil, false)
			for _, m := range linter.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %s", m)
				} else {
					t.Logf("lint: %s", m)
				}
			}
		})
	}
}

func TestValuesSchemaRejects(t *testing.T) {
	tests := []struct {
		name     string
		values   string
		wantPath string // a piece of the schema error that names the value
	}{
		{name: "pull policy", values: "image: {pullPolicy: Sometimes}", wantPath: "pullPolicy"},
		{name: "sidecar pull policy", values: "sidecar: {pullPolicy: always}", wantPath: "pullPolicy"},
		{name: "upstream port too high", values: "sidecar: {upstreamPort: 70000}", wantPath: "upstreamPort"},
		{name: "webhook port zero", values: "injector: {port: 0}", wantPath: "port"},
		{name: "port as string", values: "injector: {adminPort: '8081'}", wantPath: "adminPort"},
		{name: "unknown top-level key", values: "imagee: {tag: x}", wantPath: "imagee"},
		{name: "unknown nested key", values: "sidecar: {audience: [a]}", wantPath: "audience"},
		{name: "failure policy", values: "webhook: {failurePolicy: Maybe}", wantPath: "failurePolicy"},
		{name: "timeout above 30", values: "webhook: {timeoutSeconds: 31}", wantPath: "timeoutSeconds"},
		{name: "token lookup source", values: "sidecar: {tokenLookup: ['body:token']}", wantPath: "tokenLookup"},
		{name: "claim without header", values: "sidecar: {claimsToHeaders: [sub]}", wantPath: "claimsToHeaders"},
		{name: "quantity", values: "sidecar: {resources: {limits: {memory: lots}}}", wantPath: "memory"},
		{name: "native as string", values: "sidecar: {native: 'false'}", wantPath: "native"},
		{name: "zero replicas", values: "injector: {replicas: 0}", wantPath: "replicas"},
		{name: "issuer kind", values: "tls: {certManager: {enabled: true, issuerRef: {name: x, kind: Foo}}}", wantPath: "kind"},
		{name: "bad duration", values: "injector: {shutdownTimeout: 20}", wantPath: "shutdownTimeout"},
		{name: "config map name", values: "sidecar: {configMap: Policy_File}", wantPath: "configMap"},
		{name: "sidecar env not a string", values: "sidecar: {env: {FORWARD_TOKEN: true}}", wantPath: "FORWARD_TOKEN"},
		{name: "sidecar env name", values: "sidecar: {env: {clock-skew: 10s}}", wantPath: "clock-skew"},
	}
	ch := loadChart(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderValues(ch, parseValues(t, tt.values))
			if err == nil {
				t.Fatalf("values %q accepted, want a schema error", tt.values)
			}
			if !strings.Contains(err.Error(), tt.wantPath) {
				t.Errorf("error = %v, want it to name %q", err, tt.wantPath)
			}
		})
	}

	// helm lint reports the same, as an error.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("image: {pullPolicy: Sometimes}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	linter := lint.AllWithKubeVersionAndSchemaValidation(chartDir, readValues(t, bad), releaseNS, nil, false)
	if linter.HighestSeverity < support.ErrorSev {
		t.Errorf("lint with a bad pullPolicy: highest severity %d, want an error; messages %v", linter.HighestSeverity, linter.Messages)
	}
}

func TestRenderKinds(t *testing.T) {
	tests := []struct {
		values string
		want   []string
	}{
		{values: "default", want: []string{"Deployment", "MutatingWebhookConfiguration", "Pod", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"}},
		{values: "full", want: []string{"Certificate", "Certificate", "ConfigMap", "Deployment", "Deployment", "Issuer", "Issuer", "MutatingWebhookConfiguration",
			"NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "Pod", "Pod", "PodDisruptionBudget", "PodDisruptionBudget", "PodMonitor", "PodMonitor", "PodMonitor",
			"PrometheusRule", "Service", "Service", "ServiceAccount", "ServiceMonitor"}},
		{values: "cert-manager", want: []string{"Certificate", "Deployment", "MutatingWebhookConfiguration", "Pod", "PodDisruptionBudget", "Service", "ServiceAccount"}},
	}
	for _, tt := range tests {
		t.Run(tt.values, func(t *testing.T) {
			objs := objects(t, manifests(render(t, readValues(t, valueSets[tt.values]))))
			if got := strings.Join(kinds(objs), ","); got != strings.Join(tt.want, ",") {
				t.Errorf("kinds = %s, want %s", got, strings.Join(tt.want, ","))
			}
			for _, o := range objs {
				if o["kind"] == "Role" || o["kind"] == "ClusterRole" {
					t.Errorf("%s rendered: the injector needs no API access", o["kind"])
				}
			}
		})
	}
}

func TestRenderedManifestsValidate(t *testing.T) {
	v := newValidator(t)
	for name, file := range valueSets {
		t.Run(name, func(t *testing.T) {
			stream := manifests(render(t, readValues(t, file)))
			valid, problems := validateManifests(v, name, stream)
			for _, p := range problems {
				t.Error(p)
			}
			if want := len(objects(t, stream)); valid != want {
				t.Errorf("%d valid documents, want %d", valid, want)
			}
		})
	}
}

func TestExamplesValidate(t *testing.T) {
	v := newValidator(t)
	files, err := filepath.Glob("../../deploy/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			valid, problems := validateManifests(v, f, string(b))
			for _, p := range problems {
				t.Error(p)
			}
			if want := len(objects(t, string(b))); valid != want || valid == 0 {
				t.Errorf("%d valid documents, want %d", valid, want)
			}
		})
	}
}

// TestValidationIsReal shows the schemas catch what strict validation should:
// each case is one valid document with one mistake, and the validator must
// reject that document for that reason.
func TestValidationIsReal(t *testing.T) {
	v := newValidator(t)
	manual, err := os.ReadFile("../../deploy/examples/manual-sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defaults := manifests(render(t, nil))
	full := manifests(render(t, readValues(t, valueSets["full"])))
	tests := []struct {
		name      string
		stream    string // where the document comes from
		kind      string // the document's kind
		old, new  string // the mistake
		wantError string // a piece of the validation message
	}{
		{name: "typo in a native sidecar field", stream: string(manual), kind: "Deployment", old: "restartPolicy: Always", new: "restartPolicyy: Always", wantError: "'restartPolicyy' not allowed"},
		{name: "wrong restartPolicy type", stream: string(manual), kind: "Deployment", old: "restartPolicy: Always", new: "restartPolicy: [Always]", wantError: "restartPolicy"},
		{name: "port as a string", stream: string(manual), kind: "Deployment", old: "containerPort: 7070", new: `containerPort: "7070"`, wantError: "containerPort"},
		{name: "container without a name", stream: string(manual), kind: "Deployment", old: "- name: jwt-sidecar\n", new: "- \n", wantError: "missing property 'name'"},
		{name: "annotation value not a string", stream: full, kind: "Deployment", old: "example.com/team: platform", new: "example.com/team: 1", wantError: "annotations"},
		{name: "unknown Service field", stream: defaults, kind: "Service", old: "type: ClusterIP", new: "type: ClusterIP\n  typ: ClusterIP", wantError: "'typ' not allowed"},
		{name: "unknown webhook field", stream: defaults, kind: "MutatingWebhookConfiguration", old: "sideEffects: None", new: "sideEffects: None\n    sideEffect: None", wantError: "'sideEffect' not allowed"},
		{name: "PDB minAvailable not int-or-string", stream: defaults, kind: "PodDisruptionBudget", old: "minAvailable: 1", new: "minAvailable: [1]", wantError: "minAvailable"},
		{name: "ServiceMonitor typo", stream: full, kind: "ServiceMonitor", old: "- port: http-admin", new: "- portt: http-admin", wantError: "'portt' not allowed"},
		{name: "PodMonitor wrong type", stream: full, kind: "PodMonitor", old: "- port: http-admin", new: "- port: [http-admin]", wantError: "port"},
		{name: "Certificate typo", stream: full, kind: "Certificate", old: "secretName:", new: "secretNames:", wantError: "secretNames"},
		{name: "Certificate bad enum", stream: full, kind: "Certificate", old: "algorithm: ECDSA", new: "algorithm: DSA", wantError: "algorithm"},
		{name: "Issuer unknown field", stream: full, kind: "Issuer", old: "selfSigned: {}", new: "selfSigned: {}\n  selfsigned: {}", wantError: "'selfsigned' not allowed"},
		{name: "Certificate isCA not a bool", stream: full, kind: "Certificate", old: "isCA: true", new: "isCA: \"yes\"", wantError: "isCA"},
		{name: "CRD metadata is a real ObjectMeta", stream: full, kind: "ServiceMonitor", old: "metadata:", new: "metadata:\n  nam: x", wantError: "'nam' not allowed"},
		{name: "PrometheusRule typo", stream: full, kind: "PrometheusRule", old: "- alert: JWTSidecarKeysStale", new: "- alertt: JWTSidecarKeysStale", wantError: "'alertt' not allowed"},
		{name: "PrometheusRule for not a duration", stream: full, kind: "PrometheusRule", old: "for: 5m", new: "for: five minutes", wantError: "for"},
		{name: "NetworkPolicy typo", stream: full, kind: "NetworkPolicy", old: "policyTypes:", new: "policyType:", wantError: "'policyType' not allowed"},
		{name: "wrong apiVersion for kind", stream: defaults, kind: "PodDisruptionBudget", old: "apiVersion: policy/v1", new: "apiVersion: apps/v1", wantError: "could not find schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := document(t, tt.stream, tt.kind)
			if _, problems := validateManifests(v, tt.name, doc); len(problems) != 0 {
				t.Fatalf("the unchanged %s is invalid: %v", tt.kind, problems)
			}
			_, problems := validateManifests(v, tt.name, replaceOnce(t, doc, tt.old, tt.new))
			if len(problems) != 1 {
				t.Fatalf("%d problems, want 1: %v", len(problems), problems)
			}
			if !strings.Contains(problems[0], tt.wantError) {
				t.Errorf("problem = %s\nwant it to mention %q", problems[0], tt.wantError)
			}
		})
	}
	t.Run("kind without a schema", func(t *testing.T) {
		_, problems := validateManifests(v, "widget", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
		if len(problems) != 1 || !strings.Contains(problems[0], "could not find schema") {
			t.Errorf("problems = %v, want a missing schema (never a skip)", problems)
		}
	})
}

// document answers the first document of a kind in a YAML stream, as text.
func document(t *testing.T, stream, kind string) string {
	t.Helper()
	var found []string
	for _, doc := range strings.Split(stream, "\n---") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		if o["kind"] == kind {
			found = append(found, doc)
		}
	}
	if len(found) == 0 {
		t.Fatalf("no document of kind %s", kind)
	}
	return found[0]
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) < 1 {
		t.Fatalf("%q not found", old)
	}
	return strings.Replace(s, old, new, 1)
}
