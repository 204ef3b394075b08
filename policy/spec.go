package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/config"
	"github.com/jwt-sidecar/jwt-sidecar/keys"
)

// Spec is a policy as declared: its providers, rules (first match wins)
// and the default for unmatched requests. The environment and CONFIG_FILE
// both become a Spec (FromEnv, ReadFile), and everything after that (the
// build, check-config, explain, reloads) has one path.
type Spec struct {
	// Source is where the spec came from: EnvSource or the file's path.
	Source string
	// Sum is the hash of the file's bytes, to tell a real change from a
	// touch; zero for the environment.
	Sum       [32]byte
	Providers []ProviderSpec
	Rules     []Rule
	Default   Requirement
	// DefaultSet is false when a file has no default: then it denies.
	DefaultSet bool
}

// EnvSource is Spec.Source for the environment.
const EnvSource = "environment"

// FromFile reports whether the spec came from CONFIG_FILE.
func (s *Spec) FromFile() bool { return s.Source != EnvSource }

// ProviderSpec is one provider as declared: how its tokens are verified
// (key sources or, for the environment only, introspection) and what they
// become on the forwarded request.
type ProviderSpec struct {
	Name    string
	Issuers []string
	// Key sources. The environment may combine several; a file's provider
	// has exactly one.
	JWKSURLs       []string
	OIDCIssuerURL  string
	JWKSFile       string
	PublicKeyFiles []string
	HMACSecretFile string
	// CAFile and BearerTokenFile are how the remote key sources (JWKSURLs,
	// OIDCIssuerURL) reach their issuer: a private CA instead of the system
	// roots, and a token sent with every fetch (keys.Access).
	CAFile          string
	BearerTokenFile string
	// Introspection, when set, verifies tokens by asking a token service
	// (AUTH_MODE=introspection) instead of keys.
	Introspection *IntrospectionSpec

	Audiences      []string
	Algorithms     []string
	ClockSkew      time.Duration
	RequireExp     bool
	RequiredScopes []string
	// RequiredTyp, MaxLifetime and AllowSenderConstrained are the token
	// rules (verifier.Options): REQUIRED_TYP, MAX_TOKEN_LIFETIME,
	// ALLOW_SENDER_CONSTRAINED, or a file provider's typ, max_lifetime,
	// allow_sender_constrained.
	RequiredTyp            string
	MaxLifetime            time.Duration
	AllowSenderConstrained bool

	TokenLookup     []config.Lookup
	ClaimsToHeaders []config.ClaimHeader
	PayloadHeader   string
	ForwardToken    bool
	// Login, when set, is the provider's browser login.
	Login *LoginSpec

	// At locates the provider, KeyField and KeyAt its key source, for
	// errors found later (a PEM file that does not parse). Empty for the
	// environment, whose variables name themselves.
	At       string
	KeyField string
	KeyAt    string
	// CAFileAt and TokenFileAt locate ca_file and bearer_token_file
	// (FILE:LINE: FIELD), for errors found when they are read.
	CAFileAt    string
	TokenFileAt string
}

// IntrospectionSpec is AUTH_MODE=introspection's token service (RFC 7662).
type IntrospectionSpec struct {
	URL              string
	ClientID         string
	ClientSecretFile string
	CAFile           string
	Timeout          time.Duration
	CacheTTL         time.Duration
	MaxBytes         int64
}

// EnvProvider names the one provider the environment variables describe.
const EnvProvider = "env"

// FromEnv is the environment's policy: one provider, PUBLIC_PATHS as
// public rules, and that provider for everything else.
func FromEnv(c *config.Config) (*Spec, error) {
	issuers := c.Issuers
	if len(issuers) == 0 && c.OIDCIssuerURL != "" {
		issuers = []string{c.OIDCIssuerURL}
	}
	p := ProviderSpec{
		Name:                   EnvProvider,
		Issuers:                issuers,
		JWKSURLs:               c.JWKSURLs,
		OIDCIssuerURL:          c.OIDCIssuerURL,
		JWKSFile:               c.JWKSFile,
		PublicKeyFiles:         c.PublicKeyFiles,
		HMACSecretFile:         c.HMACSecretFile,
		CAFile:                 c.JWKSCAFile,
		BearerTokenFile:        c.JWKSBearerTokenFile,
		Audiences:              c.Audiences,
		Algorithms:             c.Algorithms,
		ClockSkew:              c.ClockSkew,
		RequireExp:             c.RequireExp,
		RequiredScopes:         c.RequiredScopes,
		RequiredTyp:            c.RequiredTyp,
		MaxLifetime:            c.MaxTokenLifetime,
		AllowSenderConstrained: c.AllowSenderConstrained,
		TokenLookup:            c.TokenLookup,
		ClaimsToHeaders:        c.ClaimsToHeaders,
		PayloadHeader:          c.PayloadHeader,
		ForwardToken:           c.ForwardToken,
	}
	if c.AuthMode == "introspection" {
		p.Introspection = &IntrospectionSpec{
			URL:              c.IntrospectionURL,
			ClientID:         c.IntrospectionClientID,
			ClientSecretFile: c.IntrospectionClientSecretFile,
			CAFile:           c.IntrospectionCAFile,
			Timeout:          c.IntrospectionTimeout,
			CacheTTL:         c.IntrospectionCacheTTL,
			MaxBytes:         c.IntrospectionMaxBytes,
		}
		p.JWKSURLs, p.OIDCIssuerURL, p.JWKSFile, p.PublicKeyFiles, p.HMACSecretFile = nil, "", "", nil, ""
		p.CAFile, p.BearerTokenFile = "", ""
		p.Algorithms = nil
	}
	if c.LoginEnabled() {
		p.Login = &LoginSpec{
			ClientID:             c.LoginClientID,
			ClientSecretFile:     c.LoginClientSecretFile,
			CookieKeyFile:        c.LoginCookieKeyFile,
			Scopes:               strings.Fields(c.LoginScopes),
			CallbackPath:         c.LoginCallbackPath,
			SignOutPath:          c.LoginSignOutPath,
			CookieName:           c.LoginCookieName,
			CookieDomain:         c.LoginCookieDomain,
			Refresh:              c.LoginRefresh,
			RefreshAhead:         c.LoginRefreshAhead,
			MaxAge:               c.LoginMaxAge,
			AllowedRedirectHosts: c.LoginAllowedRedirectHosts,
			KeepIDToken:          c.LoginKeepIDToken,
			PlainHTTP:            c.LoginPlainHTTP,
		}
	}
	rules, err := PublicPathRules(c.PublicPaths)
	if err != nil {
		return nil, fmt.Errorf("PUBLIC_PATHS: %w", err)
	}
	return &Spec{
		Source:     EnvSource,
		Providers:  []ProviderSpec{p},
		Rules:      rules,
		Default:    Requirement{Kind: RequireAnyOf, Providers: []string{EnvProvider}},
		DefaultSet: true,
	}, nil
}

// PublicPathRules turns PUBLIC_PATHS into public rules: an exact path
// stays exact; a prefix "/base/*" is the prefix "/base/"; a prefix "/base*"
// cut inside a segment is the glob "/base*/**", which matches exactly the
// paths starting with "/base". The rules are named "public:" and the entry.
func PublicPathRules(list []string) ([]Rule, error) {
	var rules []Rule
	for _, p := range list {
		if err := config.CheckPublicPath(p); err != nil {
			return nil, fmt.Errorf("public paths: %w", err)
		}
		m := Match{Path: p}
		if base, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasSuffix(base, "/") {
				m = Match{Prefix: base}
			} else {
				m = Match{Glob: base + "*/**"}
			}
		}
		rules = append(rules, Rule{Name: "public:" + p, Match: m, Require: Requirement{Kind: RequirePublic}})
	}
	return rules, nil
}

// field names a provider's setting in errors: the variable for the
// environment, the file's line and field for CONFIG_FILE.
func (p *ProviderSpec) field(envVar string) string {
	if p.KeyField == "" {
		return envVar
	}
	return p.KeyAt + ": " + p.KeyField
}

// accessField names the setting that err, an error of keys.WithAccess,
// is about: the CA file or the bearer token file.
func (p *ProviderSpec) accessField(err error) string {
	ca := errors.Is(err, keys.ErrCAFile)
	switch {
	case p.KeyField == "" && ca:
		return "JWKS_CA_FILE"
	case p.KeyField == "":
		return "JWKS_BEARER_TOKEN_FILE"
	case ca:
		return p.CAFileAt
	}
	return p.TokenFileAt
}

// Sources makes the provider's key sources. The OIDC issuer's keys verify
// only its own tokens; every other source serves Issuers. PEM and HMAC
// files are read now, so their content is part of the source's definition
// (a reload after replacing a PEM file picks it up).
func (p *ProviderSpec) Sources() ([]*keys.Source, error) {
	var out []*keys.Source
	var remote []*keys.Source
	if p.OIDCIssuerURL != "" {
		remote = append(remote, keys.NewOIDCSource(p.OIDCIssuerURL, nil))
	}
	for _, u := range p.JWKSURLs {
		remote = append(remote, keys.NewRemoteSource(u, p.Issuers, nil))
	}
	access := keys.Access{CAFile: p.CAFile, BearerTokenFile: p.BearerTokenFile}
	for _, s := range remote {
		s, err := s.WithAccess(access)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.accessField(err), err)
		}
		out = append(out, s)
	}
	if p.JWKSFile != "" {
		if err := keys.CheckJWKSFile(p.JWKSFile); err != nil {
			return nil, fmt.Errorf("%s: %w", p.field("JWKS_FILE"), err)
		}
		out = append(out, keys.NewFileSource(p.JWKSFile, p.Issuers))
	}
	for _, f := range p.PublicKeyFiles {
		pub, err := keys.ReadPublicKeys(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.field("PUBLIC_KEY_FILES"), err)
		}
		s, err := keys.NewStaticSource("pem:"+f, p.Issuers, pub)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.field("PUBLIC_KEY_FILES"), err)
		}
		out = append(out, s)
	}
	if p.HMACSecretFile != "" {
		secret, err := keys.ReadHMACSecret(p.HMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.field("HMAC_SECRET_FILE"), err)
		}
		name := "hmac"
		if p.KeyField != "" {
			name = "hmac:" + p.HMACSecretFile
		}
		s, err := keys.NewStaticSource(name, p.Issuers, []keys.StaticKey{{Key: secret}})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.field("HMAC_SECRET_FILE"), err)
		}
		out = append(out, s)
	}
	return out, nil
}
