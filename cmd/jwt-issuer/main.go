// Command jwt-issuer is a small development token service for the jwt-sidecar
// demo, the compose stack, tests and benchmarks. It is never a production
// identity provider: clients and secrets are static, keys live in memory or
// in plain files, and nothing is audited.
//
// Subcommands:
//
//	serve      (default) an OAuth 2.0 token endpoint (client_credentials and
//	           jwt-bearer grants) with OpenID discovery, a JWKS, token
//	           introspection and revocation, and Prometheus metrics,
//	           configured by environment variables
//	genkey     write a fresh PKCS#8 PEM private key
//	mint       print one signed token
//	assertion  print one jwt-bearer assertion (RFC 7523) signed with a client key
//	proof      print one DPoP proof (RFC 9449) signed with a client key
//	jwks       print the public JWKS of private key files
//	pubkey     print the PKIX PEM public key of a private key file
//	healthcheck URL  exit 0 if URL answers 2xx (the image has no curl)
//
// Every kid is the RFC 7638 JWK SHA-256 thumbprint of the key, so mint,
// jwks and serve agree on a key file without configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jwt-sidecar/jwt-sidecar/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

// run executes one subcommand and returns the exit code: 0 on success, 1 on
// failure, 2 on bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	if code, done := cli.Healthcheck(args, "jwt-issuer", stdout, stderr); done {
		return code
	}
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, "jwt-issuer", cli.Version(version))
		return 0
	case "serve":
		if len(args) > 0 {
			if args[0] == "-h" || args[0] == "--help" {
				usage(stdout)
				return 0
			}
			fmt.Fprintf(stderr, "jwt-issuer: serve takes no arguments (it reads the environment); see --help\n")
			return 2
		}
		err = serve(ctx, stderr, environ)
	case "genkey":
		err = runGenkey(args, stdout, stderr)
	case "mint":
		err = runMint(args, stdout, stderr, time.Now())
	case "assertion":
		err = runAssertion(args, stdout, stderr, time.Now())
	case "proof":
		err = runProof(args, stdout, stderr, time.Now())
	case "jwks":
		err = runJWKS(args, stdout, stderr)
	case "pubkey":
		err = runPubkey(args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "jwt-issuer: unknown subcommand %q; see --help\n", cmd)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		return 2
	default:
		fmt.Fprintf(stderr, "jwt-issuer: %v\n", err)
		return 1
	}
}

// usageError is a flag error that the flag package already printed with
// the usage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// parseFlags parses args into fs; errors other than -h are usageErrors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return usageError{err}
	}
	return err
}

// serve runs the token service until ctx ends.
func serve(ctx context.Context, stderr io.Writer, environ []string) error {
	cfg, err := parseConfig(environ)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	s, err := newServer(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	if err := s.run(ctx, ln); err != nil {
		return err
	}
	log.Info("jwt-issuer stopped")
	return nil
}

// version is set at build time with -ldflags "-X main.version=..." (make
// build does); it is never written at run time.
var version = ""

// usage prints the help of every subcommand and the environment of serve.
func usage(w io.Writer) {
	fmt.Fprint(w, `jwt-issuer: a small DEVELOPMENT token service for the jwt-sidecar demo, tests and
benchmarks. Never use it as a production identity provider.

Usage:
  jwt-issuer [serve]                     run the token service (configured by environment)
  jwt-issuer genkey [-alg ALG] [-out FILE] [-force]
  jwt-issuer mint -key FILE [flags]      print one signed token
  jwt-issuer assertion -key FILE -client ID [flags]
                                         print one jwt-bearer assertion (RFC 7523)
  jwt-issuer proof -key FILE -htu URL [-htm M] [-token T] [-nonce N] | -jkt
                                         print one DPoP proof (RFC 9449), or the key's thumbprint
  jwt-issuer jwks -key FILE [-key FILE ...] [-alg ALG]
  jwt-issuer pubkey -key FILE
  jwt-issuer healthcheck URL             exit 0 if URL answers 2xx (container health checks)
  jwt-issuer --help | --version

Every kid is the RFC 7638 JWK SHA-256 thumbprint of its key (base64url), so mint,
jwks and serve agree on a key file without configuration.

serve endpoints:
  GET  /.well-known/openid-configuration   discovery (issuer, jwks_uri, token_endpoint, ...)
  GET  /.well-known/jwks.json              public signing keys (current, next, retired)
  POST /token                              OAuth 2.0 client_credentials (RFC 6749 section 4.4),
                                           client auth by HTTP Basic or client_id/client_secret;
                                           with CLIENT_KEYS also grant_type=
                                           urn:ietf:params:oauth:grant-type:jwt-bearer with an
                                           assertion signed by the client's key (RFC 7523);
                                           with a DPoP proof header, a DPoP-bound token (RFC 9449)
  POST /introspect                         token introspection (RFC 7662), client auth as /token
  POST /revoke                             token revocation (RFC 7009), client auth as /token;
                                           only the client a token was issued to may revoke it
  GET  /authorize                          browser login (development only): a plain login form for
                                           USERS / USERS_FILE; POST signs in and redirects with a one-use
                                           code (authorization code flow, PKCE S256 required); /token
                                           then takes grant_type=authorization_code (ID token with nonce,
                                           rotating refresh token) and grant_type=refresh_token
  GET  /end_session                        RP-initiated logout: revokes the user's refresh tokens,
                                           returns to post_logout_redirect_uri
  POST /revoke-subject                     revoke every token of the client's own subject issued
                                           so far (the demo's "log out everywhere"), client auth
  GET  /revocations                        the revocation list (jwt-sidecar's format) with ETag;
                                           304 to a matching If-None-Match
  GET  /metrics                            Prometheus metrics (jwt_issuer_*)
  GET  /healthz                            liveness
serve stops gracefully on SIGINT or SIGTERM and logs JSON to stderr.

serve environment:
`)
	printEnvHelp(w)
	var (
		g  genkeyOptions
		m  mintOptions
		a  assertionOptions
		j  jwksOptions
		pk string
		pr proofOptions
	)
	for _, fs := range []*flag.FlagSet{genkeyFlags(&g), mintFlags(&m), assertionFlags(&a), proofFlags(&pr), jwksFlags(&j), pubkeyFlags(&pk)} {
		fmt.Fprintf(w, "\n%s flags:\n", fs.Name())
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fmt.Fprint(w, `
Examples:
  jwt-issuer genkey -alg ES256 -out issuer.key
  SIGNING_KEY_FILE=issuer.key SIGNING_ALG=ES256 jwt-issuer serve
  jwt-issuer mint -key issuer.key -scope "read write" -claim roles='["admin"]'
  jwt-issuer jwks -key issuer.key > jwks.json
  jwt-issuer genkey -alg ES256 -out client.key && jwt-issuer pubkey -key client.key > client.pub
  CLIENT_KEYS=demo=client.pub jwt-issuer serve
  jwt-issuer assertion -key client.key -client demo -aud http://127.0.0.1:8080/token
  jwt-issuer proof -key client.key -htm POST -htu http://127.0.0.1:8080/token
`)
}
