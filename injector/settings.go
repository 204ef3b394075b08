package injector

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/jwt-sidecar/jwt-sidecar/config"
)

// Prefix starts every annotation the injector reads or writes.
const Prefix = "jwt-sidecar.io/"

// Annotations without the prefix. Each setting overrides the injector's
// default of the same name (docs/contract.md, "The injector").
const (
	Inject          = "inject"
	Status          = "status"
	UpstreamPort    = "upstream-port"
	Issuers         = "issuers"
	OIDCIssuerURL   = "oidc-issuer-url"
	JWKSURLs        = "jwks-urls"
	Audiences       = "audiences"
	ClaimsToHeaders = "claims-to-headers"
	PublicPaths     = "public-paths"
	RequiredScopes  = "required-scopes"
	TokenLookup     = "token-lookup"
	Native          = "native"
)

// StatusInjected is the value of jwt-sidecar.io/status on an injected pod.
const StatusInjected = "injected"

// InjectedLabel is set to "true" on every injected pod, so that a PodMonitor
// (or a NetworkPolicy) can select the pods that run a sidecar: annotations
// cannot be selected on.
const InjectedLabel = Prefix + "injected"

// The annotations that annotation-based Prometheus scrapers read, set when
// Options.PrometheusAnnotations asks for them.
const (
	PrometheusScrape = "prometheus.io/scrape"
	PrometheusPort   = "prometheus.io/port"
	PrometheusPath   = "prometheus.io/path"
)

// Settings lists, in order, the annotations that configure the sidecar:
// every one has an injector default.
func Settings() []string {
	return []string{
		UpstreamPort, Issuers, OIDCIssuerURL, JWKSURLs, Audiences,
		ClaimsToHeaders, PublicPaths, RequiredScopes, TokenLookup, Native, ConfigMap,
	}
}

// The sidecar's own ports; the app cannot use them (one network namespace).
const (
	AuthPort  = 7070
	AdminPort = 7071
)

// SettingError says which setting (an annotation name without the prefix)
// has a bad value.
type SettingError struct {
	Name string
	Err  error
}

func (e *SettingError) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

var errEmpty = errors.New("must not be empty")

// settings is one sidecar's configuration: the injector's defaults with a
// pod's annotations applied on top.
type settings struct {
	upstreamPort    int
	issuers         []string
	oidcIssuerURL   string
	jwksURLs        []string
	audiences       []string
	claimsToHeaders string
	publicPaths     string
	requiredScopes  []string
	tokenLookup     string
	native          bool

	// configMap names the ConfigMap whose policy.yaml is CONFIG_FILE.
	configMap string
	// vars are the other sidecar variables (env-NAME annotations and
	// defaults), resources the per-pod requests and limits. Both maps may
	// be shared with the injector's defaults until written (see share).
	vars                        map[string]string
	resources                   map[string]resource.Quantity
	sharedVars, sharedResources bool
	// fromPod holds the settings a pod's annotations set, to name them in
	// messages; nil for the defaults.
	fromPod map[string]bool
}

// set parses one setting's value and stores it. It uses the sidecar's own
// parsers where they exist, so that what the injector accepts the sidecar
// accepts too. An empty value is an error: an annotation that is present
// must say something.
func (s *settings) set(name, value string) error {
	value = strings.TrimSpace(value)
	if value == "" {
		return errEmpty
	}
	var err error
	switch name {
	case UpstreamPort:
		s.upstreamPort, err = parsePort(value)
	case Issuers:
		s.issuers, err = parseList(value)
	case OIDCIssuerURL:
		if err = checkURL(value); err == nil {
			s.oidcIssuerURL = value
		}
	case JWKSURLs:
		if s.jwksURLs, err = parseList(value); err == nil {
			for _, u := range s.jwksURLs {
				if err = checkURL(u); err != nil {
					break
				}
			}
		}
	case Audiences:
		s.audiences, err = parseList(value)
	case ClaimsToHeaders:
		var hs []config.ClaimHeader
		if hs, err = config.ParseClaimHeaders(value); err == nil && len(hs) == 0 {
			err = errors.New("empty list")
		}
		s.claimsToHeaders = value
	case PublicPaths:
		var ps []string
		if ps, err = config.ParsePublicPaths(value); err == nil && len(ps) == 0 {
			err = errors.New("empty list")
		}
		s.publicPaths = value
	case RequiredScopes:
		s.requiredScopes, err = parseList(value)
	case TokenLookup:
		_, err = config.ParseLookups(value)
		s.tokenLookup = value
	case Native:
		switch value {
		case "true":
			s.native = true
		case "false":
			s.native = false
		default:
			err = fmt.Errorf("%q: want true or false", value)
		}
	case ConfigMap:
		if err = checkConfigMapName(value); err == nil {
			s.configMap = value
		}
	case CPURequest, MemoryRequest, CPULimit, MemoryLimit:
		err = s.setResource(name, value)
	default:
		if v, ok := strings.CutPrefix(name, EnvPrefix); ok {
			err = s.setVar(v, value)
		} else {
			err = errors.New("unknown annotation")
		}
	}
	return err
}

func parsePort(v string) (int, error) {
	p, err := strconv.Atoi(v)
	switch {
	case err != nil || p < 1 || p > 65535:
		return 0, fmt.Errorf("%q: want a port number from 1 to 65535", v)
	case p == AuthPort || p == AdminPort:
		return 0, fmt.Errorf("%d is the sidecar's own port", p)
	}
	return p, nil
}

// parseList splits a comma-separated list, trims items and drops empty ones
// (as the sidecar does); a list with no item is an error.
func parseList(v string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	return nil
}

// parseDefaults turns the injector's defaults, keyed by setting name, into
// settings. An empty default means unset; upstream-port and native always
// have one.
func parseDefaults(defaults map[string]string) (settings, []*SettingError) {
	s := settings{upstreamPort: 8080, native: true}
	var errs []*SettingError
	// Settings first, then the env-NAME variables in name order.
	names := Settings()
	for _, name := range slices.Sorted(maps.Keys(defaults)) {
		if strings.HasPrefix(name, EnvPrefix) {
			names = append(names, name)
		} else if !slices.Contains(Settings(), name) {
			errs = append(errs, &SettingError{Name: name, Err: errors.New("not a setting")})
		}
	}
	for _, name := range names {
		if v := defaults[name]; strings.TrimSpace(v) != "" {
			if err := s.set(name, v); err != nil {
				errs = append(errs, &SettingError{Name: name, Err: err})
			}
		}
	}
	if len(errs) == 0 {
		// The defaults alone must make an environment the sidecar accepts,
		// apart from the issuer and key source that pods may add.
		if err := s.checkVars(); err != nil {
			errs = append(errs, &SettingError{Name: EnvPrefix + "*", Err: err})
		}
	}
	return s, errs
}

// CheckDefaults validates the injector's defaults, as New does, without
// side effects.
func CheckDefaults(defaults map[string]string) []*SettingError {
	_, errs := parseDefaults(defaults)
	return errs
}

// effectiveLookup is TOKEN_LOOKUP as the sidecar will read it.
func (s *settings) effectiveLookup() string {
	if s.tokenLookup == "" {
		return "header:Authorization"
	}
	return s.tokenLookup
}

// check applies the sidecar's start-up rules to the merged settings, so
// that a pod is never given a sidecar that would not start. It returns the
// reason and a message naming the annotations to set.
func (s *settings) check() (Reason, error) {
	if s.configMap != "" {
		return s.checkFile()
	}
	switch {
	case len(s.issuers) == 0 && s.oidcIssuerURL == "":
		return MissingConfig, fmt.Errorf("no accepted issuer: set %s%s or %s%s (the injector has no default)", Prefix, Issuers, Prefix, OIDCIssuerURL)
	case len(s.jwksURLs) == 0 && s.oidcIssuerURL == "":
		return MissingConfig, fmt.Errorf("no key source: set %s%s or %s%s (the injector has no default)", Prefix, JWKSURLs, Prefix, OIDCIssuerURL)
	case len(s.issuers) == 0 && len(s.jwksURLs) > 0:
		// The sidecar binds JWKS_URLS to ISSUERS; with only an OIDC issuer
		// it would refuse to start rather than mix the two key sets.
		return MissingConfig, fmt.Errorf("%s%s is required when %s%s is combined with %s%s", Prefix, Issuers, Prefix, JWKSURLs, Prefix, OIDCIssuerURL)
	}
	// Claim headers are scrubbed from incoming requests before the token
	// is read: one that is also where the token travels would delete it,
	// and the sidecar refuses to start with that.
	lookups, _ := config.ParseLookups(s.effectiveLookup()) // checked by set
	claims, _ := config.ParseClaimHeaders(s.claimsToHeaders)
	for _, p := range config.LookupHeaderProblems(lookups, claims, "") {
		return Conflict, fmt.Errorf("%s%s: %s", Prefix, ClaimsToHeaders, strings.Replace(p.Text, "TOKEN_LOOKUP", Prefix+TokenLookup, 1))
	}
	// Last, the sidecar's own validation of the very environment the patch
	// gives it: what the injector accepts, the sidecar accepts.
	return s.load()
}

// load runs the sidecar's own validation, config.Load, on the very
// environment the patch gives it, and names the annotation behind each
// problem.
func (s *settings) load() (Reason, error) {
	environ := map[string]string{}
	for _, v := range s.env("info") {
		environ[v.name] = v.value
	}
	if _, err := config.Load(environ); err != nil {
		return Conflict, fmt.Errorf("the sidecar would refuse this configuration: %w", s.explain(err))
	}
	return "", nil
}

// env is the sidecar's environment for these settings: only the variables
// that are set, in a fixed order (the patch is golden-tested).
func (s *settings) env(logLevel string) []envVar {
	out := []envVar{
		{"LISTEN_ADDR", ":" + strconv.Itoa(AuthPort)},
		{"ADMIN_ADDR", ":" + strconv.Itoa(AdminPort)},
		{"UPSTREAM_URL", "http://127.0.0.1:" + strconv.Itoa(s.upstreamPort)},
	}
	add := func(name, v string) {
		if v != "" {
			out = append(out, envVar{name, v})
		}
	}
	if s.configMap == "" {
		add("ISSUERS", strings.Join(s.issuers, ","))
		add("OIDC_ISSUER_URL", s.oidcIssuerURL)
		add("JWKS_URLS", strings.Join(s.jwksURLs, ","))
		add("AUDIENCES", strings.Join(s.audiences, ","))
		add("CLAIMS_TO_HEADERS", s.claimsToHeaders)
		add("PUBLIC_PATHS", s.publicPaths)
		add("REQUIRED_SCOPES", strings.Join(s.requiredScopes, ","))
		add("TOKEN_LOOKUP", s.tokenLookup)
	} else {
		// The file replaces the one-provider variables (config.PolicyVars).
		add("CONFIG_FILE", PolicyDir+"/"+PolicyKey)
	}
	add("JWKS_CACHE_DIR", CacheDir)
	if s.vars["LOG_LEVEL"] == "" {
		add("LOG_LEVEL", logLevel)
	}
	for _, name := range slices.Sorted(maps.Keys(s.vars)) {
		add(name, s.vars[name])
	}
	return out
}

type envVar struct{ name, value string }
