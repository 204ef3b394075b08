package charttest

import (
	"encoding/json"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/injector"
)

const (
	relayIDP   = "https://idp.example.com/jwks"
	relayValue = "relay: {enabled: true}\nsidecar: {jwksURLs: [" + relayIDP + "], issuers: [https://idp.example.com]}"
	relayURL   = "http://jwt-jwt-sidecar-key-relay." + releaseNS + ".svc:8080"
)

// sidecarEnvOf decodes the injector's SIDECAR_ENV: the injected sidecars'
// defaults.
func sidecarEnvOf(t *testing.T, objs []object) map[string]string {
	t.Helper()
	_, env := envMap(t, decode[appsv1.Deployment](t, find(t, objs, "Deployment")).Spec.Template.Spec.Containers[0])
	var out map[string]string
	if err := json.Unmarshal([]byte(env["SIDECAR_ENV"]), &out); err != nil {
		t.Fatalf("SIDECAR_ENV %q: %v", env["SIDECAR_ENV"], err)
	}
	return out
}

// Off (the default) renders nothing of the relay, whatever else is on, and
// the sidecars get no JWKS_RELAY_URL.
func TestRelayDisabledRendersNothing(t *testing.T) {
	for _, values := range []string{"", "networkPolicy: {enabled: true}\npodMonitor: {enabled: true}\nsidecarMetrics: {podMonitor: {enabled: true}}\nprometheusRule: {enabled: true}\nsidecar: {jwksURLs: [" + relayIDP + "]}"} {
		objs := objects(t, manifests(render(t, parseValues(t, values))))
		for _, o := range objs {
			if isRelay(o) {
				t.Errorf("values %q: relay object %s rendered", values, o["kind"])
			}
		}
		if env := sidecarEnvOf(t, objs); env["JWKS_RELAY_URL"] != "" {
			t.Errorf("values %q: SIDECAR_ENV sets JWKS_RELAY_URL %q", values, env["JWKS_RELAY_URL"])
		}
	}
	for _, a := range renderedAlerts(t, "prometheusRule: {enabled: true}") {
		if strings.HasPrefix(a.Alert, "JWTSidecarKeyRelay") {
			t.Errorf("%s renders without the relay", a.Alert)
		}
	}
}

// relayEnvTags is every variable the relay binary reads (its Config's env
// tags), from its source.
func relayEnvTags(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../../cmd/jwt-key-relay/main.go")
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]bool{}
	for _, m := range regexp.MustCompile("env:\"([A-Z0-9_]+)").FindAllStringSubmatch(string(src), -1) {
		tags[m[1]] = true
	}
	if len(tags) < 10 {
		t.Fatalf("%d env tags in the relay's source: the pattern is stale", len(tags))
	}
	return tags
}

func TestRelayEnabled(t *testing.T) {
	stream := manifests(render(t, parseValues(t, relayValue)))
	objs := objects(t, stream)
	v := newValidator(t)
	valid, problems := validateManifests(v, "relay", stream)
	for _, p := range problems {
		t.Error(p)
	}
	if valid != len(objs) {
		t.Errorf("%d valid documents, want %d", valid, len(objs))
	}
	injectorDep := decode[appsv1.Deployment](t, find(t, objs, "Deployment"))

	// The Deployment: the relay's image and binary, every variable one the
	// binary reads, the sources from the sidecars' defaults, probes on the
	// admin endpoints, the injector's restricted security context, a
	// writable cache directory under a read-only root.
	dep := decode[appsv1.Deployment](t, findRelay(t, objs, "Deployment"))
	spec := dep.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if want := relayRepository + ":" + appVersion(t); c.Image != want {
		t.Errorf("image = %s, want %s", c.Image, want)
	}
	if len(c.Command) != 0 {
		t.Errorf("command %v: the key-relay image's entrypoint is the relay", c.Command)
	}
	names, env := envMap(t, c)
	tags := relayEnvTags(t)
	for _, n := range names {
		if !tags[n] {
			t.Errorf("env %s is no variable of jwt-key-relay", n)
		}
	}
	for k, want := range map[string]string{"JWKS_URLS": relayIDP, "OIDC_ISSUER_URLS": "", "LISTEN_ADDR": ":8080", "ADMIN_ADDR": ":8081",
		"JWKS_CACHE_DIR": "/var/cache/jwt-key-relay", "JWKS_REFRESH_INTERVAL": "5m", "STALE_AFTER": "30m"} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "http-admin" {
		t.Errorf("readinessProbe = %+v, want GET /readyz on http-admin", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http-admin" {
		t.Errorf("livenessProbe = %+v, want GET /healthz on http-admin", p)
	}
	if !reflect.DeepEqual(c.SecurityContext, injectorDep.Spec.Template.Spec.Containers[0].SecurityContext) ||
		!reflect.DeepEqual(spec.SecurityContext, injectorDep.Spec.Template.Spec.SecurityContext) {
		t.Errorf("security contexts differ from the injector's: %+v / %+v", spec.SecurityContext, c.SecurityContext)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the relay's root filesystem is writable")
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != env["JWKS_CACHE_DIR"] || len(spec.Volumes) != 1 || spec.Volumes[0].EmptyDir == nil {
		t.Errorf("mounts %+v, volumes %+v: want JWKS_CACHE_DIR on an emptyDir", c.VolumeMounts, spec.Volumes)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the relay mounts a service account token; it calls no API")
	}
	podLabels := dep.Spec.Template.Labels
	if dep.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != "key-relay" {
		t.Errorf("selector %v, want the relay's component", dep.Spec.Selector.MatchLabels)
	}
	if tsc := spec.TopologySpreadConstraints; len(tsc) != 1 || tsc[0].LabelSelector == nil || !reflect.DeepEqual(tsc[0].LabelSelector.MatchLabels, dep.Spec.Selector.MatchLabels) {
		t.Errorf("topologySpreadConstraints %+v, want one selecting the relay's pods", tsc)
	}

	// The Service selects the relay's pods, and is what the sidecars ask.
	svc := decode[corev1.Service](t, findRelay(t, objs, "Service"))
	for k, v := range svc.Spec.Selector {
		if podLabels[k] != v {
			t.Errorf("the Service selects %s=%s, which the relay's pods lack", k, v)
		}
	}
	if svc.Spec.Selector["app.kubernetes.io/component"] != "key-relay" {
		t.Errorf("the Service selects %v, not only the relay", svc.Spec.Selector)
	}
	if env := sidecarEnvOf(t, objs); env["JWKS_RELAY_URL"] != relayURL || !strings.HasPrefix(relayURL, "http://"+svc.Name+"."+svc.Namespace+".svc:") {
		t.Errorf("sidecars' JWKS_RELAY_URL = %q, want %q (Service %s/%s)", env["JWKS_RELAY_URL"], relayURL, svc.Namespace, svc.Name)
	}
	var port bool
	for _, p := range svc.Spec.Ports {
		port = port || p.Port == 8080 && p.TargetPort.String() == "http"
	}
	if !port {
		t.Errorf("Service ports %+v, want 8080 -> http", svc.Spec.Ports)
	}

	// The URL passes the sidecar's own validation, as the injector will
	// check it.
	_, err := config.Load(map[string]string{"UPSTREAM_URL": "http://127.0.0.1:8080", "JWKS_URLS": relayIDP,
		"ISSUERS": "https://idp.example.com", "JWKS_RELAY_URL": relayURL})
	if err != nil {
		t.Errorf("the sidecar refuses the chart's JWKS_RELAY_URL: %v", err)
	}

	// Two replicas by default: a PodDisruptionBudget over the relay's pods.
	pdb := decode[policyv1.PodDisruptionBudget](t, findRelay(t, objs, "PodDisruptionBudget"))
	if !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, dep.Spec.Selector.MatchLabels) || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB selector %v minAvailable %v, want the relay's pods and 1", pdb.Spec.Selector.MatchLabels, pdb.Spec.MinAvailable)
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas = %d, want 2", *dep.Spec.Replicas)
	}
}

// One replica: no PodDisruptionBudget (it would block every drain).
func TestRelayOneReplicaHasNoPDB(t *testing.T) {
	objs := objects(t, manifests(render(t, parseValues(t, relayValue+"\nrelay: {enabled: true, replicas: 1}"))))
	for _, o := range objs {
		if isRelay(o) && o["kind"] == "PodDisruptionBudget" {
			t.Error("a relay PodDisruptionBudget renders with one replica")
		}
	}
	findRelay(t, objs, "Deployment")
}

// The relay's sources: its own lists win over the sidecars' defaults; with
// none at all the chart refuses to render (the relay would not start).
func TestRelaySources(t *testing.T) {
	objs := objects(t, manifests(render(t, parseValues(t,
		"relay: {enabled: true, jwksURLs: [https://a.example/jwks], oidcIssuerURLs: [https://b.example, https://c.example]}\nsidecar: {jwksURLs: [https://ignored.example/jwks]}"))))
	_, env := envMap(t, decode[appsv1.Deployment](t, findRelay(t, objs, "Deployment")).Spec.Template.Spec.Containers[0])
	if env["JWKS_URLS"] != "https://a.example/jwks" || env["OIDC_ISSUER_URLS"] != "https://b.example,https://c.example" {
		t.Errorf("JWKS_URLS %q, OIDC_ISSUER_URLS %q", env["JWKS_URLS"], env["OIDC_ISSUER_URLS"])
	}
	objs = objects(t, manifests(render(t, parseValues(t, "relay: {enabled: true}\nsidecar: {oidcIssuerURL: https://login.example}"))))
	_, env = envMap(t, decode[appsv1.Deployment](t, findRelay(t, objs, "Deployment")).Spec.Template.Spec.Containers[0])
	if env["OIDC_ISSUER_URLS"] != "https://login.example" || env["JWKS_URLS"] != "" {
		t.Errorf("from sidecar.oidcIssuerURL: JWKS_URLS %q, OIDC_ISSUER_URLS %q", env["JWKS_URLS"], env["OIDC_ISSUER_URLS"])
	}

	ch := loadChart(t)
	vals, err := renderValues(ch, parseValues(t, "relay: {enabled: true}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (engine.Engine{Strict: true}).Render(ch, vals); err == nil || !strings.Contains(err.Error(), "relay.jwksURLs") {
		t.Errorf("a relay without sources: %v, want a render error naming relay.jwksURLs", err)
	}
}

// A JWKS_RELAY_URL of the chart's user wins over the relay's Service.
func TestRelayURLOverride(t *testing.T) {
	objs := objects(t, manifests(render(t, parseValues(t, relayValue+"\nsidecar: {jwksURLs: ["+relayIDP+"], env: {JWKS_RELAY_URL: 'http://other-relay.keys:8080'}}"))))
	if got := sidecarEnvOf(t, objs)["JWKS_RELAY_URL"]; got != "http://other-relay.keys:8080" {
		t.Errorf("JWKS_RELAY_URL = %q, want sidecar.env's", got)
	}
}

// Scraped with the injector or the sidecars, and fenced like the injector.
func TestRelayMonitoringAndNetworkPolicy(t *testing.T) {
	for _, values := range []string{"podMonitor: {enabled: true, interval: 15s}", "sidecarMetrics: {podMonitor: {enabled: true, interval: 15s}}"} {
		objs := objects(t, manifests(render(t, parseValues(t, relayValue+"\n"+values))))
		pm := findRelay(t, objs, "PodMonitor")
		spec := pm["spec"].(map[string]any)
		sel := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
		ep := spec["podMetricsEndpoints"].([]any)[0].(map[string]any)
		if sel["app.kubernetes.io/component"] != "key-relay" || ep["port"] != "http-admin" || ep["path"] != "/metrics" || ep["interval"] != "15s" {
			t.Errorf("%s: PodMonitor selector %v endpoint %v", values, sel, ep)
		}
	}
	for _, o := range objects(t, manifests(render(t, parseValues(t, relayValue)))) {
		if isRelay(o) && o["kind"] == "PodMonitor" {
			t.Error("a relay PodMonitor renders without any monitor enabled")
		}
	}

	objs := objects(t, manifests(render(t, readValues(t, valueSets["full"]))))
	np := decode[networkingv1.NetworkPolicy](t, findRelay(t, objs, "NetworkPolicy"))
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes %v, want Ingress only (the relay fetches from issuers anywhere)", np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 2 {
		t.Fatalf("%d ingress rules, want the relay port and the admin port", len(np.Spec.Ingress))
	}
	keysRule, adminRule := np.Spec.Ingress[0], np.Spec.Ingress[1]
	if keysRule.Ports[0].Port.String() != "http" || len(keysRule.From) != 3 ||
		keysRule.From[0].PodSelector.MatchLabels[injector.InjectedLabel] != "true" || keysRule.From[0].NamespaceSelector == nil ||
		keysRule.From[1].PodSelector.MatchLabels["app.kubernetes.io/component"] != "test" || keysRule.From[1].NamespaceSelector != nil ||
		keysRule.From[2].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "gateway" {
		t.Errorf("key port rule %+v, want every injected pod, the helm test pod and relayFrom", keysRule)
	}
	if adminRule.Ports[0].Port.String() != "http-admin" || len(adminRule.From) != 1 ||
		adminRule.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("admin rule %+v, want adminFrom", adminRule)
	}
	// The full values pin the relay by digest and carry the pod annotations.
	dep := decode[appsv1.Deployment](t, findRelay(t, objs, "Deployment"))
	if c := dep.Spec.Template.Spec.Containers[0]; !strings.HasPrefix(c.Image, relayRepository+"@sha256:") {
		t.Errorf("image = %s, want pinned by digest", c.Image)
	}
	if a := dep.Spec.Template.Annotations; a["example.com/team"] != "platform" || a["prometheus.io/port"] != "9082" {
		t.Errorf("pod annotations %v, want podAnnotations and prometheus.io/port 9082", a)
	}
}

// NOTES says where the relay is and what the sidecars are told.
func TestRelayNotes(t *testing.T) {
	n := notes(render(t, parseValues(t, relayValue)))
	for _, want := range []string{"deployment/jwt-jwt-sidecar-key-relay", "JWKS_RELAY_URL=" + relayURL} {
		if !strings.Contains(n, want) {
			t.Errorf("NOTES lack %q:\n%s", want, n)
		}
	}
	if n := notes(render(t, nil)); strings.Contains(n, "relay") {
		t.Errorf("NOTES mention the relay while it is off:\n%s", n)
	}
}

// helm test asks the relay for its first source's key set through the
// Service, with the relay image's own healthcheck mode.
func TestRelayHelmTest(t *testing.T) {
	for values, wantQuery := range map[string]string{
		relayValue: "jwks=" + url.QueryEscape(relayIDP),
		"relay: {enabled: true, oidcIssuerURLs: [https://login.example/realms/a]}": "issuer=" + url.QueryEscape("https://login.example/realms/a"),
	} {
		var pods []*corev1.Pod
		for _, o := range objects(t, manifests(render(t, parseValues(t, values)))) {
			if o["kind"] == "Pod" {
				pods = append(pods, decode[corev1.Pod](t, o))
			}
		}
		if len(pods) != 2 {
			t.Fatalf("%d test pods, want the injector's and the relay's", len(pods))
		}
		pod := pods[1]
		if pods[0].Name == "jwt-jwt-sidecar-key-relay-test" {
			pod = pods[0]
		}
		c := pod.Spec.Containers[0]
		want := []string{"healthcheck", relayURL + "/v1/jwks?" + wantQuery}
		if pod.Annotations["helm.sh/hook"] != "test" || !slices.Equal(c.Args, want) || len(c.Command) != 0 ||
			!strings.HasPrefix(c.Image, relayRepository+":") {
			t.Errorf("relay test pod %s: hook %q image %s command %v args %v; want args %v", pod.Name, pod.Annotations["helm.sh/hook"], c.Image, c.Command, c.Args, want)
		}
		if d := readDockerfile(t); d.stage(t, "key-relay").entrypoint != `["/jwt-key-relay"]` {
			t.Error("the key-relay image's entrypoint is not the relay")
		}
	}
}
