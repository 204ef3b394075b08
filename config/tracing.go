package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Tracing samplers: the OTEL_TRACES_SAMPLER values of the OpenTelemetry
// SDK environment specification that the sidecar supports.
var TracingSamplers = []string{
	"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
}

// Histogram kinds: the METRICS_HISTOGRAMS values.
const (
	HistogramsClassic = "classic"
	HistogramsNative  = "native"
	HistogramsBoth    = "both"
)

// TracesEndpoint is the URL spans are exported to, or "" when tracing is
// off: OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER=none, or no endpoint set.
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is; the general
// OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces appended, as the OTLP
// exporter specification says.
func (c *Config) TracesEndpoint() string {
	if c.OTelSDKDisabled || c.OTelTracesExporter == "none" {
		return ""
	}
	if c.OTelTracesEndpoint != "" {
		return c.OTelTracesEndpoint
	}
	if c.OTelEndpoint != "" {
		return strings.TrimRight(c.OTelEndpoint, "/") + "/v1/traces"
	}
	return ""
}

// SamplerRatio is OTEL_TRACES_SAMPLER_ARG as a ratio: 1 when unset.
// Validate has checked it.
func (c *Config) SamplerRatio() float64 {
	if c.OTelTracesSamplerArg == "" {
		return 1
	}
	f, err := strconv.ParseFloat(c.OTelTracesSamplerArg, 64)
	if err != nil {
		return 1
	}
	return f
}

// ResourceAttribute is one key=value pair of OTEL_RESOURCE_ATTRIBUTES.
type ResourceAttribute struct{ Key, Value string }

// ParseResourceAttributes reads OTEL_RESOURCE_ATTRIBUTES: key=value pairs
// separated by commas, values percent-encoded (the OpenTelemetry resource
// SDK's grammar). Empty items are skipped.
func ParseResourceAttributes(s string) ([]ResourceAttribute, error) {
	var out []ResourceAttribute
	for item := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("want key=value, not %q", item)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("the value of %s is not percent-encoded correctly: %v", k, err)
		}
		out = append(out, ResourceAttribute{Key: k, Value: dv})
	}
	return out, nil
}

// ParseOTLPHeaders reads OTEL_EXPORTER_OTLP_HEADERS: the same grammar as
// OTEL_RESOURCE_ATTRIBUTES.
func ParseOTLPHeaders(s string) (map[string]string, error) {
	kvs, err := ParseResourceAttributes(s)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = kv.Value
	}
	return out, nil
}

// tracingProblems checks the OTEL_* and METRICS_HISTOGRAMS variables.
func (c *Config) tracingProblems() []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	switch c.OTelTracesExporter {
	case "otlp", "none":
	default:
		bad("OTEL_TRACES_EXPORTER", "want otlp or none, not %q (other exporters are not built in: export OTLP to a collector)", c.OTelTracesExporter)
	}
	for name, u := range map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c.OTelEndpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": c.OTelTracesEndpoint} {
		if u != "" && !AbsoluteHTTP(u) {
			bad(name, "%q is not an absolute http(s) URL", u)
		}
	}
	if c.OTelProtocol != "http/protobuf" {
		bad("OTEL_EXPORTER_OTLP_PROTOCOL", "want http/protobuf, not %q: the sidecar exports OTLP over HTTP (a collector's port 4318)", c.OTelProtocol)
	}
	if h, err := ParseOTLPHeaders(c.OTelHeaders); err != nil {
		bad("OTEL_EXPORTER_OTLP_HEADERS", "%v", err) // the value may be a secret: not repeated
	} else {
		for k := range h {
			if !validToken(k) {
				bad("OTEL_EXPORTER_OTLP_HEADERS", "%q is not a header name", k)
			}
		}
	}
	if c.OTelServiceName == "" {
		bad("OTEL_SERVICE_NAME", "must not be empty")
	}
	if _, err := ParseResourceAttributes(c.OTelResourceAttrs); err != nil {
		bad("OTEL_RESOURCE_ATTRIBUTES", "%v", err)
	}
	if !slices.Contains(TracingSamplers, c.OTelTracesSampler) {
		bad("OTEL_TRACES_SAMPLER", "want one of %s, not %q", strings.Join(TracingSamplers, ", "), c.OTelTracesSampler)
	}
	if a := c.OTelTracesSamplerArg; a != "" {
		if f, err := strconv.ParseFloat(a, 64); err != nil || !(f >= 0 && f <= 1) {
			bad("OTEL_TRACES_SAMPLER_ARG", "want a ratio from 0 to 1, not %q", a)
		}
	}
	for _, p := range c.OTelPropagators {
		switch strings.TrimSpace(p) {
		case "tracecontext", "baggage":
		case "none":
			if len(c.OTelPropagators) > 1 {
				bad("OTEL_PROPAGATORS", "none stands alone")
			}
		default:
			bad("OTEL_PROPAGATORS", "want tracecontext, baggage or none, not %q (b3 and jaeger are not built in)", p)
		}
	}
	switch c.MetricsHistograms {
	case HistogramsClassic, HistogramsNative, HistogramsBoth:
	default:
		errs = append(errs, errors.New("METRICS_HISTOGRAMS: want classic, native or both, not "+strconv.Quote(c.MetricsHistograms)))
	}
	return errs
}

// validToken reports whether s is an RFC 9110 token: a header name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar(s[i]) {
			return false
		}
	}
	return true
}
