package charttest

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// injectorEnv is the injector's environment, in the order the chart sets it:
// the contract between the chart and cmd/jwt-sidecar-injector.
var injectorEnv = []string{
	"LISTEN_ADDR", "ADMIN_ADDR", "TLS_CERT_FILE", "TLS_KEY_FILE", "SHUTDOWN_TIMEOUT",
	"LOG_LEVEL", "LOG_FORMAT", "SIDECAR_IMAGE", "SIDECAR_IMAGE_PULL_POLICY",
	"DEFAULT_UPSTREAM_PORT", "DEFAULT_ISSUERS", "DEFAULT_OIDC_ISSUER_URL", "DEFAULT_JWKS_URLS",
	"DEFAULT_AUDIENCES", "DEFAULT_CLAIMS_TO_HEADERS", "DEFAULT_PUBLIC_PATHS",
	"DEFAULT_REQUIRED_SCOPES", "DEFAULT_TOKEN_LOOKUP", "DEFAULT_NATIVE_SIDECAR",
	"SIDECAR_CPU_REQUEST", "SIDECAR_MEMORY_REQUEST", "SIDECAR_CPU_LIMIT", "SIDECAR_MEMORY_LIMIT",
	"SIDECAR_LOG_LEVEL", "SIDECAR_PROMETHEUS_ANNOTATIONS", "DEFAULT_CONFIG_MAP", "SIDECAR_ENV",
}

// podAnnotations are SPEC's pod annotations, without the jwt-sidecar.io/ prefix.
var podAnnotations = []string{
	"inject", "upstream-port", "issuers", "oidc-issuer-url", "jwks-urls", "audiences",
	"claims-to-headers", "public-paths", "required-scopes", "token-lookup", "native", "status",
}

// The injected sidecar as SPEC fixes it.
const (
	sidecarName      = "jwt-sidecar"
	sidecarPort      = 7070
	sidecarPortName  = "http-auth"
	sidecarAdmin     = 7071
	sidecarAdminName = "http-admin"
	readyPath        = "/readyz"
	webhookPath      = "/mutate"
)

func decode[T any](t *testing.T, o object) *T {
	t.Helper()
	b, err := yaml.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		t.Fatalf("decode %s: %v", o["kind"], err)
	}
	return &v
}

func envMap(t *testing.T, c corev1.Container) (names []string, values map[string]string) {
	t.Helper()
	values = map[string]string{}
	for _, e := range c.Env {
		if _, dup := values[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		if e.ValueFrom != nil {
			t.Errorf("env %s: valueFrom, want a value", e.Name)
		}
		names = append(names, e.Name)
		values[e.Name] = e.Value
	}
	return names, values
}

func appVersion(t *testing.T) string {
	t.Helper()
	return loadChart(t).Metadata.AppVersion
}

func TestInjectorDeploymentDefaults(t *testing.T) {
	objs := objects(t, manifests(render(t, nil)))
	dep := decode[appsv1.Deployment](t, find(t, objs, "Deployment"))
	if got := *dep.Spec.Replicas; got != 2 {
		t.Errorf("replicas = %d, want 2", got)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if got := strings.Join(c.Command, " "); got != "/jwt-sidecar-injector" {
		t.Errorf("command = %q, want /jwt-sidecar-injector", got)
	}
	image := injectorRepository + ":" + appVersion(t)
	if c.Image != image {
		t.Errorf("image = %s, want %s", c.Image, image)
	}
	sidecarImage := imageRepository + ":" + appVersion(t)

	names, env := envMap(t, c)
	if !slices.Equal(sorted(names), sorted(injectorEnv)) {
		t.Errorf("env names = %v\nwant exactly %v", names, injectorEnv)
	}
	want := map[string]string{
		"LISTEN_ADDR":               ":8443",
		"ADMIN_ADDR":                ":8081",
		"TLS_CERT_FILE":             "/etc/jwt-sidecar-injector/tls/tls.crt",
		"TLS_KEY_FILE":              "/etc/jwt-sidecar-injector/tls/tls.key",
		"SHUTDOWN_TIMEOUT":          "20s",
		"LOG_LEVEL":                 "info",
		"LOG_FORMAT":                "json",
		"SIDECAR_IMAGE":             sidecarImage,
		"SIDECAR_IMAGE_PULL_POLICY": "IfNotPresent",
		"DEFAULT_UPSTREAM_PORT":     "8080",
		"DEFAULT_ISSUERS":           "",
		"DEFAULT_OIDC_ISSUER_URL":   "",
		"DEFAULT_JWKS_URLS":         "",
		"DEFAULT_AUDIENCES":         "",
		"DEFAULT_CLAIMS_TO_HEADERS": "",
		"DEFAULT_PUBLIC_PATHS":      "",
		"DEFAULT_REQUIRED_SCOPES":   "",
		"DEFAULT_TOKEN_LOOKUP":      "",
		"DEFAULT_NATIVE_SIDECAR":    "true",
		"SIDECAR_CPU_REQUEST":       "25m",
		"SIDECAR_MEMORY_REQUEST":    "32Mi",
		"SIDECAR_CPU_LIMIT":         "",
		"SIDECAR_MEMORY_LIMIT":      "64Mi",
		"SIDECAR_LOG_LEVEL":         "info",
		"DEFAULT_CONFIG_MAP":        "",
		"SIDECAR_ENV":               "{}",

		"SIDECAR_PROMETHEUS_ANNOTATIONS": "false",
	}
	for k, w := range want {
		if env[k] != w {
			t.Errorf("%s = %q, want %q", k, env[k], w)
		}
	}

	// Ports and probes: the webhook on 8443 (https), everything else on the
	// plain-HTTP admin port.
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["https"] != 8443 || ports["http-admin"] != 8081 {
		t.Errorf("ports = %v, want https 8443 and http-admin 8081", ports)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: missing or not httpGet", name)
			continue
		}
		if p.HTTPGet.Port.String() != "http-admin" {
			t.Errorf("%s probe port = %s, want http-admin", name, p.HTTPGet.Port.String())
		}
	}
	if c.ReadinessProbe.HTTPGet.Path != readyPath || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probe paths: readiness %s liveness %s", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}

	// TLS: the Secret mounted read-only where TLS_CERT_FILE points.
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.Name == "tls" && m.ReadOnly && m.MountPath == filepath.Dir(env["TLS_CERT_FILE"]) && m.SubPath == "" {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("no read-only whole-directory mount of the TLS secret at %s: %+v", filepath.Dir(env["TLS_CERT_FILE"]), c.VolumeMounts)
	}

	// Hardening.
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext not hardened: %+v", sc)
	}
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext not hardened: %+v", psc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the injector needs no API token; automountServiceAccountToken should be false")
	}
	if len(pod.TopologySpreadConstraints) == 0 || pod.TopologySpreadConstraints[0].LabelSelector == nil ||
		len(pod.TopologySpreadConstraints[0].LabelSelector.MatchLabels) == 0 {
		t.Errorf("topology spread without a label selector: %+v", pod.TopologySpreadConstraints)
	}

	// The Service sends 443 to the container's https port.
	svc := decode[corev1.Service](t, find(t, objs, "Service"))
	var https bool
	for _, p := range svc.Spec.Ports {
		if p.Port == 443 && p.TargetPort.String() == "https" {
			https = true
		}
	}
	if !https {
		t.Errorf("service ports = %+v, want 443 -> https", svc.Spec.Ports)
	}
}

func TestFullValuesReachTheDeployment(t *testing.T) {
	objs := objects(t, manifests(render(t, readValues(t, valueSets["full"]))))
	dep := decode[appsv1.Deployment](t, find(t, objs, "Deployment"))
	c := dep.Spec.Template.Spec.Containers[0]
	names, env := envMap(t, c)
	if !slices.Equal(sorted(names), sorted(injectorEnv)) {
		t.Errorf("env names = %v\nwant exactly %v", names, injectorEnv)
	}
	want := map[string]string{
		"LISTEN_ADDR":               ":9443",
		"ADMIN_ADDR":                ":9081",
		"SIDECAR_IMAGE":             "registry.example.com/jwt-sidecar@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
		"DEFAULT_UPSTREAM_PORT":     "3000",
		"DEFAULT_ISSUERS":           "https://idp.example.com/realms/main,https://idp2.example.com",
		"DEFAULT_CLAIMS_TO_HEADERS": "sub=X-Auth-Subject,email=X-Auth-Email,realm_access.roles=X-Auth-Roles",
		"DEFAULT_PUBLIC_PATHS":      "/healthz,/public/*",
		"DEFAULT_TOKEN_LOOKUP":      "header:Authorization,cookie:session",
		"DEFAULT_NATIVE_SIDECAR":    "false",
		"SIDECAR_CPU_LIMIT":         "500m",
		"LOG_FORMAT":                "text",
		"DEFAULT_CONFIG_MAP":        "fleet-policy",
		"SIDECAR_ENV":               `{"CLOCK_SKEW":"10s","JWKS_REFRESH_INTERVAL":"15m","JWKS_RELAY_URL":"http://jwt-sidecar-full-key-relay.jwt-system.svc:9080"}`,

		"SIDECAR_PROMETHEUS_ANNOTATIONS": "true",
	}
	for k, w := range want {
		if env[k] != w {
			t.Errorf("%s = %q, want %q", k, env[k], w)
		}
	}
	if !strings.HasSuffix(c.Image, "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") {
		t.Errorf("image = %s, want it pinned by digest", c.Image)
	}
	wh := decode[admissionv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration"))
	if got := wh.Annotations["cert-manager.io/inject-ca-from"]; got != releaseNS+"/jwt-sidecar-full-injector" {
		t.Errorf("inject-ca-from = %q", got)
	}
	if len(wh.Webhooks[0].ClientConfig.CABundle) != 0 {
		t.Error("caBundle set although cert-manager injects it")
	}
	if wh.Webhooks[0].ObjectSelector == nil || len(wh.Webhooks[0].ObjectSelector.MatchExpressions) != 1 {
		t.Errorf("objectSelector = %+v", wh.Webhooks[0].ObjectSelector)
	}
	ns := excludedNamespaces(t, wh.Webhooks[0])
	for _, n := range []string{"kube-system", "kube-public", releaseNS, "monitoring"} {
		if !slices.Contains(ns, n) {
			t.Errorf("namespace %s not excluded: %v", n, ns)
		}
	}
	if len(slices.Compact(sorted(ns))) != len(ns) {
		t.Errorf("excluded namespaces repeat: %v", ns)
	}
}

func excludedNamespaces(t *testing.T, w admissionv1.MutatingWebhook) []string {
	t.Helper()
	if w.NamespaceSelector == nil {
		t.Fatal("no namespaceSelector")
	}
	for _, e := range w.NamespaceSelector.MatchExpressions {
		if e.Key == "kubernetes.io/metadata.name" && e.Operator == "NotIn" {
			return e.Values
		}
	}
	t.Fatalf("no kubernetes.io/metadata.name NotIn expression in %+v", w.NamespaceSelector)
	return nil
}

func TestWebhookDefaults(t *testing.T) {
	objs := objects(t, manifests(render(t, nil)))
	wh := decode[admissionv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration"))
	if len(wh.Webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(wh.Webhooks))
	}
	w := wh.Webhooks[0]
	svc := w.ClientConfig.Service
	if svc == nil || svc.Path == nil || *svc.Path != webhookPath || svc.Port == nil || *svc.Port != 443 ||
		svc.Name != "jwt-jwt-sidecar-injector" || svc.Namespace != releaseNS {
		t.Errorf("clientConfig.service = %+v", svc)
	}
	if w.FailurePolicy == nil || *w.FailurePolicy != admissionv1.Fail {
		t.Errorf("failurePolicy = %v, want Fail", w.FailurePolicy)
	}
	if !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) || w.SideEffects == nil || *w.SideEffects != admissionv1.SideEffectClassNone ||
		w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionv1.NeverReinvocationPolicy ||
		w.MatchPolicy == nil || *w.MatchPolicy != admissionv1.Equivalent {
		t.Errorf("webhook settings: %+v", w)
	}
	if len(w.Rules) != 1 || !slices.Equal(w.Rules[0].Operations, []admissionv1.OperationType{admissionv1.Create}) ||
		!slices.Equal(w.Rules[0].Resources, []string{"pods"}) || !slices.Equal(w.Rules[0].APIGroups, []string{""}) {
		t.Errorf("rules = %+v, want pods CREATE", w.Rules)
	}
	if got := w.NamespaceSelector.MatchLabels["jwt-sidecar.io/injection"]; got != "enabled" {
		t.Errorf("namespaceSelector label = %q, want enabled", got)
	}
	ns := excludedNamespaces(t, w)
	for _, n := range []string{"kube-system", "kube-public", releaseNS} {
		if !slices.Contains(ns, n) {
			t.Errorf("namespace %s not excluded: %v", n, ns)
		}
	}
	if w.ObjectSelector != nil {
		t.Errorf("objectSelector = %+v, want none by default", w.ObjectSelector)
	}

	// The generated CA in caBundle signs the Secret's certificate for the
	// Service's DNS name, as the API server will check.
	sec := decode[corev1.Secret](t, find(t, objs, "Secret"))
	if string(sec.Data["ca.crt"]) != string(w.ClientConfig.CABundle) {
		t.Error("caBundle differs from the Secret's ca.crt")
	}
	verifyServing(t, w.ClientConfig.CABundle, sec.Data["tls.crt"], "jwt-jwt-sidecar-injector."+releaseNS+".svc")
}

func verifyServing(t *testing.T, caPEM, certPEM []byte, dnsName string) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("caBundle holds no PEM certificate")
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("tls.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		DNSName:   dnsName,
		Roots:     pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		t.Errorf("serving certificate does not verify for %s: %v", dnsName, err)
	}
}

func TestNotes(t *testing.T) {
	tests := []struct {
		name        string
		values      string
		want        []string
		wantWarning bool
	}{
		{name: "default", want: []string{"kubectl label namespace <namespace> jwt-sidecar.io/injection=enabled", `jwt-sidecar.io/inject: "true"`, "targetPort: http-auth", "7070"}},
		{name: "one replica fails closed", values: "injector: {replicas: 1}\npdb: {enabled: false}", wantWarning: true},
		{name: "one replica, Ignore", values: "injector: {replicas: 1}\npdb: {enabled: false}\nwebhook: {failurePolicy: Ignore}", want: []string{"WITHOUT the sidecar"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := notes(render(t, parseValues(t, tt.values)))
			for _, w := range tt.want {
				if !strings.Contains(n, w) {
					t.Errorf("NOTES lack %q:\n%s", w, n)
				}
			}
			if got := strings.Contains(n, "WARNING: webhook.failurePolicy is Fail"); got != tt.wantWarning {
				t.Errorf("failurePolicy warning = %v, want %v:\n%s", got, tt.wantWarning, n)
			}
		})
	}
}

// TestExamplesFollowSpec checks the hand-written manifests against the same
// contract: the injected-app's annotations and Service, and the manual sidecar.
func TestExamplesFollowSpec(t *testing.T) {
	read := func(name string) []object {
		b, err := os.ReadFile(filepath.Join("../../deploy/examples", name))
		if err != nil {
			t.Fatal(err)
		}
		return objects(t, string(b))
	}

	t.Run("injected-app", func(t *testing.T) {
		objs := read("injected-app.yaml")
		ns := decode[corev1.Namespace](t, find(t, objs, "Namespace"))
		defaults := loadChart(t).Values["webhook"].(map[string]any)["namespaceSelector"].(map[string]any)["matchLabels"].(map[string]any)
		for k, v := range defaults {
			if ns.Labels[k] != v {
				t.Errorf("namespace label %s = %q, want %q (the chart's namespaceSelector)", k, ns.Labels[k], v)
			}
		}
		var injected int
		for _, o := range objs {
			if o["kind"] != "Deployment" {
				continue
			}
			dep := decode[appsv1.Deployment](t, o)
			for k := range dep.Spec.Template.Annotations {
				name, ok := strings.CutPrefix(k, "jwt-sidecar.io/")
				if ok && !slices.Contains(podAnnotations, name) {
					t.Errorf("%s: annotation %s is not in SPEC", dep.Name, k)
				}
			}
			if dep.Spec.Template.Annotations["jwt-sidecar.io/inject"] == "true" {
				injected++
				for _, k := range []string{"issuers", "audiences", "upstream-port"} {
					if dep.Spec.Template.Annotations["jwt-sidecar.io/"+k] == "" {
						t.Errorf("%s: no jwt-sidecar.io/%s annotation", dep.Name, k)
					}
				}
			}
		}
		if injected != 1 {
			t.Errorf("%d Deployments annotated for injection, want 1", injected)
		}
		servesAuthPort(t, objs, "echo")
	})

	t.Run("manual-sidecar", func(t *testing.T) {
		objs := read("manual-sidecar.yaml")
		dep := decode[appsv1.Deployment](t, find(t, objs, "Deployment"))
		pod := dep.Spec.Template.Spec
		i := slices.IndexFunc(pod.InitContainers, func(c corev1.Container) bool { return c.Name == sidecarName })
		if i < 0 {
			t.Fatalf("no init container %s", sidecarName)
		}
		c := pod.InitContainers[i]
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Error("jwt-sidecar is not a native sidecar (restartPolicy Always)")
		}
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		if ports[sidecarPortName] != sidecarPort || ports[sidecarAdminName] != sidecarAdmin {
			t.Errorf("ports = %v, want %s %d and %s %d", ports, sidecarPortName, sidecarPort, sidecarAdminName, sidecarAdmin)
		}
		if p := c.StartupProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != readyPath || p.HTTPGet.Port.String() != sidecarAdminName {
			t.Errorf("startupProbe = %+v, want GET %s on %s", p, readyPath, sidecarAdminName)
		}
		_, env := envMap(t, c)
		if env["UPSTREAM_URL"] == "" || env["JWKS_CACHE_DIR"] == "" || (env["ISSUERS"] == "" && env["OIDC_ISSUER_URL"] == "") {
			t.Errorf("env lacks UPSTREAM_URL, JWKS_CACHE_DIR or an issuer: %v", env)
		}
		var cacheVolume bool
		for _, m := range c.VolumeMounts {
			if m.MountPath == env["JWKS_CACHE_DIR"] {
				for _, v := range pod.Volumes {
					cacheVolume = cacheVolume || (v.Name == m.Name && v.EmptyDir != nil)
				}
			}
		}
		if !cacheVolume {
			t.Error("JWKS_CACHE_DIR is not an emptyDir mount")
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
			*sc.AllowPrivilegeEscalation || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("sidecar securityContext not hardened: %+v", sc)
		}
		servesAuthPort(t, objs, "echo")
	})
}

func servesAuthPort(t *testing.T, objs []object, name string) {
	t.Helper()
	for _, o := range objs {
		if o["kind"] != "Service" {
			continue
		}
		svc := decode[corev1.Service](t, o)
		if svc.Name != name {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.String() != sidecarPortName {
				t.Errorf("Service %s port %d targets %s, want %s", name, p.Port, p.TargetPort.String(), sidecarPortName)
			}
		}
		return
	}
	t.Errorf("no Service %s", name)
}

// TestSpecFixesWhatTheChartAssumes reads the repository's contract
// (docs/contract.md) and checks the facts the chart and this test rely on are
// still there.
func TestSpecFixesWhatTheChartAssumes(t *testing.T) {
	raw, err := os.ReadFile("../../docs/contract.md")
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.Join(strings.Fields(string(raw)), " ")
	for _, s := range []string{
		"`LISTEN_ADDR` (default :8443)",
		"`ADMIN_ADDR` (default :8081",
		"`TLS_CERT_FILE` and `TLS_KEY_FILE` (required",
		"`SIDECAR_IMAGE` (required)",
		"at path `/mutate`",
		"The sidecar container is named `jwt-sidecar`",
		"listens on port 7070 named `http-auth`",
		"admin 7071 named `http-admin`",
		"startup probe on /readyz",
		"Pods in kube-system and kube-public are never injected",
		"| LISTEN_ADDR | :7070 |",
		"| ADMIN_ADDR | :7071 |",
		"| JWKS_CACHE_DIR |",
		"`cmd/jwt-sidecar`",
	} {
		if !strings.Contains(spec, s) {
			t.Errorf("docs/contract.md no longer says %q", s)
		}
	}
	// The annotation table: every row's names, e.g. "| issuers, oidc-issuer-url, jwks-urls, audiences |".
	var got []string
	in := false
	for _, line := range strings.Split(string(raw), "\n") {
		switch {
		case strings.HasPrefix(line, "| annotation |"):
			in = true
		case in && strings.HasPrefix(line, "|---"):
		case in && strings.HasPrefix(line, "| "):
			cell := strings.TrimSpace(strings.Split(line, "|")[1])
			for _, n := range strings.Split(cell, ",") {
				got = append(got, strings.TrimSpace(n))
			}
		case in:
			in = false
		}
	}
	if !slices.Equal(sorted(got), sorted(podAnnotations)) {
		t.Errorf("SPEC annotations = %v, want %v", got, podAnnotations)
	}
}

// TestInjectorCodeMatches greps the injector's sources for every variable
// the chart sets and for the sidecar's names and ports.
func TestInjectorCodeMatches(t *testing.T) {
	var sources strings.Builder
	for _, dir := range []string{"../../cmd/jwt-sidecar-injector", "../../injector"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			sources.Write(b)
			sources.WriteByte('\n')
			return err
		})
		if err != nil {
			t.Fatalf("reading the injector's sources: %v", err)
		}
	}
	code := sources.String()
	tags := map[string]string{} // variable -> envDefault ("" when none)
	tag := regexp.MustCompile("`[^`]*env:\"([A-Z0-9_]+)[^\"]*\"[^`]*`")
	def := regexp.MustCompile(`envDefault:"([^"]*)"`)
	for _, m := range tag.FindAllStringSubmatch(code, -1) {
		d := ""
		if dm := def.FindStringSubmatch(m[0]); dm != nil {
			d = dm[1]
		}
		tags[m[1]] = d
	}
	_, env := envMap(t, decode[appsv1.Deployment](t, find(t, objects(t, manifests(render(t, nil))), "Deployment")).Spec.Template.Spec.Containers[0])
	for _, name := range injectorEnv {
		d, ok := tags[name]
		switch {
		case !ok:
			t.Errorf("the injector has no env:%q tag, but the chart sets it", name)
		case d != "" && name != "SIDECAR_IMAGE_PULL_POLICY" && d != env[name]:
			// SIDECAR_IMAGE_PULL_POLICY follows image.pullPolicy, whatever the binary defaults to.
			t.Errorf("%s: the injector defaults to %q, the chart to %q", name, d, env[name])
		}
	}
	for name := range tags {
		if !slices.Contains(injectorEnv, name) {
			t.Logf("the injector reads %s, which the chart leaves at its default", name)
		}
	}
	for _, s := range []string{`"jwt-sidecar"`, `"http-auth"`, `"http-admin"`, "7070", "7071", `"/readyz"`, `/mutate"`} {
		if !strings.Contains(code, s) {
			t.Errorf("the injector's sources never mention %s", s)
		}
	}
	for _, a := range podAnnotations {
		if !strings.Contains(code, a) {
			t.Errorf("the injector's sources never mention the annotation %s", a)
		}
	}
}

// TestGeneratedCertificateSurvivesUpgrade renders with an existing TLS Secret
// in the "cluster" (helm's lookup) and checks it is reused, not rotated.
func TestGeneratedCertificateSurvivesUpgrade(t *testing.T) {
	first := objects(t, manifests(render(t, nil)))
	sec := decode[corev1.Secret](t, find(t, first, "Secret"))

	out := renderWithCluster(t, sec)
	again := objects(t, manifests(out))
	sec2 := decode[corev1.Secret](t, find(t, again, "Secret"))
	for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
		if string(sec.Data[k]) != string(sec2.Data[k]) {
			t.Errorf("%s rotated on upgrade", k)
		}
	}
	wh := decode[admissionv1.MutatingWebhookConfiguration](t, find(t, again, "MutatingWebhookConfiguration"))
	if string(wh.Webhooks[0].ClientConfig.CABundle) != string(sec.Data["ca.crt"]) {
		t.Error("caBundle does not match the reused CA")
	}

	// Two fresh installs get different CAs: generation really happens.
	other := decode[corev1.Secret](t, find(t, objects(t, manifests(render(t, nil))), "Secret"))
	if string(other.Data["ca.crt"]) == string(sec.Data["ca.crt"]) {
		t.Error("two installs generated the same CA")
	}
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// TestCertManagerWiring follows the references between the cert-manager
// objects, the webhook's inject-ca-from and the injector's TLS volume.
func TestCertManagerWiring(t *testing.T) {
	str := func(o object, path ...string) string {
		var cur any = map[string]any(o)
		for _, p := range path {
			m, _ := cur.(map[string]any)
			cur = m[p]
		}
		s, _ := cur.(string)
		return s
	}
	byName := func(objs []object, kind string) map[string]object {
		m := map[string]object{}
		for _, o := range objs {
			if o["kind"] == kind {
				m[str(o, "metadata", "name")] = o
			}
		}
		return m
	}
	tests := []struct {
		values     string
		wantIssuer string // the serving certificate's issuerRef kind/name
		ownCA      bool
	}{
		{values: "full", wantIssuer: "Issuer/jwt-sidecar-full-injector-ca", ownCA: true},
		{values: "cert-manager", wantIssuer: "ClusterIssuer/platform-ca"},
	}
	for _, tt := range tests {
		t.Run(tt.values, func(t *testing.T) {
			objs := objects(t, manifests(render(t, readValues(t, valueSets[tt.values]))))
			certs, issuers := byName(objs, "Certificate"), byName(objs, "Issuer")
			wh := decode[admissionv1.MutatingWebhookConfiguration](t, find(t, objs, "MutatingWebhookConfiguration"))
			ns, name, _ := strings.Cut(wh.Annotations["cert-manager.io/inject-ca-from"], "/")
			serving, ok := certs[name]
			if ns != releaseNS || !ok {
				t.Fatalf("inject-ca-from %q names no Certificate of this release (have %v)", wh.Annotations["cert-manager.io/inject-ca-from"], certs)
			}
			dep := decode[appsv1.Deployment](t, find(t, objs, "Deployment"))
			if got := dep.Spec.Template.Spec.Volumes[0].Secret.SecretName; got != str(serving, "spec", "secretName") {
				t.Errorf("the injector mounts %s, the Certificate writes %s", got, str(serving, "spec", "secretName"))
			}
			if got := str(serving, "spec", "issuerRef", "kind") + "/" + str(serving, "spec", "issuerRef", "name"); got != tt.wantIssuer {
				t.Errorf("serving issuerRef = %s, want %s", got, tt.wantIssuer)
			}
			if !tt.ownCA {
				if len(issuers) != 0 || len(certs) != 1 {
					t.Errorf("with issuerRef, want only the serving Certificate; have issuers %d certificates %d", len(issuers), len(certs))
				}
				return
			}
			caIssuer := issuers[str(serving, "spec", "issuerRef", "name")]
			caCert := certs[str(caIssuer, "spec", "ca", "secretName")]
			if caIssuer == nil || caCert == nil || caCert["spec"].(map[string]any)["isCA"] != true {
				t.Fatalf("the serving certificate's Issuer is not a CA Issuer over an isCA Certificate")
			}
			root := issuers[str(caCert, "spec", "issuerRef", "name")]
			if root == nil || root["spec"].(map[string]any)["selfSigned"] == nil {
				t.Errorf("the CA certificate is not issued by a selfSigned Issuer")
			}
		})
	}
}
