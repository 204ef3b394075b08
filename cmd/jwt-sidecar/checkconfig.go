package main

import (
	"fmt"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
	"github.com/jwt-sidecar/jwt-sidecar/policy"
)

const checkConfigUsage = `Usage: jwt-sidecar check-config

Validates the environment and CONFIG_FILE as the proxy would at start
(files are read, nothing is fetched), then prints the effective
configuration with secrets masked: the server variables, and the policy
(the file's providers and rules, or the one provider the environment
describes, as rules). Exit code 0 when valid, 2 with every problem named
(FILE:LINE: FIELD: PROBLEM for the file) when not.
`

// checkConfig is jwt-sidecar check-config, like nginx -t or promtool check
// config: the same loading as the proxy, and no listener.
func checkConfig(args []string, env map[string]string, stdout, stderr io.Writer) int {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			fmt.Fprint(stdout, checkConfigUsage)
			return cli.ExitOK
		default:
			fmt.Fprintf(stderr, "jwt-sidecar check-config: unknown argument %q; see --help\n", a)
			return cli.ExitConfig
		}
	}
	cfg, a, err := quietApp(env)
	if err != nil {
		return cli.ConfigError(stderr, "jwt-sidecar", err)
	}
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(effective(cfg, a)); err != nil {
		fmt.Fprintf(stderr, "jwt-sidecar check-config: %v\n", err)
		return cli.ExitFailed
	}
	source := "the environment (one provider)"
	if cfg.ConfigFile != "" {
		source = "CONFIG_FILE " + cfg.ConfigFile
	}
	fmt.Fprintf(stdout, "# jwt-sidecar check-config: the configuration is valid.\n# The policy comes from %s.\n# %s.\n", source, tracingSummary(cfg))
	if d := decisionNote(cfg); d != "" {
		fmt.Fprintf(stdout, "# %s\n", d)
	}
	for _, w := range warnings(a.rt.current.Load().spec) {
		fmt.Fprintf(stdout, "# warning: %s\n", w)
	}
	io.WriteString(stdout, out.String())
	return cli.ExitOK
}

// The effective configuration, in the file's own terms where it has them.
type effectiveConfig struct {
	Server map[string]string `yaml:"server"`
	Policy effectivePolicy   `yaml:"policy"`
}

type effectivePolicy struct {
	Providers []effectiveProvider `yaml:"providers"`
	Rules     []effectiveRule     `yaml:"rules,omitempty"`
	Default   effectiveDefault    `yaml:"default"`
	Scrubbed  []string            `yaml:"scrubbed_headers,flow,omitempty"`
}

type effectiveProvider struct {
	Name            string            `yaml:"name"`
	Issuer          string            `yaml:"issuer,omitempty"`
	Issuers         []string          `yaml:"issuers,flow,omitempty"` // the environment's ISSUERS
	KeySources      []string          `yaml:"key_sources"`
	Audiences       []string          `yaml:"audiences,flow"`
	Algorithms      []string          `yaml:"algorithms,flow"`
	ClockSkew       string            `yaml:"clock_skew"`
	RequireExp      bool              `yaml:"require_exp"`
	RequiredScopes  []string          `yaml:"required_scopes,flow,omitempty"` // the environment's REQUIRED_SCOPES
	TokenLookup     []string          `yaml:"token_lookup,flow"`
	ClaimsToHeaders map[string]string `yaml:"claims_to_headers,omitempty"`
	PayloadHeader   string            `yaml:"payload_header,omitempty"`
	ForwardToken    bool              `yaml:"forward_token"`
	Login           *effectiveLogin   `yaml:"login,omitempty"`
}

type effectiveRule struct {
	Name    string         `yaml:"name"`
	Match   effectiveMatch `yaml:"match"`
	Require any            `yaml:"require"`
	Scopes  []string       `yaml:"scopes,flow,omitempty"`
	Claims  map[string]any `yaml:"claims,omitempty"`
}

type effectiveMatch struct {
	Path    string   `yaml:"path,omitempty"`
	Prefix  string   `yaml:"prefix,omitempty"`
	Glob    string   `yaml:"glob,omitempty"`
	Methods []string `yaml:"methods,flow,omitempty"`
	Hosts   []string `yaml:"hosts,flow,omitempty"`
}

type effectiveDefault struct {
	Require any            `yaml:"require"`
	Scopes  []string       `yaml:"scopes,flow,omitempty"`
	Claims  map[string]any `yaml:"claims,omitempty"`
}

func effective(cfg *config.Config, a *app) effectiveConfig {
	ec := effectiveConfig{Server: serverVars(cfg)}
	pol := a.proxy.Policy()
	ec.Policy.Scrubbed = pol.ScrubbedHeaders()
	spec := a.rt.current.Load().spec
	for i := range spec.Providers {
		ec.Policy.Providers = append(ec.Policy.Providers, providerView(spec, &spec.Providers[i]))
	}
	for _, r := range pol.Rules() {
		if r.Name == policy.DefaultRule {
			ec.Policy.Default = effectiveDefault{Require: requireView(r.Require), Scopes: r.Require.Scopes, Claims: claimsView(r.Require.Claims)}
			continue
		}
		ec.Policy.Rules = append(ec.Policy.Rules, effectiveRule{
			Name: r.Name,
			Match: effectiveMatch{Path: r.Match.Path, Prefix: r.Match.Prefix, Glob: r.Match.Glob,
				Methods: r.Match.Methods, Hosts: r.Match.Hosts},
			Require: requireView(r.Require), Scopes: r.Require.Scopes, Claims: claimsView(r.Require.Claims),
		})
	}
	return ec
}

// serverVars lists every variable that is not about the policy, with its
// value (defaults included), secrets masked.
func serverVars(cfg *config.Config) map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(cfg).Elem()
	for _, f := range cli.Fields[config.Config]() {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" || slices.Contains(config.PolicyVars, name) {
			continue
		}
		out[name] = masked(name, v.FieldByIndex(f.Index).Interface())
	}
	return out
}

// masked renders a variable's value: URLs without passwords or query
// values, and any *SECRET* or *PASSWORD* variable that is not a file path
// hidden entirely.
func masked(name string, v any) string {
	switch x := v.(type) {
	case *url.URL:
		if x == nil {
			return ""
		}
		return maskURL(x.String())
	case []string:
		return strings.Join(x, ",")
	case config.CIDRs:
		var b strings.Builder
		for i, p := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(p.String())
		}
		return b.String()
	case time.Duration:
		return x.String()
	}
	s := fmt.Sprint(v)
	if name == "OTEL_EXPORTER_OTLP_HEADERS" && s != "" {
		return "xxxxx" // API keys
	}
	if strings.HasPrefix(name, "OTEL_EXPORTER_OTLP_") && strings.HasSuffix(name, "ENDPOINT") && s != "" {
		return maskURL(s) // a collector URL may carry credentials
	}
	if (strings.Contains(name, "SECRET") || strings.Contains(name, "PASSWORD")) && !strings.HasSuffix(name, "_FILE") && s != "" {
		return "xxxxx"
	}
	return s
}

// maskURL hides a URL's password and query values, which may be tokens.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "xxxxx"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// providerView is one provider in the file's terms, whichever way it was
// given; the environment's provider keeps its several issuers and
// REQUIRED_SCOPES.
func providerView(spec *policy.Spec, p *policy.ProviderSpec) effectiveProvider {
	var srcs []string
	if p.OIDCIssuerURL != "" {
		srcs = append(srcs, "oidc_issuer_url: "+maskURL(p.OIDCIssuerURL))
	}
	for _, u := range p.JWKSURLs {
		srcs = append(srcs, "jwks_url: "+maskURL(u))
	}
	if p.JWKSFile != "" {
		srcs = append(srcs, "jwks_file: "+p.JWKSFile)
	}
	if len(p.PublicKeyFiles) > 0 {
		srcs = append(srcs, "public_key_files: "+strings.Join(p.PublicKeyFiles, ", "))
	}
	if p.HMACSecretFile != "" {
		srcs = append(srcs, "hmac_secret_file: "+p.HMACSecretFile+" (secret not shown)")
	}
	if p.CAFile != "" {
		srcs = append(srcs, "ca_file: "+p.CAFile)
	}
	if p.BearerTokenFile != "" {
		srcs = append(srcs, "bearer_token_file: "+p.BearerTokenFile+" (token not shown; read at every fetch)")
	}
	v := effectiveProvider{
		Name: p.Name, KeySources: srcs,
		Audiences: p.Audiences, Algorithms: p.Algorithms, ClockSkew: p.ClockSkew.String(), RequireExp: p.RequireExp,
		RequiredScopes: p.RequiredScopes, TokenLookup: lookupsView(p.TokenLookup), ClaimsToHeaders: headersView(p.ClaimsToHeaders),
		PayloadHeader: p.PayloadHeader, ForwardToken: p.ForwardToken,
	}
	if p.Login != nil {
		v.Login = loginView(spec, p)
	}
	if spec.FromFile() {
		v.Issuer = p.Issuers[0]
	} else {
		v.Issuers = p.Issuers
		if len(v.Issuers) == 0 {
			v.Issuers = []string{""}
		}
	}
	return v
}

func lookupsView(ls []config.Lookup) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.String())
	}
	return out
}

func headersView(hs []config.ClaimHeader) map[string]string {
	if len(hs) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, h := range hs {
		out[h.Claim] = h.Header
	}
	return out
}

// requireView renders a requirement as the file writes it.
func requireView(r policy.Requirement) any {
	switch r.Kind {
	case policy.RequirePublic, policy.RequireDeny:
		return r.Kind.String()
	case policy.RequireAnyOf:
		if len(r.Providers) == 1 {
			return r.Providers[0]
		}
	}
	return map[string][]string{r.Kind.String(): r.Providers}
}

func claimsView(cs []policy.ClaimRequirement) map[string]any {
	if len(cs) == 0 {
		return nil
	}
	out := map[string]any{}
	for _, c := range cs {
		if len(c.Values) == 1 {
			out[c.Claim] = c.Values[0]
		} else {
			out[c.Claim] = c.Values
		}
	}
	return out
}
