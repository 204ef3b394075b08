package injector

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// want is what one fixture must produce, beyond its golden file.
type want struct {
	outcome Outcome
	reason  Reason
	// For refusals: substrings of the message (the annotations it names).
	message []string
	// For injections.
	native bool
	port   string
	env    map[string]string
	// prometheus: the prometheus.io/* annotations the injector adds.
	prometheus map[string]string
	// configMap: the policy ConfigMap mounted; noEnv: variables left out.
	configMap string
	noEnv     []string
	// resources: when set, the sidecar's resources instead of the defaults.
	resources *corev1.ResourceRequirements
}

func quantities(cpuReq, memReq, cpuLim, memLim string) *corev1.ResourceRequirements {
	r := &corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, q := range []struct {
		into corev1.ResourceList
		name corev1.ResourceName
		v    string
	}{{r.Requests, corev1.ResourceCPU, cpuReq}, {r.Requests, corev1.ResourceMemory, memReq}, {r.Limits, corev1.ResourceCPU, cpuLim}, {r.Limits, corev1.ResourceMemory, memLim}} {
		if q.v != "" {
			q.into[q.name] = resource.MustParse(q.v)
		}
	}
	return r
}

var fixtures = map[string]want{
	"native":        {outcome: Injected, native: true, port: "3000", env: map[string]string{"ISSUERS": "https://issuer.example", "JWKS_URLS": "https://issuer.example/jwks.json", "AUDIENCES": "api"}},
	"plain":         {outcome: Injected, native: false, port: "3000"},
	"defaults-only": {outcome: Injected, native: true, port: "8080", env: map[string]string{"ISSUERS": "https://issuer.example", "LOG_LEVEL": "info"}},
	"all-annotations": {outcome: Injected, native: true, port: "9000", env: map[string]string{
		"ISSUERS":           "https://a.example,https://b.example",
		"OIDC_ISSUER_URL":   "https://login.example/realms/shop",
		"JWKS_URLS":         "https://a.example/jwks.json,https://b.example/keys",
		"AUDIENCES":         "orders,billing",
		"CLAIMS_TO_HEADERS": "sub=X-Auth-Subject,email=X-Auth-Email,realm_access.roles=X-Auth-Roles",
		"PUBLIC_PATHS":      "/healthz,/public/*",
		"REQUIRED_SCOPES":   "orders.read,orders.write",
		"TOKEN_LOOKUP":      "header:Authorization,cookie:session",
	}},
	"existing-arrays-native": {outcome: Injected, native: true, port: "3000"},
	"existing-arrays-plain":  {outcome: Injected, native: false, port: "3000"},
	"empty-arrays":           {outcome: Injected, native: true, port: "3000"},
	"dry-run":                {outcome: Injected, native: true, port: "3000"},
	"nodefaults-oidc-only":   {outcome: Injected, native: true, port: "3000", env: map[string]string{"OIDC_ISSUER_URL": "https://login.example/realms/shop"}},
	"labels-absent":          {outcome: Injected, native: true, port: "3000"},

	// prometheus-*: an injector with PrometheusAnnotations on.
	"prometheus-annotations": {outcome: Injected, native: true, port: "3000", prometheus: map[string]string{
		"prometheus.io/scrape": "true", "prometheus.io/port": "7071", "prometheus.io/path": "/metrics",
	}},
	"prometheus-own-annotations": {outcome: Injected, native: false, port: "3000"},

	"already-injected-status":         {outcome: Skipped, reason: AlreadyInjected},
	"existing-sidecar-container":      {outcome: Skipped, reason: AlreadyInjected},
	"existing-sidecar-init-container": {outcome: Skipped, reason: AlreadyInjected},
	"kube-system":                     {outcome: Skipped, reason: ProtectedNamespace},
	"kube-public":                     {outcome: Skipped, reason: ProtectedNamespace},
	"inject-absent":                   {outcome: Skipped, reason: NotRequested},
	"no-annotations":                  {outcome: Skipped, reason: NotRequested},
	"inject-false":                    {outcome: Skipped, reason: NotRequested},
	"inject-True":                     {outcome: Skipped, reason: NotRequested},
	"inject-yes":                      {outcome: Skipped, reason: NotRequested},
	"not-a-pod":                       {outcome: Skipped, reason: NotAPod},
	"update":                          {outcome: Skipped, reason: NotCreate},

	"undecodable-pod":                       {outcome: Refused, reason: BadRequest, message: []string{"pod cannot be decoded"}},
	"malformed-port-text":                   {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/upstream-port", "1 to 65535"}},
	"malformed-port-zero":                   {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/upstream-port"}},
	"malformed-port-too-large":              {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/upstream-port"}},
	"malformed-port-sidecar":                {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/upstream-port", "sidecar's own port"}},
	"malformed-issuers-empty":               {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/issuers: must not be empty"}},
	"malformed-issuers-commas":              {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/issuers: empty list"}},
	"malformed-jwks-urls-empty":             {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/jwks-urls: empty list"}},
	"malformed-jwks-urls-relative":          {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/jwks-urls", "absolute http(s) URL"}},
	"malformed-oidc-issuer-url":             {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/oidc-issuer-url", "absolute http(s) URL"}},
	"malformed-audiences-empty":             {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/audiences: must not be empty"}},
	"malformed-required-scopes-empty":       {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/required-scopes: must not be empty"}},
	"malformed-claims-to-headers-no-equals": {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/claims-to-headers", "CLAIM=HEADER"}},
	"malformed-claims-to-headers-empty":     {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/claims-to-headers: empty list"}},
	"malformed-claims-to-headers-reserved":  {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/claims-to-headers", "Authorization"}},
	"malformed-public-paths-empty":          {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/public-paths: must not be empty"}},
	"malformed-public-paths-relative":       {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/public-paths", "starts with /"}},
	"malformed-token-lookup-source":         {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/token-lookup", "unknown source"}},
	"malformed-token-lookup-empty":          {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/token-lookup: must not be empty"}},
	"malformed-native":                      {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/native", "want true or false"}},
	"malformed-native-case":                 {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/native"}},
	"malformed-unknown-annotation":          {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/audience: unknown annotation"}},
	"malformed-several":                     {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/upstream-port", "jwt-sidecar.io/audiences", "jwt-sidecar.io/native"}},

	"config-map": {outcome: Injected, native: true, port: "3000", configMap: "orders-policy",
		env:   map[string]string{"CONFIG_FILE": "/etc/jwt-sidecar/policy/policy.yaml", "JWKS_REFRESH_INTERVAL": "10m"},
		noEnv: []string{"ISSUERS", "JWKS_URLS", "AUDIENCES", "OIDC_ISSUER_URL", "TOKEN_LOOKUP"}},
	"env-vars": {outcome: Injected, native: true, port: "3000", env: map[string]string{
		"CLOCK_SKEW": "10s", "PAYLOAD_HEADER": "X-Auth-Payload", "FORWARD_TOKEN": "true",
		"CORS_PREFLIGHT_BYPASS": "true", "LOG_LEVEL": "debug", "TOKEN_CACHE_SIZE": "50000",
	}},
	"resources":             {outcome: Injected, native: false, port: "3000", resources: quantities("100m", "64Mi", "1", "128Mi")},
	"resources-memory-only": {outcome: Injected, native: true, port: "3000", resources: quantities("25m", "96Mi", "", "256Mi")},

	"malformed-config-map-name":   {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/config-map", "not a ConfigMap name"}},
	"malformed-env-unknown":       {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/env-CLOCK_SKEWED", "not a jwt-sidecar variable"}},
	"malformed-env-own":           {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/env-UPSTREAM_URL", "set by the injector", "jwt-sidecar.io/upstream-port"}},
	"malformed-env-annotated":     {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/env-ISSUERS", "own annotation", "jwt-sidecar.io/issuers"}},
	"malformed-env-file":          {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/env-HMAC_SECRET_FILE", "names a file"}},
	"malformed-resources":         {outcome: Refused, reason: MalformedAnnotation, message: []string{"jwt-sidecar.io/memory-limit", "positive quantity"}},
	"conflict-env-value":          {outcome: Refused, reason: Conflict, message: []string{"sidecar would refuse", "annotation jwt-sidecar.io/env-CLOCK_SKEW: 10m0s is more than 5m", "annotation jwt-sidecar.io/env-MAX_TOKEN_SIZE"}},
	"conflict-config-map-issuers": {outcome: Refused, reason: Conflict, message: []string{"jwt-sidecar.io/config-map", "replaces jwt-sidecar.io/issuers, jwt-sidecar.io/audiences"}},
	"conflict-config-map-env":     {outcome: Refused, reason: Conflict, message: []string{"jwt-sidecar.io/config-map: the policy file replaces jwt-sidecar.io/env-CLOCK_SKEW"}},
	"conflict-resources":          {outcome: Refused, reason: Conflict, message: []string{"memory request 512Mi is more than its limit 64Mi", "jwt-sidecar.io/memory-request"}},

	"conflict-app-port":                     {outcome: Refused, reason: Conflict, message: []string{"container app uses port 7071"}},
	"conflict-volume-name":                  {outcome: Refused, reason: Conflict, message: []string{"volume named jwt-sidecar-cache"}},
	"conflict-claim-header-is-token-header": {outcome: Refused, reason: Conflict, message: []string{"jwt-sidecar.io/claims-to-headers", "jwt-sidecar.io/token-lookup"}},

	"nodefaults-missing-issuer":                 {outcome: Refused, reason: MissingConfig, message: []string{"no accepted issuer", "jwt-sidecar.io/issuers", "jwt-sidecar.io/oidc-issuer-url"}},
	"nodefaults-missing-key-source":             {outcome: Refused, reason: MissingConfig, message: []string{"no key source", "jwt-sidecar.io/jwks-urls"}},
	"nodefaults-jwks-with-oidc-without-issuers": {outcome: Refused, reason: MissingConfig, message: []string{"jwt-sidecar.io/issuers is required"}},
	"nodefaults-nothing":                        {outcome: Refused, reason: MissingConfig, message: []string{"no accepted issuer"}},
}

// goldenResponse is what a golden file holds: the response, with the patch
// decoded so that a diff is readable.
type goldenResponse struct {
	UID       types.UID              `json:"uid"`
	Allowed   bool                   `json:"allowed"`
	Outcome   Outcome                `json:"outcome"`
	Reason    Reason                 `json:"reason,omitempty"`
	Status    *metav1.Status         `json:"status,omitempty"`
	PatchType *admissionv1.PatchType `json:"patchType,omitempty"`
	Patch     json.RawMessage        `json:"patch,omitempty"`
}

func readReview(t *testing.T, path string) *admissionv1.AdmissionReview {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &r
}

func TestMutateGolden(t *testing.T) {
	withDefaults, _ := newTestInjector(t, testDefaults())
	noDefaults, _ := newTestInjector(t, nil)
	withPrometheus, _ := newTestInjectorWith(t, testDefaults(), func(o *Options) { o.PrometheusAnnotations = true })
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			w, ok := fixtures[name]
			if !ok {
				t.Fatalf("%s has no expectation in fixtures", f)
			}
			in := withDefaults
			switch {
			case strings.HasPrefix(name, "nodefaults-"):
				in = noDefaults
			case strings.HasPrefix(name, "prometheus-"):
				in = withPrometheus
			}
			review := readReview(t, f)
			d := in.Mutate(review.Request)
			resp := d.Response
			if resp.UID != review.Request.UID {
				t.Errorf("UID = %q, want %q", resp.UID, review.Request.UID)
			}
			if d.Outcome != w.outcome || d.Reason != w.reason {
				t.Errorf("decision = %s/%s, want %s/%s (response %+v)", d.Outcome, d.Reason, w.outcome, w.reason, resp.Result)
			}
			compareGolden(t, filepath.Join("testdata", name+".golden"), d)

			switch w.outcome {
			case Injected:
				if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
					t.Fatalf("allowed = %v, patchType = %v; want true, JSONPatch", resp.Allowed, resp.PatchType)
				}
				checkInjected(t, review.Request.Object.Raw, resp.Patch, w)
			case Skipped:
				if !resp.Allowed || resp.Patch != nil || resp.PatchType != nil || resp.Result != nil {
					t.Errorf("skipped pod: allowed = %v, patch = %s, result = %v; want allowed, no patch", resp.Allowed, resp.Patch, resp.Result)
				}
			case Refused:
				if resp.Allowed || resp.Patch != nil || resp.Result == nil {
					t.Fatalf("refused pod: allowed = %v, patch = %s, result = %v", resp.Allowed, resp.Patch, resp.Result)
				}
				for _, m := range w.message {
					if !strings.Contains(resp.Result.Message, m) {
						t.Errorf("message %q lacks %q", resp.Result.Message, m)
					}
				}
				if resp.Result.Code != 400 {
					t.Errorf("status code = %d, want 400", resp.Result.Code)
				}
			}
		})
	}
	for name := range fixtures {
		if !seen[name] {
			t.Errorf("fixtures names %s, but testdata/%s.json does not exist", name, name)
		}
	}
}

func compareGolden(t *testing.T, path string, d Decision) {
	t.Helper()
	g := goldenResponse{
		UID: d.Response.UID, Allowed: d.Response.Allowed, Outcome: d.Outcome, Reason: d.Reason,
		Status: d.Response.Result, PatchType: d.Response.PatchType, Patch: d.Response.Patch,
	}
	got, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, wantBytes) {
		t.Errorf("response differs from %s (run go test -update):\n%s", path, got)
	}
}

// checkInjected applies the patch to the pod and decodes the result into a
// core/v1 Pod, as the API server would.
func checkInjected(t *testing.T, original, patch []byte, w want) {
	t.Helper()
	patched, err := applyPatch(original, patch)
	if err != nil {
		t.Fatalf("applying the patch: %v\n%s", err, patch)
	}
	var before, pod corev1.Pod
	if err := json.Unmarshal(original, &before); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(patched))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pod); err != nil {
		t.Fatalf("the patched pod does not decode strictly: %v", err)
	}

	var c corev1.Container
	if w.native {
		if len(pod.Spec.InitContainers) != len(before.Spec.InitContainers)+1 || pod.Spec.InitContainers[0].Name != ContainerName {
			t.Fatalf("native: initContainers %v, want jwt-sidecar first and %d more", names(pod.Spec.InitContainers), len(before.Spec.InitContainers))
		}
		if !slices.EqualFunc(pod.Spec.InitContainers[1:], before.Spec.InitContainers, sameName) || !slices.EqualFunc(pod.Spec.Containers, before.Spec.Containers, sameName) {
			t.Errorf("the pod's own containers changed: init %v, app %v", names(pod.Spec.InitContainers), names(pod.Spec.Containers))
		}
		c = pod.Spec.InitContainers[0]
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("native sidecar restartPolicy = %v, want Always", c.RestartPolicy)
		}
	} else {
		n := len(pod.Spec.Containers)
		if n != len(before.Spec.Containers)+1 || pod.Spec.Containers[n-1].Name != ContainerName {
			t.Fatalf("plain: containers %v, want jwt-sidecar last", names(pod.Spec.Containers))
		}
		if !slices.EqualFunc(pod.Spec.Containers[:n-1], before.Spec.Containers, sameName) || !slices.EqualFunc(pod.Spec.InitContainers, before.Spec.InitContainers, sameName) {
			t.Errorf("the pod's own containers changed: init %v, app %v", names(pod.Spec.InitContainers), names(pod.Spec.Containers))
		}
		c = pod.Spec.Containers[n-1]
		if c.RestartPolicy != nil {
			t.Errorf("plain sidecar restartPolicy = %v, want none", *c.RestartPolicy)
		}
	}
	if c.Image != testImage || c.ImagePullPolicy != corev1.PullIfNotPresent || len(c.Command) != 0 {
		t.Errorf("image %q, pull policy %q, command %v; want %q, IfNotPresent, the image's entrypoint", c.Image, c.ImagePullPolicy, c.Command, testImage)
	}
	wantPorts := []corev1.ContainerPort{
		{Name: "http-auth", ContainerPort: 7070, Protocol: corev1.ProtocolTCP},
		{Name: "http-admin", ContainerPort: 7071, Protocol: corev1.ProtocolTCP},
	}
	if !slices.Equal(c.Ports, wantPorts) {
		t.Errorf("ports = %+v, want %+v", c.Ports, wantPorts)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{name: "startup", probe: c.StartupProbe, path: "/readyz"},
		{name: "readiness", probe: c.ReadinessProbe, path: "/readyz"},
		{name: "liveness", probe: c.LivenessProbe, path: "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http-admin" {
			t.Errorf("%s probe = %+v, want GET %s on http-admin", p.name, p.probe, p.path)
		}
	}
	if sp := c.StartupProbe; sp != nil && (sp.PeriodSeconds != 1 || sp.FailureThreshold < 60) {
		t.Errorf("startup probe period %ds × %d, want 1s × at least 60", sp.PeriodSeconds, sp.FailureThreshold)
	}

	env := map[string]string{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		if e.ValueFrom != nil {
			continue // GOMEMLIMIT, checked below
		}
		env[e.Name] = e.Value
	}
	for _, name := range w.noEnv {
		if v, ok := env[name]; ok {
			t.Errorf("env %s = %q, want it left out", name, v)
		}
	}
	base := map[string]string{
		"LISTEN_ADDR": ":7070", "ADMIN_ADDR": ":7071", "UPSTREAM_URL": "http://127.0.0.1:" + w.port,
		"JWKS_CACHE_DIR": "/var/cache/jwt-sidecar", "LOG_LEVEL": "info",
	}
	for k, v := range w.env {
		base[k] = v
	}
	for k, v := range base {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	for k, v := range env {
		if v == "" {
			t.Errorf("env %s is set but empty", k)
		}
	}

	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Error("no securityContext")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot,
		sc.RunAsUser == nil || *sc.RunAsUser != 65532,
		sc.RunAsGroup == nil || *sc.RunAsGroup != 65532,
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem,
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation,
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0,
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault,
		sc.Privileged != nil && *sc.Privileged:
		t.Errorf("securityContext not hardened: %+v", sc)
	}
	wantRes := testResources()
	if w.resources != nil {
		wantRes = *w.resources
	}
	if !c.Resources.Requests.Cpu().Equal(*wantRes.Requests.Cpu()) || !c.Resources.Requests.Memory().Equal(*wantRes.Requests.Memory()) ||
		!c.Resources.Limits.Memory().Equal(*wantRes.Limits.Memory()) || !c.Resources.Limits.Cpu().Equal(*wantRes.Limits.Cpu()) {
		t.Errorf("resources = %+v, want %+v", c.Resources, wantRes)
	}
	// GOMEMLIMIT follows the memory limit through the downward API.
	gi := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" })
	if _, limited := wantRes.Limits[corev1.ResourceMemory]; limited {
		if gi < 0 || c.Env[gi].ValueFrom == nil || c.Env[gi].ValueFrom.ResourceFieldRef == nil {
			t.Errorf("GOMEMLIMIT not from the downward API: %+v", c.Env)
		} else if r := c.Env[gi].ValueFrom.ResourceFieldRef; r.Resource != "limits.memory" || r.ContainerName != ContainerName || !r.Divisor.Equal(resource.MustParse("1")) {
			t.Errorf("GOMEMLIMIT from %+v, want limits.memory of %s in bytes", r, ContainerName)
		}
	} else if gi >= 0 {
		t.Errorf("GOMEMLIMIT set without a memory limit")
	}

	wantMounts := []corev1.VolumeMount{{Name: VolumeName, MountPath: CacheDir}}
	if w.configMap != "" {
		wantMounts = append(wantMounts, corev1.VolumeMount{Name: PolicyVolumeName, MountPath: PolicyDir, ReadOnly: true})
	}
	if !reflect.DeepEqual(c.VolumeMounts, wantMounts) {
		t.Errorf("volumeMounts = %+v, want %+v", c.VolumeMounts, wantMounts)
	}
	vi := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == VolumeName })
	if vi < 0 || pod.Spec.Volumes[vi].EmptyDir == nil {
		t.Errorf("volumes = %+v, want an emptyDir %s", pod.Spec.Volumes, VolumeName)
	}
	added := 1
	if w.configMap != "" {
		added++
		pi := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == PolicyVolumeName })
		if pi < 0 || pod.Spec.Volumes[pi].ConfigMap == nil {
			t.Fatalf("volumes = %+v, want the ConfigMap %s", pod.Spec.Volumes, w.configMap)
		}
		cm := pod.Spec.Volumes[pi].ConfigMap
		if cm.Name != w.configMap || len(cm.Items) != 1 || cm.Items[0].Key != PolicyKey || cm.Items[0].Path != PolicyKey || cm.Optional == nil || *cm.Optional {
			t.Errorf("policy volume = %+v, want ConfigMap %s, key %s, not optional", cm, w.configMap, PolicyKey)
		}
		if env["CONFIG_FILE"] != PolicyDir+"/"+cm.Items[0].Path {
			t.Errorf("CONFIG_FILE = %q is not the mounted file", env["CONFIG_FILE"])
		}
	}
	if len(pod.Spec.Volumes) != len(before.Spec.Volumes)+added {
		t.Errorf("volumes = %d, want the pod's %d and %d more", len(pod.Spec.Volumes), len(before.Spec.Volumes), added)
	}

	if got := pod.Annotations[Prefix+Status]; got != StatusInjected {
		t.Errorf("status annotation = %q, want %q", got, StatusInjected)
	}
	for k, v := range before.Annotations {
		if pod.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want it kept as %q", k, pod.Annotations[k], v)
		}
	}
	for k, v := range w.prometheus {
		if pod.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, pod.Annotations[k], v)
		}
	}
	if len(pod.Annotations) != len(before.Annotations)+1+len(w.prometheus) {
		t.Errorf("annotations = %v, want the pod's, the status and %v", pod.Annotations, w.prometheus)
	}

	// The label a PodMonitor selects injected pods by; the pod's own stay.
	if got := pod.Labels[InjectedLabel]; got != "true" {
		t.Errorf("label %s = %q, want \"true\"", InjectedLabel, got)
	}
	for k, v := range before.Labels {
		if pod.Labels[k] != v {
			t.Errorf("label %s = %q, want it kept as %q", k, pod.Labels[k], v)
		}
	}
	if len(pod.Labels) != len(before.Labels)+1 {
		t.Errorf("labels = %v, want the pod's and %s", pod.Labels, InjectedLabel)
	}
}

func sameName(a, b corev1.Container) bool { return a.Name == b.Name && a.Image == b.Image }

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// TestMutateIdempotent feeds an injected pod back: it is left alone.
func TestMutateIdempotent(t *testing.T) {
	in, _ := newTestInjector(t, testDefaults())
	for _, f := range []string{"native", "plain"} {
		t.Run(f, func(t *testing.T) {
			review := readReview(t, filepath.Join("testdata", f+".json"))
			d := in.Mutate(review.Request)
			patched, err := applyPatch(review.Request.Object.Raw, d.Response.Patch)
			if err != nil {
				t.Fatal(err)
			}
			review.Request.Object.Raw = patched
			again := in.Mutate(review.Request)
			if again.Outcome != Skipped || again.Reason != AlreadyInjected || again.Response.Patch != nil {
				t.Errorf("second admission: %s/%s, patch %s; want skipped/already_injected, no patch", again.Outcome, again.Reason, again.Response.Patch)
			}

			// Even without the status annotation, the container name is enough.
			var pod map[string]any
			if err := json.Unmarshal(patched, &pod); err != nil {
				t.Fatal(err)
			}
			delete(pod["metadata"].(map[string]any)["annotations"].(map[string]any), Prefix+Status)
			review.Request.Object.Raw, _ = json.Marshal(pod)
			if d := in.Mutate(review.Request); d.Reason != AlreadyInjected {
				t.Errorf("without the status annotation: %s/%s, want skipped/already_injected", d.Outcome, d.Reason)
			}
		})
	}
}

// TestPatchWithoutAnnotations covers a pod with no annotations map at all
// (the webhook itself only injects annotated pods, but the patch must not
// assume a parent that may be absent), and with no containers array.
func TestPatchWithoutAnnotations(t *testing.T) {
	in, _ := newTestInjector(t, testDefaults())
	for _, native := range []bool{true, false} {
		s := in.defaults
		s.native = native
		pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}}
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		patch, err := json.Marshal(in.patch(&pod, &s, in.opts.Resources))
		if err != nil {
			t.Fatal(err)
		}
		patched, err := applyPatch(raw, patch)
		if err != nil {
			t.Fatalf("native=%v: %v\n%s", native, err, patch)
		}
		var got corev1.Pod
		if err := json.Unmarshal(patched, &got); err != nil {
			t.Fatal(err)
		}
		all := append(slices.Clone(got.Spec.InitContainers), got.Spec.Containers...)
		if len(all) != 1 || all[0].Name != ContainerName || got.Annotations[Prefix+Status] != StatusInjected ||
			got.Labels[InjectedLabel] != "true" || len(got.Spec.Volumes) != 1 {
			t.Errorf("native=%v: containers %v, annotations %v, labels %v, volumes %d", native, names(all), got.Annotations, got.Labels, len(got.Spec.Volumes))
		}
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "jwt-sidecar.io/status", want: "jwt-sidecar.io~1status"},
		{in: "a~b/c", want: "a~0b~1c"},
		{in: "~1", want: "~01"},
	}
	for _, tt := range tests {
		if got := escape(tt.in); got != tt.want {
			t.Errorf("escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckDefaults(t *testing.T) {
	tests := []struct {
		name     string
		defaults map[string]string
		want     []string // setting names with errors
	}{
		{name: "typical", defaults: testDefaults()},
		{name: "none", defaults: nil},
		{name: "empty values are unset", defaults: map[string]string{Issuers: "", TokenLookup: " "}},
		{name: "bad port", defaults: map[string]string{UpstreamPort: "7071"}, want: []string{UpstreamPort}},
		{name: "bad native", defaults: map[string]string{Native: "1"}, want: []string{Native}},
		{name: "several", defaults: map[string]string{JWKSURLs: "jwks.json", TokenLookup: "form:x", ClaimsToHeaders: "sub"}, want: []string{ClaimsToHeaders, JWKSURLs, TokenLookup}},
		{name: "not a setting", defaults: map[string]string{"inject": "true"}, want: []string{"inject"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range CheckDefaults(tt.defaults) {
				got = append(got, e.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors for %v, want %v", got, tt.want)
			}
		})
	}
}
