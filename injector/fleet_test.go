package injector

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestCheckDefaultsEnv(t *testing.T) {
	tests := []struct {
		name     string
		defaults map[string]string
		want     []string
	}{
		{name: "variables", defaults: map[string]string{EnvPrefix + "CLOCK_SKEW": "10s", EnvPrefix + "JWKS_REFRESH_INTERVAL": "15m", ConfigMap: "fleet-policy"}},
		{name: "refused value", defaults: map[string]string{EnvPrefix + "CLOCK_SKEW": "10m"}, want: []string{EnvPrefix + "*"}},
		{name: "unknown variable", defaults: map[string]string{EnvPrefix + "NOPE": "1"}, want: []string{EnvPrefix + "NOPE"}},
		{name: "own variable", defaults: map[string]string{EnvPrefix + "LISTEN_ADDR": ":80"}, want: []string{EnvPrefix + "LISTEN_ADDR"}},
		{name: "bad config map", defaults: map[string]string{ConfigMap: "A"}, want: []string{ConfigMap}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range CheckDefaults(tt.defaults) {
				got = append(got, e.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors for %v, want %v", got, tt.want)
			}
		})
	}
}

// envOf injects the fixture with in and returns the sidecar's plain
// variables.
func envOf(t *testing.T, in *Injector, fixture string) map[string]string {
	t.Helper()
	review := readReview(t, filepath.Join("testdata", fixture+".json"))
	d := in.Mutate(review.Request)
	if d.Outcome != Injected {
		t.Fatalf("%s: %s/%s %v", fixture, d.Outcome, d.Reason, d.Response.Result)
	}
	patched, err := applyPatch(review.Request.Object.Raw, d.Response.Patch)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(patched, &pod); err != nil {
		t.Fatal(err)
	}
	cs := append(pod.Spec.InitContainers, pod.Spec.Containers...)
	i := slices.IndexFunc(cs, func(c corev1.Container) bool { return c.Name == ContainerName })
	env := map[string]string{}
	for _, e := range cs[i].Env {
		env[e.Name] = e.Value
	}
	return env
}

// Chart-wide variables reach every pod, a pod's annotation overrides one,
// and the pod's override never leaks into the defaults of the next pod.
func TestDefaultVarsOverriddenPerPod(t *testing.T) {
	d := testDefaults()
	d[EnvPrefix+"CLOCK_SKEW"] = "45s"
	d[EnvPrefix+"JWKS_REFRESH_INTERVAL"] = "15m"
	in, _ := newTestInjector(t, d)
	for range 2 {
		if env := envOf(t, in, "native"); env["CLOCK_SKEW"] != "45s" || env["JWKS_REFRESH_INTERVAL"] != "15m" {
			t.Errorf("defaults: CLOCK_SKEW=%q JWKS_REFRESH_INTERVAL=%q, want 45s and 15m", env["CLOCK_SKEW"], env["JWKS_REFRESH_INTERVAL"])
		}
		if env := envOf(t, in, "env-vars"); env["CLOCK_SKEW"] != "10s" || env["JWKS_REFRESH_INTERVAL"] != "15m" {
			t.Errorf("annotated: CLOCK_SKEW=%q JWKS_REFRESH_INTERVAL=%q, want 10s and 15m", env["CLOCK_SKEW"], env["JWKS_REFRESH_INTERVAL"])
		}
	}
	// With a policy file, a default policy variable is left out, not refused.
	env := envOf(t, in, "config-map")
	if _, ok := env["CLOCK_SKEW"]; ok {
		t.Errorf("CLOCK_SKEW kept beside CONFIG_FILE: %v", env)
	}
	if env["JWKS_REFRESH_INTERVAL"] != "10m" || !strings.HasSuffix(env["CONFIG_FILE"], "/policy.yaml") {
		t.Errorf("config-map env = %v", env)
	}
}

// A default ConfigMap gives every pod the policy file, and the one-provider
// defaults are left out.
func TestDefaultConfigMap(t *testing.T) {
	d := testDefaults()
	d[ConfigMap] = "fleet-policy"
	in, _ := newTestInjector(t, d)
	env := envOf(t, in, "native")
	if env["CONFIG_FILE"] != PolicyDir+"/"+PolicyKey || env["ISSUERS"] != "" || env["JWKS_URLS"] != "" || env["AUDIENCES"] != "" {
		t.Errorf("env = %v, want CONFIG_FILE and no one-provider variables", env)
	}
}
