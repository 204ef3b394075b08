package config

import (
	"strings"
	"testing"
)

// tracingEnv is a valid jwt-mode environment plus extra.
func tracingEnv(extra map[string]string) map[string]string {
	env := map[string]string{"UPSTREAM_URL": "http://127.0.0.1:3000", "ISSUERS": "https://issuer.test", "JWKS_URLS": "https://issuer.test/jwks"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestTracesEndpoint(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "nothing set: off", env: nil, want: ""},
		{name: "base endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}, want: "http://collector:4318/v1/traces"},
		{name: "traces endpoint as is", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/otlp/traces"}, want: "https://b/otlp/traces"},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"}, want: ""},
		{name: "sdk disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "true"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tracingEnv(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.TracesEndpoint(); got != tt.want {
				t.Errorf("TracesEndpoint() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTracingProblems(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{name: "exporter", key: "OTEL_TRACES_EXPORTER", value: "zipkin", want: "OTEL_TRACES_EXPORTER: want otlp or none"},
		{name: "endpoint", key: "OTEL_EXPORTER_OTLP_ENDPOINT", value: "collector:4318", want: "OTEL_EXPORTER_OTLP_ENDPOINT: "},
		{name: "traces endpoint", key: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value: "grpc://x", want: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "},
		{name: "protocol", key: "OTEL_EXPORTER_OTLP_PROTOCOL", value: "grpc", want: "OTEL_EXPORTER_OTLP_PROTOCOL: want http/protobuf"},
		{name: "sampler", key: "OTEL_TRACES_SAMPLER", value: "jaeger_remote", want: "OTEL_TRACES_SAMPLER: want one of"},
		{name: "sampler arg", key: "OTEL_TRACES_SAMPLER_ARG", value: "1.5", want: "OTEL_TRACES_SAMPLER_ARG: want a ratio"},
		{name: "sampler arg nan", key: "OTEL_TRACES_SAMPLER_ARG", value: "NaN", want: "OTEL_TRACES_SAMPLER_ARG: want a ratio"},
		{name: "propagator", key: "OTEL_PROPAGATORS", value: "b3", want: "OTEL_PROPAGATORS: want tracecontext"},
		{name: "none alone", key: "OTEL_PROPAGATORS", value: "none,tracecontext", want: "OTEL_PROPAGATORS: none stands alone"},
		{name: "resource", key: "OTEL_RESOURCE_ATTRIBUTES", value: "a=1,broken", want: "OTEL_RESOURCE_ATTRIBUTES: want key=value"},
		{name: "resource escape", key: "OTEL_RESOURCE_ATTRIBUTES", value: "a=%zz", want: "OTEL_RESOURCE_ATTRIBUTES: the value of a"},
		{name: "headers", key: "OTEL_EXPORTER_OTLP_HEADERS", value: "bad name=secret", want: "OTEL_EXPORTER_OTLP_HEADERS: \"bad name\" is not a header name"},
		{name: "headers shape", key: "OTEL_EXPORTER_OTLP_HEADERS", value: "x-api-key", want: "OTEL_EXPORTER_OTLP_HEADERS: want key=value"},
		{name: "histograms", key: "METRICS_HISTOGRAMS", value: "sparse", want: "METRICS_HISTOGRAMS: want classic, native or both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tracingEnv(map[string]string{tt.key: tt.value}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load with %s=%q: %v, want %q", tt.key, tt.value, err, tt.want)
			}
		})
	}
	c, err := Load(tracingEnv(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_PROPAGATORS": "tracecontext", "METRICS_HISTOGRAMS": "both",
		"OTEL_RESOURCE_ATTRIBUTES":   "deployment.environment=prod, team=a%2Cb",
		"OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,x-honeycomb-team=k1",
	}))
	if err != nil {
		t.Fatalf("a full tracing configuration: %v", err)
	}
	if c.SamplerRatio() != 0.25 {
		t.Errorf("SamplerRatio() = %v, want 0.25", c.SamplerRatio())
	}
	if h, _ := ParseOTLPHeaders(c.OTelHeaders); h["Authorization"] != "Bearer abc" || h["x-honeycomb-team"] != "k1" {
		t.Errorf("headers = %v, want Authorization and x-honeycomb-team", h)
	}
	attrs, _ := ParseResourceAttributes(c.OTelResourceAttrs)
	if len(attrs) != 2 || attrs[1] != (ResourceAttribute{Key: "team", Value: "a,b"}) {
		t.Errorf("resource attributes = %v, want deployment.environment=prod and team=a,b", attrs)
	}
}
