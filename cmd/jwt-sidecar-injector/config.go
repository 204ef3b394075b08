package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/jwt-sidecar/jwt-sidecar/injector"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// Config is the whole contract of the environment: --help, parsing and
// validation all walk this one struct. docs/contract.md ("The injector") fixes the
// names; the Helm chart sets them. A field with an `annotation` tag is the
// default of that per-pod setting, validated by the same parser as the
// annotation.
type Config struct {
	ListenAddr      string        `env:"LISTEN_ADDR" envDefault:":8443" help:"the webhook's TLS listener; the API server POSTs AdmissionReviews to /mutate"`
	TLSCertFile     string        `env:"TLS_CERT_FILE,required" help:"PEM certificate (chain) of the webhook; re-read when it changes"`
	TLSKeyFile      string        `env:"TLS_KEY_FILE,required" help:"PEM private key of the webhook; re-read when it changes"`
	AdminAddr       string        `env:"ADMIN_ADDR" envDefault:":8081" help:"plain HTTP: /metrics, /healthz, /readyz (200 once a certificate is loaded)"`
	SidecarImage    string        `env:"SIDECAR_IMAGE,required" help:"the jwt-sidecar image to inject, e.g. ghcr.io/org/jwt-sidecar:v1.2.3 (its entrypoint is /jwt-sidecar)"`
	PullPolicy      string        `env:"SIDECAR_IMAGE_PULL_POLICY" envDefault:"IfNotPresent" help:"Always, IfNotPresent or Never"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s" help:"on SIGTERM: stop accepting, finish in-flight reviews for at most this long, exit 0"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat       string        `env:"LOG_FORMAT" envDefault:"json" help:"json or text"`

	DefaultUpstreamPort    string `env:"DEFAULT_UPSTREAM_PORT" envDefault:"8080" annotation:"upstream-port" help:"the app's port when a pod does not set jwt-sidecar.io/upstream-port; the sidecar's UPSTREAM_URL is http://127.0.0.1:PORT"`
	DefaultIssuers         string `env:"DEFAULT_ISSUERS" annotation:"issuers" help:"the sidecar's ISSUERS unless jwt-sidecar.io/issuers is set"`
	DefaultOIDCIssuerURL   string `env:"DEFAULT_OIDC_ISSUER_URL" annotation:"oidc-issuer-url" help:"the sidecar's OIDC_ISSUER_URL unless jwt-sidecar.io/oidc-issuer-url is set"`
	DefaultJWKSURLs        string `env:"DEFAULT_JWKS_URLS" annotation:"jwks-urls" help:"the sidecar's JWKS_URLS unless jwt-sidecar.io/jwks-urls is set"`
	DefaultAudiences       string `env:"DEFAULT_AUDIENCES" annotation:"audiences" help:"the sidecar's AUDIENCES unless jwt-sidecar.io/audiences is set"`
	DefaultClaimsToHeaders string `env:"DEFAULT_CLAIMS_TO_HEADERS" annotation:"claims-to-headers" help:"the sidecar's CLAIMS_TO_HEADERS unless jwt-sidecar.io/claims-to-headers is set"`
	DefaultPublicPaths     string `env:"DEFAULT_PUBLIC_PATHS" annotation:"public-paths" help:"the sidecar's PUBLIC_PATHS unless jwt-sidecar.io/public-paths is set"`
	DefaultRequiredScopes  string `env:"DEFAULT_REQUIRED_SCOPES" annotation:"required-scopes" help:"the sidecar's REQUIRED_SCOPES unless jwt-sidecar.io/required-scopes is set"`
	DefaultTokenLookup     string `env:"DEFAULT_TOKEN_LOOKUP" annotation:"token-lookup" help:"the sidecar's TOKEN_LOOKUP unless jwt-sidecar.io/token-lookup is set; unset: the sidecar's default, header:Authorization"`
	DefaultConfigMap       string `env:"DEFAULT_CONFIG_MAP" annotation:"config-map" help:"a ConfigMap (in each pod's namespace) whose key policy.yaml becomes the sidecar's CONFIG_FILE unless jwt-sidecar.io/config-map is set; the one-provider defaults are then left out"`
	DefaultNativeSidecar   string `env:"DEFAULT_NATIVE_SIDECAR" envDefault:"true" annotation:"native" help:"true: a native sidecar (init container with restartPolicy Always, Kubernetes 1.29+); false: a plain container. jwt-sidecar.io/native overrides it"`

	SidecarCPURequest    string `env:"SIDECAR_CPU_REQUEST" envDefault:"25m" help:"the sidecar's CPU request; set but empty: none"`
	SidecarMemoryRequest string `env:"SIDECAR_MEMORY_REQUEST" envDefault:"32Mi" help:"the sidecar's memory request; set but empty: none"`
	SidecarCPULimit      string `env:"SIDECAR_CPU_LIMIT" help:"the sidecar's CPU limit; empty: none (throttling adds latency to every request)"`
	SidecarMemoryLimit   string `env:"SIDECAR_MEMORY_LIMIT" envDefault:"64Mi" help:"the sidecar's memory limit; set but empty: none"`
	SidecarLogLevel      string `env:"SIDECAR_LOG_LEVEL" envDefault:"info" help:"the sidecar's LOG_LEVEL: debug, info, warn or error"`

	SidecarPrometheusAnnotations bool `env:"SIDECAR_PROMETHEUS_ANNOTATIONS" envDefault:"false" help:"true: add prometheus.io/scrape, port (7071) and path (/metrics) to injected pods that set no prometheus.io/* annotation of their own, for annotation-based scrapers"`

	SidecarEnv string `env:"SIDECAR_ENV" help:"a JSON object of the sidecar's own variables for every injected pod, e.g. {\"CLOCK_SKEW\":\"10s\"}; the annotation jwt-sidecar.io/env-NAME overrides one per pod"`
}

// sidecarEnv decodes SIDECAR_ENV; empty is none.
func (c *Config) sidecarEnv() (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(c.SidecarEnv) == "" {
		return out, nil
	}
	dec := json.NewDecoder(strings.NewReader(c.SidecarEnv))
	if err := dec.Decode(&out); err != nil || dec.More() {
		return nil, fmt.Errorf("SIDECAR_ENV: want a JSON object of strings such as {\"CLOCK_SKEW\":\"10s\"} (%v)", err)
	}
	return out, nil
}

// loadConfig parses environ into a Config and validates it. The error names
// every variable that is wrong, not just the first.
func loadConfig(environ map[string]string) (*Config, error) {
	c, err := cli.Parse[Config](environ)
	if err != nil {
		return nil, err
	}
	// caarlos0/env gives an empty variable its default; for resources an
	// explicit empty value means none (the chart renders "" to drop one).
	for name, field := range map[string]*string{
		"SIDECAR_CPU_REQUEST": &c.SidecarCPURequest, "SIDECAR_MEMORY_REQUEST": &c.SidecarMemoryRequest,
		"SIDECAR_CPU_LIMIT": &c.SidecarCPULimit, "SIDECAR_MEMORY_LIMIT": &c.SidecarMemoryLimit,
	} {
		if v, ok := environ[name]; ok && strings.TrimSpace(v) == "" {
			*field = ""
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks every rule that does not need the disk or the network.
// It has no side effects and reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	for name, addr := range map[string]string{"LISTEN_ADDR": c.ListenAddr, "ADMIN_ADDR": c.AdminAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(name, "want host:port, e.g. :8443 (%v)", err)
		}
	}
	if c.ListenAddr == c.AdminAddr {
		bad("ADMIN_ADDR", "must differ from LISTEN_ADDR")
	}
	if strings.TrimSpace(c.TLSCertFile) == "" {
		bad("TLS_CERT_FILE", "must not be empty")
	}
	if strings.TrimSpace(c.TLSKeyFile) == "" {
		bad("TLS_KEY_FILE", "must not be empty")
	}
	if strings.TrimSpace(c.SidecarImage) == "" || strings.ContainsAny(c.SidecarImage, " \t\n") {
		bad("SIDECAR_IMAGE", "want an image reference such as ghcr.io/org/jwt-sidecar:v1.2.3")
	}
	switch corev1.PullPolicy(c.PullPolicy) {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("SIDECAR_IMAGE_PULL_POLICY", "want Always, IfNotPresent or Never, not %q", c.PullPolicy)
	}
	if c.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT", "must be positive")
	}
	errs = append(errs, cli.CheckLog(c.LogLevel, c.LogFormat)...)
	if _, err := cli.ParseLevel(c.SidecarLogLevel); err != nil {
		bad("SIDECAR_LOG_LEVEL", "%v", err)
	}
	if _, err := c.sidecarEnv(); err != nil {
		errs = append(errs, err)
	}
	// The same parsers as the annotations: a default the injector accepts
	// is one a pod could have written.
	for _, e := range injector.CheckDefaults(c.defaults()) {
		bad(defaultVar(e.Name), "%v", e.Err)
	}
	if _, err := c.resources(); err != nil {
		errs = append(errs, err)
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// defaults are the fields with an `annotation` tag, keyed by it.
func (c *Config) defaults() map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		if a := v.Type().Field(i).Tag.Get("annotation"); a != "" {
			out[a] = v.Field(i).String()
		}
	}
	vars, _ := c.sidecarEnv() // checked by Validate
	for name, value := range vars {
		out[injector.EnvPrefix+name] = value
	}
	return out
}

// defaultVar is the variable that holds the default of a setting.
func defaultVar(setting string) string {
	if strings.HasPrefix(setting, injector.EnvPrefix) {
		return "SIDECAR_ENV" // the message names the sidecar's variable
	}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("annotation") == setting {
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			return name
		}
	}
	return setting
}

// resources parses the SIDECAR_* quantities. A request above its limit is
// refused here: every injected pod would be rejected by the API server.
func (c *Config) resources() (corev1.ResourceRequirements, error) {
	var (
		out  corev1.ResourceRequirements
		errs []error
	)
	parse := func(name, v string, into *corev1.ResourceList, res corev1.ResourceName) *resource.Quantity {
		if strings.TrimSpace(v) == "" {
			return nil
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil || q.Sign() <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive quantity such as 25m, 0.5 or 64Mi", name, v))
			return nil
		}
		if *into == nil {
			*into = corev1.ResourceList{}
		}
		(*into)[res] = q
		return &q
	}
	cpuReq := parse("SIDECAR_CPU_REQUEST", c.SidecarCPURequest, &out.Requests, corev1.ResourceCPU)
	memReq := parse("SIDECAR_MEMORY_REQUEST", c.SidecarMemoryRequest, &out.Requests, corev1.ResourceMemory)
	cpuLim := parse("SIDECAR_CPU_LIMIT", c.SidecarCPULimit, &out.Limits, corev1.ResourceCPU)
	memLim := parse("SIDECAR_MEMORY_LIMIT", c.SidecarMemoryLimit, &out.Limits, corev1.ResourceMemory)
	if cpuReq != nil && cpuLim != nil && cpuReq.Cmp(*cpuLim) > 0 {
		errs = append(errs, fmt.Errorf("SIDECAR_CPU_REQUEST: %s is more than SIDECAR_CPU_LIMIT %s", cpuReq, cpuLim))
	}
	if memReq != nil && memLim != nil && memReq.Cmp(*memLim) > 0 {
		errs = append(errs, fmt.Errorf("SIDECAR_MEMORY_REQUEST: %s is more than SIDECAR_MEMORY_LIMIT %s", memReq, memLim))
	}
	return out, errors.Join(errs...)
}

// options builds the injector's options from a validated Config.
func (c *Config) options() injector.Options {
	res, _ := c.resources() // validated
	return injector.Options{
		Image:      c.SidecarImage,
		PullPolicy: corev1.PullPolicy(c.PullPolicy),
		Defaults:   c.defaults(),
		Resources:  res,
		LogLevel:   c.SidecarLogLevel,

		PrometheusAnnotations: c.SidecarPrometheusAnnotations,
	}
}

// printHelp writes the usage, every variable with its default and meaning
// (straight from Config's tags) and the annotations.
func printHelp(w io.Writer) {
	fmt.Fprint(w, `jwt-sidecar-injector: a mutating admission webhook that adds jwt-sidecar to
pods annotated jwt-sidecar.io/inject: "true".

Usage: jwt-sidecar-injector [--help | --version | healthcheck URL]
Configuration comes from the environment:

`)
	cli.PrintVars[Config](w)
	fmt.Fprintf(w, `
Pod annotations (an annotation that is present must be valid, or the pod is refused):

  %[1]sinject             "true" (exactly) injects; anything else leaves the pod alone
  %[1]supstream-port      the app's port, 1-65535, not 7070 or 7071
  %[1]sissuers            the sidecar's ISSUERS
  %[1]soidc-issuer-url    the sidecar's OIDC_ISSUER_URL
  %[1]sjwks-urls          the sidecar's JWKS_URLS
  %[1]saudiences          the sidecar's AUDIENCES
  %[1]sclaims-to-headers  the sidecar's CLAIMS_TO_HEADERS
  %[1]spublic-paths       the sidecar's PUBLIC_PATHS
  %[1]srequired-scopes    the sidecar's REQUIRED_SCOPES
  %[1]stoken-lookup       the sidecar's TOKEN_LOOKUP
  %[1]snative             "true" or "false" (a plain container, for clusters before 1.29)
  %[1]sconfig-map         a ConfigMap in the pod's namespace: its key policy.yaml is mounted
                          read-only and becomes CONFIG_FILE (edits reload live); the
                          one-provider settings above are then left out
  %[1]senv-NAME           the sidecar's variable NAME (any of jwt-sidecar --help but the
                          injector's own and those with an annotation above), e.g.
                          %[1]senv-CLOCK_SKEW: 10s; checked with the sidecar's validation
  %[1]scpu-request, %[1]smemory-request, %[1]scpu-limit, %[1]smemory-limit
                          the sidecar's resources; GOMEMLIMIT follows the memory limit
  %[1]sstatus             set to "injected" by the injector; such a pod is never injected again

SIDECAR_ENV holds the defaults of env-NAME, one JSON member per variable.
Injected pods also get the label %[2]s="true" (a PodMonitor selects them by it).
`, injector.Prefix, injector.InjectedLabel)
}
