package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

// config is the environment of serve. The --help text walks these tags, so
// there is no second list.
type config struct {
	ListenAddr          string        `env:"LISTEN_ADDR" envDefault:":8080" help:"listen address"`
	IssuerURL           string        `env:"ISSUER_URL" envDefault:"http://127.0.0.1:8080" help:"iss of minted tokens and the discovery issuer; jwks_uri and token_endpoint are built on it"`
	SigningAlg          string        `env:"SIGNING_ALG" envDefault:"RS256" help:"RS256, ES256 or EdDSA"`
	SigningKeyFile      string        `env:"SIGNING_KEY_FILE" help:"PKCS#8 PEM private key used as the first signing key; its type must fit SIGNING_ALG (default: a fresh key)"`
	KeyRotationInterval time.Duration `env:"KEY_ROTATION_INTERVAL" envDefault:"0" help:"rotate the signing key this often, publishing the next key one interval ahead (0: never)"`
	TokenTTL            time.Duration `env:"TOKEN_TTL" envDefault:"10m" help:"lifetime of issued tokens; a retired key stays published this long"`
	Audience            string        `env:"AUDIENCE" envDefault:"demo-api" help:"aud of issued tokens"`
	Clients             []string      `env:"CLIENTS" envDefault:"demo:demo-secret" help:"static clients, comma-separated id:secret; they authenticate to /token, /introspect and /revoke"`
	Users               []string      `env:"USERS" envDefault:"alice:alice" help:"development users of the browser login form at /authorize, comma-separated name:password"`
	UsersFile           string        `env:"USERS_FILE" help:"more development users: a JSON array of {\"username\",\"password\",\"claims\":{...}}, the claims added to their tokens"`
	RedirectURIs        []string      `env:"REDIRECT_URIS" help:"the redirect_uri and post_logout_redirect_uri values clients may use, comma-separated, exact match (default: any http(s) URL on a loopback host)"`
	RefreshTokenTTL     time.Duration `env:"REFRESH_TOKEN_TTL" envDefault:"8h" help:"lifetime of refresh tokens of browser logins; each is rotated on use"`
	ClientKeys          []string      `env:"CLIENT_KEYS" help:"clients that may use the jwt-bearer grant (RFC 7523), comma-separated client_id=/path/public.pem or client_id=/path/jwks.json; their assertions must be signed with these public keys"`
}

// parseConfig reads the config from environ (KEY=VALUE strings) and
// validates it. Every error names its variable.
func parseConfig(environ []string) (config, error) {
	cfg, err := cli.Parse[config](env.ToMap(environ))
	if err != nil {
		return config{}, err
	}
	if err := cfg.validate(); err != nil {
		return config{}, err
	}
	return *cfg, nil
}

// validate has no side effects and returns every problem, each naming the
// variable.
func (c config) validate() error {
	var errs []error
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("LISTEN_ADDR: must not be empty"))
	}
	if u, err := url.Parse(c.IssuerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("ISSUER_URL: %q is not an absolute http or https URL", c.IssuerURL))
	}
	if !slices.Contains(serveAlgs(), c.SigningAlg) {
		errs = append(errs, fmt.Errorf("SIGNING_ALG: %q is not one of %s", c.SigningAlg, strings.Join(serveAlgs(), ", ")))
	}
	if c.KeyRotationInterval < 0 {
		errs = append(errs, errors.New("KEY_ROTATION_INTERVAL: must not be negative"))
	}
	if c.TokenTTL <= 0 {
		errs = append(errs, errors.New("TOKEN_TTL: must be positive"))
	}
	if c.Audience == "" {
		errs = append(errs, errors.New("AUDIENCE: must not be empty"))
	}
	if _, err := parseClients(c.Clients); err != nil {
		errs = append(errs, fmt.Errorf("CLIENTS: %w", err))
	}
	if _, err := parseClientKeyEntries(c.ClientKeys); err != nil {
		errs = append(errs, fmt.Errorf("CLIENT_KEYS: %w", err))
	}
	errs = append(errs, c.validateLogin()...)
	return errors.Join(errs...)
}

// parseClients turns id:secret entries into a map from id to secret.
func parseClients(entries []string) (map[string]string, error) {
	clients := make(map[string]string, len(entries))
	for _, e := range entries {
		id, secret, ok := strings.Cut(strings.TrimSpace(e), ":")
		switch {
		case !ok || id == "" || secret == "":
			return nil, fmt.Errorf("entry %q is not id:secret", e)
		case clients[id] != "":
			return nil, fmt.Errorf("client %q appears twice", id)
		}
		clients[id] = secret
	}
	if len(clients) == 0 {
		return nil, errors.New("at least one client is needed")
	}
	return clients, nil
}

// printEnvHelp writes every variable of config with its default and meaning.
func printEnvHelp(w io.Writer) { cli.PrintVars[config](w) }
