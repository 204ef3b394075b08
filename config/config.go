// Package config is the configuration contract of jwt-sidecar: the one
// Config struct whose tags are --help, its validation (every problem at
// once, each naming its variable), and the typed grammars of the values
// (token lookups, claim headers, public paths, header names, path
// cleaning, algorithm lists). It imports nothing of the project but the
// CLI plumbing, so the injector validates what it writes with the same
// code the sidecar runs.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// Config is the whole contract of the environment: --help, parsing and
// validation all walk this one struct. docs/contract.md fixes the first names; the
// rest extend it and are documented in the README.
type Config struct {
	UpstreamURL *url.URL `env:"UPSTREAM_URL" help:"where verified requests go: http://127.0.0.1:3000, https://app:8443, h2c://127.0.0.1:50051 (HTTP/2 cleartext, gRPC) or unix:///run/app.sock; required unless DECISION_ADDR is set"`
	ListenAddr  string   `env:"LISTEN_ADDR" envDefault:":7070" help:"the proxy listener (not started without UPSTREAM_URL)"`
	AdminAddr   string   `env:"ADMIN_ADDR" envDefault:":7071" help:"/metrics, /healthz, /readyz (never proxied)"`

	JWKSURLs            []string      `env:"JWKS_URLS" help:"comma-separated JWKS URLs, refreshed in the background; their keys verify tokens from ISSUERS"`
	OIDCIssuerURL       string        `env:"OIDC_ISSUER_URL" help:"discover jwks_uri from <url>/.well-known/openid-configuration; also an accepted issuer, and its keys verify only its tokens"`
	JWKSFile            string        `env:"JWKS_FILE" help:"a local JWKS file, re-read when it changes"`
	PublicKeyFiles      []string      `env:"PUBLIC_KEY_FILES" help:"comma-separated PEM public keys (PKIX, PKCS#1 or certificates)"`
	HMACSecretFile      string        `env:"HMAC_SECRET_FILE" help:"a shared secret of at least 32 bytes; enables HS256/384/512 and nothing else"`
	JWKSRefreshInterval time.Duration `env:"JWKS_REFRESH_INTERVAL" envDefault:"5m" help:"background refresh of every remote key source"`
	JWKSCacheDir        string        `env:"JWKS_CACHE_DIR" help:"keep each remote source's last good key set here, with its ETag and Last-Modified, and load it at start: the first fetch after a restart is conditional"`
	JWKSFetchTimeout    time.Duration `env:"JWKS_FETCH_TIMEOUT" envDefault:"5s" help:"timeout of one JWKS or discovery fetch"`
	JWKSMaxBytes        int64         `env:"JWKS_MAX_BYTES" envDefault:"1048576" help:"largest JWKS or discovery document accepted"`
	JWKSRefetchCooldown time.Duration `env:"JWKS_REFETCH_COOLDOWN" envDefault:"30s" help:"least time between two unknown-kid refetches of one source"`
	JWKSFetchWait       time.Duration `env:"JWKS_FETCH_WAIT" envDefault:"500ms" help:"longest a request waits for an unknown-kid refetch"`

	Issuers        []string      `env:"ISSUERS" help:"accepted iss values; start fails when neither this nor OIDC_ISSUER_URL is set"`
	Audiences      []string      `env:"AUDIENCES" help:"accepted aud values (any one suffices); empty: aud is not checked"`
	Algorithms     []string      `env:"ALGORITHMS" envDefault:"RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA" help:"allowed alg values; none is never allowed; HS* only with HMAC_SECRET_FILE"`
	ClockSkew      time.Duration `env:"CLOCK_SKEW" envDefault:"30s" help:"leeway for exp, nbf, iat"`
	RequireExp     bool          `env:"REQUIRE_EXP" envDefault:"true" help:"refuse tokens without exp"`
	RequiredScopes []string      `env:"REQUIRED_SCOPES" help:"scopes (from scope or scp) that every request needs"`
	MaxTokenSize   int           `env:"MAX_TOKEN_SIZE" envDefault:"8192" help:"larger tokens get 401 before any parsing"`
	TokenCacheSize int           `env:"TOKEN_CACHE_SIZE" envDefault:"10000" help:"verified tokens remembered (exp and nbf re-checked on every hit); 0 turns the cache off"`

	TokenLookup     Lookups       `env:"TOKEN_LOOKUP" envDefault:"header:Authorization" help:"where the token is read, comma-separated: header:NAME, cookie:NAME, query:NAME"`
	ForwardToken    bool          `env:"FORWARD_TOKEN" envDefault:"false" help:"keep the token on the forwarded request"`
	ClaimsToHeaders ClaimHeaders  `env:"CLAIMS_TO_HEADERS" help:"e.g. sub=X-Auth-Subject,realm_access.roles=X-Auth-Roles (dotted paths; arrays joined with commas)"`
	PayloadHeader   string        `env:"PAYLOAD_HEADER" help:"if set, the verified payload, base64url-encoded, in this header"`
	PublicPaths     PublicPaths   `env:"PUBLIC_PATHS" help:"paths served without a token: exact, or a prefix ending in *"`
	CORSPreflight   bool          `env:"CORS_PREFLIGHT_BYPASS" envDefault:"false" help:"forward CORS preflight requests (OPTIONS with Origin and Access-Control-Request-Method) without a token"`
	UpstreamTimeout time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"60s" help:"longest wait for the upstream's response headers; then 504"`
	UpstreamConns   int           `env:"UPSTREAM_MAX_IDLE_CONNS" envDefault:"1024" help:"idle upstream connections kept for reuse"`

	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s" help:"on SIGTERM: stop accepting, drain in-flight requests for at most this long, exit 0"`
	AuthMode        string        `env:"AUTH_MODE" envDefault:"jwt" help:"jwt (stateless: keys from the sources above) or introspection (stateful, RFC 7662: every token is sent to INTROSPECTION_URL)"`

	IntrospectionURL              string        `env:"INTROSPECTION_URL" help:"AUTH_MODE=introspection: the token service's RFC 7662 endpoint (absolute http(s)); required in that mode"`
	IntrospectionClientID         string        `env:"INTROSPECTION_CLIENT_ID" help:"AUTH_MODE=introspection: the sidecar's client_id at INTROSPECTION_URL (HTTP Basic); required in that mode"`
	IntrospectionClientSecretFile string        `env:"INTROSPECTION_CLIENT_SECRET_FILE" help:"AUTH_MODE=introspection: a file holding the client secret (one trailing newline dropped); required in that mode"`
	IntrospectionTimeout          time.Duration `env:"INTROSPECTION_TIMEOUT" envDefault:"2s" help:"AUTH_MODE=introspection: longest wait for one answer, connection included; then 503"`
	IntrospectionCacheTTL         time.Duration `env:"INTROSPECTION_CACHE_TTL" envDefault:"0s" help:"AUTH_MODE=introspection: remember active answers this long (never past exp; at most TOKEN_CACHE_SIZE); 0: ask for every request"`
	IntrospectionMaxBytes         int64         `env:"INTROSPECTION_MAX_BYTES" envDefault:"65536" help:"AUTH_MODE=introspection: largest answer read; a larger one is a 503"`
	ConfigFile                    string        `env:"CONFIG_FILE" help:"YAML with several providers and per-route rules, reloaded when it changes and on SIGHUP; the key-source and policy variables must then be unset"`
	LogLevel                      string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat                     string        `env:"LOG_FORMAT" envDefault:"json" help:"json or text"`

	// Browser login (OIDC code flow, one sealed session cookie): docs/login.md.
	LoginClientID             string        `env:"LOGIN_CLIENT_ID" help:"browser login: the client registered at OIDC_ISSUER_URL; empty: login off, browsers get 401 like any client"`
	LoginClientSecretFile     string        `env:"LOGIN_CLIENT_SECRET_FILE" help:"browser login: a file holding the client secret (client_secret_basic)"`
	LoginCookieKeyFile        string        `env:"LOGIN_COOKIE_KEY_FILE" help:"browser login: session cookie keys, one per line, each at least 32 bytes; the first seals, all open"`
	LoginScopes               string        `env:"LOGIN_SCOPES" envDefault:"openid profile email" help:"browser login: requested scopes, space-separated (openid is always added)"`
	LoginCallbackPath         string        `env:"LOGIN_CALLBACK_PATH" envDefault:"/oauth2/callback" help:"browser login: the redirect URI's path, served by the sidecar"`
	LoginSignOutPath          string        `env:"LOGIN_SIGN_OUT_PATH" envDefault:"/oauth2/sign_out" help:"browser login: clears the session (then the provider's end_session_endpoint, if any); ?rd=/path says where to go after"`
	LoginCookieName           string        `env:"LOGIN_COOKIE_NAME" envDefault:"_jwt_sidecar" help:"browser login: the session cookie's name"`
	LoginCookieDomain         string        `env:"LOGIN_COOKIE_DOMAIN" help:"browser login: the session cookie's Domain; empty: this host only"`
	LoginRefresh              bool          `env:"LOGIN_REFRESH" envDefault:"true" help:"browser login: keep the refresh token (sealed in the cookie) and renew sessions without a redirect"`
	LoginRefreshAhead         time.Duration `env:"LOGIN_REFRESH_AHEAD" envDefault:"1m" help:"browser login: renew a session this long before it ends"`
	LoginMaxAge               time.Duration `env:"LOGIN_MAX_AGE" envDefault:"12h" help:"browser login: a session's absolute lifetime from the login, refreshes included"`
	LoginAllowedRedirectHosts []string      `env:"LOGIN_ALLOWED_REDIRECT_HOSTS" help:"browser login: other hosts a return URL may name, comma-separated (app.example.com, or .example.com for its subdomains)"`
	LoginKeepIDToken          bool          `env:"LOGIN_KEEP_ID_TOKEN" envDefault:"false" help:"browser login: keep the raw ID token in the cookie for id_token_hint at sign-out (about its size in cookie bytes)"`
	LoginPlainHTTP            bool          `env:"LOGIN_PLAIN_HTTP" envDefault:"false" help:"browser login: the listener is plain HTTP on loopback: cookies without Secure, http:// redirect URI; refused unless LISTEN_ADDR is loopback"`
	// Revocation lists and sender-constrained tokens (DPoP, mTLS); see revocation.go.
	RevocationListURL         string        `env:"REVOCATION_LIST_URL" help:"a revocation list (docs/revocation.md) polled with conditional requests; its last good copy is kept in JWKS_CACHE_DIR"`
	RevocationFile            string        `env:"REVOCATION_FILE" help:"a revocation list on disk (e.g. a ConfigMap), re-read when it changes"`
	RevocationRefreshInterval time.Duration `env:"REVOCATION_REFRESH_INTERVAL" envDefault:"10s" help:"poll interval of REVOCATION_LIST_URL: a revocation takes effect within it"`
	RevocationStaleAfter      time.Duration `env:"REVOCATION_STALE_AFTER" envDefault:"1m" help:"age of the last good list after which it is reported stale (log, metric, /readyz body); it keeps serving"`
	RevocationMaxBytes        int64         `env:"REVOCATION_MAX_BYTES" envDefault:"33554432" help:"largest revocation list accepted"`
	BackchannelLogoutPath     string        `env:"BACKCHANNEL_LOGOUT_PATH" help:"serve OpenID Connect back-channel logout at this path of the proxy listener; a logout revokes the subject's tokens issued before it"`
	BackchannelTokenLifetime  time.Duration `env:"BACKCHANNEL_LOGOUT_TOKEN_LIFETIME" envDefault:"1h" help:"the longest access-token lifetime of the issuer: how long a back-channel logout's subject entry lives"`
	DPoPAlgorithms            []string      `env:"DPOP_ALGORITHMS" envDefault:"ES256,ES384,ES512,PS256,PS384,PS512,RS256,RS384,RS512,EdDSA" help:"DPoP proof algs accepted (asymmetric only), announced in the DPoP challenge"`
	DPoPProofMaxAge           time.Duration `env:"DPOP_PROOF_MAX_AGE" envDefault:"60s" help:"how old a DPoP proof's iat may be (how far ahead: CLOCK_SKEW)"`
	DPoPReplayCacheSize       int           `env:"DPOP_REPLAY_CACHE_SIZE" envDefault:"100000" help:"DPoP proof jtis remembered against replay (about 60 bytes each)"`
	DPoPNonce                 bool          `env:"DPOP_NONCE" envDefault:"false" help:"require DPoP server nonces (RFC 9449 §8)"`
	DPoPNonceSecretFile       string        `env:"DPOP_NONCE_SECRET_FILE" help:"32+ bytes shared by the replicas, so a nonce of one is valid at another (default: random per process)"`
	DPoPExternalURL           *url.URL      `env:"DPOP_EXTERNAL_URL" help:"the scheme and host (and path prefix) clients address, for DPoP htu behind a proxy"`
	DPoPTrustForwarded        bool          `env:"DPOP_TRUST_FORWARDED" envDefault:"false" help:"build DPoP htu from X-Forwarded-Proto and X-Forwarded-Host (only behind a proxy that sets them)"`
	// Keys without a fetch storm (issue 13).
	JWKSRelayURL string `env:"JWKS_RELAY_URL" help:"a key relay (jwt-key-relay) that remote key sources fetch from first; when it fails they fetch from the issuer. It serves key sets only: this configuration still binds keys to issuers"`
	// Observability (issue 15): access log and refusal-line sampling.
	AccessLog             bool    `env:"ACCESS_LOG" envDefault:"false" help:"one structured line per request (request_id, method, path, status, outcome, reason, rule, provider, subject, durations); it replaces the refusal line"`
	AccessLogSubjectClaim string  `env:"ACCESS_LOG_SUBJECT_CLAIM" envDefault:"sub" help:"the claim (dotted path) the access log names the caller by"`
	RefusalLogRate        float64 `env:"REFUSAL_LOG_RATE" envDefault:"100" help:"refusal lines written per second at most (burst of one second's worth); the rest are counted in jwt_sidecar_log_lines_dropped_total; 0: no limit"`
	// Protocols (issue 11): upstream TLS, and TLS on the proxy listener.
	UpstreamCAFile         string `env:"UPSTREAM_CA_FILE" help:"https upstream: PEM CA certificates that verify it instead of the system roots"`
	UpstreamClientCertFile string `env:"UPSTREAM_CLIENT_CERT_FILE" help:"https upstream: PEM client certificate for mutual TLS (with UPSTREAM_CLIENT_KEY_FILE)"`
	UpstreamClientKeyFile  string `env:"UPSTREAM_CLIENT_KEY_FILE" help:"https upstream: PEM private key of UPSTREAM_CLIENT_CERT_FILE"`
	TLSCertFile            string `env:"TLS_CERT_FILE" help:"serve LISTEN_ADDR over TLS 1.2+ (HTTP/2 by ALPN) with this PEM certificate chain, re-read when it changes; with TLS_KEY_FILE"`
	TLSKeyFile             string `env:"TLS_KEY_FILE" help:"the PEM private key of TLS_CERT_FILE"`
	TLSClientCAFile        string `env:"TLS_CLIENT_CA_FILE" help:"require client certificates signed by these PEM CAs; the verified one's subject and SHA-256 thumbprint go upstream as X-Client-Cert-Subject and X-Client-Cert-Sha256"`
	// Hardening: paths a backend reads differently, and token shapes.
	PathStrict             bool          `env:"PATH_STRICT" envDefault:"true" help:"refuse with 400 a path a backend may read differently after one decode (a dot segment with ;params, double encoding, a backslash, a control byte); false forwards it, cleaned"`
	RequiredTyp            string        `env:"REQUIRED_TYP" help:"the JOSE typ every token must carry, e.g. at+jwt (RFC 9068); empty: not checked"`
	MaxTokenLifetime       time.Duration `env:"MAX_TOKEN_LIFETIME" envDefault:"0s" help:"refuse tokens whose exp - iat exceeds this (both then required); 0: off"`
	AllowSenderConstrained bool          `env:"ALLOW_SENDER_CONSTRAINED" envDefault:"false" help:"accept tokens with a cnf claim (RFC 8705, RFC 9449) as plain bearer tokens; off: refused (sender_constrained)"`
	// Key sources behind a private CA or a credential (issue 11); see keysource.go.
	JWKSCAFile          string `env:"JWKS_CA_FILE" help:"PEM CA certificates that verify JWKS_URLS and OIDC_ISSUER_URL (discovery, jwks_uri, browser login) instead of the system roots; re-read when it changes"`
	JWKSBearerTokenFile string `env:"JWKS_BEARER_TOKEN_FILE" help:"a token sent as Authorization: Bearer with every discovery and JWKS fetch (e.g. a projected service-account token); read again at every fetch, never logged; https only"`
	IntrospectionCAFile string `env:"INTROSPECTION_CA_FILE" help:"AUTH_MODE=introspection: PEM CA certificates that verify INTROSPECTION_URL instead of the system roots; re-read when it changes"`
	// Tracing and metric histograms (issue 15): docs/observability.md; see tracing.go.
	OTelSDKDisabled      bool     `env:"OTEL_SDK_DISABLED" envDefault:"false" help:"tracing: true turns tracing off whatever else is set"`
	OTelTracesExporter   string   `env:"OTEL_TRACES_EXPORTER" envDefault:"otlp" help:"tracing: otlp (OTLP over HTTP/protobuf, on once an endpoint is set) or none"`
	OTelEndpoint         string   `env:"OTEL_EXPORTER_OTLP_ENDPOINT" help:"tracing: the collector's OTLP/HTTP base URL, e.g. http://otel-collector:4318 (spans go to /v1/traces under it); empty with no traces endpoint: tracing off"`
	OTelTracesEndpoint   string   `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" help:"tracing: the full OTLP/HTTP traces URL, used as is; wins over OTEL_EXPORTER_OTLP_ENDPOINT"`
	OTelHeaders          string   `env:"OTEL_EXPORTER_OTLP_HEADERS" help:"tracing: headers sent with every export, key=value pairs separated by commas (values percent-encoded), e.g. an API key; never printed"`
	OTelProtocol         string   `env:"OTEL_EXPORTER_OTLP_PROTOCOL" envDefault:"http/protobuf" help:"tracing: only http/protobuf: spans go over OTLP/HTTP (a collector's port 4318); grpc is refused"`
	OTelServiceName      string   `env:"OTEL_SERVICE_NAME" envDefault:"jwt-sidecar" help:"tracing: the service.name of every span"`
	OTelResourceAttrs    string   `env:"OTEL_RESOURCE_ATTRIBUTES" help:"tracing: extra resource attributes, key=value pairs separated by commas (values percent-encoded), e.g. deployment.environment=prod,k8s.pod.name=api-7f9"`
	OTelTracesSampler    string   `env:"OTEL_TRACES_SAMPLER" envDefault:"parentbased_always_on" help:"tracing: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"`
	OTelTracesSamplerArg string   `env:"OTEL_TRACES_SAMPLER_ARG" help:"tracing: the ratio (0 to 1) of the traceidratio samplers; default 1"`
	OTelPropagators      []string `env:"OTEL_PROPAGATORS" envDefault:"tracecontext,baggage" help:"tracing: the context propagated from clients to the upstream: tracecontext (W3C traceparent, tracestate), baggage, or none"`
	MetricsHistograms    string   `env:"METRICS_HISTOGRAMS" envDefault:"classic" help:"latency histograms: classic (29 fixed buckets), native (Prometheus native histograms only, factor 1.1) or both (during a migration)"`
	// Forward-auth (issue 11): a decision listener for nginx auth_request,
	// Traefik forwardAuth, Caddy forward_auth and Envoy ext_authz.
	DecisionAddr           string `env:"DECISION_ADDR" help:"forward-auth: answer decision requests here (200 with the claim headers, or the proxy's refusal); without UPSTREAM_URL the sidecar is a decision service only"`
	DecisionTrustedProxies CIDRs  `env:"DECISION_TRUSTED_PROXIES" envDefault:"127.0.0.0/8,::1/128" help:"forward-auth: the proxies (CIDRs) answered; any other source gets 403 untrusted_proxy, whatever it sends"`
	DecisionPathPrefix     string `env:"DECISION_PATH_PREFIX" help:"forward-auth: Envoy ext_authz shape: a decision request under this path prefix (/ for any) is itself the original request, minus the prefix; empty: the original comes from X-Original-URI or X-Forwarded-Uri"`
}

// Load parses environ into a Config and validates it. The error names
// every variable that is wrong, not just the first.
func Load(environ map[string]string) (*Config, error) {
	c, parseErr := cli.Parse[Config](environ)
	if c == nil {
		return nil, parseErr
	}
	c.tidy()
	// HMAC_SECRET_FILE enables HS256/384/512 and nothing else: without an
	// explicit ALGORITHMS it switches the default list to those.
	if c.HMACSecretFile != "" && strings.TrimSpace(environ["ALGORITHMS"]) == "" {
		c.Algorithms = slices.Clone(HMACAlgorithms)
	}
	errs := append(c.problems(), c.unused(environ)...)
	errs = append(errs, c.decisionUnused(environ)...)
	if err := checkFileEnv(c, environ); err != nil {
		errs = append(errs, err)
	}
	errs = withParseErrors(errs, parseErr)
	if err := joinSorted(errs); err != nil {
		return nil, err
	}
	return c, nil
}

// Variables that only one AUTH_MODE reads. Setting one in the other mode
// is refused: nothing is silently ignored.
var (
	jwtOnly = []string{
		"JWKS_URLS", "OIDC_ISSUER_URL", "JWKS_FILE", "PUBLIC_KEY_FILES", "HMAC_SECRET_FILE",
		"JWKS_REFRESH_INTERVAL", "JWKS_CACHE_DIR", "JWKS_FETCH_TIMEOUT", "JWKS_MAX_BYTES",
		"JWKS_REFETCH_COOLDOWN", "JWKS_FETCH_WAIT", "ALGORITHMS", "JWKS_RELAY_URL",
		"JWKS_CA_FILE", "JWKS_BEARER_TOKEN_FILE",
	}
	introspectionOnly = []string{
		"INTROSPECTION_URL", "INTROSPECTION_CLIENT_ID", "INTROSPECTION_CLIENT_SECRET_FILE",
		"INTROSPECTION_TIMEOUT", "INTROSPECTION_CACHE_TTL", "INTROSPECTION_MAX_BYTES",
		"INTROSPECTION_CA_FILE",
	}
)

// unused names every variable set in environ that AUTH_MODE does not read.
// It needs the environment itself: a variable with a default cannot be
// told from one set to that default by its parsed value.
func (c *Config) unused(environ map[string]string) []error {
	var errs []error
	given := func(name string) bool { return strings.TrimSpace(environ[name]) != "" }
	switch c.AuthMode {
	case "jwt":
		for _, name := range introspectionOnly {
			if given(name) {
				errs = append(errs, fmt.Errorf("%s: only used with AUTH_MODE=introspection; remove it, or set AUTH_MODE=introspection", name))
			}
		}
	case "introspection":
		for _, name := range jwtOnly {
			if given(name) {
				errs = append(errs, fmt.Errorf("%s: not used with AUTH_MODE=introspection, where the token service checks every token (no keys, no algorithms); remove it", name))
			}
		}
	}
	return errs
}

func joinSorted(errs []error) error {
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// tidy trims list items and drops empty ones, so "a, b," means [a b].
func (c *Config) tidy() {
	for _, l := range []*[]string{&c.JWKSURLs, &c.PublicKeyFiles, &c.Issuers, &c.Audiences, &c.Algorithms, &c.RequiredScopes} {
		var out []string
		for _, s := range *l {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		*l = out
	}
}

// Validate checks every rule that does not need the network or the disk.
// It has no side effects and reports all problems at once. (loadConfig also
// refuses variables the AUTH_MODE does not read; that needs the environment.)
func (c *Config) Validate() error { return joinSorted(c.problems()) }

// problems is Validate's list, unsorted.
func (c *Config) problems() []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	c.checkProtocols(bad)
	for name, addr := range map[string]string{"LISTEN_ADDR": c.ListenAddr, "ADMIN_ADDR": c.AdminAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(name, "want host:port, e.g. :7070 (%v)", err)
		}
	}
	if c.ListenAddr == c.AdminAddr {
		bad("ADMIN_ADDR", "must differ from LISTEN_ADDR")
	}
	for _, u := range c.JWKSURLs {
		if !AbsoluteHTTP(u) {
			bad("JWKS_URLS", "%q is not an absolute http(s) URL", u)
		}
	}
	if c.OIDCIssuerURL != "" && !AbsoluteHTTP(c.OIDCIssuerURL) {
		bad("OIDC_ISSUER_URL", "%q is not an absolute http(s) URL", c.OIDCIssuerURL)
	}
	if c.AuthMode == "introspection" {
		c.checkIntrospection(bad)
	} else {
		c.checkKeys(bad)
	}
	errs = append(errs, c.hardeningProblems()...)
	if c.ClockSkew < 0 {
		bad("CLOCK_SKEW", "must not be negative")
	}
	if c.ClockSkew > 5*time.Minute {
		bad("CLOCK_SKEW", "%s is more than 5m; fix the clocks instead", c.ClockSkew)
	}
	positive := map[string]time.Duration{
		"JWKS_REFRESH_INTERVAL": c.JWKSRefreshInterval, "JWKS_FETCH_TIMEOUT": c.JWKSFetchTimeout,
		"JWKS_REFETCH_COOLDOWN": c.JWKSRefetchCooldown, "JWKS_FETCH_WAIT": c.JWKSFetchWait,
		"UPSTREAM_TIMEOUT": c.UpstreamTimeout, "SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
		"INTROSPECTION_TIMEOUT": c.IntrospectionTimeout,
	}
	for name, d := range positive {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	if c.JWKSMaxBytes < 1024 {
		bad("JWKS_MAX_BYTES", "must be at least 1024")
	}
	if c.IntrospectionMaxBytes < 1024 {
		bad("INTROSPECTION_MAX_BYTES", "must be at least 1024")
	}
	if c.IntrospectionCacheTTL < 0 {
		bad("INTROSPECTION_CACHE_TTL", "must not be negative")
	}
	if c.MaxTokenSize < 256 || c.MaxTokenSize > 1<<20 {
		bad("MAX_TOKEN_SIZE", "must be between 256 and 1048576")
	}
	if c.TokenCacheSize < 0 {
		bad("TOKEN_CACHE_SIZE", "must not be negative")
	}
	if c.UpstreamConns < 1 {
		bad("UPSTREAM_MAX_IDLE_CONNS", "must be at least 1")
	}
	if c.PayloadHeader != "" {
		for _, msg := range PayloadHeaderProblems(c.PayloadHeader, c.ClaimsToHeaders, "named in CLAIMS_TO_HEADERS") {
			bad("PAYLOAD_HEADER", "%s", msg)
		}
	}
	for _, msg := range LookupHeaderProblems(c.TokenLookup, c.ClaimsToHeaders, c.PayloadHeader) {
		bad(msg.Var, "%s", msg.Text)
	}
	switch c.AuthMode {
	case "jwt", "introspection":
	default:
		bad("AUTH_MODE", "want jwt or introspection, not %q", c.AuthMode)
	}
	errs = append(errs, c.loginProblems()...)
	c.checkRevocation(bad)
	errs = append(errs, c.relayProblems()...)
	errs = append(errs, c.observabilityProblems()...)
	errs = append(errs, c.keySourceAccessProblems()...)
	errs = append(errs, c.tracingProblems()...)
	errs = append(errs, c.decisionProblems()...)
	return append(errs, cli.CheckLog(c.LogLevel, c.LogFormat)...)
}

// checkKeys is jwt mode's part of Validate: key sources, issuers and
// algorithms.
func (c *Config) checkKeys(bad func(name, format string, args ...any)) {
	// With CONFIG_FILE, the file's providers have their own key sources.
	if c.ConfigFile == "" && len(c.JWKSURLs) == 0 && c.OIDCIssuerURL == "" && c.JWKSFile == "" && len(c.PublicKeyFiles) == 0 && c.HMACSecretFile == "" {
		bad("JWKS_URLS", "no key source: set one of JWKS_URLS, OIDC_ISSUER_URL, JWKS_FILE, PUBLIC_KEY_FILES or HMAC_SECRET_FILE")
	}
	if len(c.Issuers) == 0 && c.OIDCIssuerURL == "" && c.ConfigFile == "" {
		bad("ISSUERS", "set the accepted issuers (or OIDC_ISSUER_URL)")
	}
	if len(c.Issuers) == 0 && (len(c.JWKSURLs) > 0 || c.JWKSFile != "" || len(c.PublicKeyFiles) > 0 || c.HMACSecretFile != "") && c.OIDCIssuerURL != "" {
		// Those sources serve ISSUERS; with none they would be bound to the
		// OIDC issuer, mixing its keys with others'. Say so instead.
		bad("ISSUERS", "required when other key sources are combined with OIDC_ISSUER_URL: they verify tokens from ISSUERS")
	}
	for _, msg := range AlgorithmProblems(c.Algorithms, "HMAC_SECRET_FILE", c.HMACSecretFile != "") {
		bad("ALGORITHMS", "%s", msg)
	}
	if c.HMACSecretFile != "" {
		// An HMAC secret beside public keys invites key confusion; one
		// sidecar verifies either symmetric or asymmetric tokens.
		if len(c.JWKSURLs) > 0 || c.OIDCIssuerURL != "" || c.JWKSFile != "" || len(c.PublicKeyFiles) > 0 {
			bad("HMAC_SECRET_FILE", "cannot be combined with public-key sources")
		}
	}
}

// AlgorithmProblems checks an allow-list of algorithms: ALGORITHMS, and a
// CONFIG_FILE provider's algorithms. hmacField names the setting of the
// HMAC secret, which hmac says is set: it allows HS* and nothing else.
func AlgorithmProblems(algs []string, hmacField string, hmac bool) []string {
	if len(algs) == 0 {
		return []string{"must not be empty"}
	}
	var out []string
	for _, a := range algs {
		switch {
		case strings.EqualFold(a, "none"):
			out = append(out, "none is never allowed")
		case slices.Contains(HMACAlgorithms, a):
			if !hmac {
				out = append(out, a+" needs "+hmacField)
			}
		case hmac:
			out = append(out, a+" cannot be used with "+hmacField+", which allows only HS256, HS384 and HS512")
		case !slices.Contains(DefaultAlgorithms, a):
			out = append(out, fmt.Sprintf("%q is not a supported algorithm (%s)", a, strings.Join(append(slices.Clone(DefaultAlgorithms), HMACAlgorithms...), ", ")))
		}
	}
	return out
}

// checkIntrospection is introspection mode's part of Validate. ISSUERS is
// optional there: the token service vouches for its tokens, and ISSUERS,
// when set, only narrows which answers' iss are accepted.
func (c *Config) checkIntrospection(bad func(name, format string, args ...any)) {
	switch u, err := url.Parse(c.IntrospectionURL); {
	case c.IntrospectionURL == "":
		bad("INTROSPECTION_URL", "required with AUTH_MODE=introspection")
	case err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		bad("INTROSPECTION_URL", "%q is not an absolute http(s) URL", c.IntrospectionURL)
	case u.User != nil:
		bad("INTROSPECTION_URL", "must not carry credentials; use INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET_FILE")
	}
	if c.IntrospectionClientID == "" {
		bad("INTROSPECTION_CLIENT_ID", "required with AUTH_MODE=introspection (RFC 7662 §2.1: the endpoint authenticates its callers)")
	}
	if c.IntrospectionClientSecretFile == "" {
		bad("INTROSPECTION_CLIENT_SECRET_FILE", "required with AUTH_MODE=introspection")
	}
	if c.IntrospectionCacheTTL > 0 && c.TokenCacheSize == 0 {
		bad("INTROSPECTION_CACHE_TTL", "needs TOKEN_CACHE_SIZE above 0, which bounds the cache")
	}
}

// PayloadHeaderProblems checks a payload header: PAYLOAD_HEADER, and a
// CONFIG_FILE provider's payload_header. It must be a header the proxy may
// set, and none of claims; clash says where claims come from.
func PayloadHeaderProblems(payload string, claims []ClaimHeader, clash string) []string {
	var out []string
	if _, err := ParseClaimHeaders("payload=" + payload); err != nil {
		out = append(out, err.Error())
	}
	for _, ch := range claims {
		if SameHeader(ch.Header, payload) {
			out = append(out, payload+" is also "+clash)
		}
	}
	return out
}

// Problem is a problem of one variable.
type Problem struct{ Var, Text string }

// LookupHeaderProblems refuses a claim or payload header that is also a
// header a token is read from: claim headers are scrubbed before
// authentication, so such a header would delete every token. It is the one
// statement of that rule, for the environment, CONFIG_FILE providers and
// the injector.
func LookupHeaderProblems(lookups []Lookup, claims []ClaimHeader, payload string) []Problem {
	var out []Problem
	for _, l := range lookups {
		if l.Kind != InHeader {
			continue
		}
		for _, ch := range claims {
			if SameHeader(ch.Header, l.Name) {
				out = append(out, Problem{"CLAIMS_TO_HEADERS", ch.Header + " is also a TOKEN_LOOKUP header"})
			}
		}
		if payload != "" && SameHeader(payload, l.Name) {
			out = append(out, Problem{"PAYLOAD_HEADER", payload + " is also a TOKEN_LOOKUP header"})
		}
	}
	return out
}

// AbsoluteHTTP reports whether raw is an absolute http or https URL.
func AbsoluteHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// DefaultAlgorithms is the ALGORITHMS default: every asymmetric JWS
// algorithm golang-jwt verifies.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// HMACAlgorithms are the algorithms an HMAC secret enables.
var HMACAlgorithms = []string{"HS256", "HS384", "HS512"}

// PolicyVars are the variables that describe the environment's one
// provider and its rules. With CONFIG_FILE they must be unset: the file
// describes the providers and rules, and silently merging two sources of
// policy would leave nobody sure which applies.
var PolicyVars = []string{
	"JWKS_URLS", "OIDC_ISSUER_URL", "JWKS_FILE", "PUBLIC_KEY_FILES", "HMAC_SECRET_FILE",
	"ISSUERS", "AUDIENCES", "ALGORITHMS", "CLOCK_SKEW", "REQUIRE_EXP", "REQUIRED_SCOPES",
	"TOKEN_LOOKUP", "FORWARD_TOKEN", "CLAIMS_TO_HEADERS", "PAYLOAD_HEADER", "PUBLIC_PATHS",
	"REQUIRED_TYP", "MAX_TOKEN_LIFETIME", "ALLOW_SENDER_CONSTRAINED",
	"JWKS_CA_FILE", "JWKS_BEARER_TOKEN_FILE",
}

// checkFileEnv refuses CONFIG_FILE together with policy variables, and with
// an authentication mode other than jwt.
func checkFileEnv(c *Config, environ map[string]string) error {
	if c.ConfigFile == "" {
		return nil
	}
	var errs []error
	var set []string
	for _, name := range PolicyVars {
		if strings.TrimSpace(environ[name]) != "" {
			set = append(set, name)
		}
	}
	if len(set) > 0 {
		errs = append(errs, fmt.Errorf("CONFIG_FILE: cannot be combined with %s: the file describes every provider and rule; unset them (the server variables such as LISTEN_ADDR, UPSTREAM_URL, JWKS_* fetch tuning, TOKEN_CACHE_SIZE and MAX_TOKEN_SIZE still apply)", strings.Join(set, ", ")))
	}
	if c.AuthMode != "jwt" {
		errs = append(errs, fmt.Errorf("CONFIG_FILE: AUTH_MODE=%s cannot be combined with a policy file, whose providers verify JWTs locally; unset AUTH_MODE or CONFIG_FILE", c.AuthMode))
	}
	return errors.Join(errs...)
}
