package main

import (
	"bytes"
	"context"
	"flag"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/jwt-sidecar/jwt-sidecar/injector"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli/clitest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// minimal is the smallest valid environment. The files need not exist for
// configuration: a missing certificate leaves /readyz at 503.
func minimal() map[string]string {
	return map[string]string{
		"TLS_CERT_FILE": "/tls/tls.crt",
		"TLS_KEY_FILE":  "/tls/tls.key",
		"SIDECAR_IMAGE": "ghcr.io/jwt-sidecar/jwt-sidecar:v0.1.0",
	}
}

func TestHelpGolden(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit code = %d, want 0", code)
	}
	clitest.Help[Config](t, out.Bytes(), "testdata/help.golden", *update)
	// And every annotation.
	for _, a := range append(injector.Settings(), injector.Inject, injector.Status) {
		if !strings.Contains(out.String(), a) {
			t.Errorf("--help lacks the annotation %s", a)
		}
	}
}

// TestNamesAreTheChartContract pins the variable names the Helm chart sets.
func TestNamesAreTheChartContract(t *testing.T) {
	want := []string{
		"LISTEN_ADDR", "TLS_CERT_FILE", "TLS_KEY_FILE", "ADMIN_ADDR", "SIDECAR_IMAGE", "SIDECAR_IMAGE_PULL_POLICY",
		"SHUTDOWN_TIMEOUT", "LOG_LEVEL", "LOG_FORMAT",
		"DEFAULT_UPSTREAM_PORT", "DEFAULT_ISSUERS", "DEFAULT_OIDC_ISSUER_URL", "DEFAULT_JWKS_URLS", "DEFAULT_AUDIENCES",
		"DEFAULT_CLAIMS_TO_HEADERS", "DEFAULT_PUBLIC_PATHS", "DEFAULT_REQUIRED_SCOPES", "DEFAULT_TOKEN_LOOKUP", "DEFAULT_CONFIG_MAP", "DEFAULT_NATIVE_SIDECAR",
		"SIDECAR_CPU_REQUEST", "SIDECAR_MEMORY_REQUEST", "SIDECAR_CPU_LIMIT", "SIDECAR_MEMORY_LIMIT", "SIDECAR_LOG_LEVEL",
		"SIDECAR_PROMETHEUS_ANNOTATIONS", "SIDECAR_ENV",
	}
	var got []string
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("env"), ",")
		got = append(got, name)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("variables:\n got %v\nwant %v", got, want)
	}
	// Every per-pod setting has a default variable.
	for _, s := range injector.Settings() {
		if v := defaultVar(s); !strings.HasPrefix(v, "DEFAULT_") {
			t.Errorf("setting %s has no DEFAULT_ variable", s)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		unset   []string
		wantErr []string
	}{
		{name: "valid"},
		{name: "all defaults set", set: map[string]string{
			"DEFAULT_ISSUERS": "https://a.example", "DEFAULT_OIDC_ISSUER_URL": "https://login.example", "DEFAULT_JWKS_URLS": "https://a.example/jwks",
			"DEFAULT_AUDIENCES": "api", "DEFAULT_CLAIMS_TO_HEADERS": "sub=X-Auth-Subject", "DEFAULT_PUBLIC_PATHS": "/healthz",
			"DEFAULT_REQUIRED_SCOPES": "read", "DEFAULT_TOKEN_LOOKUP": "cookie:session", "DEFAULT_NATIVE_SIDECAR": "false",
			"SIDECAR_CPU_LIMIT": "200m",
		}},
		{name: "empty resources are none", set: map[string]string{"SIDECAR_MEMORY_LIMIT": "", "SIDECAR_CPU_REQUEST": " ", "SIDECAR_MEMORY_REQUEST": "128Mi"}},
		{name: "cert missing", unset: []string{"TLS_CERT_FILE"}, wantErr: []string{"TLS_CERT_FILE: required but not set"}},
		{name: "key missing", unset: []string{"TLS_KEY_FILE"}, wantErr: []string{"TLS_KEY_FILE: required but not set"}},
		{name: "image missing", unset: []string{"SIDECAR_IMAGE"}, wantErr: []string{"SIDECAR_IMAGE: required but not set"}},
		{name: "image empty", set: map[string]string{"SIDECAR_IMAGE": " "}, wantErr: []string{"SIDECAR_IMAGE:"}},
		{name: "pull policy", set: map[string]string{"SIDECAR_IMAGE_PULL_POLICY": "sometimes"}, wantErr: []string{"SIDECAR_IMAGE_PULL_POLICY:"}},
		{name: "bad listen", set: map[string]string{"LISTEN_ADDR": "8443"}, wantErr: []string{"LISTEN_ADDR:"}},
		{name: "same listen and admin", set: map[string]string{"ADMIN_ADDR": ":8443"}, wantErr: []string{"ADMIN_ADDR: must differ"}},
		{name: "shutdown not a duration", set: map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, wantErr: []string{"SHUTDOWN_TIMEOUT:"}},
		{name: "shutdown zero", set: map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, wantErr: []string{"SHUTDOWN_TIMEOUT: must be positive"}},
		{name: "log level", set: map[string]string{"LOG_LEVEL": "loud"}, wantErr: []string{"LOG_LEVEL:"}},
		{name: "log format", set: map[string]string{"LOG_FORMAT": "xml"}, wantErr: []string{"LOG_FORMAT:"}},
		{name: "sidecar log level", set: map[string]string{"SIDECAR_LOG_LEVEL": "chatty"}, wantErr: []string{"SIDECAR_LOG_LEVEL:"}},
		{name: "port text", set: map[string]string{"DEFAULT_UPSTREAM_PORT": "http"}, wantErr: []string{"DEFAULT_UPSTREAM_PORT:"}},
		{name: "port is the sidecar's", set: map[string]string{"DEFAULT_UPSTREAM_PORT": "7070"}, wantErr: []string{"DEFAULT_UPSTREAM_PORT: 7070 is the sidecar's own port"}},
		{name: "port empty takes the default", set: map[string]string{"DEFAULT_UPSTREAM_PORT": ""}},
		{name: "issuers only commas", set: map[string]string{"DEFAULT_ISSUERS": ", ,"}, wantErr: []string{"DEFAULT_ISSUERS: empty list"}},
		{name: "oidc not absolute", set: map[string]string{"DEFAULT_OIDC_ISSUER_URL": "login.example"}, wantErr: []string{"DEFAULT_OIDC_ISSUER_URL:"}},
		{name: "jwks not http", set: map[string]string{"DEFAULT_JWKS_URLS": "file:///jwks.json"}, wantErr: []string{"DEFAULT_JWKS_URLS:"}},
		{name: "claims without =", set: map[string]string{"DEFAULT_CLAIMS_TO_HEADERS": "sub"}, wantErr: []string{"DEFAULT_CLAIMS_TO_HEADERS:"}},
		{name: "public path", set: map[string]string{"DEFAULT_PUBLIC_PATHS": "health"}, wantErr: []string{"DEFAULT_PUBLIC_PATHS:"}},
		{name: "token lookup", set: map[string]string{"DEFAULT_TOKEN_LOOKUP": "body:t"}, wantErr: []string{"DEFAULT_TOKEN_LOOKUP:"}},
		{name: "native", set: map[string]string{"DEFAULT_NATIVE_SIDECAR": "yes"}, wantErr: []string{"DEFAULT_NATIVE_SIDECAR:"}},
		{name: "cpu not a quantity", set: map[string]string{"SIDECAR_CPU_REQUEST": "a lot"}, wantErr: []string{"SIDECAR_CPU_REQUEST:"}},
		{name: "memory negative", set: map[string]string{"SIDECAR_MEMORY_LIMIT": "-1Mi"}, wantErr: []string{"SIDECAR_MEMORY_LIMIT:"}},
		{name: "request above limit", set: map[string]string{"SIDECAR_MEMORY_REQUEST": "128Mi"}, wantErr: []string{"SIDECAR_MEMORY_REQUEST: 128Mi is more than SIDECAR_MEMORY_LIMIT 64Mi"}},
		{name: "cpu request above limit", set: map[string]string{"SIDECAR_CPU_LIMIT": "10m"}, wantErr: []string{"SIDECAR_CPU_REQUEST: 25m is more than SIDECAR_CPU_LIMIT 10m"}},
		{name: "sidecar env", set: map[string]string{"SIDECAR_ENV": `{"CLOCK_SKEW":"10s","ALGORITHMS":"RS256,ES256"}`, "DEFAULT_CONFIG_MAP": "fleet-policy"}},
		{name: "sidecar env with the chart's relay URL", set: map[string]string{"SIDECAR_ENV": `{"JWKS_RELAY_URL":"http://jwt-jwt-sidecar-key-relay.jwt-system.svc:8080"}`}},
		{name: "sidecar env relay URL with a query", set: map[string]string{"SIDECAR_ENV": `{"JWKS_RELAY_URL":"http://relay:8080/?x=1"}`}, wantErr: []string{"SIDECAR_ENV: JWKS_RELAY_URL"}},
		{name: "sidecar env not JSON", set: map[string]string{"SIDECAR_ENV": "CLOCK_SKEW=10s"}, wantErr: []string{"SIDECAR_ENV: want a JSON object"}},
		{name: "sidecar env refused value", set: map[string]string{"SIDECAR_ENV": `{"CLOCK_SKEW":"1h"}`}, wantErr: []string{"SIDECAR_ENV: CLOCK_SKEW: 1h0m0s is more than 5m"}},
		{name: "sidecar env unknown", set: map[string]string{"SIDECAR_ENV": `{"CLOCKSKEW":"1s"}`}, wantErr: []string{"SIDECAR_ENV: CLOCKSKEW is not a jwt-sidecar variable"}},
		{name: "config map name", set: map[string]string{"DEFAULT_CONFIG_MAP": "Policy"}, wantErr: []string{"DEFAULT_CONFIG_MAP:"}},
		{name: "several problems at once", set: map[string]string{"DEFAULT_UPSTREAM_PORT": "0", "LOG_LEVEL": "loud", "SIDECAR_IMAGE_PULL_POLICY": "x"}, wantErr: []string{"DEFAULT_UPSTREAM_PORT:", "LOG_LEVEL:", "SIDECAR_IMAGE_PULL_POLICY:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := minimal()
			for k, v := range tt.set {
				env[k] = v
			}
			for _, k := range tt.unset {
				delete(env, k)
			}
			_, err := loadConfig(env)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			// The process stops with exit code 2 and the same message.
			var stderr bytes.Buffer
			if code := run(context.Background(), nil, env, &stderr, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.wantErr[0]) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantErr[0])
			}
		})
	}
}

func TestOptionsFromConfig(t *testing.T) {
	env := minimal()
	env["DEFAULT_ISSUERS"] = "https://a.example"
	env["SIDECAR_CPU_LIMIT"] = "100m"
	env["SIDECAR_IMAGE_PULL_POLICY"] = "Always"
	c, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	o := c.options()
	env["SIDECAR_MEMORY_LIMIT"] = ""
	c2, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.options().Resources.Limits[corev1.ResourceMemory]; ok {
		t.Error("SIDECAR_MEMORY_LIMIT set but empty: a memory limit remains")
	}
	if o.Image != env["SIDECAR_IMAGE"] || o.PullPolicy != corev1.PullAlways || o.LogLevel != "info" || o.PrometheusAnnotations {
		t.Errorf("options = %+v", o)
	}
	env["SIDECAR_PROMETHEUS_ANNOTATIONS"] = "true"
	c3, err := loadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if !c3.options().PrometheusAnnotations {
		t.Error("SIDECAR_PROMETHEUS_ANNOTATIONS=true does not reach the injector's options")
	}
	env["SIDECAR_PROMETHEUS_ANNOTATIONS"] = "maybe"
	if _, err := loadConfig(env); err == nil || !strings.Contains(err.Error(), "SIDECAR_PROMETHEUS_ANNOTATIONS") {
		t.Errorf("SIDECAR_PROMETHEUS_ANNOTATIONS=maybe: error %v, want one naming the variable", err)
	}
	wantDefaults := map[string]string{
		injector.UpstreamPort: "8080", injector.Issuers: "https://a.example", injector.Native: "true",
	}
	for _, s := range injector.Settings() {
		if o.Defaults[s] != wantDefaults[s] {
			t.Errorf("default %s = %q, want %q", s, o.Defaults[s], wantDefaults[s])
		}
	}
	r := o.Resources
	for name, got := range map[string]string{
		"cpu request": r.Requests.Cpu().String(), "memory request": r.Requests.Memory().String(),
		"cpu limit": r.Limits.Cpu().String(), "memory limit": r.Limits.Memory().String(),
	} {
		want := map[string]string{"cpu request": "25m", "memory request": "32Mi", "cpu limit": "100m", "memory limit": "64Mi"}[name]
		if got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if _, err := injector.New(o, injector.NewMetrics(prometheus.NewRegistry())); err != nil {
		t.Errorf("injector.New: %v", err)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, nil, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "jwt-sidecar-injector ") {
		t.Errorf("exit code %d, output %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"--bogus"}, nil, &out, &out); code != 2 {
		t.Errorf("unknown argument: exit code %d, want 2", code)
	}
}
