package charttest

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/jwt-sidecar/jwt-sidecar/injector"
)

// injectorEnvValue renders values on a cluster version and answers one
// variable of the injector's container.
func injectorEnvValue(t *testing.T, values, version, name string) string {
	t.Helper()
	objs := objects(t, manifests(renderOn(t, parseValues(t, values), version)))
	_, env := envMap(t, decode[appsv1.Deployment](t, find(t, objs, "Deployment")).Spec.Template.Spec.Containers[0])
	return env[name]
}

func TestNativeSidecarFromKubeVersion(t *testing.T) {
	tests := []struct {
		values, version, want string
	}{
		{version: "v1.21.0", want: "false"},
		{version: "v1.28.9", want: "false"},
		{version: "v1.29.0", want: "true"},
		{version: "v1.33.2", want: "true"},
		{version: "v1.29.0-gke.1", want: "true"}, // a vendor's pre-release suffix is still 1.29
		{values: "sidecar: {native: true}", version: "v1.28.0", want: "true"},
		{values: "sidecar: {native: false}", version: "v1.33.0", want: "false"},
	}
	for _, tt := range tests {
		t.Run(tt.version+" "+tt.values, func(t *testing.T) {
			if got := injectorEnvValue(t, tt.values, tt.version, "DEFAULT_NATIVE_SIDECAR"); got != tt.want {
				t.Errorf("DEFAULT_NATIVE_SIDECAR = %q, want %q", got, tt.want)
			}
		})
	}
	n := notes(renderOn(t, nil, "v1.28.0"))
	if !strings.Contains(n, "runs as a plain container") || !strings.Contains(n, "chosen from Kubernetes v1.28.0") {
		t.Errorf("NOTES on 1.28 do not say the sidecar is a plain container chosen from the version:\n%s", n)
	}
}

func TestSidecarImage(t *testing.T) {
	const digest = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	tests := []struct {
		values, want string
	}{
		{want: imageRepository + ":" + appVersion(t)},
		{values: "sidecar: {image: {tag: v2}}", want: imageRepository + ":v2"},
		{values: "sidecar: {image: {digest: " + digest + "}}", want: imageRepository + "@" + digest},
		{values: "sidecar: {image: {repository: r.example/s, tag: v2, digest: " + digest + "}}", want: "r.example/s@" + digest},
	}
	for _, tt := range tests {
		if got := injectorEnvValue(t, tt.values, kubeVersion, "SIDECAR_IMAGE"); got != tt.want {
			t.Errorf("values %q: SIDECAR_IMAGE = %s, want %s", tt.values, got, tt.want)
		}
	}
	if _, err := renderValues(loadChart(t), parseValues(t, "sidecar: {image: {digest: latest}}")); err == nil {
		t.Error("sidecar.image.digest: latest accepted, want a schema error")
	}
}

// TestSidecarPodMonitor: the PodMonitor selects the label the injector sets,
// on the port the injected container names, in every or the listed namespaces.
func TestSidecarPodMonitor(t *testing.T) {
	for _, tt := range []struct {
		values     string
		namespaces []any // nil: any
	}{
		{values: "sidecarMetrics: {podMonitor: {enabled: true}}"},
		{values: "sidecarMetrics: {podMonitor: {enabled: true, namespaces: [shop]}}", namespaces: []any{"shop"}},
	} {
		objs := objects(t, manifests(render(t, parseValues(t, tt.values))))
		var pm object
		for _, o := range objs {
			if o["kind"] == "PodMonitor" {
				pm = o
			}
		}
		if pm == nil {
			t.Fatalf("%s: no PodMonitor", tt.values)
		}
		spec := pm["spec"].(map[string]any)
		sel := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
		if len(sel) != 1 || sel[injector.InjectedLabel] != "true" {
			t.Errorf("selector = %v, want only %s=true", sel, injector.InjectedLabel)
		}
		ns := spec["namespaceSelector"].(map[string]any)
		if tt.namespaces == nil && ns["any"] != true || tt.namespaces != nil && !slices.Equal(ns["matchNames"].([]any), tt.namespaces) {
			t.Errorf("namespaceSelector = %v, want %v (nil: any)", ns, tt.namespaces)
		}
		ep := spec["podMetricsEndpoints"].([]any)[0].(map[string]any)
		if ep["port"] != sidecarAdminName || ep["path"] != "/metrics" {
			t.Errorf("endpoint = %v, want %s /metrics", ep, sidecarAdminName)
		}
		var workload bool
		for _, r := range ep["relabelings"].([]any) {
			workload = workload || r.(map[string]any)["targetLabel"] == "workload"
		}
		if !workload {
			t.Error("no relabeling sets workload, which the dashboard and the alerts group by")
		}
	}
	// Off by default, and the injector's own PodMonitor stays separate.
	for _, o := range objects(t, manifests(render(t, nil))) {
		if o["kind"] == "PodMonitor" {
			t.Error("a PodMonitor renders by default")
		}
	}
	if got := injectorEnvValue(t, "sidecarMetrics: {prometheusAnnotations: true}", kubeVersion, "SIDECAR_PROMETHEUS_ANNOTATIONS"); got != "true" {
		t.Errorf("SIDECAR_PROMETHEUS_ANNOTATIONS = %q, want true", got)
	}
}

func TestDashboardConfigMap(t *testing.T) {
	want, err := os.ReadFile("../jwt-sidecar/dashboards/jwt-sidecar.json")
	if err != nil {
		t.Fatal(err)
	}
	objs := objects(t, manifests(render(t, parseValues(t, "grafanaDashboard: {enabled: true, namespace: monitoring}"))))
	cm := decode[corev1.ConfigMap](t, find(t, objs, "ConfigMap"))
	if cm.Labels["grafana_dashboard"] != "1" || cm.Namespace != "monitoring" {
		t.Errorf("ConfigMap %s/%s labels %v, want namespace monitoring and grafana_dashboard=1", cm.Namespace, cm.Name, cm.Labels)
	}
	got := cm.Data["jwt-sidecar.json"]
	if !json.Valid([]byte(got)) || strings.TrimSpace(got) != string(bytes.TrimSpace(want)) {
		t.Errorf("the ConfigMap's jwt-sidecar.json is not the chart's dashboards/jwt-sidecar.json (valid JSON: %t)", json.Valid([]byte(got)))
	}
	// The ConfigMap must fit: the API server refuses objects over 1 MiB,
	// and client-side apply keeps a second copy in an annotation (256 KiB).
	if len(got) > 256<<10 {
		t.Errorf("the dashboard is %d bytes; client-side apply's annotation holds at most 256 KiB", len(got))
	}
}

func TestNetworkPolicies(t *testing.T) {
	objs := objects(t, manifests(render(t, readValues(t, valueSets["full"]))))
	var injectorPolicy *networkingv1.NetworkPolicy
	sidecars := map[string]*networkingv1.NetworkPolicy{}
	for _, o := range objs {
		if o["kind"] != "NetworkPolicy" || isRelay(o) {
			continue
		}
		np := decode[networkingv1.NetworkPolicy](t, o)
		if _, ok := np.Spec.PodSelector.MatchLabels[injector.InjectedLabel]; ok {
			sidecars[np.Namespace] = np
		} else {
			injectorPolicy = np
		}
	}
	if injectorPolicy == nil {
		t.Fatal("no NetworkPolicy for the injector")
	}
	dep := decode[appsv1.Deployment](t, find(t, objs, "Deployment"))
	for k, v := range injectorPolicy.Spec.PodSelector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the injector's NetworkPolicy selects %s=%s, which its pods do not carry", k, v)
		}
	}
	if !slices.Contains(injectorPolicy.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || len(injectorPolicy.Spec.Egress) != 0 {
		t.Errorf("egress = %v %v, want none at all (the injector calls nothing)", injectorPolicy.Spec.PolicyTypes, injectorPolicy.Spec.Egress)
	}
	testPod := decode[corev1.Pod](t, find(t, objs, "Pod"))
	byPort := map[string]networkingv1.NetworkPolicyIngressRule{}
	for _, r := range injectorPolicy.Spec.Ingress {
		byPort[r.Ports[0].Port.String()] = r
	}
	if r := byPort["https"]; len(r.From) != 1 || r.From[0].IPBlock == nil || r.From[0].IPBlock.CIDR != "10.0.0.0/8" {
		t.Errorf("webhook port from %+v, want webhookFrom", r.From)
	}
	admin := byPort["http-admin"]
	var testAllowed, monitoringAllowed bool
	for _, p := range admin.From {
		if p.PodSelector != nil && p.NamespaceSelector == nil {
			match := true
			for k, v := range p.PodSelector.MatchLabels {
				match = match && testPod.Labels[k] == v
			}
			testAllowed = testAllowed || match
		}
		monitoringAllowed = monitoringAllowed || p.NamespaceSelector != nil
	}
	if !testAllowed || !monitoringAllowed {
		t.Errorf("admin port from %+v: the helm test pod allowed %t, adminFrom allowed %t", admin.From, testAllowed, monitoringAllowed)
	}
	for _, ns := range []string{"shop", "billing"} {
		np := sidecars[ns]
		if np == nil {
			t.Errorf("no NetworkPolicy for the injected pods of %s", ns)
			continue
		}
		ports := map[string]int{}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				ports[p.Port.String()] = len(r.From)
			}
		}
		if n, ok := ports["7070"]; !ok || n != 0 {
			t.Errorf("%s: port 7070 %v, want open to every source", ns, ports)
		}
		if ports["7071"] != 1 || ports["9102"] != 1 {
			t.Errorf("%s: ports %v, want 7071 from adminFrom and the extra rule's 9102", ns, ports)
		}
	}

	// Without adminFrom, the sidecars' admin port gets no rule at all: a rule
	// with an empty from would open it to every source.
	objs = objects(t, manifests(render(t, parseValues(t, "networkPolicy: {enabled: true, sidecars: {namespaces: [shop]}}"))))
	for _, o := range objs {
		if o["kind"] != "NetworkPolicy" || o["metadata"].(map[string]any)["namespace"] != "shop" {
			continue
		}
		np := decode[networkingv1.NetworkPolicy](t, o)
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port.String() == "7071" {
					t.Errorf("port 7071 has a rule from %+v without adminFrom", r.From)
				}
			}
		}
	}
}

func TestHelmTestHook(t *testing.T) {
	objs := objects(t, manifests(render(t, nil)))
	pod := decode[corev1.Pod](t, find(t, objs, "Pod"))
	if pod.Annotations["helm.sh/hook"] != "test" {
		t.Errorf("hook = %q, want test", pod.Annotations["helm.sh/hook"])
	}
	c := pod.Spec.Containers[0]
	// The chart's image is the injector's target of the Dockerfile.
	if d := readDockerfile(t); !d.has(d.stage(t, "injector"), c.Command[0]) {
		t.Errorf("the test runs %s, which the image does not hold", c.Command[0])
	}
	svc := decode[corev1.Service](t, find(t, objs, "Service"))
	var adminPort int32
	for _, p := range svc.Spec.Ports {
		if p.Name == "http-admin" {
			adminPort = p.Port
		}
	}
	want := []string{"healthcheck", "http://" + svc.Name + "." + releaseNS + ".svc:" + itoa(adminPort) + readyPath}
	if !slices.Equal(c.Args, want) {
		t.Errorf("args = %v, want %v (the Service's admin port)", c.Args, want)
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever || c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil {
		t.Errorf("restartPolicy %s, securityContext %+v", pod.Spec.RestartPolicy, c.SecurityContext)
	}
	for _, o := range objects(t, manifests(render(t, parseValues(t, "tests: {enabled: false}")))) {
		if o["kind"] == "Pod" {
			t.Error("tests.enabled=false still renders the test pod")
		}
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
